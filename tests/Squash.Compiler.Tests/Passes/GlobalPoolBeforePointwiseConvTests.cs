using Squash.Compiler.Passes;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Tests.Passes;

/// <summary>
/// <see cref="GlobalPoolBeforePointwiseConv"/>: the average of a widening 1x1 convolution's output is the convolution of
/// its input's average. The pooled output matches the unfused graph within 1e-5 of the mean of sum |w x| + |b| (the
/// graph run on absolute values; the mean is summed in another order, a few float roundings of that), the
/// convolution's own output, read elsewhere, keeps its bits, and shapes that are not a widening pointwise convolution
/// do not fire.
/// </summary>
public sealed class GlobalPoolBeforePointwiseConvTests
{
    private const double Tolerance = 1e-5;

    private static (Graph Graph, Dictionary<string, Tensor> Inputs) Build(int inChannels, int outChannels, bool absolute,
        (string, AttributeValue)[]? attributes = null, int kernel = 1)
    {
        var rng = new Random(5);
        Tensor Draw(params int[] shape)
        {
            var t = TestTensors.Uniform(rng, 1, shape);
            if (absolute) foreach (ref float v in t.AsSpan<float>()) v = Math.Abs(v);
            return t;
        }
        var b = new GraphBuilder(13);
        var x = b.Input("x", DataType.Float, 2, inChannels, 9, 13);
        var inputs = new Dictionary<string, Tensor> { ["x"] = Draw(2, inChannels, 9, 13) };
        var y = b.NodeWith("Conv", attributes ?? [], [x, b.Constant(Draw(outChannels, inChannels, kernel, kernel)), b.Constant(Draw(outChannels))])[0];
        var pooled = b.Node("GlobalAveragePool", y);
        pooled.Name = "pooled";
        b.Output(pooled);
        var relu = b.Node("Relu", y);
        relu.Name = "relu";
        b.Output(relu);
        return (b.Graph, inputs);
    }

    private static bool Run(Graph g) => new PassManager([new ShapeInference(), new GlobalPoolBeforePointwiseConv(), new DeadNodeElimination()])
        .Run(g, new PassContext());

    [Fact]
    public void PoolsBeforeAWideningPointwiseConvolution()
    {
        var (graph, inputs) = Build(3, 16, absolute: false);
        var (absGraph, absInputs) = Build(3, 16, absolute: true);
        var magnitude = new GraphExecutor(absGraph).Run(absInputs)["pooled"].AsSpan<float>();
        var before = FusionAssert.Copy(graph);
        Run(graph);
        var pool = graph.Nodes.Single(n => n.OpType == "GlobalAveragePool");
        Assert.Equal("x", pool.Inputs[0]!.Name);
        Assert.Equal(2, graph.Nodes.Count(n => n.OpType == "Conv"));
        var expected = new GraphExecutor(before).Run(inputs);
        var actual = new GraphExecutor(FusionAssert.Copy(graph)).Run(inputs);
        Assert.True(expected["relu"].Bytes.SequenceEqual(actual["relu"].Bytes));
        var e = expected["pooled"].AsSpan<float>();
        var a = actual["pooled"].AsSpan<float>();
        for (int i = 0; i < e.Length; i++)
            Assert.True(Math.Abs(a[i] - e[i]) <= Tolerance * magnitude[i], $"element {i}: {a[i]}, expected {e[i]} within {Tolerance * magnitude[i]:G3}");
    }

    [Theory]
    [InlineData("narrowing")]
    [InlineData("strided")]
    [InlineData("padded")]
    [InlineData("3x3")]
    [InlineData("grouped")]
    public void LeavesOtherConvolutions(string how)
    {
        (string, AttributeValue)[] attributes = how switch
        {
            "strided" => [("strides", AttributeValue.IntList(2, 2))],
            "padded" => [("pads", AttributeValue.IntList(1, 1, 1, 1))],
            "3x3" => [("pads", AttributeValue.IntList(1, 1, 1, 1))],
            _ => [],
        };
        var (graph, _) = how switch
        {
            "narrowing" => Build(16, 16, false),
            "3x3" => Build(3, 16, false, attributes, kernel: 3),
            "grouped" => Build(4, 16, false, [("group", AttributeValue.Int(2))]),
            _ => Build(3, 16, false, attributes),
        };
        if (how == "grouped")
        {
            // Two groups: W [16, 2, 1, 1].
            var conv = graph.Nodes.First(n => n.OpType == "Conv");
            var w = new Value("w_grouped", TestTensors.Uniform(new Random(1), 1, 16, 2, 1, 1));
            graph.Initializers.Add(w);
            conv.SetInput(1, w);
        }
        Run(graph);
        Assert.NotEqual("x", graph.Nodes.Single(n => n.OpType == "GlobalAveragePool").Inputs[0]!.Name);
    }
}
