using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Passes;

/// <summary>
/// Averages before a pointwise convolution instead of after it when the convolution widens: the mean of
/// <c>W x + b</c> over the pixels is <c>W mean(x) + b</c>, so a squeeze-and-excitation branch that pools a 1x1
/// convolution's output (RSE-FPN pools 96 channels made from 12) pools its input and convolves one pixel.
/// <code>
///   X ─ Conv(1x1; W, B) ─ Y ─ GlobalAveragePool ─ Z     (Y may have other readers)
///   becomes   X ─ GlobalAveragePool ─ Conv(1x1; W, B) ─ Z
/// </code>
/// The convolution's full output then need not exist for the pooling: <see cref="PyramidConvFusion"/> composes it into
/// the convolution after it. Outputs change by rounding only (a mean of sums summed in another order). Only float 2-D
/// convolutions with constant weights, stride 1, no padding, one group and fewer input than output channels.
/// </summary>
public sealed class GlobalPoolBeforePointwiseConv : IGraphPass
{
    /// <inheritdoc/>
    public string Name => "GlobalPoolBeforePointwiseConv";

    /// <inheritdoc/>
    public bool Run(Graph graph, PassContext context)
    {
        var rewrite = new GraphRewrite(graph);
        foreach (var pool in graph.Nodes)
        {
            if (pool is not { OpType: "GlobalAveragePool", Domain: "" } || pool.Outputs.Count != 1 || !rewrite.IsLive(pool)) continue;
            if (pool.Inputs[0]?.Producer is not { } conv || !PyramidTerms.IsWideningPointwise(conv)) continue;
            var x = conv.Inputs[0]!;
            var pooledShape = new[] { x.Shape![0], x.Shape[1], 1, 1 };
            var pooled = new Value(rewrite.UniqueName(x.Name + "_pooled"), DataType.Float, pooledShape);
            var newPool = new Node("GlobalAveragePool", rewrite.UniqueName(pool.Name + "_first"), "", pool.OpsetVersion);
            newPool.AddInput(x).AddOutput(pooled);
            var newConv = new Node("Conv", rewrite.UniqueName(conv.Name + "_pooled"), "", conv.OpsetVersion);
            newConv.AddInput(pooled).AddInput(conv.Inputs[1]).AddInput(conv.Input(2)).AddOutput(pool.Outputs[0]);
            foreach (var (name, value) in conv.Attributes) newConv.Attributes[name] = value;
            rewrite.Insert(newPool, pool);
            rewrite.Replace([], pool, newConv);
        }
        return rewrite.Apply();
    }
}
