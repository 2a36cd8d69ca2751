using Squash.Runtime;
using Squash.Runtime.Ir;
using Squash.Runtime.Operators;

namespace Squash.Compiler.Passes;

/// <summary>
/// Fuses a 3x3 convolution of a feature pyramid's maps into one com.squash FusedPyramidConv, which convolves each map at
/// its own resolution and with its own channels instead of upsampling, projecting, scaling, adding and concatenating
/// first (<see cref="PyramidTerms"/> says which inputs qualify). DBNet's head at 640x640 concatenates three 24-channel
/// maps upsampled 8x, 4x and 2x with one at 160x160: the convolution over 96 channels at 160x160 becomes one over 24 of
/// them plus GEMMs at 20x20, 40x40 and 80x80. Its RSE-FPN convolves at each level
/// <c>y (1 + g) + upsample(level above)</c> with y a 1x1 convolution from 12 (18, 42) channels to 96 and g a
/// squeeze-and-excitation gate: the levels flatten into terms, each projection and gate composes into the weights
/// (per image: g is known only at run time), and the 96-channel convolution at 160x160 becomes one over 12 channels
/// plus GEMMs over 18 and 42 channels at 80x80 and 40x40.
/// <code>
///   Resize(X_0, nearest, s_0) ─┐
///   Resize(X_1, nearest, s_1) ─┼─ Concat(axis 1) ─ [Fused]Conv(3x3, stride 1, pads 1; W, B; act) ─ Y
///   X_2 (full resolution) ─────┘
///   becomes   FusedPyramidConv(W, B, X_0, -, -, X_1, -, -, X_2, -, -; scales = [s_0, s_1, 1], activation = act) ─ Y
///
///   Conv1x1(X_0; P) ─ y ─┬─ Mul(y, G) ─ Add(y, ·) ─┐
///                        └──────────────────────────┘
///                                          Add ─ Conv(3x3; W, B) ─ Y
///   Resize(X_1, nearest, s) ───────────────┘
///   becomes   Add(G, 1) ─ G1;  FusedPyramidConv(W, B, X_0, P, G1, X_1, -, -; scales = [1, s], offsets = [0, 0]) ─ Y
/// </code>
/// Runs after <see cref="ActivationFusion"/>, so the convolution brings its activation, and after
/// <see cref="GlobalPoolBeforePointwiseConv"/>, so that a squeeze-and-excitation's pooling no longer reads the
/// projection, but before <see cref="EpilogueFusion"/>, which would fuse a projection's Add into it as a residual;
/// <see cref="DeadNodeElimination"/> then removes what nothing reads any more (nodes read elsewhere stay).
/// Outputs change by rounding only (the same products summed in another order). Does not handle: a residual or affine
/// map fused into the convolution, weights computed at run time, other kernels, strides, dilations, groups or padding,
/// a Resize whose nearest pixel is not floor(x / s), more than one term at full resolution, or none upsampled or
/// projected.
/// </summary>
public sealed class PyramidConvFusion : IGraphPass
{
    /// <inheritdoc/>
    public string Name => "PyramidConvFusion";

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
        // 1 + g per gate, made once for every convolution that reads it.
        var plusOne = new Dictionary<Value, Value>();
        Value? one = null;
        foreach (var conv in graph.Nodes)
        {
            if (!rewrite.IsLive(conv) || !IsPaddedThreeByThree(conv) || PyramidTerms.Expand(conv.Inputs[0]!) is not { } terms || !PyramidTerms.Pays(terms))
                continue;
            var fused = new Node("FusedPyramidConv", conv.Name, OperatorRegistry.SquashDomain, FusedOperators.Opset);
            fused.AddInput(conv.Inputs[1]).AddInput(conv.Input(2));
            foreach (var term in terms)
            {
                var gate = term.Gate;
                if (gate is not null && term.GatePlusOne && !plusOne.TryGetValue(gate, out gate))
                {
                    one ??= rewrite.AddConstant("pyramid_one", Tensor.Scalar(1f));
                    var sum = new Value(rewrite.UniqueName(term.Gate!.Name + "_plus_one"), DataType.Float, term.Gate.Shape);
                    var add = new Node("Add", sum.Name);
                    add.AddInput(term.Gate).AddInput(one).AddOutput(sum);
                    rewrite.Insert(add, conv);
                    plusOne[term.Gate] = gate = sum;
                }
                fused.AddInput(term.Input).AddInput(term.Projection?.Inputs[1]).AddInput(gate);
            }
            fused.AddOutput(conv.Outputs[0]);
            fused.Attributes["scales"] = AttributeValue.IntList(terms.Select(t => (long)t.Scale).ToArray());
            fused.Attributes["offsets"] = AttributeValue.IntList(terms.Select(t => (long)t.Offset).ToArray());
            if (conv.Attributes.TryGetValue("activation", out var kind)) fused.Attributes["activation"] = kind;
            if (conv.Attributes.TryGetValue("activation_params", out var parameters)) fused.Attributes["activation_params"] = parameters;
            rewrite.Replace([], conv, fused);
        }
        return rewrite.Apply();
    }

    /// <summary>True for a float 2-D 3x3 convolution, stride 1, dilation 1, one group, padding 1 on every side, with
    /// constant weights and bias and at most an activation fused.</summary>
    internal static bool IsPaddedThreeByThree(Node node)
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
}
