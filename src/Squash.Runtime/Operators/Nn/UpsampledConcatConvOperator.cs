using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Operators;

/// <summary>
/// com.squash FusedUpsampledConcatConv: a 3x3 convolution (stride 1, padding 1, one group) of the channel
/// concatenation of inputs, each nearest-upsampled by an integer factor (1: at the output's resolution, at most one
/// such input), with bias and activation (<see cref="UpsampledConcatConvolution"/>):
/// <code>
///   Y = activation(conv3x3(concat(upsample(X_0, s_0), upsample(X_1, s_1), ...), W) + B)
/// </code>
/// where upsample repeats each pixel s x s times. Inputs: W [M, C, 3, 3] (constant), B [M] (optional), then X_i
/// [N, C_i, H / s_i, W / s_i] with the C_i summing to C. Attributes: <c>scales</c> (s_i per X_i), <c>activation</c> and
/// <c>activation_params</c> as <see cref="FusedOutput"/> names them. Output: [N, M, H, W]. fp32 only. The compiler's
/// fusion makes it from Resize (nearest, integer factor), Concat and Conv; it sums the same products in another order.
/// </summary>
internal sealed class UpsampledConcatConvOperator : Operator
{
    private const int FirstPart = 2;
    private readonly int[] _scales;
    private readonly GemmActivation _activation;
    private UpsampledConcatConvolution.Part[]? _parts;

    public UpsampledConcatConvOperator(Node node) : base(node)
    {
        _activation = FusedOutput.ReadActivation(node, Attributes, "activation");
        var scales = Attributes.Ints("scales") ?? throw Invalid("the attribute 'scales' (one upsampling factor per input after W and B) is required.");
        if (scales.Length != node.Inputs.Count - FirstPart || scales.Length == 0)
            throw Invalid($"'scales' has {scales.Length} values for {node.Inputs.Count - FirstPart} inputs after W and B.");
        if (scales.Any(s => s is < 1 or > 1024)) throw Invalid($"'scales' [{string.Join(", ", scales)}] must be integers from 1 to 1024.");
        if (scales.Count(s => s == 1) > 1) throw Unsupported("at most one input may be at the output's resolution (scale 1).");
        _scales = scales.Select(s => (int)s).ToArray();
    }

    public override void InferOutputs(InferenceContext context)
    {
        for (int i = 0; i < Node.Inputs.Count; i++)
            if ((i != 1 || context.HasInput(i)) && context.InputType(i) != DataType.Float)
                throw Invalid($"input {i} is {DataTypes.Name(context.InputType(i))}; it must be float.");
        var w = context.InputShape(0);
        var shapes = Enumerable.Range(0, _scales.Length).Select(p => context.InputShape(FirstPart + p)).ToArray();
        if (w is null || shapes.Any(s => s is null || !Shapes.IsKnown(s)))
        {
            context.SetOutput(0, DataType.Float, [-1, w?[0] ?? -1, -1, -1]);
            return;
        }
        context.SetOutput(0, DataType.Float, OutputShape(w, shapes!));
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var w = Required(inputs, 0);
        var bias = Optional(inputs, 1);
        var parts = new Tensor[_scales.Length];
        var shapes = new int[_scales.Length][];
        for (int p = 0; p < parts.Length; p++) shapes[p] = (parts[p] = Required(inputs, FirstPart + p)).Shape;
        OutputShape(w.Shape, shapes);
        if (bias is not null && (bias.Rank != 1 || bias.ElementCount != w.Shape[0]))
            throw Invalid($"B has shape {Shapes.Format(bias.Shape)}; it must be [{w.Shape[0]}].");
        UpsampledConcatConvolution.Run(context, Parts(w, parts), parts, bias is null ? [] : bias.AsSpan<float>(), _activation, outputs[0]);
    }

    /// <summary>The parts' prepared weights: once for the constant W.</summary>
    private UpsampledConcatConvolution.Part[] Parts(Tensor w, Tensor[] inputs)
    {
        bool constant = ReferenceEquals(Node.Inputs[0]?.Constant, w);
        if (constant && Volatile.Read(ref _parts) is { } cached) return cached;
        var parts = new UpsampledConcatConvolution.Part[inputs.Length];
        for (int p = 0, first = 0; p < parts.Length; first += inputs[p].Shape[1], p++)
            parts[p] = new UpsampledConcatConvolution.Part(w.AsSpan<float>(), w.Shape[0], w.Shape[1], first, inputs[p].Shape[1], _scales[p]);
        if (constant) Volatile.Write(ref _parts, parts);
        return parts;
    }

    /// <summary>[N, M, H, W] from W and the inputs' shapes; throws unless they fit together.</summary>
    private int[] OutputShape(int[] w, int[][] inputs)
    {
        if (w.Length != 4 || w[2] != 3 || w[3] != 3) throw Unsupported($"W {Shapes.Format(w)} must be [M, C, 3, 3].");
        int channels = 0;
        int[]? output = null;
        for (int p = 0; p < inputs.Length; p++)
        {
            var x = inputs[p];
            if (x.Length != 4) throw Unsupported($"input X_{p} {Shapes.Format(x)} must have rank 4 (a 2-D image).");
            int[] shape = [x[0], w[0], checked(x[2] * _scales[p]), checked(x[3] * _scales[p])];
            if (output is not null && !Shapes.Equal(output, shape))
                throw Invalid($"X_{p} {Shapes.Format(x)} upsampled {_scales[p]}x does not match the other inputs ({Shapes.Format(output)} out).");
            output = shape;
            channels += x[1];
        }
        if (channels != w[1]) throw Invalid($"the inputs have {channels} channels in all but W {Shapes.Format(w)} expects {w[1]}.");
        return output!;
    }
}
