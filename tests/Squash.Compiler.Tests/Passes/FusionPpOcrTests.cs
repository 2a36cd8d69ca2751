using Squash.Compiler.Passes;
using Squash.Compiler.Tests.Models;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;
using Squash.Runtime.Operators;

namespace Squash.Compiler.Tests.Passes;

/// <summary>
/// The fusion passes of <see cref="Pipeline.Fuse"/> on the real PP-OCR models: each pass fires (the nodes it makes
/// and removes are counted, pass by pass, after <see cref="Pipeline.Optimize"/>), and the fused model's output equals
/// the unfused model's on the first evaluation input. Tolerance: bit for bit (0). Every fused step runs the same
/// arithmetic in the same order as the node it replaces (the activations' vectorized code is shared between the
/// standalone operators and the epilogues), so any difference is a bug, not rounding.
/// </summary>
public sealed class FusionPpOcrTests
{
    private static readonly PassContext s_context = new();

    /// <summary>The model with its input pinned to <paramref name="shape"/> (as the compiler pins it: the elementwise
    /// chains need known shapes) and optimized.</summary>
    private static Graph Optimized(string modelFile, int[] shape)
    {
        var model = Squash.Compiler.Onnx.OnnxLoader.Load(PpOcr.ModelPath(modelFile));
        ModelPreparation.PinInputShapes(model, new Dictionary<string, int[]> { [model.Graph.Inputs[0].Name] = shape });
        ModelPreparation.Optimize(model);
        return model.Graph;
    }

    private static int Count(Graph g, Func<Node, bool> predicate) => g.Nodes.Count(predicate);

    private static bool IsFusedProduct(Node n) =>
        n.Domain == OperatorRegistry.SquashDomain && n.OpType is "FusedConv" or "FusedMatMul" or "FusedGemm" or "FusedConvTranspose";

    private static bool HasTail(Node n) =>
        IsFusedProduct(n) && (n.Input(FusedOutput.ResidualInput) is not null || n.Input(FusedOutput.ScaleInput) is not null
            || n.Input(FusedOutput.ShiftInput) is not null);

    /// <summary>Node counts after each pass, as (nodes, fused products, with an activation, with a residual or affine
    /// tail, FusedElementwise nodes).</summary>
    private static List<(string Pass, int Nodes, int Products, int Activated, int Tails, int Chains)> Stages(Graph graph)
    {
        var stages = new List<(string, int, int, int, int, int)>();
        void Record(string pass) => stages.Add((pass, graph.Nodes.Count, Count(graph, IsFusedProduct),
            Count(graph, n => IsFusedProduct(n) && n.Attributes.ContainsKey("activation")), Count(graph, HasTail),
            Count(graph, n => n.OpType == "FusedElementwise")));
        Record("Optimize");
        foreach (IGraphPass pass in new IGraphPass[] { new ActivationFusion(), new EpilogueFusion(), new ElementwiseFusion() })
        {
            new PassManager([pass, new DeadNodeElimination()]).Run(graph, s_context);
            Record(pass.Name);
        }
        return stages;
    }

    /// <summary>
    /// Counts measured on the models in testassets (PP-OCRv4 det and rec, mobile v2.0 cls): the numbers are exact so
    /// that a pass that stops firing on part of a model fails here. cls is MobileNetV3 (Conv+Relu/HardSwish, SE gates
    /// ending in HardSigmoid); rec is PP-LCNet + SVTR (Conv+HardSwish, MatMul+bias, residual Adds); det is PP-LCNet +
    /// a feature pyramid with ConvTranspose and SE-with-skip chains.
    /// </summary>
    [Theory]
    [InlineData(PpOcr.Cls, 48, 192, 126, 83, 42, 76, 7, 0, 76)]
    [InlineData(PpOcr.Rec, 48, 320, 217, 176, 32, 116, 32, 7, 102)]
    [InlineData(PpOcr.Det, 640, 640, 197, 150, 47, 102, 24, 8, 91)]
    public void EachPassFiresOnTheModel(string modelFile, int height, int width, int optimized, int afterActivation, int activated,
        int afterEpilogue, int tails, int chains, int afterElementwise)
    {
        var stages = Stages(Optimized(modelFile, [1, 3, height, width]));
        string report = string.Join("; ", stages.Select(s => $"{s.Pass}: {s.Nodes} nodes, {s.Products} fused products, {s.Activated} activated, {s.Tails} with tails, {s.Chains} chains"));
        Assert.True(stages[0].Nodes == optimized, report);
        Assert.True(stages[1].Nodes == afterActivation && stages[1].Activated == activated, report);
        Assert.True(stages[2].Nodes == afterEpilogue && stages[2].Tails == tails, report);
        Assert.True(stages[3].Nodes == afterElementwise && stages[3].Chains == chains, report);
    }

    [Theory]
    [InlineData(PpOcr.Cls, "cls")]
    [InlineData(PpOcr.Rec, "rec")]
    public void FusedModelComputesTheSameBits(string modelFile, string task)
    {
        var input = PpOcr.Load(PpOcr.Samples("eval", task)[0]);
        var before = Optimized(modelFile, input.Shape);
        var after = Optimized(modelFile, input.Shape);
        Pipeline.Fuse().Run(after, s_context);
        Assert.True(after.Nodes.Count < before.Nodes.Count);
        var inputs = new Dictionary<string, Tensor> { [before.Inputs[0].Name] = input };
        var context = new KernelContext(2);
        var expected = new GraphExecutor(before).Run(inputs, context)[before.Outputs[0].Name];
        var actual = new GraphExecutor(after).Run(inputs, context)[after.Outputs[0].Name];
        Assert.True(expected.Bytes.SequenceEqual(actual.Bytes), $"max error {Metrics.MaxAbsError(expected, actual):E2}");
    }
}
