using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Squash.Runtime.Kernels;

/// <summary>
/// The vector operations of quantization arithmetic (int32 and fp32 lanes of one width, and loads and stores of
/// bytes widened to them), so that the epilogues and the quantize kernels are written once and compiled per width.
/// Every operation rounds exactly like its scalar counterpart in <see cref="QuantizeScalar"/>, so vector bodies
/// and scalar tails agree bit for bit.
/// </summary>
internal unsafe interface IQuantizeLanes<TInt, TFloat>
    where TInt : struct
    where TFloat : struct
{
    /// <summary>Lanes per vector.</summary>
    static abstract int Count { get; }

    /// <summary>True when the hardware runs this width natively.</summary>
    static abstract bool IsAccelerated { get; }

    static abstract TInt LoadInt(int* source);
    static abstract void StoreInt(TInt value, int* destination);
    static abstract TFloat LoadFloat(float* source);
    static abstract void StoreFloat(TFloat value, float* destination);
    /// <summary><see cref="Count"/> unsigned bytes, zero-extended.</summary>
    static abstract TInt LoadBytes(byte* source);
    /// <summary><see cref="Count"/> signed bytes, sign-extended.</summary>
    static abstract TInt LoadSBytes(sbyte* source);
    /// <summary>Stores the low byte of each lane (the lanes hold 0 to 255).</summary>
    static abstract void StoreBytes(TInt value, byte* destination);
    /// <summary>Stores the lanes of <paramref name="first"/> then of <paramref name="second"/> as bytes (the lanes hold
    /// 0 to 255): one pack of two vectors is cheaper than two narrowing stores.</summary>
    static abstract void StoreBytes(TInt first, TInt second, byte* destination);
    static abstract TInt SplatInt(int value);
    static abstract TFloat SplatFloat(float value);
    static abstract TInt Add(TInt left, TInt right);
    static abstract TInt Subtract(TInt left, TInt right);
    /// <summary>int32 to fp32, rounding to nearest even beyond 2^24.</summary>
    static abstract TFloat ToFloat(TInt value);
    static abstract TFloat Multiply(TFloat left, TFloat right);
    static abstract TFloat Divide(TFloat left, TFloat right);
    /// <summary><c>a * b + c</c> with one rounding.</summary>
    static abstract TFloat MultiplyAdd(TFloat a, TFloat b, TFloat c);
    /// <summary>Clamps to [<paramref name="low"/>, <paramref name="high"/>]; NaN becomes <paramref name="low"/>.</summary>
    static abstract TFloat Clamp(TFloat value, TFloat low, TFloat high);
    /// <summary>The smaller of a finite <paramref name="value"/> and <paramref name="high"/>.</summary>
    static abstract TFloat Min(TFloat value, TFloat high);
    /// <summary>True when <see cref="StoreBytes(TInt, TInt, byte*)"/> saturates (a negative lane stores 0) and
    /// <see cref="RoundToInt"/> gives int.MinValue beyond the int32 range, so that a requantization whose low bound
    /// is 0 may leave the lower half of its clamp to the store.</summary>
    static abstract bool PackSaturates { get; }
    /// <summary>Rounds to the nearest integer, ties to even; the value is finite and within int32.</summary>
    static abstract TInt RoundToInt(TFloat value);
}

/// <summary>The bounds applied before a two-vector byte store.</summary>
internal static class StoreBounds
{
    /// <summary>
    /// <paramref name="value"/> (relative to the output zero point) clamped to [<paramref name="low"/>,
    /// <paramref name="high"/>] for <see cref="IQuantizeLanes{TInt, TFloat}.StoreBytes(TInt, TInt, byte*)"/>. When the
    /// byte range starts at 0 (<paramref name="fromZero"/>) and the store saturates, only the upper bound is applied: the
    /// packs store 0 for any lane below it, including a sum scaled beyond int32 (which VCVTPS2DQ turns into
    /// int.MinValue); one instruction of ten fewer per vector (int8 GEMM tiles and depthwise blocks 2-4 % faster).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TFloat Apply<TInt, TFloat, TLanes>(TFloat value, TFloat low, TFloat high, bool fromZero)
        where TInt : struct
        where TFloat : struct
        where TLanes : struct, IQuantizeLanes<TInt, TFloat> =>
        TLanes.PackSaturates && fromZero ? TLanes.Min(value, high) : TLanes.Clamp(value, low, high);
}

