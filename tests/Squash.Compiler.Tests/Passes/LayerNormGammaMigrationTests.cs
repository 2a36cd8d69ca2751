using Squash.Compiler.Passes;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Tests.Passes;

/// <summary>
/// <see cref="LayerNormGammaMigration"/> on graphs built in code: it must fire on its pattern (gamma becomes 1, beta
/// goes, the linear layers' weights change, restored branches appear only where a consumer needs the old tensor),
/// leave outputs equal to the original graph's within 1e-5 of the output's range (weights and biases are rounded once
/// to fp32; the measured error is near 1e-7), and not fire when it cannot keep the math.
/// </summary>
public sealed class LayerNormGammaMigrationTests
{
    private const int K = 16, N = 12;
    private static readonly PassContext s_context = new();

    private static Tensor Random(Random rng, params int[] shape) => TestTensors.Uniform(rng, 1, shape);

    /// <summary>A gamma with two outlier channels, as trained transformers have.</summary>
    private static Tensor OutlierGamma(Random rng)
    {
        var g = Random(rng, K);
        g.AsSpan<float>()[3] = 12f;
        g.AsSpan<float>()[9] = -7f;
        return g;
    }

    private static Graph Copy(Graph g) =>
        Squash.Compiler.Onnx.OnnxLoader.Load(Squash.Compiler.Onnx.OnnxWriter.ToBytes(new Model(g)), null).Graph;

    /// <summary>Infers shapes, then runs the migration and removes what it replaced; true when the migration fired.</summary>
    private static bool Migrate(Graph g)
    {
        new ShapeInference().Run(g, s_context);
        bool fired = new PassManager([new LayerNormGammaMigration()]).Run(g, s_context);
        new DeadNodeElimination().Run(g, s_context);
        return fired;
    }

