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
    public TV Invoke<TV>(TV x) where TV : struct, IFloatVector<TV> => TV.Max(x, TV.Create(0));

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
        TV.Select(TV.LessThan(x, TV.Create(0)), TV.Create(alpha) * (TV.Exp(x) - TV.Create(1)), x);

    public double Invoke(double x) => x < 0 ? alpha * (Math.Exp(x) - 1) : x;
}

/// <summary><c>gamma * (x &gt; 0 ? x : alpha * exp(x) - alpha)</c>.</summary>
internal readonly struct SeluFunction(float alpha, float gamma) : IFloatFunction
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : struct, IFloatVector<TV>
    {
        var a = TV.Create(alpha);
        return TV.Create(gamma) * TV.Select(TV.GreaterThan(x, TV.Create(0)), x, a * TV.Exp(x) - a);
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
        return TV.Max(x, zero) + TV.Min(zero, a * (TV.Exp(x / a) - TV.Create(1)));
    }

    public double Invoke(double x) => Math.Max(x, 0) + Math.Min(0, alpha * (Math.Exp(x / alpha) - 1));
}

/// <summary><c>max(0, min(1, alpha * x + beta))</c>.</summary>
internal readonly struct HardSigmoidFunction(float alpha, float beta) : IFloatFunction
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : struct, IFloatVector<TV> =>
        TV.Max(TV.Min(TV.FusedMultiplyAdd(x, TV.Create(alpha), TV.Create(beta)), TV.Create(1)), TV.Create(0));

    public double Invoke(double x) => Math.Max(Math.Min(alpha * x + beta, 1), 0);
}

/// <summary><c>x * max(0, min(1, x / 6 + 0.5))</c>.</summary>
internal readonly struct HardSwishFunction : IFloatFunction
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : struct, IFloatVector<TV> =>
        x * TV.Max(TV.Min(TV.FusedMultiplyAdd(x, TV.Create(1f / 6), TV.Create(0.5f)), TV.Create(1)), TV.Create(0));

    public double Invoke(double x) => x * Math.Max(Math.Min(x / 6 + 0.5, 1), 0);
}

/// <summary><c>1 / (1 + exp(-x))</c>.</summary>
internal readonly struct SigmoidFunction : IFloatFunction
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : struct, IFloatVector<TV>
    {
        var one = TV.Create(1);
        return one / (one + TV.Exp(-x));
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
        TV.Max(x, TV.Create(0)) + FloatMath.Log1P(TV.Exp(-TV.Abs(x)));

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
        var e = TV.Exp(TV.Min(x, TV.Create(20)));
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
        return x / (TV.Create(1) + TV.Exp(minusTwoU));
    }

    public double Invoke(double x) => 0.5 * x * (1 + Math.Tanh(Scale * (x + Cubic * x * x * x)));
}

/// <summary><c>min(max(x, low), high)</c>: <c>high</c> wherever <c>low &gt; high</c>, as ONNX's Clip says.</summary>
internal readonly struct ClipFunction(float low, float high) : IFloatFunction
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : struct, IFloatVector<TV> => TV.Min(TV.Max(x, TV.Create(low)), TV.Create(high));

    public double Invoke(double x) => Math.Min(Math.Max(x, low), high);
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
    /// Maximum error about 1 ulp plus the error of the vector exp.
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
        var u = TV.Min(t, TV.Create(4f));
        var big = TV.Create(1.72948930e-5f);
        big = TV.FusedMultiplyAdd(big, u, TV.Create(-3.83208680e-4f));
        big = TV.FusedMultiplyAdd(big, u, TV.Create(3.88393435e-3f));
        big = TV.FusedMultiplyAdd(big, u, TV.Create(-2.42545605e-2f));
        big = TV.FusedMultiplyAdd(big, u, TV.Create(1.06777847e-1f));
        big = TV.FusedMultiplyAdd(big, u, TV.Create(6.34846687e-1f));
        big = TV.FusedMultiplyAdd(big, u, TV.Create(1.28717512e-1f));
        big = TV.FusedMultiplyAdd(big, u, u);
        big = (TV.Create(1) - TV.Exp(-big)) | signBit;

        return TV.Select(TV.GreaterThan(t, TV.Create(0.921875f)), big, small);
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
