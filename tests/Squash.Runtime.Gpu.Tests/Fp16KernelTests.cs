namespace Squash.Runtime.Gpu.Tests;

/// <summary>
/// fp16 arithmetic on the CPU accelerator against the CPU operators. The device computes fp16 as the CPU does: widened
/// to fp32, one fp32 operation, rounded back to nearest even (GEMMs accumulate in fp32 and round once at the store).
/// Tolerances: exact for the arithmetic operators and the piecewise-linear activations (the same fp32 operation and
/// the same rounding); rtol 1e-3, atol 1e-4, that is one fp16 ulp (2^-10 relative), for transcendental functions, Pow,
/// PRelu and fmod (MathF
/// on the emulator against the CPU's vector polynomials, 1-2 fp32 ulp, can round to the neighbouring fp16) and for
/// MatMul and Gemm (fp32 sums of 33 products in another order, then rounded to fp16).
/// </summary>
public class Fp16KernelTests
{
    internal static Tensor Half(int seed, float scale, params int[] shape)
    {
        var values = DeviceCase.Random(seed, scale, shape).AsSpan<float>().ToArray();
        return Tensor.From<System.Half>([.. values.Select(v => (System.Half)v)], shape);
    }

    [Fact]
    public void ArithmeticIsExact()
    {
        var m = new MultiCase().Input("a", Half(1, 4f, 2, 3, 4, 5)).Input("b", Half(2, 4f, 3, 1, 5)).Input("c", Half(3, 4f, 2, 3, 4, 5));
        foreach (string op in new[] { "Add", "Sub", "Mul", "Div" }) m.Node(op, ["a", "b"]);
        m.Node("Add", ["a", "c"]);
        foreach (string op in new[] { "Relu", "Neg", "Abs", "HardSigmoid", "Floor" }) m.Node(op, ["a"]);
        // Direct fp16 kernels: no node is widened, so no scratch is allocated.
        Assert.Equal(0, m.Check(0, 0).ScratchBytes);
    }

    [Fact]
    public void FunctionsAndProductsAreWithinOneUlp()
    {
        var m = new MultiCase()
            .Input("a", Half(4, 3f, 2, 3, 17, 33)).Input("w", Half(5, 1f, 33, 9)).Input("x", Half(6, 1f, 5, 33))
            .Input("wt", Half(7, 1f, 9, 33)).Input("bias", Half(8, 1f, 9), constant: true)
            .Input("e", Half(9, 2f, 17, 33)).Input("slope", Half(10, 1f, 3, 1, 1));
        foreach (string op in new[] { "Sigmoid", "Exp", "Tanh", "Erf", "Softplus", "HardSwish", "Gelu" }) m.Node(op, ["a"]);
        m.Node("Abs", ["a"], output: false);
        m.Node("Sqrt", [m.Last]);
        m.Node("Abs", ["a"], output: false);
        m.Node("Pow", [m.Last, "e"]);
        m.Node("PRelu", ["a", "slope"]);
        m.Node("Mod", ["a", "e"], new() { ["fmod"] = DeviceCase.Int(1) });
        m.Node("MatMul", ["a", "w"]);
        m.Node("Gemm", ["x", "wt", "bias"], new() { ["transB"] = DeviceCase.Int(1), ["alpha"] = DeviceCase.Float(0.5f) });
        m.Check(1e-3f, 1e-4f);
    }
}
