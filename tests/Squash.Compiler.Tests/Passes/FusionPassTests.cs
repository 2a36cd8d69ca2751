using Squash.Compiler.Passes;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Tests.Passes;

/// <summary>
/// The folding and pattern passes on graphs built in code: each must fire on its pattern (checked by the nodes left),
/// leave outputs equal to the unfused graph's within 1e-5 relative to the output's largest magnitude (folding rounds
/// the weights once in fp32; 1e-5 bounds that for these sizes), and not fire when the pattern is broken.
/// </summary>
public sealed class FusionPassTests
{
    private static readonly PassContext s_context = new();

    private static Tensor Random(Random rng, params int[] shape) => TestTensors.Uniform(rng, 1, shape);

    private static void AssertSameOutputs(Graph before, Graph after, Dictionary<string, Tensor> inputs)
    {
        var expected = new GraphExecutor(before).Run(inputs);
        var actual = new GraphExecutor(after).Run(inputs);
        foreach (var (name, e) in expected)
        {
            var a = actual[name];
            double scale = Metrics.Range(e) + 1e-12;
            Assert.True(Metrics.MaxAbsError(e, a) <= 1e-5 * scale, $"{name}: max error {Metrics.MaxAbsError(e, a)} for range {scale}");
        }
    }

    private static (Graph Graph, Dictionary<string, Tensor> Inputs) ConvThen(Func<GraphBuilder, Value, Random, Value> after, int group = 1)
    {
        var rng = new Random(7);
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 1, 4, 6, 6);
        var w = b.Constant(Random(rng, 8, 4 / group, 3, 3));
        var bias = b.Constant(Random(rng, 8));
        var conv = b.NodeWith("Conv", [("pads", AttributeValue.IntList(1, 1, 1, 1)), ("group", AttributeValue.Int(group))], [x, w, bias])[0];
        var y = after(b, conv, rng);
        y.Name = "y";
        b.Output(y);
        return (b.Graph, new Dictionary<string, Tensor> { ["x"] = Random(rng, 1, 4, 6, 6) });
    }

    private static Graph Copy(Graph g) =>
        Squash.Compiler.Onnx.OnnxLoader.Load(Squash.Compiler.Onnx.OnnxWriter.ToBytes(new Model(g)), null).Graph;

    private static void Optimize(Graph g, IGraphPass pass) =>
        new PassManager([new ShapeInference(), pass, new DeadNodeElimination()]).Run(g, s_context);

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void BatchNormFoldsIntoConv(int group)
    {
        var (graph, inputs) = ConvThen((b, conv, rng) =>
        {
            var scale = b.Constant(Random(rng, 8));
            var shift = b.Constant(Random(rng, 8));
            var mean = b.Constant(Random(rng, 8));
            var variance = Random(rng, 8);
            foreach (ref float v in variance.AsSpan<float>()) v = Math.Abs(v) + 0.1f;
            return b.NodeWith("BatchNormalization", [("epsilon", AttributeValue.Float(1e-3f))], [conv, scale, shift, mean, b.Constant(variance)])[0];
        }, group);
        var before = Copy(graph);
        Optimize(graph, new ConvBatchNormFusion());
        Assert.Equal(["Conv"], graph.Nodes.Select(n => n.OpType));
        AssertSameOutputs(before, graph, inputs);
    }

    [Fact]
    public void PerChannelMulAndScalarAddFoldIntoConv()
    {
        var (graph, inputs) = ConvThen((b, conv, rng) =>
        {
            var mul = b.Node("Mul", b.Constant(Random(rng, 1, 8, 1, 1)), conv);
            return b.Node("Add", mul, b.Constant(Tensor.Scalar(0.25f)));
        });
        var before = Copy(graph);
        Optimize(graph, new ConvAffineFusion());
        Assert.Equal(["Conv"], graph.Nodes.Select(n => n.OpType));
        AssertSameOutputs(before, graph, inputs);
    }

    [Fact]
    public void AffineFoldDoesNotFireWhenTheConvOutputHasAnotherReader()
    {
        var rng = new Random(1);
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 1, 2, 4, 4);
        var conv = b.Node("Conv", x, b.Constant(Random(rng, 3, 2, 1, 1)));
        var scaled = b.Node("Mul", conv, b.Constant(Tensor.Scalar(2f)));
        b.Output(scaled);
        b.Output(conv);
        Assert.False(new ConvAffineFusion().Run(b.Graph, s_context));
    }

    [Fact]
    public void AffineFoldDoesNotFireForAConstantThatBroadcastsAlongSpace()
    {
        var rng = new Random(2);
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 1, 2, 4, 4);
        var conv = b.Node("Conv", x, b.Constant(Random(rng, 3, 2, 1, 1)));
        var scaled = b.Node("Mul", conv, b.Constant(Random(rng, 1, 1, 1, 4)));
        b.Output(scaled);
        new ShapeInference().Run(b.Graph, s_context);
        Assert.False(new ConvAffineFusion().Run(b.Graph, s_context));
    }

    [Fact]
    public void DecomposedLayerNormBecomesOneNode()
    {
        var rng = new Random(3);
        var b = new GraphBuilder(9);
        var x = b.Input("x", DataType.Float, 2, 5, 16);
        var mean = b.NodeWith("ReduceMean", [("axes", AttributeValue.IntList(-1))], [x])[0];
        var d = b.Node("Sub", x, mean);
        var sq = b.Node("Pow", d, b.Constant(Tensor.Scalar(2f)));
        var variance = b.NodeWith("ReduceMean", [("axes", AttributeValue.IntList(-1))], [sq])[0];
        var eps = b.Node("Add", variance, b.Constant(Tensor.Scalar(1e-5f)));
        var s = b.Node("Sqrt", eps);
        var n = b.Node("Div", d, s);
        var g = b.Node("Mul", n, b.Constant(Random(rng, 16)));
        var y = b.Node("Add", g, b.Constant(Random(rng, 16)));
        y.Name = "y";
        b.Output(y);
        var before = Copy(b.Graph);
        Optimize(b.Graph, new LayerNormFusion());
        Assert.Equal(["LayerNormalization"], b.Graph.Nodes.Select(n => n.OpType));
        AssertSameOutputs(before, b.Graph, new() { ["x"] = Random(rng, 2, 5, 16) });
    }

    [Fact]
    public void LayerNormFusionDoesNotFireWhenAnIntermediateIsReadElsewhere()
    {
        var b = new GraphBuilder(9);
        var x = b.Input("x", DataType.Float, 2, 8);
        var mean = b.NodeWith("ReduceMean", [("axes", AttributeValue.IntList(-1))], [x])[0];
        var d = b.Node("Sub", x, mean);
        var sq = b.Node("Pow", d, b.Constant(Tensor.Scalar(2f)));
        var variance = b.NodeWith("ReduceMean", [("axes", AttributeValue.IntList(-1))], [sq])[0];
        var eps = b.Node("Add", variance, b.Constant(Tensor.Scalar(1e-5f)));
        var s = b.Node("Sqrt", eps);
        var n = b.Node("Div", d, s);
        b.Output(n);
        b.Output(variance);
        new ShapeInference().Run(b.Graph, s_context);
        Assert.False(new LayerNormFusion().Run(b.Graph, s_context));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void HardSwishPatternsBecomeOneNode(bool clipForm)
    {
        var rng = new Random(4);
        var b = new GraphBuilder(11);
        var x = b.Input("x", DataType.Float, 1, 3, 5, 5);
        Value y;
        if (clipForm)
        {
            var a = b.Node("Add", x, b.Constant(Tensor.Scalar(3f)));
            var c = b.Node("Clip", a, b.Constant(Tensor.Scalar(0f)), b.Constant(Tensor.Scalar(6f)));
            var m = b.Node("Mul", x, c);
            y = b.Node("Div", m, b.Constant(Tensor.Scalar(6f)));
        }
        else
        {
            var h = b.NodeWith("HardSigmoid", [("alpha", AttributeValue.Float(1f / 6)), ("beta", AttributeValue.Float(0.5f))], [x])[0];
            y = b.Node("Mul", x, h);
        }
        y.Name = "y";
        b.Output(y);
        var before = Copy(b.Graph);
        Optimize(b.Graph, new HardSwishFusion());
        Assert.Equal(["HardSwish"], b.Graph.Nodes.Select(n => n.OpType));
        var input = Random(rng, 1, 3, 5, 5);
        foreach (ref float v in input.AsSpan<float>()) v *= 5; // cover both saturated ends
        AssertSameOutputs(before, b.Graph, new() { ["x"] = input });
    }

    [Fact]
    public void HardSwishFusionDoesNotFireForOtherClipBounds()
    {
        var b = new GraphBuilder(11);
        var x = b.Input("x", DataType.Float, 4);
        var a = b.Node("Add", x, b.Constant(Tensor.Scalar(3f)));
        var c = b.Node("Clip", a, b.Constant(Tensor.Scalar(0f)), b.Constant(Tensor.Scalar(5f)));
        var m = b.Node("Mul", x, c);
        var y = b.Node("Div", m, b.Constant(Tensor.Scalar(6f)));
        b.Output(y);
        Assert.False(new HardSwishFusion().Run(b.Graph, s_context));
    }
}
