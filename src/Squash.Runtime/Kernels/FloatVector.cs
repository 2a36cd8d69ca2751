using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Squash.Runtime.Kernels;

/// <summary>
/// A vector of floats of one hardware width. Elementwise math is written once against this interface and runs
/// at 128, 256 or 512 bits through <see cref="Float128"/>, <see cref="Float256"/> and <see cref="Float512"/>
/// (single-field wrappers the JIT keeps in registers).
/// </summary>
/// <remarks>Masks are vectors whose lanes are all ones (true) or all zeros (false), as comparisons return them.</remarks>
internal interface IFloatVector<TSelf> where TSelf : struct, IFloatVector<TSelf>
{
    /// <summary>Lanes per vector.</summary>
    static abstract int Count { get; }

    /// <summary>True when this width runs on hardware instructions.</summary>
    static abstract bool IsHardwareAccelerated { get; }

    /// <summary>Every lane set to <paramref name="value"/>.</summary>
    static abstract TSelf Create(float value);

    /// <summary>Loads <see cref="Count"/> floats from <paramref name="source"/> + <paramref name="index"/>.</summary>
    static abstract TSelf Load(ref float source, nuint index);

    /// <summary>Stores the lanes at <paramref name="destination"/> + <paramref name="index"/>.</summary>
    void Store(ref float destination, nuint index);

    /// <summary>Adds lanes.</summary>
    static abstract TSelf operator +(TSelf a, TSelf b);

    /// <summary>Subtracts lanes.</summary>
    static abstract TSelf operator -(TSelf a, TSelf b);

    /// <summary>Multiplies lanes.</summary>
    static abstract TSelf operator *(TSelf a, TSelf b);

    /// <summary>Divides lanes.</summary>
    static abstract TSelf operator /(TSelf a, TSelf b);

    /// <summary>Negates lanes.</summary>
    static abstract TSelf operator -(TSelf a);

    /// <summary>Bitwise and (masks, sign bits).</summary>
    static abstract TSelf operator &(TSelf a, TSelf b);

    /// <summary>Bitwise or.</summary>
    static abstract TSelf operator |(TSelf a, TSelf b);

    /// <summary>Bitwise exclusive or.</summary>
    static abstract TSelf operator ^(TSelf a, TSelf b);

    /// <summary><c>a * b + c</c> with one rounding.</summary>
    static abstract TSelf FusedMultiplyAdd(TSelf a, TSelf b, TSelf c);

    /// <summary>The larger lane; NaN if either is NaN.</summary>
    static abstract TSelf Max(TSelf a, TSelf b);

    /// <summary>The smaller lane; NaN if either is NaN.</summary>
    static abstract TSelf Min(TSelf a, TSelf b);

    /// <summary>The larger lane with the hardware's rule for NaN and signed zeros: on x86 <paramref name="b"/> when
    /// either is NaN or both are zero; on Arm NaN when either is NaN. With x in <paramref name="b"/>, NaN propagates
    /// on both.</summary>
    static abstract TSelf MaxNative(TSelf a, TSelf b);

    /// <summary>The smaller lane with the hardware's rule for NaN (see <see cref="MaxNative"/>).</summary>
    static abstract TSelf MinNative(TSelf a, TSelf b);

    /// <summary>Absolute value.</summary>
    static abstract TSelf Abs(TSelf a);

    /// <summary><c>x * 2^n</c> for lanes of n holding integers from -150 to 128, with subnormal results and overflow
    /// to infinity rounded as one multiplication would (one vscalefps where AVX-512 has it).</summary>
    static abstract TSelf ScaleByPowerOfTwo(TSelf x, TSelf n);

    /// <summary>Natural logarithm of each lane.</summary>
    static abstract TSelf Log(TSelf a);

    /// <summary>Mask of lanes where <c>a &gt; b</c>.</summary>
    static abstract TSelf GreaterThan(TSelf a, TSelf b);

    /// <summary>Mask of lanes where <c>a &gt;= b</c>.</summary>
    static abstract TSelf GreaterThanOrEqual(TSelf a, TSelf b);

    /// <summary>Mask of lanes where <c>a &lt; b</c>.</summary>
    static abstract TSelf LessThan(TSelf a, TSelf b);

    /// <summary>Mask of lanes where <c>a == b</c> (false for NaN).</summary>
    static abstract TSelf Equal(TSelf a, TSelf b);

    /// <summary>Lanes of <paramref name="ifTrue"/> where <paramref name="mask"/> is set, else of <paramref name="ifFalse"/>.</summary>
    static abstract TSelf Select(TSelf mask, TSelf ifTrue, TSelf ifFalse);
}

