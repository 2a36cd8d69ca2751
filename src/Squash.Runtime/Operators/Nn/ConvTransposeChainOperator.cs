using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Operators;

/// <summary>
/// com.squash FusedConvTransposeChain: two 2-D transposed convolutions whose kernels tile their outputs (kernel equal to
/// stride, no padding, dilation, groups or output padding), each with its bias and activation, the first one's output
/// read by nothing else (<see cref="TransposedConvolutionChain"/>):
/// <code>
///   Y = activation(convTranspose(inner_activation(convTranspose(X, W1) + B1), W2) + B2)
/// </code>
/// Inputs: X [N, C, H, W], W1 [C, M1, k1h, k1w], B1 [M1] (optional), W2 [M1, M2, k2h, k2w], B2 [M2] (optional).
/// Attributes: <c>inner_activation</c> and <c>activation</c>, with their <c>_params</c>, as <see cref="FusedOutput"/>
/// names them. Output: [N, M2, H k1h k2h, W k1w k2w]. fp32 only. The compiler's fusion makes it; it computes what the
/// two nodes did, in the same order of operations.
/// </summary>
internal sealed class ConvTransposeChainOperator : Operator
{
    private readonly GemmActivation _inner;
    private readonly GemmActivation _outer;
    private sealed record Packed(TransposedConvolutionChain.Step First, TransposedConvolutionChain.Step Second);

    private Packed? _packed;

    public ConvTransposeChainOperator(Node node) : base(node)
    {
        _inner = FusedOutput.ReadActivation(node, Attributes, "inner_activation");
        _outer = FusedOutput.ReadActivation(node, Attributes, "activation");
    }

    public override void InferOutputs(InferenceContext context)
    {
        for (int i = 0; i < 5; i++)
            if ((i is 0 or 1 or 3 || context.HasInput(i)) && context.InputType(i) != DataType.Float)
                throw Invalid($"input {i} is {DataTypes.Name(context.InputType(i))}; it must be float.");
        var x = context.InputShape(0);
        var w1 = context.InputShape(1);
        var w2 = context.InputShape(3);
        if (x is null || w1 is null || w2 is null || !Shapes.IsKnown(x) || !Shapes.IsKnown(w1) || !Shapes.IsKnown(w2))
        {
            context.SetOutput(0, DataType.Float, x is null ? null : [.. Enumerable.Repeat(-1, x.Length)]);
            return;
        }
        Check(x, w1, w2);
        context.SetOutput(0, DataType.Float, [x[0], w2[1], checked(x[2] * w1[2] * w2[2]), checked(x[3] * w1[3] * w2[3])]);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var x = Required(inputs, 0);
        var w1 = Required(inputs, 1);
        var w2 = Required(inputs, 3);
        Check(x.Shape, w1.Shape, w2.Shape);
        var (first, second) = Steps(w1, Optional(inputs, 2), w2, Optional(inputs, 4));
        TransposedConvolutionChain.Run(context, first, second, x.Shape[0], x.Shape[2], x.Shape[3], x.AsSpan<float>(), outputs[0].AsSpan<float>());
    }

    /// <summary>The packed steps: once for constant weights and biases, per call otherwise.</summary>
    private Packed Steps(Tensor w1, Tensor? b1, Tensor w2, Tensor? b2)
    {
        bool constant = IsConstant(1, w1) && IsConstant(2, b1) && IsConstant(3, w2) && IsConstant(4, b2);
        if (constant && Volatile.Read(ref _packed) is { } cached) return cached;
        int m1 = w1.Shape[1], m2 = w2.Shape[1];
        foreach (var (b, m, name) in new[] { (b1, m1, "B1"), (b2, m2, "B2") })
            if (b is not null && (b.Rank != 1 || b.ElementCount != m))
                throw Invalid($"{name} has shape {Shapes.Format(b.Shape)}; it must be [{m}].");
        var steps = new Packed(
            new TransposedConvolutionChain.Step(w1.AsSpan<float>(), b1 is null ? [] : b1.AsSpan<float>(), w1.Shape[0], m1, w1.Shape[2], w1.Shape[3], _inner),
            new TransposedConvolutionChain.Step(w2.AsSpan<float>(), b2 is null ? [] : b2.AsSpan<float>(), w2.Shape[0], m2, w2.Shape[2], w2.Shape[3], _outer));
        if (constant) Volatile.Write(ref _packed, steps);
        return steps;
    }

    private bool IsConstant(int input, Tensor? value) => value is null || ReferenceEquals(Node.Input(input)?.Constant, value);

    /// <summary>Throws unless X, W1 and W2 chain: 2-D images, W1 reading X's channels, W2 reading W1's.</summary>
    private void Check(int[] x, int[] w1, int[] w2)
    {
        if (x.Length != 4 || w1.Length != 4 || w2.Length != 4)
            throw Unsupported($"X {Shapes.Format(x)}, W1 {Shapes.Format(w1)} and W2 {Shapes.Format(w2)} must all have rank 4 (2-D images).");
        if (w1[0] != x[1]) throw Invalid($"X has {x[1]} channels but W1 {Shapes.Format(w1)} expects {w1[0]}.");
        if (w2[0] != w1[1]) throw Invalid($"W1 {Shapes.Format(w1)} makes {w1[1]} channels but W2 {Shapes.Format(w2)} expects {w2[0]}.");
    }
}
