using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Squash.Runtime.Kernels;

/// <summary>Vectorized conversions between float and the 16-bit float types.</summary>
internal static class FloatConversions
{
    /// <summary>Widens bfloat16 to float (exact).</summary>
    public static void ToSingle(ReadOnlySpan<BFloat16> x, Span<float> y)
    {
        if (x.Length != y.Length) throw new ArgumentException("The spans differ in length.", nameof(y));
        var bits = MemoryMarshal.Cast<BFloat16, ushort>(x);
        var result = MemoryMarshal.Cast<float, uint>(y);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            // Widening doubles the element size, so one vector of bfloat16 fills two of float.
            for (; i <= bits.Length - Vector<ushort>.Count; i += Vector<ushort>.Count)
            {
                Vector.Widen(new Vector<ushort>(bits[i..]), out var low, out var high);
                (low << 16).CopyTo(result[i..]);
                (high << 16).CopyTo(result[(i + Vector<uint>.Count)..]);
            }
        }
        for (; i < bits.Length; i++) result[i] = (uint)bits[i] << 16;
    }

    /// <summary>Rounds float to bfloat16, ties to even; NaN stays a (quiet) NaN. Same results as the
    /// <see cref="BFloat16"/> conversion operator.</summary>
    public static void ToBFloat16(ReadOnlySpan<float> x, Span<BFloat16> y)
    {
        if (x.Length != y.Length) throw new ArgumentException("The spans differ in length.", nameof(y));
        var result = MemoryMarshal.Cast<BFloat16, ushort>(y);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            for (; i <= x.Length - Vector<ushort>.Count; i += Vector<ushort>.Count)
            {
                var low = Round(new Vector<float>(x[i..]));
                var high = Round(new Vector<float>(x[(i + Vector<float>.Count)..]));
                Vector.Narrow(low, high).CopyTo(result[i..]);
            }
        }
        for (; i < x.Length; i++) y[i] = (BFloat16)x[i];

        static Vector<uint> Round(Vector<float> v)
        {
            var bits = Vector.AsVectorUInt32(v);
            var rounded = (bits + new Vector<uint>(0x7FFF) + ((bits >> 16) & Vector<uint>.One)) >> 16;
            var quietNaN = (bits >> 16) | new Vector<uint>(0x40);
            var isNumber = Vector.AsVectorUInt32(Vector.Equals(v, v));
            return Vector.ConditionalSelect(isNumber, rounded, quietNaN);
        }
    }

    /// <summary>Widens float16 to float, bit for bit as the scalar conversion (exact; a signaling NaN becomes quiet).</summary>
    /// <remarks>
    /// Its own vector loops rather than TensorPrimitives.ConvertToSingle: that one runs at 0.64 cycles per value once
    /// tiered compilation has optimized it, but at 4.0-4.2 in apps that set <c>TieredCompilationQuickJit</c> or
    /// <c>TieredCompilation</c> to false (measured on this repository's machine, 4096 values), and the int4 GEMV widens
    /// its scales on every call: the synthetic decoder's step took 28.5-30.8 ms instead of 17.5 ms. These loops take 0.72
    /// cycles per value in every mode.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ToSingle(ReadOnlySpan<Half> x, Span<float> y)
    {
        // As TensorPrimitives: the destination may be longer; x.Length values are written.
        if (y.Length < x.Length) throw new ArgumentException("The destination is shorter than the source.", nameof(y));
        ref ushort source = ref Unsafe.As<Half, ushort>(ref MemoryMarshal.GetReference(x));
        ref float target = ref MemoryMarshal.GetReference(y);
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= x.Length - 32; i += 32)
            {
                var (low, high) = Vector512.Widen(Vector512.LoadUnsafe(ref source, (nuint)i));
                HalfBits.ToSingle(low).StoreUnsafe(ref target, (nuint)i);
                HalfBits.ToSingle(high).StoreUnsafe(ref target, (nuint)(i + 16));
            }
        }
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= x.Length - 16; i += 16)
            {
                var (low, high) = Vector256.Widen(Vector256.LoadUnsafe(ref source, (nuint)i));
                HalfBits.ToSingle(low).StoreUnsafe(ref target, (nuint)i);
                HalfBits.ToSingle(high).StoreUnsafe(ref target, (nuint)(i + 8));
            }
        }
        if (Vector128.IsHardwareAccelerated)
        {
            for (; i <= x.Length - 8; i += 8)
            {
                var (low, high) = Vector128.Widen(Vector128.LoadUnsafe(ref source, (nuint)i));
                HalfBits.ToSingle(low).StoreUnsafe(ref target, (nuint)i);
                HalfBits.ToSingle(high).StoreUnsafe(ref target, (nuint)(i + 4));
            }
        }
        for (; i < x.Length; i++) y[i] = (float)x[i];
    }

    /// <summary>Rounds float to float16, ties to even.</summary>
    public static void ToHalf(ReadOnlySpan<float> x, Span<Half> y) => TensorPrimitives.ConvertToHalf(x, y);
}

