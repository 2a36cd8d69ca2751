using System.Numerics;
using System.Runtime.CompilerServices;

namespace Squash.Runtime.Kernels;

// The elementwise functions of ONNX's unary math and activation operators, as structs so that the drivers in
// Elementwise specialize and inline them. Other kernels may apply them too (an activation fused into Conv).
// NaN propagates through every function unless the ONNX formula maps it elsewhere.

/// <summary><c>max(x, 0)</c>.</summary>
internal readonly struct ReluFunction : IFloatFunction
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : struct, IFloatVector<TV> => TV.MaxNative(TV.Create(0), x);

    public double Invoke(double x) => Math.Max(x, 0);
}

/// <summary><c>x &gt;= 0 ? x : alpha * x</c>.</summary>
internal readonly struct LeakyReluFunction(float alpha) : IFloatFunction
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : struct, IFloatVector<TV> =>
        TV.Select(TV.GreaterThanOrEqual(x, TV.Create(0)), x, x * TV.Create(alpha));

    public double Invoke(double x) => x >= 0 ? x : alpha * x;
}

/// <summary><c>x &gt; alpha ? x : 0</c>.</summary>
internal readonly struct ThresholdedReluFunction(float alpha) : IFloatFunction
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : struct, IFloatVector<TV> => x & TV.GreaterThan(x, TV.Create(alpha));

    public double Invoke(double x) => x > alpha ? x : 0;
}

/// <summary><c>x &lt; 0 ? alpha * (exp(x) - 1) : x</c>.</summary>
internal readonly struct EluFunction(float alpha) : IFloatFunction
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : struct, IFloatVector<TV> =>
        TV.Select(TV.LessThan(x, TV.Create(0)), TV.Create(alpha) * (FloatMath.Exp(x) - TV.Create(1)), x);

    public double Invoke(double x) => x < 0 ? alpha * (Math.Exp(x) - 1) : x;
}

/// <summary><c>gamma * (x &gt; 0 ? x : alpha * exp(x) - alpha)</c>.</summary>
internal readonly struct SeluFunction(float alpha, float gamma) : IFloatFunction
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : struct, IFloatVector<TV>
    {
        var a = TV.Create(alpha);
        return TV.Create(gamma) * TV.Select(TV.GreaterThan(x, TV.Create(0)), x, a * FloatMath.Exp(x) - a);
    }

    public double Invoke(double x) => gamma * (x > 0 ? x : alpha * Math.Exp(x) - alpha);
}

/// <summary><c>max(0, x) + min(0, alpha * (exp(x / alpha) - 1))</c>.</summary>
internal readonly struct CeluFunction(float alpha) : IFloatFunction
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : struct, IFloatVector<TV>
    {
        var a = TV.Create(alpha);
        var zero = TV.Create(0);
        return TV.MaxNative(zero, x) + TV.MinNative(zero, a * (FloatMath.Exp(x / a) - TV.Create(1)));
    }

    public double Invoke(double x) => Math.Max(x, 0) + Math.Min(0, alpha * (Math.Exp(x / alpha) - 1));
}

/// <summary><c>max(0, min(1, alpha * x + beta))</c>.</summary>
internal readonly struct HardSigmoidFunction(float alpha, float beta) : IFloatFunction
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : struct, IFloatVector<TV> =>
        FloatMath.Clamp(TV.FusedMultiplyAdd(x, TV.Create(alpha), TV.Create(beta)), TV.Create(0), TV.Create(1));

    public double Invoke(double x) => Math.Max(Math.Min(alpha * x + beta, 1), 0);
}

/// <summary><c>x * max(0, min(1, x / 6 + 0.5))</c>.</summary>
internal readonly struct HardSwishFunction : IFloatFunction
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : struct, IFloatVector<TV> =>
        x * FloatMath.Clamp(TV.FusedMultiplyAdd(x, TV.Create(1f / 6), TV.Create(0.5f)), TV.Create(0), TV.Create(1));

    public double Invoke(double x) => x * Math.Max(Math.Min(x / 6 + 0.5, 1), 0);
}

/// <summary><c>1 / (1 + exp(-x))</c>.</summary>
internal readonly struct SigmoidFunction : IFloatFunction
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : struct, IFloatVector<TV>
    {
        var one = TV.Create(1);
        return one / (one + FloatMath.Exp(-x));
    }

    public double Invoke(double x) => 1 / (1 + Math.Exp(-x));
}

/// <summary><c>x / (1 + |x|)</c>.</summary>
internal readonly struct SoftsignFunction : IFloatFunction
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : struct, IFloatVector<TV> => x / (TV.Create(1) + TV.Abs(x));

    public double Invoke(double x) => x / (1 + Math.Abs(x));
}

