using Squash.Runtime.Ir;

namespace Squash.Compiler.Passes;

/// <summary>
/// Folds a constant Mul or Add that scales or shifts each output channel of a Conv, ConvTranspose or Gemm into its
/// weights and bias (PP-LCNet's "learnable affine blocks" are exactly this):
/// <code>
///   Conv(W, B) -> Mul(c) -> y     becomes   Conv(W * c, B * c) -> y
///   Conv(W, B) -> Add(d) -> y     becomes   Conv(W, B + d) -> y
/// </code>
/// c and d are scalars or one value per channel ([C,1,1], [1,C,1,1]; [N] for Gemm). Does not handle: a producer with
/// several consumers, or a constant that would change the output's shape by broadcasting.
/// </summary>
public sealed class ConvAffineFusion : IGraphPass
{
    /// <inheritdoc/>
    public string Name => "ConvAffineFusion";

    /// <inheritdoc/>
    public bool Run(Graph graph, PassContext context)
    {
        var rewrite = new GraphRewrite(graph);
        foreach (var op in graph.Nodes)
        {
            bool isMul = GraphQueries.Is(op, "Mul"), isAdd = GraphQueries.Is(op, "Add");
            if (!isMul && !isAdd || op.Inputs.Count != 2) continue;
            // One side is the producer's output, the other a constant.
            int side = op.Input(0)?.Constant is not null ? 0 : op.Input(1)?.Constant is not null ? 1 : -1;
            if (side < 0 || op.Input(1 - side)?.Producer is not { } producer || !rewrite.IsLive(producer)) continue;
            if (rewrite.SoleConsumer(producer.Outputs[0]) != op) continue;
            int channels = AffineFolding.OutputChannels(producer);
            var outShape = producer.Outputs[0].Shape;
            if (channels < 0 || outShape is null) continue;
            int axis = producer.OpType == "Gemm" ? 1 : 1;
            var values = WeightMath.PerChannel(op.Input(side)!.Constant, channels, axis, outShape.Length);
            if (values is null) continue;
            var s = isMul ? values : Enumerable.Repeat(1.0, channels).ToArray();
            var t = isMul ? new double[channels] : values;
            if (!AffineFolding.FoldIntoProducer(rewrite, producer, s, t)) continue;
            rewrite.Absorb(producer, op);
        }
        return rewrite.Apply();
    }
}
