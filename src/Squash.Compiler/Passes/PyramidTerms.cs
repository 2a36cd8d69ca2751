using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Passes;

/// <summary>
/// Writes the input of a convolution as a feature pyramid's terms: a sum and concatenation of maps, each
/// nearest-upsampled by an integer factor, optionally a bias-free pointwise convolution (a projection) of a map with
/// fewer channels, scaled per channel (<c>x * g</c>, or <c>x + x * g</c> as RSE-FPN's squeeze-and-excitation shortcut
/// writes <c>x (1 + g)</c>). Used by <see cref="PyramidConvFusion"/> and by the int8 planner, which keeps the
/// projections it finds before an fp32 convolution in fp32 so that they compose into it.
/// </summary>
/// <remarks>Looks only at producers: values read elsewhere are expanded too (the nodes that compute them stay for their
/// other readers). An Add or Concat whose expansion would put two terms at full resolution stays one term (the fused
/// convolution convolves one full-resolution map).</remarks>
internal static class PyramidTerms
{
    /// <summary>Most terms of one expansion: beyond, the fused node would do more gathers than it saves.</summary>
    private const int MaxTerms = 16;

    /// <summary>The largest product of upsampling factors of one term (the runtime's limit).</summary>
    private const int MaxScale = 1024;

    /// <summary>Most nodes walked through on one path (a hostile model's chain of single-input Concats ends here).</summary>
    private const int MaxDepth = 64;

    /// <summary>One term: <c>upsample(scale(Gate) ⊙ conv1x1(Input, Projection), Scale)</c> entering the convolution at
    /// channel <c>Offset</c>, where scale(g) is g or, with <c>GatePlusOne</c>, 1 + g.</summary>
    internal sealed record Term(Value Input, int Scale, int Offset, Node? Projection, Value? Gate, bool GatePlusOne)
    {
        /// <summary>Channels the term brings to the convolution's input.</summary>
        public int Channels => Projection?.Inputs[1]!.Shape![0] ?? Input.Shape![1];
    }

    /// <summary>The terms of <paramref name="input"/> (float [N, C, H, W], known shape), or null when there are more
    /// than <see cref="MaxTerms"/> or a leaf's shape is unknown.</summary>
    public static List<Term>? Expand(Value input)
    {
        if (input.Shape is not [_, _, _, _] || !input.HasKnownShape) return null;
        var terms = new List<Term>();
        return Expand(input, 1, 0, null, false, terms, 0) ? terms : null;
    }

    /// <summary>True when fusing <paramref name="terms"/> changes anything: a term is upsampled or projected, and at
    /// most one is at full resolution.</summary>
    public static bool Pays(List<Term> terms) =>
        terms.Count(t => t.Scale == 1) <= 1 && terms.Any(t => t.Scale > 1 || t.Projection is not null);

    private static bool Expand(Value v, int scale, int offset, Value? gate, bool plusOne, List<Term> terms, int depth)
    {
        if (terms.Count >= MaxTerms) return false;
        if (depth < MaxDepth && v.Producer is { Domain: "" } node && v.Type == DataType.Float && v.Shape is [_, _, _, _] shape && v.HasKnownShape)
        {
            switch (node.OpType)
            {
                case "Concat" when gate is null && IsChannelConcat(node):
                {
                    var parts = new List<Term>();
                    int first = offset;
                    bool expanded = true;
                    foreach (var input in node.Inputs)
                    {
                        expanded = input?.Shape is [_, _, _, _] && Expand(input, scale, first, null, false, parts, depth + 1);
                        if (!expanded) break;
                        first += input!.Shape![1];
                    }
                    if (expanded && Joins(terms, parts)) return true;
                    break;
                }
                case "Add" when node.Inputs.Count == 2 && node.Inputs.All(i => i?.Shape is { } s && Shapes.Equal(s, shape)):
                {
                    if (gate is null && GatedShortcut(node) is var (y, g))
                        return Expand(y, scale, offset, g, true, terms, depth + 1);
                    var parts = new List<Term>();
                    if (Expand(node.Inputs[0]!, scale, offset, gate, plusOne, parts, depth + 1) && Expand(node.Inputs[1]!, scale, offset, gate, plusOne, parts, depth + 1)
                        && Joins(terms, parts))
                        return true;
                    break;
                }
                case "Mul" when gate is null && ChannelScale(node, shape) is var (x, g):
                    return Expand(x, scale, offset, g, false, terms, depth + 1);
                case "Resize" when NearestUpsampling.Factor(node) is int factor && (long)scale * factor <= MaxScale:
                    return Expand(node.Inputs[0]!, scale * factor, offset, gate, plusOne, terms, depth + 1);
                case "Conv" when IsProjection(node):
                    terms.Add(new Term(node.Inputs[0]!, scale, offset, node, gate, plusOne));
                    return true;
            }
        }
        if (!v.HasKnownShape || v.Shape is not [_, _, _, _] || v.Type != DataType.Float) return false;
        terms.Add(new Term(v, scale, offset, null, gate, plusOne));
        return true;
    }