/// <summary>
/// float16 bit patterns (zero-extended to 32 bits) to float bit patterns, exactly: a normal number's exponent is rebiased
/// (15 to 127) with its mantissa shifted into place; infinity and NaN (exponent 31) rebias once more to exponent 255,
/// keeping the payload, and a NaN is made quiet (as the scalar conversion and the hardware's do); zero and subnormals
/// are their magnitude times 2^-24, converted from the integer (exact below 2^11, and never a float subnormal, so no
/// denormal-operand slow path). One method per vector width, as the runtime's other per-width kernels.
/// </summary>
internal static class HalfBits
{
    private const uint MagnitudeMask = 0x7FFF, SignMask = 0x8000, Rebias = (127 - 15) << 23, SmallestNormal = 0x400, Special = 0x7C00, Quiet = 0x400000;
    private const float Subnormal = 1f / (1 << 24);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> ToSingle(Vector512<uint> h)
    {
        var magnitude = h & Vector512.Create(MagnitudeMask);
        var normal = (magnitude << 13) + Vector512.Create(Rebias);
        normal += Vector512.GreaterThanOrEqual(magnitude, Vector512.Create(Special)) & Vector512.Create(Rebias);
        normal |= Vector512.GreaterThan(magnitude, Vector512.Create(Special)) & Vector512.Create(Quiet);
        var small = (Vector512.ConvertToSingle(magnitude.AsInt32()) * Vector512.Create(Subnormal)).AsUInt32();
        var value = Vector512.ConditionalSelect(Vector512.LessThan(magnitude, Vector512.Create(SmallestNormal)), small, normal);
        return (value | ((h & Vector512.Create(SignMask)) << 16)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> ToSingle(Vector256<uint> h)
    {
        var magnitude = h & Vector256.Create(MagnitudeMask);
        var normal = (magnitude << 13) + Vector256.Create(Rebias);
        normal += Vector256.GreaterThanOrEqual(magnitude, Vector256.Create(Special)) & Vector256.Create(Rebias);
        normal |= Vector256.GreaterThan(magnitude, Vector256.Create(Special)) & Vector256.Create(Quiet);
        var small = (Vector256.ConvertToSingle(magnitude.AsInt32()) * Vector256.Create(Subnormal)).AsUInt32();
        var value = Vector256.ConditionalSelect(Vector256.LessThan(magnitude, Vector256.Create(SmallestNormal)), small, normal);
        return (value | ((h & Vector256.Create(SignMask)) << 16)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> ToSingle(Vector128<uint> h)
    {
        var magnitude = h & Vector128.Create(MagnitudeMask);
        var normal = (magnitude << 13) + Vector128.Create(Rebias);
        normal += Vector128.GreaterThanOrEqual(magnitude, Vector128.Create(Special)) & Vector128.Create(Rebias);
        normal |= Vector128.GreaterThan(magnitude, Vector128.Create(Special)) & Vector128.Create(Quiet);
        var small = (Vector128.ConvertToSingle(magnitude.AsInt32()) * Vector128.Create(Subnormal)).AsUInt32();
        var value = Vector128.ConditionalSelect(Vector128.LessThan(magnitude, Vector128.Create(SmallestNormal)), small, normal);
        return (value | ((h & Vector128.Create(SignMask)) << 16)).AsSingle();
    }
}
