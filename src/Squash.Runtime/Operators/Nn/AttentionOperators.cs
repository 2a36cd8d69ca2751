using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Operators;

/// <summary>Squash's fused attention (<c>com.squash</c> Attention), written by the attention fusion pass.</summary>
internal static class AttentionOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry) =>
        registry.Add(OperatorRegistry.SquashDomain, "Attention", n => new AttentionOperator(n), 1, 1);
}

/// <summary>
/// <c>Y = softmax(scale * Q K^T + mask) V</c> over the last two axes, in one flash-style pass
/// (<see cref="FlashAttention"/>). Inputs: Q [B, Hq, Sq, D], K [B, Hkv, T, D], V [B, Hkv, T, Dv] with Hq a multiple of
/// Hkv (query head h reads key/value head h / (Hq / Hkv)), and an optional mask broadcastable to [B, Hq, Sq, T]: bool
/// (true = may attend; false = a score of -infinity) or float (added to the scaled scores). Attribute <c>scale</c>
/// (default 1 / sqrt(D)). Output [B, Hq, Sq, Dv].
/// </summary>
internal sealed class AttentionOperator : Operator
{
    private readonly float _scale;
    private readonly bool _hasScale;

    public AttentionOperator(Node node) : base(node)
    {
        _hasScale = Attributes.Has("scale");
        _scale = Attributes.Float("scale", 1f);
    }

    public override void InferOutputs(InferenceContext context)
    {
        for (int i = 0; i < 3; i++)
            if (context.InputType(i) != DataType.Float) throw Unsupported($"input {i} is {DataTypes.Name(context.InputType(i))}; Attention takes float.");
        var (q, k, v) = (context.InputShape(0), context.InputShape(1), context.InputShape(2));
        if (context.HasInput(3) && context.InputType(3) is not (DataType.Bool or DataType.Float))
            throw Invalid($"the mask must be bool or float, not {DataTypes.Name(context.InputType(3))}.");
        if (q is null || k is null || v is null)
        {
            context.SetOutput(0, DataType.Float, null);
            return;
        }
        if (q.Length != 4 || k.Length != 4 || v.Length != 4) throw Invalid("Q, K and V must be 4-D: [batch, heads, sequence, head size].");
        if (Known(q[3], k[3]) && q[3] != k[3]) throw Invalid($"Q's head size {q[3]} differs from K's {k[3]}.");
        if (Known(k[2], v[2]) && k[2] != v[2]) throw Invalid($"K has {k[2]} positions, V {v[2]}.");
        if (Known(k[1], v[1]) && k[1] != v[1]) throw Invalid($"K has {k[1]} heads, V {v[1]}.");
        if (Known(q[1], k[1]) && (k[1] == 0 || q[1] % k[1] != 0)) throw Invalid($"{q[1]} query heads are not a multiple of {k[1]} key/value heads.");
        context.SetOutput(0, DataType.Float, [q[0], q[1], q[2], v[3]]);

        static bool Known(int a, int b) => a >= 0 && b >= 0;
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var (q, k, v) = (Required(inputs, 0), Required(inputs, 1), Required(inputs, 2));
        var mask = Optional(inputs, 3);
        if (q.Shape[0] != k.Shape[0] || k.Shape[0] != v.Shape[0]) throw Invalid($"Q, K and V disagree on the batch: {q}, {k}, {v}.");
        var shape = new AttentionShape(q.Shape[0], q.Shape[1], k.Shape[1], q.Shape[2], k.Shape[2], q.Shape[3], v.Shape[3]);
        float scale = _hasScale ? _scale : 1f / MathF.Sqrt(shape.HeadSize);
        var kind = mask is null ? AttentionMaskKind.None : mask.DataType == DataType.Bool ? AttentionMaskKind.Boolean : AttentionMaskKind.Additive;
        Span<int> strides = stackalloc int[4];
        if (mask is not null) MaskStrides(mask.Shape, [shape.Batch, shape.QueryHeads, shape.QueryLength, shape.KeyLength], strides);
        FlashAttention.Compute(context, shape, scale, q.AsSpan<float>(), k.AsSpan<float>(), v.AsSpan<float>(), kind,
            mask is null ? default : mask.Bytes, mask is null ? default : strides, outputs[0].AsSpan<float>());
    }

    /// <summary>Element strides of a mask broadcast (right-aligned, NumPy rules) over <paramref name="target"/>; 0 where it repeats.</summary>
    private void MaskStrides(int[] shape, ReadOnlySpan<int> target, Span<int> strides)
    {
        if (shape.Length > 4) throw Invalid($"the mask has rank {shape.Length}; it must broadcast to the 4-D scores.");
        var own = Shapes.Strides(shape);
        for (int d = 0; d < 4; d++)
        {
            int m = d - (4 - shape.Length);
            if (m < 0 || shape[m] == 1) strides[d] = 0;
            else if (shape[m] == target[d]) strides[d] = own[m];
            else throw Invalid($"the mask of shape {Shapes.Format(shape)} does not broadcast to the scores [{string.Join(",", target.ToArray())}].");
        }
    }
}
