using Squash.Compiler.Passes;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Tests.Passes;

/// <summary>
/// <see cref="ActivationFusion"/> and <see cref="EpilogueFusion"/> on graphs built in code: each fires on its pattern
/// (checked by the nodes left and the fused node's inputs), and the fused graph's outputs equal the unfused graph's
/// bit for bit (tolerance 0): the fused kernels do each step in the order and with the arithmetic of the nodes they
/// replace. Shapes are chosen to reach every convolution path (pointwise, shifted rows, packed im2col, depthwise,
/// 1-D, several K blocks) and partial GEMM tiles; one and three threads. Each pass also must not fire when the pattern
/// is broken.
/// </summary>
public sealed class ProductFusionTests
{
    private static readonly PassContext s_context = new();

    private static Tensor Random(Random rng, params int[] shape) => TestTensors.Uniform(rng, 2, shape);

    private static void Fuse(Graph g) =>
        new PassManager([new ShapeInference(), new ActivationFusion(), new EpilogueFusion(), new DeadNodeElimination()]).Run(g, s_context);

    private static string[] Types(Graph g) => g.Nodes.Select(n => n.OpType).ToArray();

    /// <summary>x [1, channels, h, w] through a Conv with the given kernel, stride and group, then <paramref name="after"/>.</summary>
    private static (Graph Graph, Dictionary<string, Tensor> Inputs) ConvThen(Func<GraphBuilder, Value, Random, Value> after,
        int channels = 4, int outChannels = 12, int kernel = 3, int stride = 1, int group = 1, int h = 9, int w = 37, bool transpose = false)
    {
        var rng = new Random(11);
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 1, channels, h, w);
        int pad = transpose ? 0 : kernel / 2;
        var weights = transpose
            ? b.Constant(Random(rng, channels, outChannels / group, kernel, kernel))
            : b.Constant(Random(rng, outChannels, channels / group, kernel, kernel));
        var bias = b.Constant(Random(rng, outChannels));
        var conv = b.NodeWith(transpose ? "ConvTranspose" : "Conv",
            [("pads", AttributeValue.IntList(pad, pad, pad, pad)), ("strides", AttributeValue.IntList(stride, stride)), ("group", AttributeValue.Int(group))],
            [x, weights, bias])[0];
        var y = after(b, conv, rng);
        y.Name = "y";
        b.Output(y);
        return (b.Graph, new Dictionary<string, Tensor> { ["x"] = Random(rng, 1, channels, h, w) });
    }

    private static Value Activation(GraphBuilder b, string kind, Value x) => kind switch
    {
        "LeakyRelu" => b.NodeWith("LeakyRelu", [("alpha", AttributeValue.Float(0.3f))], [x])[0],
        "HardSigmoid" => b.NodeWith("HardSigmoid", [("alpha", AttributeValue.Float(0.1666667f)), ("beta", AttributeValue.Float(0.5f))], [x])[0],
        "Clip" => b.Node("Clip", x, b.Constant(Tensor.Scalar(-0.5f)), b.Constant(Tensor.Scalar(1.5f))),
        "ClipMaxOnly" => b.Node("Clip", x, null, b.Constant(Tensor.Scalar(6f))),
        _ => b.Node(kind, x),
    };

    public static TheoryData<string, int, int, int> ConvActivationCases()
    {
        var data = new TheoryData<string, int, int, int>();
        foreach (var activation in new[] { "Relu", "Clip", "ClipMaxOnly", "LeakyRelu", "HardSigmoid", "HardSwish", "Sigmoid" })
            data.Add(activation, 3, 1, 1); // shifted rows
        data.Add("HardSwish", 1, 1, 1);   // pointwise
        data.Add("Relu", 3, 2, 1);        // packed im2col
        data.Add("HardSwish", 3, 1, 4);   // depthwise (4 channels, group 4)
        data.Add("Sigmoid", 5, 2, 4);     // depthwise, stride 2
        return data;
    }

    [Theory]
    [MemberData(nameof(ConvActivationCases))]
    public void ActivationFusesIntoConv(string activation, int kernel, int stride, int group)
    {
        var (graph, inputs) = ConvThen((b, conv, _) => Activation(b, activation, conv), kernel: kernel, stride: stride, group: group,
            outChannels: group == 1 ? 12 : 4);
        var before = FusionAssert.Copy(graph);
        Fuse(graph);
        Assert.Equal(["FusedConv"], Types(graph));
        Assert.Equal(activation.StartsWith("Clip", StringComparison.Ordinal) ? "Clip" : activation, graph.Nodes[0].Attributes["activation"].StringValue);
        FusionAssert.Identical(before, graph, inputs);
    }

    [Theory]
    [InlineData("Relu")]
    [InlineData("Sigmoid")]
    public void ActivationFusesIntoConvTranspose(string activation)
    {
        var (graph, inputs) = ConvThen((b, conv, _) => Activation(b, activation, conv), kernel: 2, stride: 2, transpose: true, outChannels: 6);
        var before = FusionAssert.Copy(graph);
        Fuse(graph);
        Assert.Equal(["FusedConvTranspose"], Types(graph));
        FusionAssert.Identical(before, graph, inputs);
    }

    [Fact]
    public void ActivationFusesIntoGemm()
    {
        var rng = new Random(5);
        var b = new GraphBuilder();
        var a = b.Input("a", DataType.Float, 7, 20);
        var gemm = b.NodeWith("Gemm", [("transB", AttributeValue.Int(1)), ("alpha", AttributeValue.Float(0.5f))],
            [a, b.Constant(Random(rng, 45, 20)), b.Constant(Random(rng, 45))])[0];
        var y = b.Node("Relu", gemm);
        y.Name = "y";
        b.Output(y);
        var before = FusionAssert.Copy(b.Graph);
        Fuse(b.Graph);
        Assert.Equal(["FusedGemm"], Types(b.Graph));
        FusionAssert.Identical(before, b.Graph, new() { ["a"] = Random(rng, 7, 20) });
    }

    [Theory]
    [InlineData(new[] { 2, 5, 24 }, 40)] // batched rows
    [InlineData(new[] { 3, 24 }, 1)]     // one column: computed transposed
    public void BiasAndActivationFuseIntoMatMul(int[] aShape, int n)
    {
        var rng = new Random(6);
        var b = new GraphBuilder();
        var a = b.Input("a", DataType.Float, aShape);
        var product = b.Node("MatMul", a, b.Constant(Random(rng, aShape[^1], n)));
        var biased = b.Node("Add", b.Constant(Random(rng, n)), product);
        var y = b.Node("HardSigmoid", biased);
        y.Name = "y";
        b.Output(y);
        var before = FusionAssert.Copy(b.Graph);
        Fuse(b.Graph);
        Assert.Equal(["FusedMatMul"], Types(b.Graph));
        Assert.NotNull(b.Graph.Nodes[0].Input(2));
        FusionAssert.Identical(before, b.Graph, new() { ["a"] = Random(rng, aShape) });
    }

    [Fact]
    public void MatMulBiasFusesWithoutAnActivation()
    {
        var rng = new Random(8);
        var b = new GraphBuilder();
        var a = b.Input("a", DataType.Float, 1, 40, 120);
        var product = b.Node("MatMul", a, b.Constant(Random(rng, 120, 360)));
        var y = b.Node("Add", product, b.Constant(Random(rng, 360)));
        y.Name = "y";
        b.Output(y);
        var before = FusionAssert.Copy(b.Graph);
        Fuse(b.Graph);
        Assert.Equal(["FusedMatMul"], Types(b.Graph));
        FusionAssert.Identical(before, b.Graph, new() { ["a"] = Random(rng, 1, 40, 120) });
    }

    public static TheoryData<int, int, int, int> AffineCases() => new()
    {
        { 3, 1, 1, 12 },  // shifted rows
        { 1, 1, 1, 12 },  // pointwise
        { 3, 2, 1, 12 },  // packed im2col
        { 3, 1, 4, 4 },   // depthwise
    };

    /// <summary>PP-LCNet: Conv, HardSwish, then a learnable affine block (scalar Mul and Add).</summary>
    [Theory]
    [MemberData(nameof(AffineCases))]
    public void AffineAfterTheActivationFusesIntoConv(int kernel, int stride, int group, int outChannels)
    {
        var (graph, inputs) = ConvThen((b, conv, rng) =>
        {
            var h = b.Node("HardSwish", conv);
            var scaled = b.Node("Mul", b.Constant(Tensor.From<float>([1.25f], 1)), h);
            return b.Node("Add", scaled, b.Constant(Tensor.From<float>([-0.375f], 1)));
        }, kernel: kernel, stride: stride, group: group, outChannels: outChannels);
        var before = FusionAssert.Copy(graph);
        Fuse(graph);
        Assert.Equal(["FusedConv"], Types(graph));
        Assert.NotNull(graph.Nodes[0].Input(4));
        Assert.NotNull(graph.Nodes[0].Input(5));
        FusionAssert.Identical(before, graph, inputs);
    }

    [Fact]
    public void PerChannelAffineFusesIntoConvWithoutAnActivationAfterAResidual()
    {
        var (graph, inputs) = ConvThen((b, conv, rng) =>
        {
            var sum = b.Node("Add", conv, b.Input("z", DataType.Float, 1, 12, 9, 37));
            var scaled = b.Node("Mul", sum, b.Constant(Random(rng, 1, 12, 1, 1)));
            return b.Node("Add", scaled, b.Constant(Random(rng, 12, 1, 1)));
        });
        inputs["z"] = Random(new Random(2), 1, 12, 9, 37);
        var before = FusionAssert.Copy(graph);
        Fuse(graph);
        Assert.Equal(["FusedConv"], Types(graph));
        FusionAssert.Identical(before, graph, inputs);
    }

    public static TheoryData<int, int, int, int, int> ResidualCases() => new()
    {
        { 3, 1, 1, 4, 12 },   // shifted rows: the residual is added on the way from the grid to Y
        { 1, 1, 1, 4, 12 },   // pointwise
        { 3, 2, 1, 4, 12 },   // packed im2col
        { 3, 1, 4, 4, 4 },    // depthwise
        { 3, 1, 1, 40, 12 },  // 360 deep: two K blocks, the residual and activation on the last only
    };

    [Theory]
    [MemberData(nameof(ResidualCases))]
    public void ResidualAddAndActivationFuseIntoConv(int kernel, int stride, int group, int channels, int outChannels)
    {
        int h = 9, w = 37, oh = (h - 1) / stride + 1, ow = (w - 1) / stride + 1;
        var (graph, inputs) = ConvThen((b, conv, rng) =>
        {
            var z = b.Input("z", DataType.Float, 1, outChannels, oh, ow);
            return b.Node("Relu", b.Node("Add", z, conv));
        }, channels: channels, kernel: kernel, stride: stride, group: group, outChannels: outChannels, h: h, w: w);
        inputs["z"] = Random(new Random(3), 1, outChannels, oh, ow);
        var before = FusionAssert.Copy(graph);
        Fuse(graph);
        Assert.Equal(["FusedConv"], Types(graph));
        Assert.Equal("z", graph.Nodes[0].Input(3)?.Name);
        Assert.Equal("Relu", graph.Nodes[0].Attributes["activation"].StringValue);
        FusionAssert.Identical(before, graph, inputs);
    }

    /// <summary>A transformer block's projection: MatMul, bias, then the skip connection.</summary>
    [Fact]
    public void BiasAndResidualFuseIntoMatMul()
    {
        var rng = new Random(9);
        var b = new GraphBuilder();
        var a = b.Input("a", DataType.Float, 1, 40, 120);
        var skip = b.Input("skip", DataType.Float, 1, 40, 120);
        var product = b.Node("MatMul", a, b.Constant(Random(rng, 120, 120)));
        var biased = b.Node("Add", product, b.Constant(Random(rng, 120)));
        var y = b.Node("Add", skip, biased);
        y.Name = "y";
        b.Output(y);
        var before = FusionAssert.Copy(b.Graph);
        Fuse(b.Graph);
        Assert.Equal(["FusedMatMul"], Types(b.Graph));
        FusionAssert.Identical(before, b.Graph, new() { ["a"] = Random(rng, 1, 40, 120), ["skip"] = Random(rng, 1, 40, 120) });
    }

    [Fact]
    public void ResidualAndActivationFuseIntoConvTranspose()
    {
        var (graph, inputs) = ConvThen((b, conv, rng) =>
            b.Node("Sigmoid", b.Node("Add", conv, b.Input("z", DataType.Float, 1, 6, 18, 74))), kernel: 2, stride: 2, transpose: true, outChannels: 6);
        inputs["z"] = Random(new Random(4), 1, 6, 18, 74);
        var before = FusionAssert.Copy(graph);
        Fuse(graph);
        Assert.Equal(["FusedConvTranspose"], Types(graph));
        FusionAssert.Identical(before, graph, inputs);
    }

    [Fact]
    public void NothingFusesWhenTheProductOutputHasAnotherReader()
    {
        var (graph, _) = ConvThen((b, conv, _) =>
        {
            b.Output(conv);
            return b.Node("Relu", conv);
        });
        new ShapeInference().Run(graph, s_context);
        Assert.False(new ActivationFusion().Run(graph, s_context));
        Assert.False(new EpilogueFusion().Run(graph, s_context));
    }

    [Fact]
    public void ResidualComputedFromTheConvItselfIsNotFused()
    {
        // Add(conv, Mul(conv, s)): the Add's other input depends on the conv, so it cannot be the conv's input.
        var (graph, _) = ConvThen((b, conv, rng) => b.Node("Add", conv, b.Node("Mul", conv, b.Constant(Random(rng, 1, 12, 1, 1)))));
        new ShapeInference().Run(graph, s_context);
        Assert.False(new EpilogueFusion().Run(graph, s_context));
    }

    [Fact]
    public void ResidualAfterTheActivationIsNotFused()
    {
        var (graph, inputs) = ConvThen((b, conv, _) => b.Node("Add", b.Node("Relu", conv), b.Input("z", DataType.Float, 1, 12, 9, 37)));
        inputs["z"] = Random(new Random(5), 1, 12, 9, 37);
        var before = FusionAssert.Copy(graph);
        Fuse(graph);
        Assert.Equal(["FusedConv", "Add"], Types(graph));
        Assert.Null(graph.Nodes[0].Input(3));
        FusionAssert.Identical(before, graph, inputs);
    }

    [Fact]
    public void OtherActivationsAndVariableBoundsAreNotFused()
    {
        var (tanh, _) = ConvThen((b, conv, _) => b.Node("Tanh", conv));
        new ShapeInference().Run(tanh, s_context);
        Assert.False(new ActivationFusion().Run(tanh, s_context));

        var (clip, _) = ConvThen((b, conv, _) => b.Node("Clip", conv, b.Input("low", DataType.Float), null));
        new ShapeInference().Run(clip, s_context);
        Assert.False(new ActivationFusion().Run(clip, s_context));
    }

    [Fact]
    public void ConstantsThatBroadcastAlongSpaceAreNotFused()
    {
        var (graph, _) = ConvThen((b, conv, rng) => b.Node("Mul", b.Node("Relu", conv), b.Constant(Random(rng, 1, 1, 1, 37))));
        Fuse(graph);
        Assert.Equal(["FusedConv", "Mul"], Types(graph));
        Assert.Null(graph.Nodes[0].Input(4));
    }

    [Fact]
    public void IntegerMatMulIsNotFused()
    {
        var b = new GraphBuilder();
        var a = b.Input("a", DataType.Int64, 3, 4);
        var product = b.Node("MatMul", a, b.Constant(Tensor.From<long>([1, 2, 3, 4, 5, 6, 7, 8], 4, 2)));
        b.Output(b.Node("Add", product, b.Constant(Tensor.From<long>([1, 2], 2))));
        new ShapeInference().Run(b.Graph, s_context);
        Assert.False(new ActivationFusion().Run(b.Graph, s_context));
    }
}
