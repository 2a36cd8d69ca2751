using static Squash.Runtime.Gpu.Tests.DeviceCase;

namespace Squash.Runtime.Gpu.Tests;

/// <summary>
/// Pooling, reductions, Softmax and LayerNormalization on the device against the CPU operators. MaxPool and the
/// min/max reductions are exact (no arithmetic); sums and means use rtol 1e-5, atol 1e-6 (fp32 sums of at most a few
/// hundred values in [-1, 1] added in another order: the tree of the row kernels against the CPU's vector lanes);
/// Softmax and LayerNormalization 1e-5 / 1e-6 as well (one exp or sqrt per element on top).
/// </summary>
public class PoolReduceKernelTests
{
    public static TheoryData<int[], long[], long[], long[], long[], string, long, long> Pools => new()
    {
        // x, kernel, strides, pads, dilations, auto_pad, ceil_mode, count_include_pad
        { [1, 3, 9, 11], [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], "NOTSET", 0, 0 },
        { [2, 2, 8, 8], [2, 3], [1, 2], [0, 1, 1, 0], [1, 1], "NOTSET", 1, 1 },
        { [1, 2, 7, 7], [3, 3], [2, 2], [0, 0, 0, 0], [1, 1], "SAME_UPPER", 0, 0 },
        { [1, 2, 10, 10], [2, 2], [1, 1], [0, 0, 0, 0], [2, 2], "NOTSET", 0, 0 },
        { [1, 4, 13], [3], [2], [1, 1], [1], "NOTSET", 1, 1 },
    };

    [Theory]
    [MemberData(nameof(Pools))]
    public void Pool(int[] x, long[] kernel, long[] strides, long[] pads, long[] dilations, string autoPad, long ceil, long countPad)
    {
        var attrs = new Dictionary<string, Ir.AttributeValue>
        {
            ["kernel_shape"] = Ints(kernel), ["strides"] = Ints(strides), ["ceil_mode"] = Int(ceil), ["dilations"] = Ints(dilations),
        };
        if (autoPad == "NOTSET") attrs["pads"] = Ints(pads);
        else attrs["auto_pad"] = Str(autoPad);
        var c = new MultiCase().Input("x", Random(1, 3, x));
        c.Node("MaxPool", ["x"], attrs);
        var average = new Dictionary<string, Ir.AttributeValue>(attrs) { ["count_include_pad"] = Int(countPad) };
        c.Node("AveragePool", ["x"], average);
        c.Check(1e-5f, 1e-6f);
    }

    [Fact]
    public void GlobalPools() =>
        new MultiCase().Input("x", Random(1, 3, 2, 5, 6, 7)).Node("GlobalAveragePool", ["x"]).Node("GlobalMaxPool", ["x"]).Check(1e-5f, 1e-6f);

    [Theory]
    [InlineData(new long[] { -1 }, 1)]
    [InlineData(new long[] { 1, 2 }, 0)]
    [InlineData(new long[] { 0 }, 1)]
    [InlineData(new long[0], 0)]
    public void Reduce(long[] axes, long keepdims)
    {
        var c = new MultiCase(opset: 18).Input("x", Random(1, 1, 3, 4, 5, 6)).Input("p", ElementwiseKernelTests.Abs(Random(2, 1, 3, 4, 5, 6), 0.5f));
        if (axes.Length > 0) c.Input("axes", Tensor.From<long>(axes, axes.Length), constant: true);
        foreach (var op in new[] { "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSumSquare", "ReduceL1", "ReduceL2" })
            c.Node(op, axes.Length > 0 ? ["x", "axes"] : ["x"], new() { ["keepdims"] = Int(keepdims) });
        c.Node("ReduceLogSum", axes.Length > 0 ? ["p", "axes"] : ["p"], new() { ["keepdims"] = Int(keepdims) });
        c.Node("ReduceProd", axes.Length > 0 ? ["p", "axes"] : ["p"], new() { ["keepdims"] = Int(keepdims) });
        c.Check(1e-5f, 1e-6f);
    }

    [Fact]
    public void ReduceMeanWithAttributeAxes() =>
        new MultiCase(opset: 13).Input("x", Random(1, 1, 2, 3, 40))
            .Node("ReduceMean", ["x"], new() { ["axes"] = Ints(-1) })
            .Node("ReduceMean", ["x"], new() { ["axes"] = Ints(0, 1), ["keepdims"] = Int(0) })
            .Check(1e-5f, 1e-6f);

    [Fact]
    public void Softmax()
    {
        var c = new MultiCase().Input("x", Random(1, 5, 2, 3, 300));
        c.Node("Softmax", ["x"]).Node("Softmax", ["x"], new() { ["axis"] = Int(1) }).Node("LogSoftmax", ["x"], new() { ["axis"] = Int(-1) });
        c.Check(1e-5f, 1e-6f);
        new MultiCase(opset: 11).Input("x", Random(1, 5, 2, 3, 7)).Node("Softmax", ["x"], new() { ["axis"] = Int(1) }).Check(1e-5f, 1e-6f);
    }

    [Fact]
    public void LayerNormalization() =>
        new MultiCase(opset: 17)
            .Input("x", Random(1, 3, 2, 5, 48)).Input("s", Random(2, 1, 48), true).Input("b", Random(3, 1, 48), true)
            .Input("s2", Random(4, 1, 5, 48), true)
            .Node("LayerNormalization", ["x", "s", "b"], new() { ["epsilon"] = Float(1e-5f) })
            .Node("LayerNormalization", ["x", "s2"], new() { ["axis"] = Int(1) })
            .Check(1e-5f, 1e-5f);
}
