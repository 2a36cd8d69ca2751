using System.Runtime.InteropServices;
using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Operators;

/// <summary>Softmax, LogSoftmax and Hardmax.</summary>
internal static class SoftmaxOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        registry.Add("Softmax", n => new SoftmaxOperator(n, SoftmaxKind.Softmax), minOpset: 1);
        registry.Add("LogSoftmax", n => new SoftmaxOperator(n, SoftmaxKind.LogSoftmax), minOpset: 1);
        registry.Add("Hardmax", n => new SoftmaxOperator(n, SoftmaxKind.Hardmax), minOpset: 1);
    }
}

/// <summary>Which of the softmax family an operator computes.</summary>
internal enum SoftmaxKind
{
    Softmax,
    LogSoftmax,
    Hardmax,
}

/// <summary>
/// Softmax, LogSoftmax and Hardmax. Before opset 13 the input is coerced to 2-D at <c>axis</c> (default 1) and each
/// row of the flattened trailing axes is normalized; from opset 13 only the one axis (default -1) is.
/// </summary>
internal sealed class SoftmaxOperator : Operator
{
    private readonly SoftmaxKind _kind;
    private readonly long _axis;
    private readonly bool _coerceTo2D;

    public SoftmaxOperator(Node node, SoftmaxKind kind) : base(node)
    {
        _kind = kind;
        // Opset 0 marks a node built in code; it gets the current semantics.
        _coerceTo2D = node.OpsetVersion is > 0 and < 13;
        _axis = Attributes.Int("axis", _coerceTo2D ? 1 : -1);
    }

    public override void InferOutputs(InferenceContext context)
    {
        var type = context.InputType(0);
        if (!DataTypes.IsFloatingPoint(type)) throw ReduceOperators.UnsupportedType(Node, type);
        var shape = context.InputShape(0);
        if (shape is not null) Axis(shape.Length);
        context.SetOutput(0, type, shape);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var x = Required(inputs, 0);
        var y = outputs[0];
        int axis = Axis(x.Rank);
        var (outer, length, inner) = _coerceTo2D
            ? (Shapes.Product(x.Shape, 0, axis), Shapes.Product(x.Shape, axis, x.Rank), 1)
            : ReduceOperators.Split(x.Shape, axis);
        if (_kind != SoftmaxKind.Hardmax)
        {
            Softmax.Compute(context, x, y, outer, length, inner, _kind == SoftmaxKind.LogSoftmax);
            return;
        }
        var indices = MemoryMarshal.Cast<byte, long>(context.Scratch(outer * inner * sizeof(long)).AsSpan());
        switch (x.DataType)
        {
            case DataType.Float: Softmax.Hardmax(x.AsSpan<float>(), y.AsSpan<float>(), outer, length, inner, indices, new float[inner]); break;
            case DataType.Double: Softmax.Hardmax(x.AsSpan<double>(), y.AsSpan<double>(), outer, length, inner, indices, new double[inner]); break;
            case DataType.Float16: Softmax.Hardmax(x.AsSpan<Half>(), y.AsSpan<Half>(), outer, length, inner, indices, new Half[inner]); break;
            case DataType.BFloat16:
                {
                    // bf16 widens exactly and 0/1 narrow exactly.
                    var wide = new float[2 * x.ElementCount];
                    FloatBridge.Widen(x, wide.AsSpan(0, x.ElementCount));
                    Softmax.Hardmax<float>(wide.AsSpan(0, x.ElementCount), wide.AsSpan(x.ElementCount), outer, length, inner, indices, new float[inner]);
                    FloatBridge.Narrow(wide.AsSpan(x.ElementCount), y);
                    break;
                }
            default: throw ReduceOperators.UnsupportedType(Node, x.DataType);
        }
    }

    private int Axis(int rank)
    {
        // A scalar has one implicit axis, as in ONNX's reference implementation.
        int r = Math.Max(rank, 1);
        if (_axis < -r || _axis >= r + (_coerceTo2D ? 1 : 0)) throw Invalid($"axis {_axis} is out of range for rank {rank}.");
        return (int)(_axis < 0 ? _axis + r : _axis);
    }
}