/// <summary>The scalar forms of the lane operations, for tails and references.</summary>
internal static class QuantizeScalar
{
    /// <summary>Clamps to [<paramref name="low"/>, <paramref name="high"/>]; NaN becomes <paramref name="low"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Clamp(float value, float low, float high) => value > low ? (value < high ? value : high) : low;

    /// <summary>Rounds to the nearest integer, ties to even.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int RoundToInt(float value) => (int)MathF.Round(value, MidpointRounding.ToEven);
}

internal unsafe struct Quantize512 : IQuantizeLanes<Vector512<int>, Vector512<float>>
{
    public static int Count => 16;
    public static bool IsAccelerated => Vector512.IsHardwareAccelerated && Avx512BW.IsSupported;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<int> LoadInt(int* source) => Vector512.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void StoreInt(Vector512<int> value, int* destination) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> LoadFloat(float* source) => Vector512.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void StoreFloat(Vector512<float> value, float* destination) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<int> LoadBytes(byte* source) => Avx512F.ConvertToVector512Int32(Vector128.Load(source));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<int> LoadSBytes(sbyte* source) => Avx512F.ConvertToVector512Int32(Vector128.Load(source));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void StoreBytes(Vector512<int> value, byte* destination) => Avx512F.ConvertToVector128Byte(value).Store(destination);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreBytes(Vector512<int> first, Vector512<int> second, byte* destination)
    {
        // Packing works within 128-bit lanes: lane i ends with first[4i..4i+3] in dword 0 and second[4i..4i+3] in
        // dword 1; a dword permute puts them in order.
        var words = Avx512BW.PackSignedSaturate(first, second);
        var bytes = Avx512BW.PackUnsignedSaturate(words, words).AsInt32();
        var order = Vector512.Create(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
        Avx512F.PermuteVar16x32(bytes, order).GetLower().AsByte().Store(destination);
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<int> SplatInt(int value) => Vector512.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> SplatFloat(float value) => Vector512.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<int> Add(Vector512<int> left, Vector512<int> right) => left + right;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<int> Subtract(Vector512<int> left, Vector512<int> right) => left - right;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> ToFloat(Vector512<int> value) => Avx512F.ConvertToVector512Single(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Multiply(Vector512<float> left, Vector512<float> right) => left * right;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Divide(Vector512<float> left, Vector512<float> right) => left / right;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> MultiplyAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Avx512F.FusedMultiplyAdd(a, b, c);
    // VMAXPS returns its second operand when either is NaN: NaN becomes the low bound.
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Clamp(Vector512<float> value, Vector512<float> low, Vector512<float> high) => Avx512F.Min(Avx512F.Max(value, low), high);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Min(Vector512<float> value, Vector512<float> high) => Avx512F.Min(value, high);
    public static bool PackSaturates => true;
    // VCVTPS2DQ rounds by MXCSR, which .NET leaves at round-to-nearest-even.
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<int> RoundToInt(Vector512<float> value) => Avx512F.ConvertToVector512Int32(value);
}

internal unsafe struct Quantize256 : IQuantizeLanes<Vector256<int>, Vector256<float>>
{
    public static int Count => 8;
    public static bool IsAccelerated => Vector256.IsHardwareAccelerated && Avx2.IsSupported && Fma.IsSupported;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<int> LoadInt(int* source) => Vector256.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void StoreInt(Vector256<int> value, int* destination) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> LoadFloat(float* source) => Vector256.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void StoreFloat(Vector256<float> value, float* destination) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<int> LoadBytes(byte* source) => Avx2.ConvertToVector256Int32(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<int> LoadSBytes(sbyte* source) => Avx2.ConvertToVector256Int32(source);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreBytes(Vector256<int> value, byte* destination)
    {
        // Pack to words then bytes within each 128-bit half, then gather the two halves' low 4 bytes.
        var words = Avx2.PackSignedSaturate(value, value);
        var bytes = Avx2.PackUnsignedSaturate(words, words);
        *(uint*)destination = bytes.AsUInt32().GetElement(0);
        *(uint*)(destination + 4) = bytes.AsUInt32().GetElement(4);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreBytes(Vector256<int> first, Vector256<int> second, byte* destination)
    {
        var words = Avx2.PackSignedSaturate(first, second);
        var bytes = Avx2.PackUnsignedSaturate(words, words).AsInt32();
        Avx2.PermuteVar8x32(bytes, Vector256.Create(0, 4, 1, 5, 0, 0, 0, 0)).GetLower().AsByte().Store(destination);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<int> SplatInt(int value) => Vector256.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> SplatFloat(float value) => Vector256.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<int> Add(Vector256<int> left, Vector256<int> right) => left + right;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<int> Subtract(Vector256<int> left, Vector256<int> right) => left - right;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> ToFloat(Vector256<int> value) => Avx.ConvertToVector256Single(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Multiply(Vector256<float> left, Vector256<float> right) => left * right;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Divide(Vector256<float> left, Vector256<float> right) => left / right;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> MultiplyAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Fma.MultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Clamp(Vector256<float> value, Vector256<float> low, Vector256<float> high) => Avx.Min(Avx.Max(value, low), high);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Min(Vector256<float> value, Vector256<float> high) => Avx.Min(value, high);
    public static bool PackSaturates => true;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<int> RoundToInt(Vector256<float> value) => Avx.ConvertToVector256Int32(value);
}

/// <summary>Vector128 with portable operations, so that it runs (exactly) everywhere.</summary>
internal unsafe struct Quantize128 : IQuantizeLanes<Vector128<int>, Vector128<float>>
{
    public static int Count => 4;
    public static bool IsAccelerated => Vector128.IsHardwareAccelerated;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<int> LoadInt(int* source) => Vector128.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void StoreInt(Vector128<int> value, int* destination) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> LoadFloat(float* source) => Vector128.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void StoreFloat(Vector128<float> value, float* destination) => value.Store(destination);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> LoadBytes(byte* source)
    {
        if (Sse41.IsSupported) return Sse41.ConvertToVector128Int32(source);
        var bytes = Vector128.CreateScalarUnsafe(*(uint*)source).AsByte();
        return Vector128.WidenLower(Vector128.WidenLower(bytes)).AsInt32();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> LoadSBytes(sbyte* source)
    {
        if (Sse41.IsSupported) return Sse41.ConvertToVector128Int32(source);
        var bytes = Vector128.CreateScalarUnsafe(*(uint*)source).AsSByte();
        return Vector128.WidenLower(Vector128.WidenLower(bytes));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreBytes(Vector128<int> value, byte* destination)
    {
        var words = Vector128.Narrow(value.AsUInt32(), value.AsUInt32());
        *(uint*)destination = Vector128.Narrow(words, words).AsUInt32().ToScalar();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreBytes(Vector128<int> first, Vector128<int> second, byte* destination)
    {
        var words = Vector128.Narrow(first.AsUInt32(), second.AsUInt32());
        *(ulong*)destination = Vector128.Narrow(words, words).AsUInt64().ToScalar();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<int> SplatInt(int value) => Vector128.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> SplatFloat(float value) => Vector128.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<int> Add(Vector128<int> left, Vector128<int> right) => left + right;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<int> Subtract(Vector128<int> left, Vector128<int> right) => left - right;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> ToFloat(Vector128<int> value) => Vector128.ConvertToSingle(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Multiply(Vector128<float> left, Vector128<float> right) => left * right;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Divide(Vector128<float> left, Vector128<float> right) => left / right;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> MultiplyAdd(Vector128<float> a, Vector128<float> b, Vector128<float> c) => Vector128.FusedMultiplyAdd(a, b, c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Min(Vector128<float> value, Vector128<float> high) => Vector128.ConditionalSelect(Vector128.LessThan(value, high), value, high);

    // The two-vector store narrows without saturating.
    public static bool PackSaturates => false;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Clamp(Vector128<float> value, Vector128<float> low, Vector128<float> high)
    {
        // Compare-and-select, so that NaN maps to the low bound on every platform.
        value = Vector128.ConditionalSelect(Vector128.GreaterThan(value, low), value, low);
        return Vector128.ConditionalSelect(Vector128.LessThan(value, high), value, high);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> RoundToInt(Vector128<float> value) =>
        Sse2.IsSupported ? Sse2.ConvertToVector128Int32(value) : Vector128.ConvertToInt32(Vector128.Round(value));
}