/// <summary>128-bit float vector.</summary>
internal readonly struct Float128(Vector128<float> value) : IFloatVector<Float128>
{
    /// <summary>The lanes.</summary>
    public readonly Vector128<float> Value = value;

    public static int Count => Vector128<float>.Count;
    public static bool IsHardwareAccelerated => Vector128.IsHardwareAccelerated;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float128 Create(float value) => new(Vector128.Create(value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float128 Load(ref float source, nuint index) => new(Vector128.LoadUnsafe(ref source, index));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public void Store(ref float destination, nuint index) => Value.StoreUnsafe(ref destination, index);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float128 operator +(Float128 a, Float128 b) => new(a.Value + b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float128 operator -(Float128 a, Float128 b) => new(a.Value - b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float128 operator *(Float128 a, Float128 b) => new(a.Value * b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float128 operator /(Float128 a, Float128 b) => new(a.Value / b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float128 operator -(Float128 a) => new(-a.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float128 operator &(Float128 a, Float128 b) => new(a.Value & b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float128 operator |(Float128 a, Float128 b) => new(a.Value | b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float128 operator ^(Float128 a, Float128 b) => new(a.Value ^ b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float128 FusedMultiplyAdd(Float128 a, Float128 b, Float128 c) => new(Vector128.FusedMultiplyAdd(a.Value, b.Value, c.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float128 Max(Float128 a, Float128 b) => new(Vector128.Max(a.Value, b.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float128 Min(Float128 a, Float128 b) => new(Vector128.Min(a.Value, b.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float128 MaxNative(Float128 a, Float128 b) => new(Vector128.MaxNative(a.Value, b.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float128 MinNative(Float128 a, Float128 b) => new(Vector128.MinNative(a.Value, b.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float128 Abs(Float128 a) => new(Vector128.Abs(a.Value));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Float128 ScaleByPowerOfTwo(Float128 x, Float128 n)
    {
        if (Avx512F.VL.IsSupported) return new(Avx512F.VL.Scale(x.Value, n.Value));
        // 2^n as two normal factors, so that n down to -150 and up to 128 stay within the exponent range.
        var k = Vector128.ConvertToInt32(n.Value);
        var half = Vector128.ShiftRightArithmetic(k, 1);
        var bias = Vector128.Create(127);
        var low = Vector128.ShiftLeft(half + bias, 23).AsSingle();
        var high = Vector128.ShiftLeft(k - half + bias, 23).AsSingle();
        return new(x.Value * low * high);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float128 Log(Float128 a) => new(Vector128.Log(a.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float128 GreaterThan(Float128 a, Float128 b) => new(Vector128.GreaterThan(a.Value, b.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float128 GreaterThanOrEqual(Float128 a, Float128 b) => new(Vector128.GreaterThanOrEqual(a.Value, b.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float128 LessThan(Float128 a, Float128 b) => new(Vector128.LessThan(a.Value, b.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float128 Equal(Float128 a, Float128 b) => new(Vector128.Equals(a.Value, b.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float128 Select(Float128 mask, Float128 ifTrue, Float128 ifFalse) => new(Vector128.ConditionalSelect(mask.Value, ifTrue.Value, ifFalse.Value));
}

/// <summary>256-bit float vector.</summary>
internal readonly struct Float256(Vector256<float> value) : IFloatVector<Float256>
{
    /// <summary>The lanes.</summary>
    public readonly Vector256<float> Value = value;

    public static int Count => Vector256<float>.Count;
    public static bool IsHardwareAccelerated => Vector256.IsHardwareAccelerated;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float256 Create(float value) => new(Vector256.Create(value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float256 Load(ref float source, nuint index) => new(Vector256.LoadUnsafe(ref source, index));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public void Store(ref float destination, nuint index) => Value.StoreUnsafe(ref destination, index);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float256 operator +(Float256 a, Float256 b) => new(a.Value + b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float256 operator -(Float256 a, Float256 b) => new(a.Value - b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float256 operator *(Float256 a, Float256 b) => new(a.Value * b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float256 operator /(Float256 a, Float256 b) => new(a.Value / b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float256 operator -(Float256 a) => new(-a.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float256 operator &(Float256 a, Float256 b) => new(a.Value & b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float256 operator |(Float256 a, Float256 b) => new(a.Value | b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float256 operator ^(Float256 a, Float256 b) => new(a.Value ^ b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float256 FusedMultiplyAdd(Float256 a, Float256 b, Float256 c) => new(Vector256.FusedMultiplyAdd(a.Value, b.Value, c.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float256 Max(Float256 a, Float256 b) => new(Vector256.Max(a.Value, b.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float256 Min(Float256 a, Float256 b) => new(Vector256.Min(a.Value, b.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float256 MaxNative(Float256 a, Float256 b) => new(Vector256.MaxNative(a.Value, b.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float256 MinNative(Float256 a, Float256 b) => new(Vector256.MinNative(a.Value, b.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float256 Abs(Float256 a) => new(Vector256.Abs(a.Value));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Float256 ScaleByPowerOfTwo(Float256 x, Float256 n)
    {
        if (Avx512F.VL.IsSupported) return new(Avx512F.VL.Scale(x.Value, n.Value));
        // 2^n as two normal factors, so that n down to -150 and up to 128 stay within the exponent range.
        var k = Vector256.ConvertToInt32(n.Value);
        var half = Vector256.ShiftRightArithmetic(k, 1);
        var bias = Vector256.Create(127);
        var low = Vector256.ShiftLeft(half + bias, 23).AsSingle();
        var high = Vector256.ShiftLeft(k - half + bias, 23).AsSingle();
        return new(x.Value * low * high);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float256 Log(Float256 a) => new(Vector256.Log(a.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float256 GreaterThan(Float256 a, Float256 b) => new(Vector256.GreaterThan(a.Value, b.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float256 GreaterThanOrEqual(Float256 a, Float256 b) => new(Vector256.GreaterThanOrEqual(a.Value, b.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float256 LessThan(Float256 a, Float256 b) => new(Vector256.LessThan(a.Value, b.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float256 Equal(Float256 a, Float256 b) => new(Vector256.Equals(a.Value, b.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float256 Select(Float256 mask, Float256 ifTrue, Float256 ifFalse) => new(Vector256.ConditionalSelect(mask.Value, ifTrue.Value, ifFalse.Value));
}

/// <summary>512-bit float vector.</summary>
internal readonly struct Float512(Vector512<float> value) : IFloatVector<Float512>
{
    /// <summary>The lanes.</summary>
    public readonly Vector512<float> Value = value;

    public static int Count => Vector512<float>.Count;
    public static bool IsHardwareAccelerated => Vector512.IsHardwareAccelerated;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float512 Create(float value) => new(Vector512.Create(value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float512 Load(ref float source, nuint index) => new(Vector512.LoadUnsafe(ref source, index));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public void Store(ref float destination, nuint index) => Value.StoreUnsafe(ref destination, index);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float512 operator +(Float512 a, Float512 b) => new(a.Value + b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float512 operator -(Float512 a, Float512 b) => new(a.Value - b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float512 operator *(Float512 a, Float512 b) => new(a.Value * b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float512 operator /(Float512 a, Float512 b) => new(a.Value / b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float512 operator -(Float512 a) => new(-a.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float512 operator &(Float512 a, Float512 b) => new(a.Value & b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float512 operator |(Float512 a, Float512 b) => new(a.Value | b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float512 operator ^(Float512 a, Float512 b) => new(a.Value ^ b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float512 FusedMultiplyAdd(Float512 a, Float512 b, Float512 c) => new(Vector512.FusedMultiplyAdd(a.Value, b.Value, c.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float512 Max(Float512 a, Float512 b) => new(Vector512.Max(a.Value, b.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float512 Min(Float512 a, Float512 b) => new(Vector512.Min(a.Value, b.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float512 MaxNative(Float512 a, Float512 b) => new(Vector512.MaxNative(a.Value, b.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float512 MinNative(Float512 a, Float512 b) => new(Vector512.MinNative(a.Value, b.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float512 Abs(Float512 a) => new(Vector512.Abs(a.Value));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Float512 ScaleByPowerOfTwo(Float512 x, Float512 n)
    {
        if (Avx512F.IsSupported) return new(Avx512F.Scale(x.Value, n.Value));
        // 2^n as two normal factors, so that n down to -150 and up to 128 stay within the exponent range.
        var k = Vector512.ConvertToInt32(n.Value);
        var half = Vector512.ShiftRightArithmetic(k, 1);
        var bias = Vector512.Create(127);
        var low = Vector512.ShiftLeft(half + bias, 23).AsSingle();
        var high = Vector512.ShiftLeft(k - half + bias, 23).AsSingle();
        return new(x.Value * low * high);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float512 Log(Float512 a) => new(Vector512.Log(a.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float512 GreaterThan(Float512 a, Float512 b) => new(Vector512.GreaterThan(a.Value, b.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float512 GreaterThanOrEqual(Float512 a, Float512 b) => new(Vector512.GreaterThanOrEqual(a.Value, b.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float512 LessThan(Float512 a, Float512 b) => new(Vector512.LessThan(a.Value, b.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float512 Equal(Float512 a, Float512 b) => new(Vector512.Equals(a.Value, b.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Float512 Select(Float512 mask, Float512 ifTrue, Float512 ifFalse) => new(Vector512.ConditionalSelect(mask.Value, ifTrue.Value, ifFalse.Value));
}
