using Squash.Compiler.Passes;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Tests.Passes;

/// <summary>
/// <see cref="ElementwiseFusion"/> on graphs built in code: chains become one FusedElementwise node, and outputs equal
/// the unfused graph's bit for bit (tolerance 0: each step runs the standalone operator's vectorized arithmetic),
/// with one and three threads and rows longer than the kernel's block. It must not fire on broken chains.
/// </summary>
public sealed class ElementwiseFusionTests
{
    private static readonly PassContext s_context = new();

    private static Tensor Random(Random rng, params int[] shape) => TestTensors.Uniform(rng, 3, shape);

    private static void Fuse(Graph g) =>
        new PassManager([new ShapeInference(), new ElementwiseFusion(), new DeadNodeElimination()]).Run(g, s_context);

    private static string[] Types(Graph g) => g.Nodes.Select(n => n.OpType).ToArray();

    /// <summary>PP-OCR det's squeeze-excitation with a skip: X + X * S, S one value per channel; rows of 2 400
    /// floats span three blocks.</summary>
    [Fact]
    public void ScaleAndSkipBecomeOneNode()
    {
        var rng = new Random(1);
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 2, 5, 40, 60);
        var s = b.Input("s", DataType.Float, 1, 5, 1, 1);
        var y = b.Node("Add", x, b.Node("Mul", x, s));
        y.Name = "y";
        b.Output(y);
        var before = FusionAssert.Copy(b.Graph);
        Fuse(b.Graph);
        Assert.Equal(["FusedElementwise"], Types(b.Graph));
        Assert.Equal(["x", "s"], b.Graph.Nodes[0].Inputs.Select(v => v!.Name));
        FusionAssert.Identical(before, b.Graph, new() { ["x"] = Random(rng, 2, 5, 40, 60), ["s"] = Random(rng, 1, 5, 1, 1) });
    }

    /// <summary>Swish as exporters write it: X * sigmoid(beta * X).</summary>
    [Fact]
    public void SwishBecomesOneNode()
    {
        var rng = new Random(2);
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 1, 40, 240);
        var scaled = b.Node("Mul", x, b.Constant(Tensor.Scalar(1.702f)));
        var y = b.Node("Mul", x, b.Node("Sigmoid", scaled));
        y.Name = "y";
        b.Output(y);
        var before = FusionAssert.Copy(b.Graph);
        Fuse(b.Graph);
        Assert.Equal(["FusedElementwise"], Types(b.Graph));
        FusionAssert.Identical(before, b.Graph, new() { ["x"] = Random(rng, 1, 40, 240) });
    }

    /// <summary>Every function and both operand orders, with per-column, scalar and full operands.</summary>
    [Fact]
    public void LongChainsSplitIntoNodesOfAtMostEightSteps()
    {
        var rng = new Random(3);
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 3, 7, 1100);
        var column = b.Constant(Random(rng, 1100));
        var full = b.Input("f", DataType.Float, 3, 7, 1100);
        var v = b.Node("Sub", column, x);                                  // reversed
        v = b.Node("Tanh", v);
        v = b.Node("Div", v, b.Constant(Tensor.Scalar(0.75f)));
        v = b.Node("Div", b.Constant(Tensor.Scalar(2f)), b.Node("Abs", v)); // reversed, scalar
        v = b.Node("Clip", v, b.Constant(Tensor.Scalar(-4f)), b.Constant(Tensor.Scalar(4f)));
        v = b.Node("Mul", full, v);
        v = b.Node("Exp", b.Node("Neg", v));
        v = b.Node("Sqrt", v);                                             // ninth step: a second node
        v = b.NodeWith("LeakyRelu", [("alpha", AttributeValue.Float(0.1f))], [b.Node("Sub", v, b.Constant(Tensor.Scalar(1f)))])[0];
        v = b.Node("HardSwish", b.Node("Erf", v));
        v = b.Node("HardSigmoid", b.Node("Relu", v));
        v.Name = "y";
        b.Output(v);
        var before = FusionAssert.Copy(b.Graph);
        Fuse(b.Graph);
        Assert.Equal(["FusedElementwise", "FusedElementwise"], Types(b.Graph));
        Assert.Equal(8, b.Graph.Nodes[0].Attributes["ops"].Strings.Count);
        FusionAssert.Identical(before, b.Graph, new() { ["x"] = Random(rng, 3, 7, 1100), ["f"] = Random(rng, 3, 7, 1100) });
    }

    [Fact]
    public void ChainStopsAtAValueReadElsewhere()
    {
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 4, 8);
        var t = b.Node("Sigmoid", x);
        b.Output(t);
        b.Output(b.Node("Relu", t));
        Fuse(b.Graph);
        Assert.Equal(["Sigmoid", "Relu"], Types(b.Graph));
    }

    [Fact]
    public void SingleNodesAndShapeChangingBroadcastsAreLeftAlone()
    {
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 4, 1);
        var wide = b.Node("Add", x, b.Input("r", DataType.Float, 1, 8)); // [4,1] + [1,8] -> [4,8]
        b.Output(b.Node("Relu", wide));
        var lone = b.Node("Sigmoid", b.Input("z", DataType.Float, 3));
        b.Output(lone);
        Fuse(b.Graph);
        Assert.Equal(["Add", "Relu", "Sigmoid"], Types(b.Graph));
    }

    [Fact]
    public void OperandsThatSplitRowsDifferentlyEndTheChain()
    {
        // [1, C, 1, 1] splits rows at axis 2, [W] at axis 3: one pass cannot serve both.
        var rng = new Random(4);
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 1, 3, 4, 5);
        var v = b.Node("Mul", x, b.Constant(Random(rng, 1, 3, 1, 1)));
        v = b.Node("Add", v, b.Constant(Random(rng, 1, 3, 1, 1)));
        v = b.Node("Add", v, b.Constant(Random(rng, 5)));
        v = b.Node("Relu", v);
        v.Name = "y";
        b.Output(v);
        var before = FusionAssert.Copy(b.Graph);
        Fuse(b.Graph);
        Assert.Equal(["FusedElementwise", "FusedElementwise"], Types(b.Graph));
        FusionAssert.Identical(before, b.Graph, new() { ["x"] = Random(rng, 1, 3, 4, 5) });
    }

    [Fact]
    public void NodesAfterAProductAreLeftToTheProductFusions()
    {
        var rng = new Random(5);
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 1, 2, 6, 6);
        var conv = b.Node("Conv", x, b.Constant(Random(rng, 3, 2, 1, 1)));
        b.Output(b.Node("Sigmoid", b.Node("Relu", conv)));
        new ShapeInference().Run(b.Graph, s_context);
        Assert.False(new ElementwiseFusion().Run(b.Graph, s_context));
    }
}