    private static void AssertSameOutputs(Graph before, Graph after, Dictionary<string, Tensor> inputs)
    {
        var expected = new GraphExecutor(before).Run(inputs);
        var actual = new GraphExecutor(after).Run(inputs);
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (name, e) in expected)
        {
            var a = actual[name];
            Assert.Equal(e.Shape, a.Shape);
            if (e.DataType != DataType.Float)
            {
                Assert.True(e.Bytes.SequenceEqual(a.Bytes), name);
                continue;
            }
            double scale = Metrics.Range(e) + 1e-12;
            Assert.True(Metrics.MaxAbsError(e, a) <= 1e-5 * scale, $"{name}: max error {Metrics.MaxAbsError(e, a)} for range {scale}");
        }
    }

    /// <summary>x [2, 5, K] ─ LayerNormalization(γ, β) ─ returned with the builder, the rng and the inputs.</summary>
    private static (GraphBuilder B, Value X, Value Y, Random Rng, Dictionary<string, Tensor> Inputs) Norm(bool withBeta = true, int seed = 5)
    {
        var rng = new Random(seed);
        var b = new GraphBuilder(17);
        var x = b.Input("x", DataType.Float, 2, 5, K);
        Value?[] inputs = withBeta ? [x, b.Constant(OutlierGamma(rng)), b.Constant(Random(rng, K))] : [x, b.Constant(OutlierGamma(rng))];
        var y = b.NodeWith("LayerNormalization", [("axis", AttributeValue.Int(-1)), ("epsilon", AttributeValue.Float(1e-5f))], inputs)[0];
        var data = Random(rng, 2, 5, K);
        foreach (ref float v in data.AsSpan<float>()) v = v * 3 + 0.5f;
        return (b, x, y, rng, new() { ["x"] = data });
    }

    private static Node LayerNorm(Graph g) => g.Nodes.Single(n => n.OpType == "LayerNormalization");

    private static void AssertUnitScale(Graph g)
    {
        var norm = LayerNorm(g);
        Assert.All(norm.Input(1)!.Constant!.AsSpan<float>().ToArray(), v => Assert.Equal(1f, v));
        Assert.Null(norm.Input(2));
    }

    [Fact]
    public void MigratesIntoMatMulAndItsBiasAdd()
    {
        var (b, _, y, rng, inputs) = Norm();
        var z = b.Node("Add", b.Node("MatMul", y, b.Constant(Random(rng, K, N))), b.Constant(Random(rng, N)));
        z.Name = "z";
        b.Output(z);
        var before = Copy(b.Graph);
        Assert.True(Migrate(b.Graph));
        Assert.Equal(["LayerNormalization", "MatMul", "Add"], b.Graph.Nodes.Select(n => n.OpType));
        AssertUnitScale(b.Graph);
        AssertSameOutputs(before, b.Graph, inputs);
        Assert.False(new LayerNormGammaMigration().Run(b.Graph, s_context)); // nothing left to migrate
    }

    [Fact]
    public void MatMulWithoutBiasGetsOneForBeta()
    {
        var (b, _, y, rng, inputs) = Norm();
        var z = b.Node("MatMul", y, b.Constant(Random(rng, K, N)));
        z.Name = "z";
        b.Output(z);
        var before = Copy(b.Graph);
        Assert.True(Migrate(b.Graph));
        Assert.Equal(["LayerNormalization", "MatMul", "Add"], b.Graph.Nodes.Select(n => n.OpType));
        AssertSameOutputs(before, b.Graph, inputs);
    }

    [Fact]
    public void WithoutBetaOnlyTheWeightsChange()
    {
        var (b, _, y, rng, inputs) = Norm(withBeta: false);
        var z = b.Node("MatMul", y, b.Constant(Random(rng, K, N)));
        z.Name = "z";
        b.Output(z);
        var before = Copy(b.Graph);
        Assert.True(Migrate(b.Graph));
        Assert.Equal(["LayerNormalization", "MatMul"], b.Graph.Nodes.Select(n => n.OpType));
        AssertSameOutputs(before, b.Graph, inputs);
    }

    [Theory]
    [InlineData(false, true, 1f, 1f)]
    [InlineData(true, true, 0.5f, 2f)]
    [InlineData(true, false, 1.5f, 1f)]
    [InlineData(false, true, 1f, 0f)]
    public void MigratesIntoGemm(bool transB, bool withC, float alpha, float beta)
    {
        var rng = new Random(11);
        var b = new GraphBuilder(17);
        var x = b.Input("x", DataType.Float, 6, K);
        var y = b.Node("LayerNormalization", x, b.Constant(OutlierGamma(rng)), b.Constant(Random(rng, 1, K)));
        var weights = b.Constant(transB ? Random(rng, N, K) : Random(rng, K, N));
        Value?[] operands = withC ? [y, weights, b.Constant(Random(rng, 1, N))] : [y, weights];
        var z = b.NodeWith("Gemm", [("transB", AttributeValue.Int(transB ? 1 : 0)), ("alpha", AttributeValue.Float(alpha)), ("beta", AttributeValue.Float(beta))], operands)[0];
        z.Name = "z";
        b.Output(z);
        var before = Copy(b.Graph);
        Assert.True(Migrate(b.Graph));
        Assert.Equal(["LayerNormalization", "Gemm"], b.Graph.Nodes.Select(n => n.OpType));
        AssertUnitScale(b.Graph);
        AssertSameOutputs(before, b.Graph, new() { ["x"] = Random(rng, 6, K) });
    }

    [Fact]
    public void ResidualAndGraphOutputReadTheRestoredTensor()
    {
        // y feeds two linear layers (the attention's Q and K/V projections), a residual Add, a Shape, and is an output.
        var (b, x, y, rng, inputs) = Norm();
        var q = b.Node("Add", b.Node("MatMul", y, b.Constant(Random(rng, K, N))), b.Constant(Random(rng, N)));
        var kv = b.Node("MatMul", y, b.Constant(Random(rng, K, 2 * N)));
        var residual = b.Node("Add", x, y);
        var shape = b.Node("Shape", y);
        q.Name = "q";
        kv.Name = "kv";
        residual.Name = "residual";
        shape.Name = "shape";
        y.Name = "y";
        foreach (var v in new[] { q, kv, residual, shape, y }) b.Output(v);
        var before = Copy(b.Graph);
        Assert.True(Migrate(b.Graph));
        AssertUnitScale(b.Graph);
        // The restored branch: Mul(γ) and Add(β) once, feeding the residual Add and the output, not the Shape.
        var restored = b.Graph.Nodes.Single(n => n.OpType == "Mul");
        Assert.Same(LayerNorm(b.Graph).Outputs[0], restored.Input(0));
        Assert.Same(LayerNorm(b.Graph).Outputs[0], b.Graph.Nodes.Single(n => n.OpType == "Shape").Input(0));
        Assert.Equal(2, b.Graph.Nodes.Count(n => n.OpType == "MatMul" && n.Input(0) == LayerNorm(b.Graph).Outputs[0]));
        AssertSameOutputs(before, b.Graph, inputs);
    }

    [Fact]
    public void ShapeReaderNeedsNoRestoredBranch()
    {
        // PP-OCR rec's attention blocks: the norm feeds the QKV MatMul and a Shape that sizes the heads' Reshape.
        var (b, _, y, rng, inputs) = Norm();
        var z = b.Node("Add", b.Node("MatMul", y, b.Constant(Random(rng, K, N))), b.Constant(Random(rng, N)));
        var shape = b.Node("Shape", y);
        z.Name = "z";
        shape.Name = "shape";
        b.Output(z);
        b.Output(shape);
        var before = Copy(b.Graph);
        Assert.True(Migrate(b.Graph));
        Assert.Equal(["Add", "LayerNormalization", "MatMul", "Shape"], b.Graph.Nodes.Select(n => n.OpType).Order(StringComparer.Ordinal));
        AssertSameOutputs(before, b.Graph, inputs);
    }

    [Fact]
    public void NonLinearConsumerKeepsItsInputExactly()
    {
        var (b, _, y, rng, inputs) = Norm(seed: 9);
        var linear = b.Node("MatMul", y, b.Constant(Random(rng, K, N)));
        var gelu = b.Node("Relu", y);
        linear.Name = "linear";
        gelu.Name = "relu";
        b.Output(linear);
        b.Output(gelu);
        var before = Copy(b.Graph);
        Assert.True(Migrate(b.Graph));
        var relu = b.Graph.Nodes.Single(n => n.OpType == "Relu");
        Assert.Equal("Add", relu.Input(0)!.Producer!.OpType);
        AssertSameOutputs(before, b.Graph, inputs);
    }

    [Fact]
    public void DoesNotFireWhenGammaIsNotConstant()
    {
        var rng = new Random(1);
        var b = new GraphBuilder(17);
        var x = b.Input("x", DataType.Float, 4, K);
        var gamma = b.Input("gamma", DataType.Float, K);
        var y = b.Node("LayerNormalization", x, gamma);
        b.Output(b.Node("MatMul", y, b.Constant(Random(rng, K, N))));
        Assert.False(Migrate(b.Graph));
    }

    [Fact]
    public void DoesNotFireWithoutALinearConsumer()
    {
        // Only a non-linear consumer (nothing to fold into), and a MatMul whose weights are not constant.
        var (b, _, y, _, _) = Norm();
        var weights = b.Input("w", DataType.Float, K, N);
        b.Output(b.Node("Relu", y));
        b.Output(b.Node("MatMul", y, weights));
        Assert.False(Migrate(b.Graph));
    }

    [Fact]
    public void DoesNotFireWhenTheNormalizedTensorIsTheSecondOperand()
    {
        var (b, _, y, rng, _) = Norm();
        b.Output(b.Node("MatMul", b.Constant(Random(rng, 2, 3, 5)), y));
        Assert.False(Migrate(b.Graph));
    }

    [Fact]
    public void DoesNotFireForGammaVaryingAlongAnotherAxis()
    {
        // Normalizing over the last two axes with a [5, K] gamma: one row of weights cannot carry a gamma per row of y.
        var rng = new Random(2);
        var b = new GraphBuilder(17);
        var x = b.Input("x", DataType.Float, 2, 5, K);
        var y = b.NodeWith("LayerNormalization", [("axis", AttributeValue.Int(-2))], [x, b.Constant(Random(rng, 5, K))])[0];
        b.Output(b.Node("MatMul", y, b.Constant(Random(rng, K, N))));
        Assert.False(Migrate(b.Graph));
    }

    [Fact]
    public void SharedWeightsAreNotChangedForOtherReaders()
    {
        // The same weight constant read by a MatMul after the norm and by one elsewhere: only the first changes.
        var (b, x, y, rng, inputs) = Norm();
        var w = b.Constant(Random(rng, K, N));
        var z = b.Node("MatMul", y, w);
        var other = b.Node("MatMul", x, w);
        z.Name = "z";
        other.Name = "other";
        b.Output(z);
        b.Output(other);
        var before = Copy(b.Graph);
        Assert.True(Migrate(b.Graph));
        Assert.Same(w, b.Graph.Nodes.Single(n => n.OpType == "MatMul" && n.Input(0)!.Name == "x").Input(1));
        AssertSameOutputs(before, b.Graph, inputs);
    }
}
