using Squash.Compiler.Passes;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Tests.Passes;

/// <summary>
/// Attention written out as the llama2.c converter writes it (Transpose, MatMul, Div, Where, Softmax, MatMul) becomes
/// one com.squash Attention node whose outputs equal the unfused graph's within 1e-5 (convex combinations of values
/// in [-1, 1]; fp32 in another summation order), and the pass leaves broken patterns alone.
/// </summary>
public sealed class AttentionFusionTests
{
    private static Tensor Random(Random rng, params int[] shape) => TestTensors.Uniform(rng, 1, shape);

    public enum MaskForm { Where, Add, None }

    /// <summary>q [1, 2, 6, 8] (two query rows per key/value head folded in, as the converter does), k and v [1, 2, 10, 8].</summary>
    private static (Graph Graph, Dictionary<string, Tensor> Inputs) Attention(MaskForm form, bool multiply = false, bool exposeProbabilities = false)
    {
        var rng = new Random(11);
        var g = new GraphBuilder();
        var q = g.Input("q", DataType.Float, 1, 2, 6, 8);
        var k = g.Input("k", DataType.Float, 1, 2, 10, 8);
        var v = g.Input("v", DataType.Float, 1, 2, 10, 8);
        var kt = g.NodeWith("Transpose", [("perm", AttributeValue.IntList(0, 1, 3, 2))], [k])[0];
        var scores = g.Node("MatMul", q, kt);
        scores = multiply ? g.Node("Mul", scores, g.Constant(Tensor.Scalar(0.35f))) : g.Node("Div", scores, g.Constant(Tensor.Scalar(MathF.Sqrt(8))));
        var inputs = new Dictionary<string, Tensor> { ["q"] = Random(rng, 1, 2, 6, 8), ["k"] = Random(rng, 1, 2, 10, 8), ["v"] = Random(rng, 1, 2, 10, 8) };
        if (form == MaskForm.Where)
        {
            // Row r sits at position 7 + r % 3: it sees keys 0 .. 7 + r % 3.
            var mask = new Tensor(DataType.Bool, 6, 10);
            for (int r = 0; r < 6; r++)
                for (int j = 0; j < 10; j++) mask.AsSpan<bool>()[r * 10 + j] = j <= 7 + r % 3;
            var m = g.Input("mask", DataType.Bool, 6, 10);
            inputs["mask"] = mask;
            scores = g.Node("Where", m, scores, g.Constant(Tensor.Scalar(float.NegativeInfinity)));
        }
        else if (form == MaskForm.Add)
        {
            var m = g.Input("bias", DataType.Float, 1, 1, 6, 10);
            inputs["bias"] = Random(rng, 1, 1, 6, 10);
            scores = g.Node("Add", m, scores);
        }
        var probs = g.NodeWith("Softmax", [("axis", AttributeValue.Int(-1))], [scores])[0];
        var y = g.Node("MatMul", probs, v);
        y.Name = "y";
        g.Output(y);
        if (exposeProbabilities) g.Output(probs);
        return (g.Graph, inputs);
    }

    private static Graph Copy(Graph g) =>
        Squash.Compiler.Onnx.OnnxLoader.Load(Squash.Compiler.Onnx.OnnxWriter.ToBytes(new Model(g)), null).Graph;

    private static bool Fuse(Graph g) => new PassManager([new ShapeInference(), new AttentionFusion(), new DeadNodeElimination()]).Run(g, new PassContext())
        && g.Nodes.Any(n => n.OpType == "Attention");

    [Theory]
    [InlineData(MaskForm.Where, false)]
    [InlineData(MaskForm.Add, true)]
    [InlineData(MaskForm.None, false)]
    public void Fuses_AndMatchesTheUnfusedGraph(MaskForm form, bool multiply)
    {
        var (graph, inputs) = Attention(form, multiply);
        var before = Copy(graph);
        Assert.True(Fuse(graph));
        var node = Assert.Single(graph.Nodes);
        Assert.Equal(("Attention", "com.squash"), (node.OpType, node.Domain));
        Assert.Equal(form == MaskForm.None ? 3 : 4, node.Inputs.Count);
        var expected = new GraphExecutor(before).Run(inputs)["y"];
        var actual = new GraphExecutor(graph).Run(inputs)["y"];
        TensorAssert.Close(expected, actual, 0, 1e-5, "attention");
    }

    [Fact]
    public void LeavesThePatternAlone_WhenTheProbabilitiesAreAlsoAnOutput()
    {
        var (graph, _) = Attention(MaskForm.Where, exposeProbabilities: true);
        Assert.False(Fuse(graph));
        Assert.Contains(graph.Nodes, n => n.OpType == "Softmax");
    }

    [Fact]
    public void LeavesThePatternAlone_WhenKeysAreNotTransposedOnTheLastTwoAxes()
    {
        var (graph, _) = Attention(MaskForm.None);
        graph.Nodes.First(n => n.OpType == "Transpose").Attributes["perm"] = AttributeValue.IntList(1, 0, 3, 2);
        Assert.False(Fuse(graph));
    }
}