/// <summary><c>log(1 + exp(x))</c>, computed as <c>max(x, 0) + log1p(exp(-|x|))</c> so it neither overflows nor
/// loses the small results of very negative x.</summary>
internal readonly struct SoftplusFunction : IFloatFunction
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : struct, IFloatVector<TV> =>
        TV.MaxNative(TV.Create(0), x) + FloatMath.Log1P(FloatMath.Exp(-TV.Abs(x)));

    public double Invoke(double x) => Math.Max(x, 0) + double.LogP1(Math.Exp(-Math.Abs(x)));
}

/// <summary><c>x * tanh(softplus(x))</c>, computed as <c>x * n / (n + 2)</c> with <c>n = e^x (e^x + 2)</c>, the
/// same value without a separate tanh and log.</summary>
internal readonly struct MishFunction : IFloatFunction
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : struct, IFloatVector<TV>
    {
        // Beyond 20 the ratio is 1 in float; the clamp keeps n finite.
        var e = FloatMath.Exp(TV.MinNative(TV.Create(20), x));
        var two = TV.Create(2);
        var n = e * (e + two);
        return x * (n / (n + two));
    }

    public double Invoke(double x) => x * Math.Tanh(double.LogP1(Math.Exp(x)));
}

/// <summary>The Gauss error function.</summary>
internal readonly struct ErfFunction : IFloatFunction
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : struct, IFloatVector<TV> => FloatMath.Erf(x);

    public double Invoke(double x) => FloatMath.Erf(x);
}

/// <summary>GELU: <c>0.5 * x * (1 + erf(x / sqrt(2)))</c>.</summary>
internal readonly struct GeluFunction : IFloatFunction
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : struct, IFloatVector<TV>
    {
        var half = TV.Create(0.5f) * x;
        return TV.FusedMultiplyAdd(half, FloatMath.Erf(x * TV.Create(0.70710678118654752f)), half);
    }

    public double Invoke(double x) => 0.5 * x * (1 + FloatMath.Erf(x / Math.Sqrt(2)));
}

/// <summary>GELU's tanh approximation <c>0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))</c>, computed as
/// the identical <c>x / (1 + exp(-2u))</c> where u is the tanh argument.</summary>
internal readonly struct GeluTanhFunction : IFloatFunction
{
    private const double Scale = 0.79788456080286535588; // sqrt(2 / pi)
    private const double Cubic = 0.044715;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : struct, IFloatVector<TV>
    {
        // -2u = x * (k0 + k1 * x^2)
        var minusTwoU = x * TV.FusedMultiplyAdd(x * x, TV.Create((float)(-2 * Scale * Cubic)), TV.Create((float)(-2 * Scale)));
        return x / (TV.Create(1) + FloatMath.Exp(minusTwoU));
    }

    public double Invoke(double x) => 0.5 * x * (1 + Math.Tanh(Scale * (x + Cubic * x * x * x)));
}

/// <summary><c>min(max(x, low), high)</c>: <c>high</c> wherever <c>low &gt; high</c>, as ONNX's Clip says.</summary>
internal readonly struct ClipFunction(float low, float high) : IFloatFunction
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : struct, IFloatVector<TV> => FloatMath.Clamp(x, TV.Create(low), TV.Create(high));

    public double Invoke(double x) => Math.Min(Math.Max(x, low), high);
}

/// <summary>e^x.</summary>
internal readonly struct ExpFunction : IFloatFunction
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : struct, IFloatVector<TV> => FloatMath.Exp(x);

    public double Invoke(double x) => Math.Exp(x);
}

/// <summary>tanh(x).</summary>
internal readonly struct TanhFunction : IFloatFunction
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : struct, IFloatVector<TV> => FloatMath.Tanh(x);

    public double Invoke(double x) => Math.Tanh(x);
}

/// <summary>Sign: 1, -1 or 0 (the input itself for zeros and NaN).</summary>
internal readonly struct SignFunction<T> : INumericFunction<T> where T : unmanaged, INumber<T>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector<T> Invoke(Vector<T> x)
    {
        var zero = Vector<T>.Zero;
        var sign = Vector.ConditionalSelect(Vector.GreaterThan(x, zero), Vector<T>.One,
            Vector.ConditionalSelect(Vector.LessThan(x, zero), -Vector<T>.One, x));
        return sign;
    }

    public T Invoke(T x) => x > T.Zero ? T.One : x < T.Zero ? -T.One : x;
}

/// <summary>Absolute value; the most negative integer stays itself (two's complement wrap-around, as NumPy).</summary>
internal readonly struct AbsFunction<T> : INumericFunction<T> where T : unmanaged, INumber<T>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector<T> Invoke(Vector<T> x) => Vector.Abs(x);

    public T Invoke(T x) => x < T.Zero ? -x : x;
}