    /// <summary>Adds <paramref name="parts"/> to <paramref name="terms"/> unless they hold two full-resolution terms
    /// (then the Add or Concat stays one term).</summary>
    private static bool Joins(List<Term> terms, List<Term> parts)
    {
        if (parts.Count(t => t.Scale == 1) > 1 || terms.Count + parts.Count > MaxTerms) return false;
        terms.AddRange(parts);
        return true;
    }

    private static bool IsChannelConcat(Node concat) =>
        concat.Attributes.TryGetValue("axis", out var axis) && axis.IntValue is 1 or -3;

    /// <summary>(y, g) for <c>Add(y, Mul(y, g))</c> in any operand order, g per channel.</summary>
    private static (Value Y, Value G)? GatedShortcut(Node add)
    {
        for (int side = 0; side < 2; side++)
        {
            var y = add.Inputs[side]!;
            if (add.Inputs[1 - side]!.Producer is { OpType: "Mul", Domain: "" } mul && ChannelScale(mul, y.Shape!) is var (x, g) && x == y)
                return (y, g);
        }
        return null;
    }

    /// <summary>(x, g) for <c>Mul(x, g)</c> in either order, x [N, C, H, W] and g [N or 1, C, 1, 1].</summary>
    private static (Value X, Value G)? ChannelScale(Node mul, int[] shape)
    {
        if (mul.Inputs.Count != 2 || mul.Inputs[0] is not { } a || mul.Inputs[1] is not { } b) return null;
        bool IsScale(Value g) => g.Type == DataType.Float && g.Shape is [var n, var c, 1, 1] && c == shape[1] && (n == 1 || n == shape[0]);
        if (a.Shape is { } sa && Shapes.Equal(sa, shape) && IsScale(b)) return (a, b);
        if (b.Shape is { } sb && Shapes.Equal(sb, shape) && IsScale(a)) return (b, a);
        return null;
    }

    /// <summary>A float pointwise convolution without bias: composing it into the convolution after it convolves fewer
    /// channels.</summary>
    private static bool IsProjection(Node conv) => conv.Input(2) is null && IsWideningPointwise(conv);

    /// <summary>A float 2-D pointwise convolution (stride 1, no padding, one group, constant weights, constant bias or
    /// none) to more channels than it reads.</summary>
    internal static bool IsWideningPointwise(Node conv)
    {
        if (conv is not { OpType: "Conv", Domain: "" } || conv.Outputs.Count != 1 || conv.Inputs.Count is < 2 or > 3) return false;
        if (conv.Inputs[0] is not { Type: DataType.Float, Shape: [var n, var cx, _, _] } || n < 1 || cx < 1) return false;
        if (conv.Inputs[1]?.Constant is not { DataType: DataType.Float, Shape: [var c, var cw, 1, 1] } || cw != cx || cx >= c) return false;
        if (conv.Input(2) is { } bias && bias.Constant is not { DataType: DataType.Float, Rank: 1 }) return false;
        foreach (var (name, value) in conv.Attributes)
        {
            bool fits = name switch
            {
                "group" => value.IntValue == 1,
                "strides" or "dilations" or "kernel_shape" => value.Ints.All(i => i == 1),
                "pads" => value.Ints.All(i => i == 0),
                "auto_pad" => (value.StringValue ?? "NOTSET") is "NOTSET" or "VALID" or "SAME_UPPER" or "SAME_LOWER",
                _ => false,
            };
            if (!fits) return false;
        }
        return true;
    }
}
