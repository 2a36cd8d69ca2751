using Squash.Runtime;
using Squash.Runtime.Ir;
using Squash.Runtime.Operators;

namespace Squash.Compiler.Passes;

/// <summary>
/// Fuses a 3x3 convolution of a channel concatenation whose inputs are nearest-upsampled by integer factors (a feature
/// pyramid's fusion, as in DBNet's head) into one com.squash FusedUpsampledConcatConv, which convolves each upsampled
/// input at its own resolution (nine taps' channel sums as one GEMM there, then gathered) instead of upsampling and
/// concatenating first: DBNet at 640x640 concatenates three 24-channel maps upsampled 8x, 4x and 2x with one at
/// 160x160, and the convolution over the 96 channels at 160x160 becomes one over 24 of them plus GEMMs at 20x20, 40x40
/// and 80x80.
/// <code>
///   Resize(X_0, nearest, s_0) ─┐
///   Resize(X_1, nearest, s_1) ─┼─ Concat(axis 1) ─ [Fused]Conv(3x3, stride 1, pads 1; W, B; act) ─ Y
///   X_2 (full resolution) ─────┘
///   becomes   FusedUpsampledConcatConv(W, B, X_0, X_1, X_2; scales = [s_0, s_1, 1], activation = act) ─ Y
/// </code>
/// Runs after <see cref="EpilogueFusion"/>, so the convolution brings its bias and activation. Outputs change by
/// rounding only (the same products summed in another order). Does not handle: a residual or affine map fused into the
/// convolution, weights computed at run time, other kernels, strides, dilations, groups or padding, a Resize whose
/// nearest pixel is not floor(x / s) (modes other than asymmetric with floor or half-pixel with round-to-nearest), a
/// Resize or Concat output read elsewhere, more than one input at full resolution, or none upsampled.
/// </summary>
public sealed class UpsampledConcatConvFusion : IGraphPass
{
    /// <inheritdoc/>
    public string Name => "UpsampledConcatConvFusion";

    /// <summary>Attributes the convolution may carry (checked for their values).</summary>
    private static readonly HashSet<string> s_convolution = new(StringComparer.Ordinal)
    {
        "auto_pad", "dilations", "group", "kernel_shape", "pads", "strides", "activation", "activation_params",
    };

    /// <inheritdoc/>
    public bool Run(Graph graph, PassContext context)
    {
        if (graph.OpsetImports.Count == 0) return false;
        var rewrite = new GraphRewrite(graph);
        foreach (var conv in graph.Nodes)
        {
            if (!rewrite.IsLive(conv) || !IsPaddedThreeByThree(conv)) continue;
            if (conv.Inputs[0]!.Producer is not { OpType: "Concat", Domain: "" } concat || !rewrite.IsLive(concat)
                || rewrite.SoleConsumer(concat.Outputs[0]) != conv || !IsChannelAxis(concat))
                continue;
            var parts = new List<(Value Input, int Scale, Node? Resize)>();
            foreach (var input in concat.Inputs)
            {
                if (input is null) break;
                // A Resize whose output the Concat reads twice has two consumers: it stays a full-resolution part.
                if (input.Producer is { } resize && rewrite.IsLive(resize) && rewrite.SoleConsumer(input) == concat
                    && NearestUpsampling.Factor(resize) is { } scale)
                    parts.Add((resize.Inputs[0]!, scale, resize));
                else parts.Add((input, 1, null));
            }
            if (parts.Count != concat.Inputs.Count || parts.Count(p => p.Scale == 1) > 1 || parts.All(p => p.Scale == 1)) continue;
            var fused = new Node("FusedUpsampledConcatConv", conv.Name, OperatorRegistry.SquashDomain, FusedOperators.Opset);
            fused.AddInput(conv.Inputs[1]).AddInput(conv.Input(2));
            foreach (var part in parts) fused.AddInput(part.Input);
            fused.AddOutput(conv.Outputs[0]);
            fused.Attributes["scales"] = AttributeValue.IntList(parts.Select(p => (long)p.Scale).ToArray());
            if (conv.Attributes.TryGetValue("activation", out var kind)) fused.Attributes["activation"] = kind;
            if (conv.Attributes.TryGetValue("activation_params", out var parameters)) fused.Attributes["activation_params"] = parameters;
            rewrite.Replace([concat, .. parts.Where(p => p.Resize is not null).Select(p => p.Resize!)], conv, fused);
        }
        return rewrite.Apply();
    }

    /// <summary>True for a float 2-D 3x3 convolution, stride 1, dilation 1, one group, padding 1 on every side, with
    /// constant weights and bias and at most an activation fused.</summary>
    private static bool IsPaddedThreeByThree(Node node)
    {
        bool plain = node.Domain.Length == 0 && node.OpType == "Conv";
        bool fused = node.Domain == OperatorRegistry.SquashDomain && node.OpType == "FusedConv";
        if (!plain && !fused || node.Outputs.Count != 1 || node.Inputs.Count is < 2 or > 3) return false;
        if (node.Inputs[0] is not { Type: DataType.Float, Shape: [_, _, _, _] }) return false;
        if (node.Inputs[1]?.Constant is not { DataType: DataType.Float, Shape: [_, _, 3, 3] }) return false;
        if (node.Input(2) is { } bias && bias.Constant is not { DataType: DataType.Float, Rank: 1 }) return false;
        var a = node.Attributes;
        if (a.Keys.Any(k => !s_convolution.Contains(k))) return false;
        bool All(string name, long value) => !a.TryGetValue(name, out var v) || v.Ints.All(i => i == value);
        if (!All("strides", 1) || !All("dilations", 1) || !All("kernel_shape", 3)) return false;
        if (a.TryGetValue("group", out var g) && g.IntValue != 1) return false;
        string autoPad = a.TryGetValue("auto_pad", out var pad) ? pad.StringValue ?? "NOTSET" : "NOTSET";
        // SAME_UPPER and SAME_LOWER pad a 3x3 stride-1 kernel by 1 on each side.
        if (autoPad is "SAME_UPPER" or "SAME_LOWER") return true;
        return autoPad == "NOTSET" && a.TryGetValue("pads", out var pads) && pads.Ints.Count == 4 && pads.Ints.All(p => p == 1);
    }

    private static bool IsChannelAxis(Node concat) =>
        concat.Outputs[0].Shape is { Length: 4 } && concat.Attributes.TryGetValue("axis", out var axis) && axis.IntValue is 1 or -3;
}