/// <summary>Negation, wrapping around for the most negative integer.</summary>
internal readonly struct NegateFunction<T> : INumericFunction<T> where T : unmanaged, INumber<T>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector<T> Invoke(Vector<T> x) => -x;

    public T Invoke(T x) => -x;
}

/// <summary><c>max(x, 0)</c> for any number type.</summary>
internal readonly struct NumericReluFunction<T> : INumericFunction<T> where T : unmanaged, INumber<T>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector<T> Invoke(Vector<T> x) => Vector.Max(x, Vector<T>.Zero);

    public T Invoke(T x) => T.Max(x, T.Zero);
}

/// <summary><c>min(max(x, low), high)</c> for any number type.</summary>
internal readonly struct NumericClipFunction<T>(T low, T high) : INumericFunction<T> where T : unmanaged, INumber<T>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector<T> Invoke(Vector<T> x) => Vector.Min(Vector.Max(x, new Vector<T>(low)), new Vector<T>(high));

    public T Invoke(T x) => T.Min(T.Max(x, low), high);
}

/// <summary>Float math the vector libraries lack.</summary>
internal static class FloatMath
{
    /// <summary>
    /// erf(x) in float: the polynomial approximations ONNX Runtime's MLAS uses (after Norbert Juffa's faithfully
    /// rounded erff): <c>x + x P(x^2)</c> for |x| &lt;= 0.921875, else <c>1 - exp(-(t + t Q(t)))</c> with t = |x|.
    /// Measured maximum error: 1 ulp (the polynomials are faithful; <see cref="Exp{TV}"/> is within 0.9 ulp).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Erf<TV>(TV x) where TV : struct, IFloatVector<TV>
    {
        var t = TV.Abs(x);
        var signBit = x ^ t;

        var s = x * x;
        var small = TV.Create(-5.99104969e-4f);
        small = TV.FusedMultiplyAdd(small, s, TV.Create(4.99339588e-3f));
        small = TV.FusedMultiplyAdd(small, s, TV.Create(-2.67667342e-2f));
        small = TV.FusedMultiplyAdd(small, s, TV.Create(1.12818025e-1f));
        small = TV.FusedMultiplyAdd(small, s, TV.Create(-3.76124859e-1f));
        small = TV.FusedMultiplyAdd(small, s, TV.Create(1.28379151e-1f));
        small = TV.FusedMultiplyAdd(small, x, x);

        // erf(4) is 1 in float; the clamp keeps the polynomial within the range it was fitted on.
        var u = TV.MinNative(TV.Create(4f), t);
        var big = TV.Create(1.72948930e-5f);
        big = TV.FusedMultiplyAdd(big, u, TV.Create(-3.83208680e-4f));
        big = TV.FusedMultiplyAdd(big, u, TV.Create(3.88393435e-3f));
        big = TV.FusedMultiplyAdd(big, u, TV.Create(-2.42545605e-2f));
        big = TV.FusedMultiplyAdd(big, u, TV.Create(1.06777847e-1f));
        big = TV.FusedMultiplyAdd(big, u, TV.Create(6.34846687e-1f));
        big = TV.FusedMultiplyAdd(big, u, TV.Create(1.28717512e-1f));
        big = TV.FusedMultiplyAdd(big, u, u);
        // big is at most about 16 (and positive), so exp needs no clamp.
        big = (TV.Create(1) - ExpWithinRange(-big)) | signBit;

        return TV.Select(TV.GreaterThan(t, TV.Create(0.921875f)), big, small);
    }

    /// <summary><c>min(max(x, low), high)</c> with the hardware's own min and max, operands ordered so that NaN in
    /// x passes through (x86 returns the second operand when one is NaN; Arm returns NaN). Where low &gt; high the
    /// result is high, as ONNX's Clip says.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Clamp<TV>(TV x, TV low, TV high) where TV : struct, IFloatVector<TV> =>
        TV.MinNative(high, TV.MaxNative(low, x));

    /// <summary>
    /// e^x in float as ONNX Runtime's MLAS computes it: n = round(x / ln 2), r = x - n ln 2 (in two parts), a
    /// degree-6 polynomial for e^r, then a scale by 2^n that rounds subnormal results and overflow to infinity
    /// right. Measured maximum error 0.9 ulp; several times faster than .NET's vector Exp.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Exp<TV>(TV x) where TV : struct, IFloatVector<TV>
    {
        // Below the low clamp e^x rounds to 0; above the high one it overflows to infinity. NaN passes through.
        return ExpWithinRange(Clamp(x, TV.Create(-103.972084f), TV.Create(88.7762604f)));
    }

