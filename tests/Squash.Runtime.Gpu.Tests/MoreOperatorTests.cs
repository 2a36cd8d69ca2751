using static Squash.Runtime.Gpu.Tests.DeviceCase;

namespace Squash.Runtime.Gpu.Tests;

/// <summary>Comparisons, logical operators, InstanceNormalization, RMSNormalization, Pad, Tile, DepthToSpace,
/// SpaceToDepth and precomputed nodes on the device against the CPU operators. Exact except the normalizations
/// (rtol 1e-5, atol 1e-5: a mean, a variance and a square root per row in another order).</summary>
public class MoreOperatorTests
{
    [Fact]
    public void ComparisonsAndLogic()
    {
        var a = Random(1, 2, 3, 4);
        var b = Random(2, 2, 4);
        a.AsSpan<float>()[5] = b.AsSpan<float>()[1]; // an equal pair
        var p = new Tensor(DataType.Bool, 3, 4);
        var q = new Tensor(DataType.Bool, 4);
        for (int i = 0; i < p.ElementCount; i++) p.Bytes[i] = (byte)(i % 3 == 0 ? 1 : 0);
        for (int i = 0; i < q.ElementCount; i++) q.Bytes[i] = (byte)(i % 2);
        var c = new MultiCase().Input("a", a).Input("b", b).Input("p", p).Input("q", q);
        foreach (var op in new[] { "Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual" }) c.Node(op, ["a", "b"]);
        foreach (var op in new[] { "And", "Or", "Xor" }) c.Node(op, ["p", "q"]);
        c.Node("Not", ["p"]);
        c.Check(0, 0);
    }

    [Fact]
    public void Normalizations() =>
        new MultiCase(opset: 23)
            .Input("x", Random(1, 3, 2, 4, 5, 6)).Input("s", Random(2, 1, 4), true).Input("b", Random(3, 1, 4), true)
            .Input("r", Random(4, 1, 6), true)
            .Node("InstanceNormalization", ["x", "s", "b"], new() { ["epsilon"] = Float(1e-4f) })
            .Node("RMSNormalization", ["x", "r"])
            .Check(1e-5f, 1e-5f);

    [Theory]
    [InlineData("constant")]
    [InlineData("edge")]
    [InlineData("reflect")]
    [InlineData("wrap")]
    public void Pad(string mode)
    {
        var c = new MultiCase().Input("x", Random(1, 1, 2, 3, 5, 4))
            .Input("pads", Tensor.From<long>([0, 1, 2, -1, 0, 2, 1, 3], 8), true).Input("v", Tensor.Scalar(7.5f), true)
            .Input("axes", Tensor.From<long>([3, 2], 2), true).Input("apads", Tensor.From<long>([1, 0, 2, 3], 4), true);
        c.Node("Pad", ["x", "pads", "v"], new() { ["mode"] = Str(mode) });
        c.Node("Pad", ["x", "apads", null, "axes"], new() { ["mode"] = Str(mode) });
        c.Check(0, 0);
    }

    [Fact]
    public void TileAndBlocks()
    {
        var c = new MultiCase().Input("x", Random(1, 1, 2, 3, 4)).Input("reps", Tensor.From<long>([2, 1, 3], 3), true)
            .Input("d", Random(2, 1, 1, 8, 3, 2)).Input("s", Random(3, 1, 2, 3, 4, 6));
        c.Node("Tile", ["x", "reps"]);
        c.Node("DepthToSpace", ["d"], new() { ["blocksize"] = Int(2) });
        c.Node("DepthToSpace", ["d"], new() { ["blocksize"] = Int(2), ["mode"] = Str("CRD") });
        c.Node("SpaceToDepth", ["s"], new() { ["blocksize"] = Int(2) });
        c.Check(0, 0);
    }

    /// <summary>Shape reads only the planned shape and ConstantOfShape only constants: both are computed once when the
    /// model is created and copied into their slots on every run; neither is a host node.</summary>
    [Fact]
    public void ShapeOnlyAndConstantNodesArePrecomputed()
    {
        var c = new MultiCase().Input("x", Random(1, 1, 2, 3, 4)).Input("dims", Tensor.From<long>([2, 2], 2), true);
        c.Node("Relu", ["x"], output: false);
        c.Node("Shape", [c.Last]);
        c.Node("ConstantOfShape", ["dims"], new() { ["value"] = Ir.AttributeValue.FromTensor(Tensor.From<float>([2.5f], 1)) });
        c.Check(0, 0);
    }
}

/// <summary>Trigonometric functions, fmod, CastLike, ArgMax/ArgMin and CumSum. rtol 1e-5, atol 1e-6 for the functions
/// and CumSum (fp32 running sums in the same order as the CPU, so mostly exact); ArgMax/ArgMin exact.</summary>
public class RowAndMiscOperatorTests
{
    [Fact]
    public void FunctionsAndMod()
    {
        var c = new MultiCase().Input("x", Random(1, 1.2f, 3, 7)).Input("u", Random(2, 0.99f, 3, 7)).Input("d", ElementwiseKernelTests.Abs(Random(3, 1, 7), 0.3f))
            .Input("like", Tensor.From<long>([0], 1), true);
        foreach (var op in new[] { "Tan", "Atan" }) c.Node(op, ["x"]);
        foreach (var op in new[] { "Asin", "Acos" }) c.Node(op, ["u"]);
        c.Node("Mod", ["x", "d"], new() { ["fmod"] = Int(1) });
        c.Node("CastLike", ["x", "like"]);
        c.Check(1e-5f, 1e-6f);
    }

    [Fact]
    public void ArgExtremesAndCumSum()
    {
        var x = Random(1, 1, 2, 5, 3);
        x.AsSpan<float>()[4] = x.AsSpan<float>()[1]; // a tie along axis 1
        var c = new MultiCase().Input("x", x).Input("axis", Tensor.From<long>([1], 1), true).Input("last", Tensor.From<int>([-1], 1), true);
        c.Node("ArgMax", ["x"], new() { ["axis"] = Int(1) });
        c.Node("ArgMin", ["x"], new() { ["axis"] = Int(-1), ["keepdims"] = Int(0) });
        c.Node("ArgMax", ["x"], new() { ["axis"] = Int(1), ["select_last_index"] = Int(1) });
        c.Node("CumSum", ["x", "axis"]);
        c.Node("CumSum", ["x", "last"], new() { ["exclusive"] = Int(1), ["reverse"] = Int(1) });
        c.Check(1e-5f, 1e-6f);
    }
}
