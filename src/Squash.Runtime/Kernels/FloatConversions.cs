using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;

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

    /// <summary>Widens float16 to float (exact).</summary>
    public static void ToSingle(ReadOnlySpan<Half> x, Span<float> y) => TensorPrimitives.ConvertToSingle(x, y);

    /// <summary>Rounds float to float16, ties to even.</summary>
    public static void ToHalf(ReadOnlySpan<float> x, Span<Half> y) => TensorPrimitives.ConvertToHalf(x, y);
}
