using Squash.Compiler.Passes;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Tests.Passes;

/// <summary>
/// <see cref="ConvTransposeChainFusion"/>: two tiling transposed convolutions (kernel = stride) with their bias and
/// activation become one FusedConvTransposeChain whose outputs equal the two nodes' bit for bit (tolerance 0: the same
/// GEMMs over the same K in the same order, the same epilogue), with one and three threads, after the ONNX writer and
/// loader too; shapes reach the 4-wide vector weave and its scalar tail (width 37), several row blocks (height 60),
/// the four-row second step (one output channel of 2x2 taps) and the GEMM one,
/// other kernels (3x3 then 2x1: the scalar weave), a batch of two. It must not fire when the pattern is broken.
/// </summary>
public sealed class ConvTransposeChainFusionTests
{
    private static Tensor Random(Random rng, params int[] shape) => TestTensors.Uniform(rng, 2, shape);

    private static void Fuse(Graph g) =>
        new PassManager([new ShapeInference(), new ActivationFusion(), new EpilogueFusion(), new ConvTransposeChainFusion(), new DeadNodeElimination()])
            .Run(g, new PassContext());

    /// <summary>x [batch, 5, h, w] ─ ConvTranspose(k1, bias) ─ act1 ─ ConvTranspose(k2, bias?) ─ act2 ─ y; with
    /// <paramref name="alter"/> changing the second node's attributes, and the intermediate a graph output too when
    /// <paramref name="exposeInner"/>.</summary>
    private static (Graph Graph, Dictionary<string, Tensor> Inputs) Pair((int H, int W) k1, (int H, int W) k2, string? act1, string? act2,
        int batch = 1, int h = 60, int w = 37, int m2 = 3, bool secondBias = true, bool exposeInner = false,
        Action<Node>? alter = null)
    {
        var rng = new Random(21);
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, batch, 5, h, w);
        var first = b.NodeWith("ConvTranspose", [("strides", AttributeValue.IntList(k1.H, k1.W))],
            [x, b.Constant(Random(rng, 5, 6, k1.H, k1.W)), b.Constant(Random(rng, 6))])[0];
        var inner = act1 is null ? first : b.Node(act1, first);
        var second = b.NodeWith("ConvTranspose", [("strides", AttributeValue.IntList(k2.H, k2.W))],
            secondBias ? [inner, b.Constant(Random(rng, 6, m2, k2.H, k2.W)), b.Constant(Random(rng, m2))] : [inner, b.Constant(Random(rng, 6, m2, k2.H, k2.W))])[0];
        alter?.Invoke(b.Graph.Nodes.Last(n => n.OpType == "ConvTranspose"));
        var y = act2 is null ? second : b.Node(act2, second);
        y.Name = "y";
        b.Output(y);
        if (exposeInner) b.Output(inner);
        return (b.Graph, new Dictionary<string, Tensor> { ["x"] = Random(rng, batch, 5, h, w) });
    }

    [Theory]
    [InlineData(2, 2, 2, 2, "Relu", "Sigmoid", 1, 1)]   // DBNet's head: one channel of 2x2 taps, the four-row kernel
    [InlineData(2, 2, 2, 2, "Relu", "Sigmoid", 1, 3)]   // three channels: the second step through the GEMM
    [InlineData(2, 2, 2, 2, null, null, 2, 1)]          // no activations, a batch of two
    [InlineData(3, 3, 2, 1, "HardSwish", "Relu", 1, 3)] // other kernels: six values per pixel row, the scalar weave
    public void FusesAPairAndKeepsTheBits(int k1h, int k1w, int k2h, int k2w, string? act1, string? act2, int batch, int m2)
    {
        var (graph, inputs) = Pair((k1h, k1w), (k2h, k2w), act1, act2, batch, m2: m2);
        var before = FusionAssert.Copy(graph);
        Fuse(graph);
        Assert.Equal(["FusedConvTransposeChain"], graph.Nodes.Select(n => n.OpType));
        var chain = graph.Nodes[0];
        Assert.Equal(5, chain.Inputs.Count);
        Assert.Equal(act1, chain.Attributes.TryGetValue("inner_activation", out var a1) ? a1.StringValue : null);
        Assert.Equal(act2, chain.Attributes.TryGetValue("activation", out var a2) ? a2.StringValue : null);
        FusionAssert.Identical(before, graph, inputs);
    }

    [Fact]
    public void FusesWithoutTheSecondBias()
    {
        var (graph, inputs) = Pair((2, 2), (2, 2), "Relu", "Sigmoid", secondBias: false, h: 5, w: 16);
        var before = FusionAssert.Copy(graph);
        Fuse(graph);
        Assert.Equal(["FusedConvTransposeChain"], graph.Nodes.Select(n => n.OpType));
        Assert.Null(graph.Nodes[0].Input(4));
        FusionAssert.Identical(before, graph, inputs);
    }

    public static TheoryData<string> Broken() =>
    [
        "inner read elsewhere", "padded", "grouped", "stride below kernel", "dilated", "output padding",
    ];

    [Theory]
    [MemberData(nameof(Broken))]
    public void DoesNotFireWhenThePatternIsBroken(string how)
    {
        Action<Node>? alter = how switch
        {
            "padded" => n => n.Attributes["pads"] = AttributeValue.IntList(1, 1, 1, 1),
            "grouped" => n => n.Attributes["group"] = AttributeValue.Int(2),
            "stride below kernel" => n => n.Attributes["strides"] = AttributeValue.IntList(1, 1),
            "dilated" => n => n.Attributes["dilations"] = AttributeValue.IntList(2, 2),
            "output padding" => n => n.Attributes["output_padding"] = AttributeValue.IntList(1, 1),
            _ => null,
        };
        // Each alteration leaves a valid model (W2 [6, 3, 2, 2] with group 2 reads 6 channels and writes 6).
        var (graph, _) = Pair((2, 2), (2, 2), "Relu", null, h: 6, w: 8, exposeInner: how == "inner read elsewhere", alter: alter);
        Fuse(graph);
        Assert.DoesNotContain("FusedConvTransposeChain", graph.Nodes.Select(n => n.OpType));
    }
}
