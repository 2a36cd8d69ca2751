using Squash.Runtime.Ir;
using static Squash.Runtime.Gpu.Tests.DeviceCase;

namespace Squash.Runtime.Gpu.Tests;

/// <summary>
/// Elementwise operators on the device against the CPU operators. Tolerance rtol 1e-5, atol 1e-6 unless stated: the
/// device evaluates each function once in fp32 with .NET's MathF on the CPU accelerator (the CPU kernels use
/// vectorized polynomials within 1-2 ulp), so results agree to a few ulp; Pow, Sinh/Cosh and the inverse hyperbolic
/// functions are written through exp/log and get 1e-4 (their error grows with the argument's size).
/// </summary>
public class ElementwiseKernelTests
{
    [Theory]
    [InlineData(new[] { 2, 3, 4, 5 }, new[] { 2, 3, 4, 5 })]
    [InlineData(new[] { 1, 8, 6, 7 }, new[] { 1, 8, 1, 1 })]
    [InlineData(new[] { 5, 1, 7 }, new[] { 4, 1 })]
    [InlineData(new[] { 3 }, new[] { 2, 2, 1, 2, 1, 2, 3 })]
    [InlineData(new int[0], new[] { 3, 4 })]
    public void Binary(int[] a, int[] b)
    {
        var c = new MultiCase().Input("a", Random(1, 2, a)).Input("b", Random(2, 2, b)).Input("pb", Abs(Random(3, 2, b), 0.5f));
        foreach (var op in new[] { "Add", "Sub", "Mul", "Div", "Max", "Min" }) c.Node(op, ["a", "b"]);
        // PRelu's slope broadcasts one way, into x.
        if (a.Length >= b.Length && b.Select((d, k) => d == 1 || d == a[a.Length - b.Length + k]).All(ok => ok)) c.Node("PRelu", ["a", "b"]);
        c.Node("Pow", ["pb", "a"]);
        c.Check(1e-5f, 1e-6f);
    }

    [Fact]
    public void VariadicSumMeanMaxMin()
    {
        var c = new MultiCase().Input("a", Random(1, 2, 2, 3, 4)).Input("b", Random(2, 2, 3, 1)).Input("d", Random(3, 2, 4));
        foreach (var op in new[] { "Sum", "Mean", "Max", "Min" })
        {
            c.Node(op, ["a", "b", "d"]);
            c.Node(op, ["a"]);
        }
        c.Check(1e-5f, 1e-6f);
    }

    [Fact]
    public void Unary()
    {
        var c = new MultiCase()
            .Input("x", Random(1, 4, 3, 5, 7))
            .Input("p", Abs(Random(2, 4, 3, 5, 7), 0.01f))
            .Input("u", Random(3, 0.99f, 3, 5, 7))
            .Input("g", Abs(Random(4, 4, 3, 5, 7), 1f));
        foreach (var op in new[] { "Identity", "Relu", "Sigmoid", "HardSwish", "Softsign", "Mish", "Abs", "Neg", "Sign",
                     "Ceil", "Floor", "Round", "Exp", "Erf", "Tanh", "Sin", "Cos", "Softplus", "Asinh" })
            c.Node(op, ["x"]);
        foreach (var op in new[] { "Log", "Sqrt", "Reciprocal" }) c.Node(op, ["p"]);
        c.Node("Atanh", ["u"]);
        c.Node("Acosh", ["g"]);
        c.Node("Sinh", ["u"]);
        c.Node("Cosh", ["u"]);
        c.Check(1e-5f, 1e-6f);
    }

    [Fact]
    public void ActivationsWithAttributes()
    {
        var c = new MultiCase().Input("x", Random(1, 4, 2, 3, 11));
        c.Node("LeakyRelu", ["x"], new() { ["alpha"] = Float(0.3f) });
        c.Node("ThresholdedRelu", ["x"], new() { ["alpha"] = Float(0.5f) });
        c.Node("Elu", ["x"], new() { ["alpha"] = Float(0.7f) });
        c.Node("Selu", ["x"]);
        c.Node("Celu", ["x"], new() { ["alpha"] = Float(1.5f) });
        c.Node("HardSigmoid", ["x"], new() { ["alpha"] = Float(0.25f), ["beta"] = Float(0.4f) });
        c.Node("Gelu", ["x"]);
        c.Node("Gelu", ["x"], new() { ["approximate"] = Str("tanh") });
        c.Check(1e-5f, 1e-6f);
    }

    [Fact]
    public void Clip()
    {
        var c = new MultiCase().Input("x", Random(1, 4, 4, 9)).Input("lo", Tensor.Scalar(-1.5f), true).Input("hi", Tensor.Scalar(2f), true);
        c.Node("Clip", ["x", "lo", "hi"]);
        c.Node("Clip", ["x", null, "hi"]);
        c.Node("Clip", ["x", "lo"]);
        c.Node("Clip", ["x"]);
        c.Check(0, 0);
        var legacy = new MultiCase(opset: 6 + 3).Input("x", Random(1, 4, 4, 9));
        legacy.Node("Clip", ["x"], new() { ["min"] = Float(0f), ["max"] = Float(6f) });
        legacy.Check(0, 0);
    }

    /// <summary>Inference BatchNormalization: the device folds scale and shift in double on the host, the CPU
    /// normalizes per element, so the two differ by rounding: rtol 1e-5, atol 1e-5.</summary>
    [Fact]
    public void BatchNormalization()
    {
        const int ch = 6;
        new MultiCase()
            .Input("x", Random(1, 3, 2, ch, 5, 4))
            .Input("s", Random(2, 2, ch), true).Input("b", Random(3, 1, ch), true)
            .Input("m", Random(4, 1, ch), true).Input("v", Abs(Random(5, 1, ch), 0.1f), true)
            .Node("BatchNormalization", ["x", "s", "b", "m", "v"], new() { ["epsilon"] = Float(1e-3f) })
            .Check(1e-5f, 1e-5f);
    }

    internal static Tensor Abs(Tensor t, float floor)
    {
        var s = t.AsSpan<float>();
        for (int i = 0; i < s.Length; i++) s[i] = Math.Abs(s[i]) + floor;
        return t;
    }
}