    /// <summary><see cref="Exp{TV}"/> for x already within [-103.97, 88.78] (or NaN).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV ExpWithinRange<TV>(TV x) where TV : struct, IFloatVector<TV>
    {
        var magic = TV.Create(12582912f); // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits
        var biased = TV.FusedMultiplyAdd(x, TV.Create(1.44269504f), magic);
        var n = biased - magic;
        var r = TV.FusedMultiplyAdd(n, TV.Create(-6.93145752e-1f), x);
        r = TV.FusedMultiplyAdd(n, TV.Create(-1.42860677e-6f), r);
        var p = TV.Create(1.38319808e-3f);
        p = TV.FusedMultiplyAdd(p, r, TV.Create(8.37550033e-3f));
        p = TV.FusedMultiplyAdd(p, r, TV.Create(4.16689515e-2f));
        p = TV.FusedMultiplyAdd(p, r, TV.Create(1.66664466e-1f));
        p = TV.FusedMultiplyAdd(p, r, TV.Create(4.99999851e-1f));
        p = TV.FusedMultiplyAdd(p, r, TV.Create(1f));
        p = TV.FusedMultiplyAdd(p, r, TV.Create(1f));
        return TV.ScaleByPowerOfTwo(p, n);
    }

    /// <summary>
    /// tanh(x) in float: the odd rational approximation of Eigen and MLAS (degree 13 over degree 6), clamped at
    /// +-9 (MLAS's bound; the rational rounds to 1 there, while Eigen's +-7.905 leaves it 2 ulp short). Odd, so
    /// small x keep their relative accuracy (1 - 2/(e^2x + 1) would cancel). Up to about 5 ulp, as
    /// in ONNX Runtime.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Tanh<TV>(TV x) where TV : struct, IFloatVector<TV>
    {
        x = Clamp(x, TV.Create(-9f), TV.Create(9f));
        var s = x * x;
        var p = TV.Create(-2.76076847742355e-16f);
        p = TV.FusedMultiplyAdd(p, s, TV.Create(2.00018790482477e-13f));
        p = TV.FusedMultiplyAdd(p, s, TV.Create(-8.60467152213735e-11f));
        p = TV.FusedMultiplyAdd(p, s, TV.Create(5.12229709037114e-08f));
        p = TV.FusedMultiplyAdd(p, s, TV.Create(1.48572235717979e-05f));
        p = TV.FusedMultiplyAdd(p, s, TV.Create(6.37261928875436e-04f));
        p = TV.FusedMultiplyAdd(p, s, TV.Create(4.89352455891786e-03f));
        var q = TV.Create(1.19825839466702e-06f);
        q = TV.FusedMultiplyAdd(q, s, TV.Create(1.18534705686654e-04f));
        q = TV.FusedMultiplyAdd(q, s, TV.Create(2.26843463243900e-03f));
        q = TV.FusedMultiplyAdd(q, s, TV.Create(4.89352518554385e-03f));
        // Rounding can carry the quotient a hair past 1 near the clamp.
        var one = TV.Create(1);
        return Clamp(p * x / q, -one, one);
    }

    /// <summary>log(1 + u) without the cancellation of forming 1 + u: <c>log(w) * u / (w - 1)</c> with w = 1 + u
    /// corrects the rounding of w (Goldberg's method); where w rounds to 1, log1p(u) is u.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Log1P<TV>(TV u) where TV : struct, IFloatVector<TV>
    {
        var one = TV.Create(1);
        var w = one + u;
        return TV.Select(TV.Equal(w, one), u, TV.Log(w) * (u / (w - one)));
    }

    /// <summary>erf(x) in double to about 1e-14 relative: the Maclaurin series below 2.5, else the continued fraction
    /// of erfc. Double tensors are rare; this favours simplicity over speed.</summary>
    public static double Erf(double x)
    {
        if (double.IsNaN(x)) return x;
        double t = Math.Abs(x);
        if (t < 2.5)
        {
            // erf(x) = 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1))
            double s = x * x, term = x, sum = x;
            for (int n = 1; n < 100; n++)
            {
                term *= -s / n;
                double add = term / (2 * n + 1);
                sum += add;
                if (Math.Abs(add) <= 1e-17 * Math.Abs(sum)) break;
            }
            return sum * 1.1283791670955126; // 2 / sqrt(pi)
        }
        if (t > 6) return Math.CopySign(1, x); // erfc(6) = 2e-17
        // erfc(t) = exp(-t^2) / sqrt(pi) * 1 / (t + (1/2) / (t + 1 / (t + (3/2) / (t + 2 / (t + ...))))),
        // evaluated bottom-up from a depth where it has converged for t >= 2.5.
        double f = t;
        for (int k = 60; k >= 1; k--) f = t + k * 0.5 / f;
        double erfc = Math.Exp(-t * t) / (f * 1.7724538509055160); // sqrt(pi)
        return Math.CopySign(1 - erfc, x);
    }
}
