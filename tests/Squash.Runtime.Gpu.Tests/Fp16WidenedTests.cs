using static Squash.Runtime.Gpu.Tests.DeviceCase;

namespace Squash.Runtime.Gpu.Tests;

/// <summary>
/// fp16 for the operators whose device kernels are fp32 (HalfLowering: fp16 inputs widened on the device, the fp32
/// kernel, outputs rounded to nearest even), against the CPU operators, which widen, run their fp32 kernel and round
/// once. Every case runs with no host node.
/// Tolerances: exact where the fp32 result is the same value (selections: MaxPool, Clip, Max, Min, ReduceMax,
/// ReduceMin, ArgMax; and Sum/Mean of three values, one rounding of sums the device and the CPU form in the same order);
/// otherwise rtol 1e-3, atol 1e-4, one fp16 ulp (2^-10 relative): the fp32 results differ by a few fp32 ulp (sums in
/// another order, MathF against the CPU's polynomials) and can round to neighbouring fp16 values (measured on these
/// inputs: no element differs).
/// </summary>
public class Fp16WidenedTests
{
    private static Tensor Half(int seed, float scale, params int[] shape) => Fp16KernelTests.Half(seed, scale, shape);

    private static Tensor Positive(int seed, params int[] shape)
    {
        var values = Random(seed, 1f, shape).AsSpan<float>().ToArray();
        return Tensor.From<System.Half>([.. values.Select(v => (System.Half)(1.5f + v))], shape);
    }

    [Fact]
    public void SelectionsAreExact()
    {
        var model = new MultiCase()
            .Input("x", Half(1, 4f, 1, 4, 7, 6)).Input("y", Half(2, 4f, 4, 1, 6)).Input("z", Half(3, 4f, 1, 4, 7, 6))
            .Input("lo", Tensor.From<System.Half>([(System.Half)(-1.5f)]), constant: true)
            .Input("hi", Tensor.From<System.Half>([(System.Half)2.25f]), constant: true)
            .Input("axes", Tensor.From<long>([2, 3], 2), constant: true)
            .Node("MaxPool", ["x"], new() { ["kernel_shape"] = Ints(3, 3), ["strides"] = Ints(2, 2), ["pads"] = Ints(1, 1, 1, 1) })
            .Node("GlobalMaxPool", ["x"])
            .Node("Clip", ["x", "lo", "hi"])
            .Node("Clip", ["x", null, "hi"])
            .Node("Max", ["x", "y", "z"])
            .Node("Min", ["x", "y"])
            .Node("Sum", ["x", "y", "z"])
            .Node("Mean", ["x", "y", "z"])
            .Node("ReduceMax", ["x", "axes"])
            .Node("ReduceMin", ["x", "axes"], new() { ["keepdims"] = Int(0) })
            .Node("ArgMax", ["x"], new() { ["axis"] = Int(2) })
            .Check(0, 0);
        // One shared scratch, sized for the largest widened node: Sum, Mean and Max read x and z ([1,4,7,6], 672 bytes
        // in fp32) and y ([4,1,6], 96 bytes) and write [1,4,7,6], each rounded up to 256 bytes: 3 x 768 + 256.
        Assert.Equal(3 * 768 + 256, model.ScratchBytes);
    }

    [Fact]
    public void ConvolutionsAndPoolsAreWithinOneUlp() =>
        new MultiCase()
            .Input("x", Half(4, 1f, 1, 4, 9, 8))
            .Input("w", Half(5, 0.5f, 6, 4, 3, 3), constant: true).Input("b", Half(6, 1f, 6), constant: true)
            .Input("dw", Half(7, 0.5f, 4, 1, 3, 3), constant: true).Input("db", Half(8, 1f, 4), constant: true)
            .Input("pw", Half(9, 0.5f, 5, 4, 1, 1), constant: true)
            .Input("wx", Half(10, 0.5f, 4, 3, 2, 2))
            .Node("Conv", ["x", "w", "b"], new() { ["pads"] = Ints(1, 1, 1, 1), ["strides"] = Ints(2, 1) })
            .Node("Conv", ["x", "dw", "db"], new() { ["pads"] = Ints(1, 1, 1, 1), ["group"] = Int(4) })
            .Node("Conv", ["x", "pw"])
            .Node("Conv", ["x", "w"], new() { ["dilations"] = Ints(2, 2) })
            .Node("ConvTranspose", ["x", "wx"], new() { ["strides"] = Ints(2, 2) })
            .Node("AveragePool", ["x"], new() { ["kernel_shape"] = Ints(3, 3), ["strides"] = Ints(2, 2), ["pads"] = Ints(1, 1, 1, 1) })
            .Node("AveragePool", ["x"], new() { ["kernel_shape"] = Ints(2, 3), ["count_include_pad"] = Int(1), ["pads"] = Ints(0, 1, 0, 1) })
            .Node("GlobalAveragePool", ["x"])
            .Check(1e-3f, 1e-4f);

    [Fact]
    public void ReductionsSoftmaxAndNormalizationsAreWithinOneUlp() =>
        new MultiCase()
            .Input("x", Half(11, 2f, 2, 3, 5, 4)).Input("p", Positive(12, 2, 3, 5, 4))
            .Input("axes", Tensor.From<long>([2, 3], 2), constant: true)
            .Input("scale", Half(13, 1f, 4), constant: true).Input("bias", Half(14, 1f, 4), constant: true)
            .Input("cs", Half(15, 1f, 3), constant: true).Input("cb", Half(16, 1f, 3), constant: true)
            .Input("mean", Half(17, 0.5f, 3), constant: true).Input("var", Positive(18, 3), constant: true)
            .Input("scales", Tensor.From<float>([1, 1, 2, 1.5f], 4), constant: true)
            .Input("axis", Tensor.Scalar<long>(2), constant: true)
            .Node("ReduceMean", ["x", "axes"])
            .Node("ReduceSum", ["x", "axes"], new() { ["keepdims"] = Int(0) })
            .Node("ReduceSumSquare", ["x", "axes"])
            .Node("ReduceL2", ["x", "axes"])
            .Node("ReduceL1", ["x"])
            .Node("ReduceProd", ["p", "axes"])
            .Node("ReduceLogSum", ["p", "axes"])
            .Node("Softmax", ["x"])
            .Node("Softmax", ["x"], new() { ["axis"] = Int(1) })
            .Node("LogSoftmax", ["x"])
            .Node("LayerNormalization", ["x", "scale", "bias"], new() { ["epsilon"] = Float(1e-3f) })
            .Node("BatchNormalization", ["x", "cs", "cb", "mean", "var"], new() { ["epsilon"] = Float(1e-3f) })
            .Node("InstanceNormalization", ["x", "cs", "cb"])
            .Node("Resize", ["x", null, "scales"], new() { ["mode"] = Str("linear") })
            .Node("CumSum", ["x", "axis"])
            .Check(1e-3f, 1e-4f);
}
