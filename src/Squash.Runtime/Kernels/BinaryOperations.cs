using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Squash.Runtime.Kernels;

// The element operations of the binary elementwise operators, as data: each operation is a struct of static
// methods (scalar and row forms) that the generic row adapters below turn into IBinaryRowKernels for a given
// element type. The JIT specializes every (type, operation) pair, so nothing is virtual per element.

/// <summary>An arithmetic operation defined for every primitive numeric type (16-bit floats run through
/// <see cref="WidenedRows{T, TFormat, TKernel}"/> on float).</summary>
internal interface IArithmetic
{
    /// <summary>One element.</summary>
    static abstract T Invoke<T>(T x, T y) where T : unmanaged, INumber<T>;

    /// <summary><c>d[i] = op(x[i], y[i])</c>.</summary>
    static abstract void SpanSpan<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> d) where T : unmanaged, INumber<T>;

    /// <summary><c>d[i] = op(x[i], y)</c>.</summary>
    static abstract void SpanScalar<T>(ReadOnlySpan<T> x, T y, Span<T> d) where T : unmanaged, INumber<T>;

    /// <summary><c>d[i] = op(x, y[i])</c>.</summary>
    static abstract void ScalarSpan<T>(T x, ReadOnlySpan<T> y, Span<T> d) where T : unmanaged, INumber<T>;
}

/// <summary>A comparison, with a vector form that yields all-ones lanes where it holds.</summary>
internal interface IComparison
{
    /// <summary>One element.</summary>
    static abstract bool Invoke<T>(T x, T y) where T : unmanaged, INumber<T>;

    /// <summary>Lane-wise mask.</summary>
    static abstract Vector128<T> Invoke<T>(Vector128<T> x, Vector128<T> y);

    /// <summary>Lane-wise mask.</summary>
    static abstract Vector256<T> Invoke<T>(Vector256<T> x, Vector256<T> y);
}

/// <summary>Facts about primitive numeric element types that the JIT folds to constants.</summary>
internal static class Numeric<T>
{
    /// <summary>True for the integer types.</summary>
    public static bool IsInteger
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => typeof(T) == typeof(sbyte) || typeof(T) == typeof(byte) || typeof(T) == typeof(short)
            || typeof(T) == typeof(ushort) || typeof(T) == typeof(int) || typeof(T) == typeof(uint)
            || typeof(T) == typeof(long) || typeof(T) == typeof(ulong);
    }

    /// <summary>True for the signed integer types.</summary>
    public static bool IsSignedInteger
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => typeof(T) == typeof(sbyte) || typeof(T) == typeof(short) || typeof(T) == typeof(int) || typeof(T) == typeof(long);
    }
}

/// <summary>Element-by-element loops for operations without a vector form.</summary>
internal static class ScalarLoop<TOp> where TOp : IArithmetic
{
    public static void SpanSpan<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> d) where T : unmanaged, INumber<T>
    {
        x = x[..d.Length];
        y = y[..d.Length];
        for (int i = 0; i < d.Length; i++) d[i] = TOp.Invoke(x[i], y[i]);
    }

    public static void SpanScalar<T>(ReadOnlySpan<T> x, T y, Span<T> d) where T : unmanaged, INumber<T>
    {
        x = x[..d.Length];
        for (int i = 0; i < d.Length; i++) d[i] = TOp.Invoke(x[i], y);
    }

    public static void ScalarSpan<T>(T x, ReadOnlySpan<T> y, Span<T> d) where T : unmanaged, INumber<T>
    {
        y = y[..d.Length];
        for (int i = 0; i < d.Length; i++) d[i] = TOp.Invoke(x, y[i]);
    }
}

