using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Passes;

/// <summary>
/// Folds an inference BatchNormalization into the Conv, ConvTranspose or Gemm that feeds it:
/// <code>
///   x -> Conv(W, B) -> BatchNormalization(scale, bias, mean, var) -> y
///   becomes
///   x -> Conv(W', B') -> y,   s = scale / sqrt(var + epsilon),  W'[m] = W[m] * s[m],  B' = (B - mean) * s + bias
/// </code>
/// Handles: Conv (any group), ConvTranspose (weights [C, M/group, ...]), Gemm with a per-column BatchNormalization over
/// the last axis. Does not handle: a producer with several consumers, non-constant parameters, BatchNormalization in
/// training mode or with its running-statistics outputs used, a spatial=0 BatchNormalization.
/// </summary>
public sealed class ConvBatchNormFusion : IGraphPass
{
    /// <inheritdoc/>
    public string Name => "ConvBatchNormFusion";

    /// <inheritdoc/>
    public bool Run(Graph graph, PassContext context)
    {
        var rewrite = new GraphRewrite(graph);
        var consumers = rewrite.Consumers;
        foreach (var bn in graph.Nodes)
        {
            if (!GraphQueries.Is(bn, "BatchNormalization") || bn.Input(0)?.Producer is not { } producer) continue;
            if (!rewrite.IsLive(producer) || rewrite.SoleConsumer(producer.Outputs[0]) != bn) continue;
            if (bn.Outputs.Skip(1).Any(o => o.Name.Length > 0 && consumers.ContainsKey(o))) continue;
            if (bn.Attributes.TryGetValue("training_mode", out var tm) && tm.IntValue != 0) continue;
            if (bn.Attributes.TryGetValue("spatial", out var sp) && sp.IntValue == 0) continue;
            var p = Enumerable.Range(1, 4).Select(i => bn.Input(i)?.Constant).ToArray();
            if (p.Any(t => t is null || t.DataType != DataType.Float || t.Rank != 1 || t.ElementCount != p[0]!.ElementCount)) continue;
            float epsilon = bn.Attributes.TryGetValue("epsilon", out var e) ? e.FloatValue : 1e-5f;
            int channels = p[0]!.ElementCount;
            var scale = new double[channels];
            var shift = new double[channels];
            for (int m = 0; m < channels; m++)
            {
                scale[m] = p[0]!.GetAsDouble(m) / Math.Sqrt(p[3]!.GetAsDouble(m) + epsilon);
                shift[m] = p[1]!.GetAsDouble(m) - p[2]!.GetAsDouble(m) * scale[m];
            }
            if (!AffineFolding.FoldIntoProducer(rewrite, producer, scale, shift)) continue;
            rewrite.Absorb(producer, bn);
        }
        return rewrite.Apply();
    }
}
