using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Passes;

/// <summary>
/// Recognizes hard-swish written out in elementary operators and replaces it with one HardSwish node, so it runs in
/// one pass (and can later fuse into the convolution before it):
/// <code>
///   x ─ Add(3) ─ Clip(0, 6) ─ c;  x, c ─ Mul ─ Div(6) ─ y        (or Mul(1/6) instead of Div(6))
///   x ─ HardSigmoid(alpha = 1/6, beta = 0.5) ─ h;  x, h ─ Mul ─ y
///   becomes   x ─ HardSwish ─ y
/// </code>
/// Does not handle: intermediate values read elsewhere; constants other than these.
/// </summary>
public sealed class HardSwishFusion : IGraphPass
{
    /// <inheritdoc/>
    public string Name => "HardSwishFusion";

    /// <inheritdoc/>
    public bool Run(Graph graph, PassContext context)
    {
        var rewrite = new GraphRewrite(graph);
        foreach (var node in graph.Nodes)
        {
            if (rewrite.IsRemoved(node)) continue;
            var match = MatchClipForm(rewrite, node) ?? MatchHardSigmoidForm(rewrite, node);
            if (match is not var (x, removed, output) || removed.Any(rewrite.IsRemoved)) continue;
            var fused = new Node("HardSwish", node.Name + "_hardswish", "", Math.Max(14, graph.DefaultOpset));
            fused.AddInput(x).AddOutput(output);
            rewrite.Replace(removed, node, fused);
        }
        return rewrite.Apply();
    }

    private static (Value X, List<Node> Removed, Value Output)? MatchClipForm(GraphRewrite rewrite, Node add)
    {
        if (!GraphQueries.Is(add, "Add")) return null;
        var x = Constant(add.Input(1)) == 3f ? add.Input(0) : Constant(add.Input(0)) == 3f ? add.Input(1) : null;
        if (x is null) return null;
        var clip = rewrite.SoleConsumer(add.Outputs[0]);
        if (clip is null || !IsClip06(clip)) return null;
        var mul = rewrite.SoleConsumer(clip.Outputs[0]);
        if (mul is null || !GraphQueries.Is(mul, "Mul") || !(mul.Input(0) == x && mul.Input(1) == clip.Outputs[0] || mul.Input(1) == x && mul.Input(0) == clip.Outputs[0])) return null;
        var scale = rewrite.SoleConsumer(mul.Outputs[0]);
        if (scale is null) return null;
        bool divBy6 = GraphQueries.Is(scale, "Div") && scale.Input(0) == mul.Outputs[0] && Constant(scale.Input(1)) == 6f;
        bool mulBySixth = GraphQueries.Is(scale, "Mul") && (Near(Constant(scale.Input(1)), 1 / 6.0) && scale.Input(0) == mul.Outputs[0]
            || Near(Constant(scale.Input(0)), 1 / 6.0) && scale.Input(1) == mul.Outputs[0]);
        if (!divBy6 && !mulBySixth) return null;
        return (x, [add, clip, mul, scale], scale.Outputs[0]);
    }

    private static (Value X, List<Node> Removed, Value Output)? MatchHardSigmoidForm(GraphRewrite rewrite, Node hs)
    {
        if (!GraphQueries.Is(hs, "HardSigmoid") || hs.Input(0) is not { } x) return null;
        float alpha = hs.Attributes.TryGetValue("alpha", out var a) ? a.FloatValue : 0.2f;
        float beta = hs.Attributes.TryGetValue("beta", out var b) ? b.FloatValue : 0.5f;
        if (!Near(alpha, 1 / 6.0) || beta != 0.5f) return null;
        var mul = rewrite.SoleConsumer(hs.Outputs[0]);
        if (mul is null || !GraphQueries.Is(mul, "Mul") || !(mul.Input(0) == x || mul.Input(1) == x)) return null;
        return (x, [hs, mul], mul.Outputs[0]);
    }

    private static bool IsClip06(Node clip)
    {
        if (!GraphQueries.Is(clip, "Clip")) return false;
        if (clip.Attributes.TryGetValue("min", out var min) && clip.Attributes.TryGetValue("max", out var max))
            return min.FloatValue == 0 && max.FloatValue == 6;
        return Constant(clip.Input(1)) == 0f && Constant(clip.Input(2)) == 6f;
    }

    private static float? Constant(Value? v) =>
        v?.Constant is { ElementCount: 1 } t && DataTypes.IsFloatingPoint(t.DataType) ? (float)t.GetAsDouble(0) : null;

    // 1/6 is not exact in float; exporters write it as 0.16666667 or 0.1666667.
    private static bool Near(double? v, double target) => v is { } x && Math.Abs(x - target) < 1e-6;
}
