using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Operators;

/// <summary>
/// com.squash FusedPyramidConv: a 3x3 convolution (stride 1, padding 1, one group) of a feature pyramid's sum or
/// concatenation of parts, each nearest-upsampled by an integer factor (1: at the output's resolution, at most one such
/// part), optionally a pointwise projection of its input scaled per channel, with bias and activation
/// (<see cref="PyramidConvolution"/>):
/// <code>
///   Y = activation(sum over p of conv3x3(upsample(G_p ⊙ conv1x1(X_p, P_p), s_p), W[:, o_p : o_p + C_p]) + B)
/// </code>
/// where upsample repeats each pixel s x s times. Inputs: W [M, C, 3, 3] (constant), B [M] (optional), then three per
/// part: X_p [N, C_x, H / s_p, W / s_p]; P_p [C_p, C_x, 1, 1] (constant, optional: without it C_p = C_x and X_p is taken
/// as is); G_p [N or 1, C_p, 1, 1] (optional: without it the scale is 1). Attributes: <c>scales</c> (s_p), <c>offsets</c>
/// (o_p, the first channel of W the part reads; default: one after another, a concatenation; equal offsets sum),
/// <c>activation</c> and <c>activation_params</c> as <see cref="FusedOutput"/> names them. Output: [N, M, H, W]. fp32 only.
/// The compiler's <c>PyramidConvFusion</c> makes it from Resize (nearest, integer factor), Concat, Add, per-channel Mul
/// and pointwise Conv before a Conv; it sums the same products in another order.
/// </summary>
internal sealed class PyramidConvOperator : Operator
{
    private const int FirstPart = 2, PerPart = 3;
    private readonly int[] _scales;
    private readonly int[]? _offsets;
    private readonly GemmActivation _activation;
    private PyramidConvolution.Part[]? _parts;

    public PyramidConvOperator(Node node) : base(node)
    {
        _activation = FusedOutput.ReadActivation(node, Attributes, "activation");
        var scales = Attributes.Ints("scales") ?? throw Invalid("the attribute 'scales' (one upsampling factor per part) is required.");
        if ((node.Inputs.Count - FirstPart) % PerPart != 0 || scales.Length != (node.Inputs.Count - FirstPart) / PerPart || scales.Length == 0)
            throw Invalid($"'scales' has {scales.Length} values for {node.Inputs.Count - FirstPart} inputs after W and B (three per part: X, P, G).");
        if (scales.Any(s => s is < 1 or > 1024)) throw Invalid($"'scales' [{string.Join(", ", scales)}] must be integers from 1 to 1024.");
        if (scales.Count(s => s == 1) > 1) throw Unsupported("at most one part may be at the output's resolution (scale 1).");
        _scales = scales.Select(s => (int)s).ToArray();
        if (Attributes.Ints("offsets") is { } offsets)
        {
            if (offsets.Length != _scales.Length || offsets.Any(o => o is < 0 or > int.MaxValue))
                throw Invalid($"'offsets' must give one first channel of W (0 or more) per part ({_scales.Length}).");
            _offsets = offsets.Select(o => (int)o).ToArray();
        }
    }

    public override void InferOutputs(InferenceContext context)
    {
        for (int i = 0; i < Node.Inputs.Count; i++)
            if (context.HasInput(i) && context.InputType(i) != DataType.Float)
                throw Invalid($"input {i} is {DataTypes.Name(context.InputType(i))}; it must be float.");
        var w = context.InputShape(0);
        var shapes = Enumerable.Range(0, _scales.Length).Select(p => context.InputShape(X(p))).ToArray();
        if (w is null || shapes.Any(s => s is null || !Shapes.IsKnown(s)))
        {
            context.SetOutput(0, DataType.Float, [-1, w?[0] ?? -1, -1, -1]);
            return;
        }
        context.SetOutput(0, DataType.Float, [shapes[0]![0], w[0], checked(shapes[0]![2] * _scales[0]), checked(shapes[0]![3] * _scales[0])]);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var w = Required(inputs, 0);
        var bias = Optional(inputs, 1);
        var xs = new Tensor[_scales.Length];
        var gates = new Tensor?[_scales.Length];
        for (int p = 0; p < xs.Length; p++)
        {
            xs[p] = Required(inputs, X(p));
            gates[p] = Optional(inputs, X(p) + 2);
        }
        var parts = Parts(w, xs, inputs);
        CheckShapes(w.Shape, parts, xs, gates, outputs[0].Shape);
        if (bias is not null && (bias.Rank != 1 || bias.ElementCount != w.Shape[0]))
            throw Invalid($"B has shape {Shapes.Format(bias.Shape)}; it must be [{w.Shape[0]}].");
        PyramidConvolution.Run(context, parts, xs, gates, bias is null ? [] : bias.AsSpan<float>(), _activation, outputs[0]);
    }

