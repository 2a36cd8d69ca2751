using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Passes;

/// <summary>
/// Recognizes layer normalization written out in elementary operators (as PaddlePaddle and older PyTorch exporters
/// write it) and replaces it with one LayerNormalization node, which runs in two passes over the data instead of nine,
/// and which gamma migration and quantization treat as one unit:
/// <code>
///   X ─ ReduceMean(-1) ─ mean
///   X, mean ─ Sub ─ d ─ Pow(2) ─ ReduceMean(-1) ─ Add(eps) ─ Sqrt ─ s
///   d, s ─ Div ─ n ─ Mul(gamma) ─ Add(beta) ─ Y
///   becomes
///   X ─ LayerNormalization(gamma, beta, axis = -1, epsilon = eps) ─ Y
/// </code>
/// Handles: Pow(d, 2) or Mul(d, d); axes given as attribute or as constant input; Mul and Add optional (gamma 1,
/// beta 0). Does not handle: reductions over several axes, intermediate values read elsewhere.
/// </summary>
public sealed class LayerNormFusion : IGraphPass
{
    /// <inheritdoc/>
    public string Name => "LayerNormFusion";

    /// <inheritdoc/>
    public bool Run(Graph graph, PassContext context)
    {
        var rewrite = new GraphRewrite(graph);
        var consumers = rewrite.Consumers;
        foreach (var mean in graph.Nodes)
        {
            if (rewrite.IsRemoved(mean) || !IsLastAxisMean(mean)) continue;
            var x = mean.Input(0)!;
            var sub = Single(rewrite, mean.Outputs[0]);
            if (sub is null || !GraphQueries.Is(sub, "Sub") || sub.Input(0) != x || sub.Input(1) != mean.Outputs[0]) continue;
            var d = sub.Outputs[0];
            if (graph.Outputs.Contains(d) || !consumers.TryGetValue(d, out var dUses) || dUses.Count is < 2 or > 3) continue;
            var square = dUses.Select(u => u.Node).Distinct().FirstOrDefault(n => IsSquare(n, d));
            var div = dUses.Select(u => u.Node).FirstOrDefault(n => GraphQueries.Is(n, "Div") && n.Input(0) == d);
            if (square is null || div is null || dUses.Select(u => u.Node).Distinct().Count() != 2) continue;
            var variance = Single(rewrite, square.Outputs[0]);
            if (variance is null || !IsLastAxisMean(variance)) continue;
            var addEps = Single(rewrite, variance.Outputs[0]);
            if (addEps is null || !GraphQueries.Is(addEps, "Add")) continue;
            var eps = ScalarConstant(addEps.Input(1)) ?? ScalarConstant(addEps.Input(0));
            if (eps is null) continue;
            var sqrt = Single(rewrite, addEps.Outputs[0]);
            if (sqrt is null || !GraphQueries.Is(sqrt, "Sqrt") || Single(rewrite, sqrt.Outputs[0]) != div || div.Input(1) != sqrt.Outputs[0]) continue;

            // Optional gamma and beta, each one value per channel of the last axis.
            int channels = x.Shape is { Length: > 0 } s && s[^1] > 0 ? s[^1] : -1;
            var removed = new List<Node> { mean, sub, square, variance, addEps, sqrt, div };
            var last = div;
            Value? gamma = null, beta = null;
            if (Single(rewrite, last.Outputs[0]) is { } mul && GraphQueries.Is(mul, "Mul") && ChannelConstant(mul, last.Outputs[0], channels) is { } g)
            {
                gamma = g;
                removed.Add(mul);
                last = mul;
                if (Single(rewrite, last.Outputs[0]) is { } add && GraphQueries.Is(add, "Add") && ChannelConstant(add, last.Outputs[0], channels) is { } b)
                {
                    beta = b;
                    removed.Add(add);
                    last = add;
                }
            }
            if (removed.Any(rewrite.IsRemoved)) continue; // overlaps a match of this walk
            if (gamma is null)
            {
                if (channels < 0) continue;
                var ones = new Tensor(DataType.Float, channels);
                ones.AsSpan<float>().Fill(1f);
                gamma = rewrite.AddConstant(div.Name + "_gamma", ones);
            }

            var fused = new Node("LayerNormalization", mean.Name + "_layernorm", "", Math.Max(17, graph.DefaultOpset));
            fused.Attributes["axis"] = AttributeValue.Int(-1);
            fused.Attributes["epsilon"] = AttributeValue.Float(eps.Value);
            fused.AddInput(x).AddInput(gamma);
            if (beta is not null) fused.AddInput(beta);
            fused.AddOutput(last.Outputs[0]);
            rewrite.Replace(removed, mean, fused);
        }
        return rewrite.Apply();
    }

    private static Node? Single(GraphRewrite rewrite, Value v) => rewrite.SoleConsumer(v);

    private static bool IsLastAxisMean(Node n)
    {
        if (!GraphQueries.Is(n, "ReduceMean") || n.Input(0) is not { } x) return false;
        if (n.Attributes.TryGetValue("keepdims", out var k) && k.IntValue == 0) return false;
        long[]? axes = n.Attributes.TryGetValue("axes", out var a) ? [.. a.Ints]
            : n.Input(1)?.Constant is { } t ? t.ToInt64Array() : null;
        if (axes is not { Length: 1 }) return false;
        return axes[0] == -1 || x.Shape is { } s && axes[0] == s.Length - 1;
    }

    private static bool IsSquare(Node n, Value d)
    {
        if (GraphQueries.Is(n, "Mul")) return n.Input(0) == d && n.Input(1) == d;
        return GraphQueries.Is(n, "Pow") && n.Input(0) == d && ScalarConstant(n.Input(1)) == 2f;
    }

    private static float? ScalarConstant(Value? v) =>
        v?.Constant is { ElementCount: 1 } t && DataTypes.IsFloatingPoint(t.DataType) ? (float)t.GetAsDouble(0) : null;

    /// <summary>The constant operand of a binary node whose other operand is <paramref name="data"/>, as a [C] vector.</summary>
    private static Value? ChannelConstant(Node n, Value data, int channels)
    {
        var other = n.Input(0) == data ? n.Input(1) : n.Input(1) == data ? n.Input(0) : null;
        if (other?.Constant is not { DataType: DataType.Float } t || channels < 0) return null;
        if (t.ElementCount == channels && t.Shape.Length >= 1 && t.Shape[^1] == channels)
            return t.Rank == 1 ? other : new Value(other.Name + "_vector", t.Reshape([channels]));
        return null;
    }
}
