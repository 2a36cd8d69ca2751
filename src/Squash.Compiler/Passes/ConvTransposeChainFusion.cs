using Squash.Runtime;
using Squash.Runtime.Ir;
using Squash.Runtime.Operators;

namespace Squash.Compiler.Passes;

/// <summary>
/// Fuses two transposed convolutions in a row whose kernels tile their outputs (kernel equal to stride, no padding,
/// dilation, groups or output padding) into one com.squash FusedConvTransposeChain, which computes the pair block by
/// block so that the first one's output stays in cache (DBNet's head upsamples 4x with two 2x2 stride-2 ConvTransposes:
/// at 640x640 the tensor between them is 9.8 MB):
/// <code>
///   [Fused]ConvTranspose(X, W1, B1; act1) ─ [Fused]ConvTranspose(·, W2, B2; act2) ─ Y
///   becomes   FusedConvTransposeChain(X, W1, B1, W2, B2; inner_activation = act1, activation = act2) ─ Y
/// </code>
/// Runs after <see cref="EpilogueFusion"/>, so each side brings its bias and activation. Each side computes what it did
/// (the same GEMMs, the same epilogue), so outputs keep their bits. Does not handle: a residual or affine map fused into
/// either side, weights computed at run time, an intermediate read elsewhere, other geometries, rank other than 2-D.
/// </summary>
public sealed class ConvTransposeChainFusion : IGraphPass
{
    /// <inheritdoc/>
    public string Name => "ConvTransposeChainFusion";

    /// <summary>Attributes either side may carry (besides those checked for their values).</summary>
    private static readonly HashSet<string> s_known = new(StringComparer.Ordinal)
    {
        "auto_pad", "dilations", "group", "kernel_shape", "output_padding", "pads", "strides", "activation", "activation_params",
    };

    /// <inheritdoc/>
    public bool Run(Graph graph, PassContext context)
    {
        if (graph.OpsetImports.Count == 0) return false;
        var rewrite = new GraphRewrite(graph);
        foreach (var first in graph.Nodes)
        {
            if (!rewrite.IsLive(first) || !IsTiling(first) || rewrite.SoleConsumer(first.Outputs[0]) is not { } second
                || !rewrite.IsLive(second) || !IsTiling(second) || second.Inputs[0] != first.Outputs[0])
                continue;
            var chain = new Node("FusedConvTransposeChain", second.Name, OperatorRegistry.SquashDomain, FusedOperators.Opset);
            chain.AddInput(first.Inputs[0]).AddInput(first.Inputs[1]).AddInput(first.Input(2))
                .AddInput(second.Inputs[1]).AddInput(second.Input(2)).AddOutput(second.Outputs[0]);
            CopyActivation(first, chain, "inner_activation");
            CopyActivation(second, chain, "activation");
            rewrite.Replace([first], second, chain);
        }
        return rewrite.Apply();
    }

    /// <summary>True for a float 2-D transposed convolution with constant weights whose kernel tiles its output, with at
    /// most a bias and an activation fused.</summary>
    private static bool IsTiling(Node node)
    {
        bool plain = node.Domain.Length == 0 && node.OpType == "ConvTranspose";
        bool fused = node.Domain == OperatorRegistry.SquashDomain && node.OpType == "FusedConvTranspose";
        if (!plain && !fused || node.Outputs.Count != 1 || node.Inputs.Count is < 2 or > 3) return false;
        if (node.Inputs[0] is not { Type: DataType.Float, Shape: [_, _, _, _] } || node.Inputs[1]?.Constant is not { DataType: DataType.Float, Rank: 4 } w)
            return false;
        if (node.Input(2) is { } bias && bias.Constant is not { DataType: DataType.Float, Rank: 1 }) return false;
        var a = node.Attributes;
        if (a.Keys.Any(k => !s_known.Contains(k))) return false;
        bool All(string name, long value) => !a.TryGetValue(name, out var v) || v.Ints.All(i => i == value);
        if (a.TryGetValue("auto_pad", out var pad) && pad.StringValue is not ("NOTSET" or "VALID")) return false;
        if (!All("dilations", 1) || !All("pads", 0) || !All("output_padding", 0)) return false;
        if (a.TryGetValue("group", out var g) && g.IntValue != 1) return false;
        if (a.TryGetValue("kernel_shape", out var k) && !k.Ints.SequenceEqual([w.Shape[2], w.Shape[3]])) return false;
        return a.TryGetValue("strides", out var s) && s.Ints.SequenceEqual([w.Shape[2], w.Shape[3]]);
    }

    private static void CopyActivation(Node from, Node to, string name)
    {
        if (from.Attributes.TryGetValue("activation", out var kind)) to.Attributes[name] = kind;
        if (from.Attributes.TryGetValue("activation_params", out var parameters)) to.Attributes[name + "_params"] = parameters;
    }
}