    private static int X(int part) => FirstPart + PerPart * part;

    /// <summary>The parts' prepared weights: once for constant W and projections.</summary>
    private PyramidConvolution.Part[] Parts(Tensor w, Tensor[] xs, ReadOnlySpan<Tensor?> inputs)
    {
        if (w.Shape is not [int m, int c, 3, 3]) throw Unsupported($"W {Shapes.Format(w.Shape)} must be [M, C, 3, 3].");
        bool constant = ReferenceEquals(Node.Inputs[0]?.Constant, w);
        for (int p = 0; p < xs.Length; p++)
            constant &= inputs[X(p) + 1] is not { } projection || ReferenceEquals(Node.Inputs[X(p) + 1]?.Constant, projection);
        if (constant && Volatile.Read(ref _parts) is { } cached) return cached;
        var parts = new PyramidConvolution.Part[xs.Length];
        for (int p = 0, next = 0; p < parts.Length; p++)
        {
            var projection = inputs[X(p) + 1];
            if (projection is not null && projection.Shape is not [_, _, 1, 1])
                throw Invalid($"P_{p} {Shapes.Format(projection.Shape)} must be [C_p, C_x, 1, 1] (a pointwise convolution's weights).");
            if (projection is not null && xs[p].Rank == 4 && projection.Shape[1] != xs[p].Shape[1])
                throw Invalid($"P_{p} {Shapes.Format(projection.Shape)} projects {projection.Shape[1]} channels but X_{p} {Shapes.Format(xs[p].Shape)} has {xs[p].Shape[1]}.");
            if (xs[p].Rank != 4) throw Unsupported($"X_{p} {Shapes.Format(xs[p].Shape)} must have rank 4 (a 2-D image).");
            int channels = projection?.Shape[0] ?? xs[p].Shape[1];
            int first = _offsets?[p] ?? next;
            if (first + (long)channels > c)
                throw Invalid($"part {p} reads channels {first} to {first + channels - 1} of W {Shapes.Format(w.Shape)}, which has {c}.");
            parts[p] = new PyramidConvolution.Part(w.AsSpan<float>(), m, c, first, channels, _scales[p],
                projection is null ? default : projection.AsSpan<float>(), xs[p].Shape[1], inputs[X(p) + 2] is not null);
            next = first + channels;
        }
        if (constant) Volatile.Write(ref _parts, parts);
        return parts;
    }

    /// <summary>Throws unless the parts, upsampled, make the output and the gates fit their parts.</summary>
    private void CheckShapes(int[] w, PyramidConvolution.Part[] parts, Tensor[] xs, Tensor?[] gates, int[] output)
    {
        for (int p = 0; p < xs.Length; p++)
        {
            var x = xs[p].Shape;
            int[] shape = [x[0], w[0], checked(x[2] * _scales[p]), checked(x[3] * _scales[p])];
            if (!Shapes.Equal(output, shape))
                throw Invalid($"X_{p} {Shapes.Format(x)} upsampled {_scales[p]}x does not match the other parts ({Shapes.Format(output)} out).");
            if (gates[p] is { } g && (g.Shape is not [var gn, var gc, 1, 1] || gc != parts[p].Channels || gn != 1 && gn != x[0]))
                throw Invalid($"G_{p} {Shapes.Format(g.Shape)} must be [{x[0]} or 1, {parts[p].Channels}, 1, 1].");
        }
    }
}