/// <summary><c>x + y</c>; integers wrap.</summary>
internal readonly struct AddOp : IArithmetic
{
    public static T Invoke<T>(T x, T y) where T : unmanaged, INumber<T> => x + y;
    public static void SpanSpan<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Add(x, y, d);
    public static void SpanScalar<T>(ReadOnlySpan<T> x, T y, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Add(x, y, d);
    public static void ScalarSpan<T>(T x, ReadOnlySpan<T> y, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Add(y, x, d);
}

/// <summary><c>x - y</c>; integers wrap.</summary>
internal readonly struct SubtractOp : IArithmetic
{
    public static T Invoke<T>(T x, T y) where T : unmanaged, INumber<T> => x - y;
    public static void SpanSpan<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Subtract(x, y, d);
    public static void SpanScalar<T>(ReadOnlySpan<T> x, T y, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Subtract(x, y, d);
    public static void ScalarSpan<T>(T x, ReadOnlySpan<T> y, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Subtract(x, y, d);
}

/// <summary><c>x * y</c>; integers wrap.</summary>
internal readonly struct MultiplyOp : IArithmetic
{
    public static T Invoke<T>(T x, T y) where T : unmanaged, INumber<T> => x * y;
    public static void SpanSpan<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Multiply(x, y, d);
    public static void SpanScalar<T>(ReadOnlySpan<T> x, T y, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Multiply(x, y, d);
    public static void ScalarSpan<T>(T x, ReadOnlySpan<T> y, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Multiply(y, x, d);
}

/// <summary>
/// <c>x / y</c>. Integer division truncates toward zero. Integer division by zero gives 0 (as NumPy does; the
/// processor would trap), and <c>MinValue / -1</c> wraps to <c>MinValue</c> (it would trap too).
/// </summary>
internal readonly struct DivideOp : IArithmetic
{
    public static T Invoke<T>(T x, T y) where T : unmanaged, INumber<T>
    {
        if (Numeric<T>.IsInteger)
        {
            if (y == T.Zero) return T.Zero;
            if (Numeric<T>.IsSignedInteger && y == T.Zero - T.One) return T.Zero - x;
        }
        return x / y;
    }

    public static void SpanSpan<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> d) where T : unmanaged, INumber<T>
    {
        if (Numeric<T>.IsInteger) ScalarLoop<DivideOp>.SpanSpan(x, y, d);
        else TensorPrimitives.Divide(x, y, d);
    }

    public static void SpanScalar<T>(ReadOnlySpan<T> x, T y, Span<T> d) where T : unmanaged, INumber<T>
    {
        if (Numeric<T>.IsInteger) ScalarLoop<DivideOp>.SpanScalar(x, y, d);
        else TensorPrimitives.Divide(x, y, d);
    }

    public static void ScalarSpan<T>(T x, ReadOnlySpan<T> y, Span<T> d) where T : unmanaged, INumber<T>
    {
        if (Numeric<T>.IsInteger) ScalarLoop<DivideOp>.ScalarSpan(x, y, d);
        else TensorPrimitives.Divide(x, y, d);
    }
}

/// <summary>Mod with <c>fmod = 1</c>: the remainder of truncated division, with the sign of <c>x</c> (C's fmod).
/// An integer remainder by zero is 0, as in NumPy.</summary>
internal readonly struct TruncatedModOp : IArithmetic
{
    public static T Invoke<T>(T x, T y) where T : unmanaged, INumber<T>
    {
        if (Numeric<T>.IsInteger)
        {
            // x % 0 and MinValue % -1 trap on the processor; both are 0 here (the second exactly so).
            if (y == T.Zero) return T.Zero;
            if (Numeric<T>.IsSignedInteger && y == T.Zero - T.One) return T.Zero;
        }
        return x % y;
    }

    public static void SpanSpan<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> d) where T : unmanaged, INumber<T> => ScalarLoop<TruncatedModOp>.SpanSpan(x, y, d);
    public static void SpanScalar<T>(ReadOnlySpan<T> x, T y, Span<T> d) where T : unmanaged, INumber<T> => ScalarLoop<TruncatedModOp>.SpanScalar(x, y, d);
    public static void ScalarSpan<T>(T x, ReadOnlySpan<T> y, Span<T> d) where T : unmanaged, INumber<T> => ScalarLoop<TruncatedModOp>.ScalarSpan(x, y, d);
}

/// <summary>Mod with <c>fmod = 0</c>: the remainder of floored division, with the sign of <c>y</c> (Python's %).
/// A remainder by zero is 0, as in NumPy.</summary>
internal readonly struct FlooredModOp : IArithmetic
{
    public static T Invoke<T>(T x, T y) where T : unmanaged, INumber<T>
    {
        T r = TruncatedModOp.Invoke(x, y);
        return r != T.Zero && T.IsNegative(r) != T.IsNegative(y) ? r + y : r;
    }

    public static void SpanSpan<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> d) where T : unmanaged, INumber<T> => ScalarLoop<FlooredModOp>.SpanSpan(x, y, d);
    public static void SpanScalar<T>(ReadOnlySpan<T> x, T y, Span<T> d) where T : unmanaged, INumber<T> => ScalarLoop<FlooredModOp>.SpanScalar(x, y, d);
    public static void ScalarSpan<T>(T x, ReadOnlySpan<T> y, Span<T> d) where T : unmanaged, INumber<T> => ScalarLoop<FlooredModOp>.ScalarSpan(x, y, d);
}

/// <summary>The larger of <c>x</c> and <c>y</c>; NaN if either is NaN (NumPy's maximum).</summary>
internal readonly struct MaxOp : IArithmetic
{
    public static T Invoke<T>(T x, T y) where T : unmanaged, INumber<T> => T.Max(x, y);
    public static void SpanSpan<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Max(x, y, d);
    public static void SpanScalar<T>(ReadOnlySpan<T> x, T y, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Max(x, y, d);
    public static void ScalarSpan<T>(T x, ReadOnlySpan<T> y, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Max(y, x, d);
}

/// <summary>The smaller of <c>x</c> and <c>y</c>; NaN if either is NaN (NumPy's minimum).</summary>
internal readonly struct MinOp : IArithmetic
{
    public static T Invoke<T>(T x, T y) where T : unmanaged, INumber<T> => T.Min(x, y);
    public static void SpanSpan<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Min(x, y, d);
    public static void SpanScalar<T>(ReadOnlySpan<T> x, T y, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Min(x, y, d);
    public static void ScalarSpan<T>(T x, ReadOnlySpan<T> y, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Min(y, x, d);
}

/// <summary>PRelu: <c>x &lt; 0 ? x * slope : x</c>, with the slope as the second operand.</summary>
internal readonly struct PReluOp : IArithmetic
{
    public static T Invoke<T>(T x, T y) where T : unmanaged, INumber<T> => x < T.Zero ? x * y : x;

    public static void SpanSpan<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> d) where T : unmanaged, INumber<T>
    {
        x = x[..d.Length];
        y = y[..d.Length];
        int i = 0;
        if (Vector256.IsHardwareAccelerated && Vector256<T>.IsSupported)
        {
            ref T xr = ref MemoryMarshal.GetReference(x), yr = ref MemoryMarshal.GetReference(y), dr = ref MemoryMarshal.GetReference(d);
            for (; i <= d.Length - Vector256<T>.Count; i += Vector256<T>.Count)
            {
                var vx = Vector256.LoadUnsafe(ref xr, (nuint)i);
                var vy = Vector256.LoadUnsafe(ref yr, (nuint)i);
                Vector256.ConditionalSelect(Vector256.LessThan(vx, Vector256<T>.Zero), vx * vy, vx).StoreUnsafe(ref dr, (nuint)i);
            }
        }
        for (; i < d.Length; i++) d[i] = Invoke(x[i], y[i]);
    }

    public static void SpanScalar<T>(ReadOnlySpan<T> x, T y, Span<T> d) where T : unmanaged, INumber<T>
    {
        // The hot case: one slope per channel against a row of H*W activations.
        x = x[..d.Length];
        int i = 0;
        if (Vector256.IsHardwareAccelerated && Vector256<T>.IsSupported)
        {
            ref T xr = ref MemoryMarshal.GetReference(x), dr = ref MemoryMarshal.GetReference(d);
            var vy = Vector256.Create(y);
            for (; i <= d.Length - Vector256<T>.Count; i += Vector256<T>.Count)
            {
                var vx = Vector256.LoadUnsafe(ref xr, (nuint)i);
                Vector256.ConditionalSelect(Vector256.LessThan(vx, Vector256<T>.Zero), vx * vy, vx).StoreUnsafe(ref dr, (nuint)i);
            }
        }
        for (; i < d.Length; i++) d[i] = Invoke(x[i], y);
    }

    public static void ScalarSpan<T>(T x, ReadOnlySpan<T> y, Span<T> d) where T : unmanaged, INumber<T>
    {
        if (x < T.Zero) TensorPrimitives.Multiply(y, x, d);
        else d.Fill(x);
    }
}

/// <summary>Same-type floating-point Pow (float, double). Constant exponents that exported models use are
/// multiplies, as in ONNX Runtime: 2 (decomposed normalizations; x*x is exactly what pow rounds to) and 3 (tanh
/// GELU; x*x*x rounds twice, within an ulp of pow).</summary>
internal readonly struct PowRows<T> : IBinaryRowKernel<T, T, T> where T : unmanaged, IPowerFunctions<T>, IFloatingPointIeee754<T>
{
    public static void SpanSpan(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> destination) => TensorPrimitives.Pow(x, y, destination);

    public static void SpanScalar(ReadOnlySpan<T> x, T y, Span<T> destination)
    {
        if (y == T.CreateTruncating(2)) TensorPrimitives.Multiply(x, x, destination);
        else if (y == T.CreateTruncating(3)) Cube(x, destination);
        else if (y == T.One) x[..destination.Length].CopyTo(destination);
        else TensorPrimitives.Pow(x, y, destination);
    }

    public static void ScalarSpan(T x, ReadOnlySpan<T> y, Span<T> destination) => TensorPrimitives.Pow(x, y, destination);

    private static void Cube(ReadOnlySpan<T> x, Span<T> destination)
    {
        // Blocks keep x's block in cache for the second pass; the destination may be x itself.
        const int Block = 512;
        Span<T> square = stackalloc T[Block];
        for (int i = 0; i < destination.Length; i += Block)
        {
            int n = Math.Min(Block, destination.Length - i);
            var xs = x.Slice(i, n);
            TensorPrimitives.Multiply(xs, xs, square[..n]);
            TensorPrimitives.Multiply(square[..n], xs, destination.Slice(i, n));
        }
    }
}

/// <summary>
/// Pow where the exponent's type differs from the base's, or both are integers. Integer to integer powers are
/// exact (wrapping like NumPy, by repeated squaring); a negative integer exponent gives the truncated real result
/// (1 or -1 for a base of 1 or -1, else 0). Everything else computes in double and converts once to the base's
/// type (saturating for integers, as ONNX Runtime's cast of std::pow does in practice).
/// </summary>
internal readonly struct MixedPowRows<TBase, TExponent> : IBinaryRowKernel<TBase, TExponent, TBase>
    where TBase : unmanaged, INumber<TBase> where TExponent : unmanaged, INumber<TExponent>
{
    public static void SpanSpan(ReadOnlySpan<TBase> x, ReadOnlySpan<TExponent> y, Span<TBase> destination)
    {
        for (int i = 0; i < destination.Length; i++) destination[i] = Invoke(x[i], y[i]);
    }

    public static void SpanScalar(ReadOnlySpan<TBase> x, TExponent y, Span<TBase> destination)
    {
        for (int i = 0; i < destination.Length; i++) destination[i] = Invoke(x[i], y);
    }

    public static void ScalarSpan(TBase x, ReadOnlySpan<TExponent> y, Span<TBase> destination)
    {
        for (int i = 0; i < destination.Length; i++) destination[i] = Invoke(x, y[i]);
    }

    private static TBase Invoke(TBase x, TExponent y)
    {
        if (Numeric<TBase>.IsInteger && Numeric<TExponent>.IsInteger)
            return TBase.CreateTruncating(IntegerPower(long.CreateTruncating(x), long.CreateSaturating(y)));
        return TBase.CreateSaturating(Math.Pow(double.CreateTruncating(x), double.CreateTruncating(y)));
    }

    private static long IntegerPower(long x, long e)
    {
        if (e < 0) return x == 1 ? 1 : x == -1 ? ((e & 1) == 0 ? 1 : -1) : 0;
        long result = 1;
        while (e != 0)
        {
            if ((e & 1) != 0) result *= x;
            x *= x;
            e >>= 1;
        }
        return result;
    }
}

/// <summary>Runs an <see cref="IArithmetic"/> operation on rows of <typeparamref name="T"/>.</summary>
internal readonly struct ArithmeticRows<T, TOp> : IBinaryRowKernel<T, T, T> where T : unmanaged, INumber<T> where TOp : IArithmetic
{
    public static void SpanSpan(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> destination) => TOp.SpanSpan(x, y, destination);
    public static void SpanScalar(ReadOnlySpan<T> x, T y, Span<T> destination) => TOp.SpanScalar(x, y, destination);
    public static void ScalarSpan(T x, ReadOnlySpan<T> y, Span<T> destination) => TOp.ScalarSpan(x, y, destination);
}

/// <summary>Runs an <see cref="IComparison"/> on rows of <typeparamref name="T"/>, writing bools (0 or 1).</summary>
internal readonly struct ComparisonRows<T, TOp> : IBinaryRowKernel<T, T, bool> where T : unmanaged, INumber<T> where TOp : IComparison
{
    public static void SpanSpan(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<bool> destination)
    {
        x = x[..destination.Length];
        y = y[..destination.Length];
        ref T xr = ref MemoryMarshal.GetReference(x), yr = ref MemoryMarshal.GetReference(y);
        ref byte dr = ref Unsafe.As<bool, byte>(ref MemoryMarshal.GetReference(destination));
        int i = 0;
        if (Vector256.IsHardwareAccelerated && Vector256<T>.IsSupported)
        {
            for (; i <= destination.Length - Vector256<T>.Count; i += Vector256<T>.Count)
                Masks.Store(TOp.Invoke(Vector256.LoadUnsafe(ref xr, (nuint)i), Vector256.LoadUnsafe(ref yr, (nuint)i)).ExtractMostSignificantBits(),
                    Vector256<T>.Count, ref Unsafe.Add(ref dr, i));
        }
        else if (Vector128.IsHardwareAccelerated && Vector128<T>.IsSupported)
        {
            for (; i <= destination.Length - Vector128<T>.Count; i += Vector128<T>.Count)
                Masks.Store(TOp.Invoke(Vector128.LoadUnsafe(ref xr, (nuint)i), Vector128.LoadUnsafe(ref yr, (nuint)i)).ExtractMostSignificantBits(),
                    Vector128<T>.Count, ref Unsafe.Add(ref dr, i));
        }
        for (; i < destination.Length; i++) destination[i] = TOp.Invoke(x[i], y[i]);
    }

    public static void SpanScalar(ReadOnlySpan<T> x, T y, Span<bool> destination)
    {
        x = x[..destination.Length];
        ref T xr = ref MemoryMarshal.GetReference(x);
        ref byte dr = ref Unsafe.As<bool, byte>(ref MemoryMarshal.GetReference(destination));
        int i = 0;
        if (Vector256.IsHardwareAccelerated && Vector256<T>.IsSupported)
        {
            var vy = Vector256.Create(y);
            for (; i <= destination.Length - Vector256<T>.Count; i += Vector256<T>.Count)
                Masks.Store(TOp.Invoke(Vector256.LoadUnsafe(ref xr, (nuint)i), vy).ExtractMostSignificantBits(), Vector256<T>.Count, ref Unsafe.Add(ref dr, i));
        }
        else if (Vector128.IsHardwareAccelerated && Vector128<T>.IsSupported)
        {
            var vy = Vector128.Create(y);
            for (; i <= destination.Length - Vector128<T>.Count; i += Vector128<T>.Count)
                Masks.Store(TOp.Invoke(Vector128.LoadUnsafe(ref xr, (nuint)i), vy).ExtractMostSignificantBits(), Vector128<T>.Count, ref Unsafe.Add(ref dr, i));
        }
        for (; i < destination.Length; i++) destination[i] = TOp.Invoke(x[i], y);
    }

    public static void ScalarSpan(T x, ReadOnlySpan<T> y, Span<bool> destination)
    {
        y = y[..destination.Length];
        ref T yr = ref MemoryMarshal.GetReference(y);
        ref byte dr = ref Unsafe.As<bool, byte>(ref MemoryMarshal.GetReference(destination));
        int i = 0;
        if (Vector256.IsHardwareAccelerated && Vector256<T>.IsSupported)
        {
            var vx = Vector256.Create(x);
            for (; i <= destination.Length - Vector256<T>.Count; i += Vector256<T>.Count)
                Masks.Store(TOp.Invoke(vx, Vector256.LoadUnsafe(ref yr, (nuint)i)).ExtractMostSignificantBits(), Vector256<T>.Count, ref Unsafe.Add(ref dr, i));
        }
        else if (Vector128.IsHardwareAccelerated && Vector128<T>.IsSupported)
        {
            var vx = Vector128.Create(x);
            for (; i <= destination.Length - Vector128<T>.Count; i += Vector128<T>.Count)
                Masks.Store(TOp.Invoke(vx, Vector128.LoadUnsafe(ref yr, (nuint)i)).ExtractMostSignificantBits(), Vector128<T>.Count, ref Unsafe.Add(ref dr, i));
        }
        for (; i < destination.Length; i++) destination[i] = TOp.Invoke(x, y[i]);
    }
}

/// <summary>Writes lane masks as bools.</summary>
internal static class Masks
{
    // Byte j of entry b is bit j of b: eight mask bits become eight bools with one load and one store.
    private static readonly ulong[] s_spread = BuildSpread();

    /// <summary>Writes bit i of <paramref name="bits"/> as byte i (0 or 1), for i below <paramref name="count"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(uint bits, int count, ref byte destination)
    {
        int i = 0;
        for (; i + 8 <= count; i += 8) Unsafe.WriteUnaligned(ref Unsafe.Add(ref destination, i), s_spread[(bits >> i) & 0xFF]);
        if (i < count)
        {
            // Two or four lanes (64-bit elements): write them one by one.
            for (; i < count; i++) Unsafe.Add(ref destination, i) = (byte)((bits >> i) & 1);
        }
    }

    private static ulong[] BuildSpread()
    {
        var table = new ulong[256];
        for (int b = 0; b < 256; b++)
            for (int j = 0; j < 8; j++)
                if ((b & (1 << j)) != 0) table[b] |= 1UL << (8 * j);
        return table;
    }
}

/// <summary><c>x == y</c>.</summary>
internal readonly struct EqualOp : IComparison
{
    public static bool Invoke<T>(T x, T y) where T : unmanaged, INumber<T> => x == y;
    public static Vector128<T> Invoke<T>(Vector128<T> x, Vector128<T> y) => Vector128.Equals(x, y);
    public static Vector256<T> Invoke<T>(Vector256<T> x, Vector256<T> y) => Vector256.Equals(x, y);
}

/// <summary><c>x &gt; y</c>.</summary>
internal readonly struct GreaterOp : IComparison
{
    public static bool Invoke<T>(T x, T y) where T : unmanaged, INumber<T> => x > y;
    public static Vector128<T> Invoke<T>(Vector128<T> x, Vector128<T> y) => Vector128.GreaterThan(x, y);
    public static Vector256<T> Invoke<T>(Vector256<T> x, Vector256<T> y) => Vector256.GreaterThan(x, y);
}

/// <summary><c>x &gt;= y</c>.</summary>
internal readonly struct GreaterOrEqualOp : IComparison
{
    public static bool Invoke<T>(T x, T y) where T : unmanaged, INumber<T> => x >= y;
    public static Vector128<T> Invoke<T>(Vector128<T> x, Vector128<T> y) => Vector128.GreaterThanOrEqual(x, y);
    public static Vector256<T> Invoke<T>(Vector256<T> x, Vector256<T> y) => Vector256.GreaterThanOrEqual(x, y);
}

/// <summary><c>x &lt; y</c>.</summary>
internal readonly struct LessOp : IComparison
{
    public static bool Invoke<T>(T x, T y) where T : unmanaged, INumber<T> => x < y;
    public static Vector128<T> Invoke<T>(Vector128<T> x, Vector128<T> y) => Vector128.LessThan(x, y);
    public static Vector256<T> Invoke<T>(Vector256<T> x, Vector256<T> y) => Vector256.LessThan(x, y);
}

/// <summary><c>x &lt;= y</c>.</summary>
internal readonly struct LessOrEqualOp : IComparison
{
    public static bool Invoke<T>(T x, T y) where T : unmanaged, INumber<T> => x <= y;
    public static Vector128<T> Invoke<T>(Vector128<T> x, Vector128<T> y) => Vector128.LessThanOrEqual(x, y);
    public static Vector256<T> Invoke<T>(Vector256<T> x, Vector256<T> y) => Vector256.LessThanOrEqual(x, y);
}

/// <summary>Logical And of bools viewed as bytes (0 or 1).</summary>
internal readonly struct AndRows : IBinaryRowKernel<byte, byte, byte>
{
    public static void SpanSpan(ReadOnlySpan<byte> x, ReadOnlySpan<byte> y, Span<byte> destination) => TensorPrimitives.BitwiseAnd(x, y, destination);
    public static void SpanScalar(ReadOnlySpan<byte> x, byte y, Span<byte> destination) => TensorPrimitives.BitwiseAnd(x, y, destination);
    public static void ScalarSpan(byte x, ReadOnlySpan<byte> y, Span<byte> destination) => TensorPrimitives.BitwiseAnd(y, x, destination);
}

/// <summary>Logical Or of bools viewed as bytes (0 or 1).</summary>
internal readonly struct OrRows : IBinaryRowKernel<byte, byte, byte>
{
    public static void SpanSpan(ReadOnlySpan<byte> x, ReadOnlySpan<byte> y, Span<byte> destination) => TensorPrimitives.BitwiseOr(x, y, destination);
    public static void SpanScalar(ReadOnlySpan<byte> x, byte y, Span<byte> destination) => TensorPrimitives.BitwiseOr(x, y, destination);
    public static void ScalarSpan(byte x, ReadOnlySpan<byte> y, Span<byte> destination) => TensorPrimitives.BitwiseOr(y, x, destination);
}

/// <summary>Logical Xor of bools viewed as bytes (0 or 1).</summary>
internal readonly struct XorRows : IBinaryRowKernel<byte, byte, byte>
{
    public static void SpanSpan(ReadOnlySpan<byte> x, ReadOnlySpan<byte> y, Span<byte> destination) => TensorPrimitives.Xor(x, y, destination);
    public static void SpanScalar(ReadOnlySpan<byte> x, byte y, Span<byte> destination) => TensorPrimitives.Xor(x, y, destination);
    public static void ScalarSpan(byte x, ReadOnlySpan<byte> y, Span<byte> destination) => TensorPrimitives.Xor(y, x, destination);
}

/// <summary>BitShift of unsigned integers; shifting by the bit width or more gives 0 (all bits shifted out).</summary>
/// <typeparam name="T">The unsigned type.</typeparam>
/// <typeparam name="TLeft"><see cref="ShiftLeft"/> or <see cref="ShiftRight"/>.</typeparam>
internal readonly struct ShiftRows<T, TLeft> : IBinaryRowKernel<T, T, T>
    where T : unmanaged, IBinaryInteger<T>, IUnsignedNumber<T> where TLeft : IShiftDirection
{
    private static readonly int s_bits = Unsafe.SizeOf<T>() * 8;

    public static void SpanSpan(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> destination)
    {
        for (int i = 0; i < destination.Length; i++) destination[i] = Invoke(x[i], y[i]);
    }

    public static void SpanScalar(ReadOnlySpan<T> x, T y, Span<T> destination)
    {
        if (y >= T.CreateTruncating(s_bits)) destination.Clear();
        else if (TLeft.IsLeft) TensorPrimitives.ShiftLeft(x, int.CreateTruncating(y), destination);
        else TensorPrimitives.ShiftRightLogical(x, int.CreateTruncating(y), destination);
    }

    public static void ScalarSpan(T x, ReadOnlySpan<T> y, Span<T> destination)
    {
        for (int i = 0; i < destination.Length; i++) destination[i] = Invoke(x, y[i]);
    }

    private static T Invoke(T x, T y)
    {
        if (y >= T.CreateTruncating(s_bits)) return T.Zero;
        int s = int.CreateTruncating(y);
        return TLeft.IsLeft ? x << s : x >>> s;
    }
}

/// <summary>Selects the direction of <see cref="ShiftRows{T, TLeft}"/>.</summary>
internal interface IShiftDirection
{
    /// <summary>True to shift toward the most significant bit.</summary>
    static abstract bool IsLeft { get; }
}

/// <summary>BitShift direction LEFT.</summary>
internal readonly struct ShiftLeft : IShiftDirection
{
    public static bool IsLeft => true;
}

/// <summary>BitShift direction RIGHT.</summary>
internal readonly struct ShiftRight : IShiftDirection
{
    public static bool IsLeft => false;
}

/// <summary>A 16-bit floating-point format that computes through float.</summary>
internal interface IFloat16Format<T> where T : unmanaged
{
    /// <summary>Widens exactly.</summary>
    static abstract float ToSingle(T value);

    /// <summary>Widens a span exactly.</summary>
    static abstract void ToSingle(ReadOnlySpan<T> source, Span<float> destination);

    /// <summary>Rounds a span to nearest, ties to even.</summary>
    static abstract void FromSingle(ReadOnlySpan<float> source, Span<T> destination);
}

/// <summary>IEEE float16 (vectorized conversions).</summary>
internal readonly struct HalfFormat : IFloat16Format<Half>
{
    public static float ToSingle(Half value) => (float)value;
    public static void ToSingle(ReadOnlySpan<Half> source, Span<float> destination) => FloatConversions.ToSingle(source, destination);
    public static void FromSingle(ReadOnlySpan<float> source, Span<Half> destination) => TensorPrimitives.ConvertToHalf(source, destination);
}

/// <summary>bfloat16.</summary>
internal readonly struct BFloat16Format : IFloat16Format<BFloat16>
{
    public static float ToSingle(BFloat16 value) => (float)value;

    public static void ToSingle(ReadOnlySpan<BFloat16> source, Span<float> destination)
    {
        for (int i = 0; i < source.Length; i++) destination[i] = (float)source[i];
    }

    public static void FromSingle(ReadOnlySpan<float> source, Span<BFloat16> destination)
    {
        for (int i = 0; i < source.Length; i++) destination[i] = (BFloat16)source[i];
    }
}

/// <summary>
/// Runs a float kernel on a 16-bit float type: blocks of both operands are widened to float on the stack,
/// computed, and rounded back once, which is the exactly rounded result for + - * / and exact for the rest.
/// </summary>
internal readonly struct WidenedRows<T, TFormat, TKernel> : IBinaryRowKernel<T, T, T>
    where T : unmanaged where TFormat : IFloat16Format<T> where TKernel : IBinaryRowKernel<float, float, float>
{
    private const int Block = 256;

    public static void SpanSpan(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> destination)
    {
        Span<float> a = stackalloc float[Block], b = stackalloc float[Block];
        for (int i = 0; i < destination.Length; i += Block)
        {
            int n = Math.Min(Block, destination.Length - i);
            TFormat.ToSingle(x.Slice(i, n), a);
            TFormat.ToSingle(y.Slice(i, n), b);
            TKernel.SpanSpan(a[..n], b[..n], a[..n]);
            TFormat.FromSingle(a[..n], destination.Slice(i, n));
        }
    }

    public static void SpanScalar(ReadOnlySpan<T> x, T y, Span<T> destination)
    {
        Span<float> a = stackalloc float[Block];
        float fy = TFormat.ToSingle(y);
        for (int i = 0; i < destination.Length; i += Block)
        {
            int n = Math.Min(Block, destination.Length - i);
            TFormat.ToSingle(x.Slice(i, n), a);
            TKernel.SpanScalar(a[..n], fy, a[..n]);
            TFormat.FromSingle(a[..n], destination.Slice(i, n));
        }
    }

    public static void ScalarSpan(T x, ReadOnlySpan<T> y, Span<T> destination)
    {
        Span<float> b = stackalloc float[Block];
        float fx = TFormat.ToSingle(x);
        for (int i = 0; i < destination.Length; i += Block)
        {
            int n = Math.Min(Block, destination.Length - i);
            TFormat.ToSingle(y.Slice(i, n), b);
            TKernel.ScalarSpan(fx, b[..n], b[..n]);
            TFormat.FromSingle(b[..n], destination.Slice(i, n));
        }
    }
}

/// <summary>Runs a float comparison on a 16-bit float type (widening is exact, so the result is too).</summary>
internal readonly struct WidenedComparisonRows<T, TFormat, TKernel> : IBinaryRowKernel<T, T, bool>
    where T : unmanaged where TFormat : IFloat16Format<T> where TKernel : IBinaryRowKernel<float, float, bool>
{
    private const int Block = 256;

    public static void SpanSpan(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<bool> destination)
    {
        Span<float> a = stackalloc float[Block], b = stackalloc float[Block];
        for (int i = 0; i < destination.Length; i += Block)
        {
            int n = Math.Min(Block, destination.Length - i);
            TFormat.ToSingle(x.Slice(i, n), a);
            TFormat.ToSingle(y.Slice(i, n), b);
            TKernel.SpanSpan(a[..n], b[..n], destination.Slice(i, n));
        }
    }

    public static void SpanScalar(ReadOnlySpan<T> x, T y, Span<bool> destination)
    {
        Span<float> a = stackalloc float[Block];
        float fy = TFormat.ToSingle(y);
        for (int i = 0; i < destination.Length; i += Block)
        {
            int n = Math.Min(Block, destination.Length - i);
            TFormat.ToSingle(x.Slice(i, n), a);
            TKernel.SpanScalar(a[..n], fy, destination.Slice(i, n));
        }
    }

    public static void ScalarSpan(T x, ReadOnlySpan<T> y, Span<bool> destination)
    {
        Span<float> b = stackalloc float[Block];
        float fx = TFormat.ToSingle(x);
        for (int i = 0; i < destination.Length; i += Block)
        {
            int n = Math.Min(Block, destination.Length - i);
            TFormat.ToSingle(y.Slice(i, n), b);
            TKernel.ScalarSpan(fx, b[..n], destination.Slice(i, n));
        }
    }
}

/// <summary>Runs a float kernel on two 16-bit float operands into a float accumulator (Sum and Mean of 16-bit
/// floats accumulate in float and round once at the end).</summary>
internal readonly struct WidenBothRows<T, TFormat, TKernel> : IBinaryRowKernel<T, T, float>
    where T : unmanaged where TFormat : IFloat16Format<T> where TKernel : IBinaryRowKernel<float, float, float>
{
    private const int Block = 256;

    public static void SpanSpan(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<float> destination)
    {
        Span<float> b = stackalloc float[Block];
        for (int i = 0; i < destination.Length; i += Block)
        {
            int n = Math.Min(Block, destination.Length - i);
            var d = destination.Slice(i, n);
            TFormat.ToSingle(x.Slice(i, n), d);
            TFormat.ToSingle(y.Slice(i, n), b);
            TKernel.SpanSpan(d, b[..n], d);
        }
    }

    public static void SpanScalar(ReadOnlySpan<T> x, T y, Span<float> destination)
    {
        TFormat.ToSingle(x[..destination.Length], destination);
        TKernel.SpanScalar(destination, TFormat.ToSingle(y), destination);
    }

    public static void ScalarSpan(T x, ReadOnlySpan<T> y, Span<float> destination)
    {
        TFormat.ToSingle(y[..destination.Length], destination);
        TKernel.ScalarSpan(TFormat.ToSingle(x), destination, destination);
    }
}

/// <summary>Runs a float kernel on a float accumulator and a 16-bit float operand.</summary>
internal readonly struct WidenRightRows<T, TFormat, TKernel> : IBinaryRowKernel<float, T, float>
    where T : unmanaged where TFormat : IFloat16Format<T> where TKernel : IBinaryRowKernel<float, float, float>
{
    private const int Block = 256;

    public static void SpanSpan(ReadOnlySpan<float> x, ReadOnlySpan<T> y, Span<float> destination)
    {
        Span<float> b = stackalloc float[Block];
        for (int i = 0; i < destination.Length; i += Block)
        {
            int n = Math.Min(Block, destination.Length - i);
            TFormat.ToSingle(y.Slice(i, n), b);
            TKernel.SpanSpan(x.Slice(i, n), b[..n], destination.Slice(i, n));
        }
    }

    public static void SpanScalar(ReadOnlySpan<float> x, T y, Span<float> destination) =>
        TKernel.SpanScalar(x, TFormat.ToSingle(y), destination);

    public static void ScalarSpan(float x, ReadOnlySpan<T> y, Span<float> destination)
    {
        TFormat.ToSingle(y[..destination.Length], destination);
        TKernel.ScalarSpan(x, destination, destination);
    }
}
