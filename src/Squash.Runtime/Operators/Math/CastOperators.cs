using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Operators;

/// <summary>Type conversion: Cast, CastLike (rules in <see cref="TensorConversion"/>).</summary>
internal static class CastOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        registry.Add("Cast", n => new CastOperator(n, like: false));
        registry.Add("CastLike", n => new CastOperator(n, like: true), minOpset: 15);
    }
}

/// <summary>
/// Cast (to the type of attribute <c>to</c>) and CastLike (to the type of input 1). The <c>saturate</c> and
/// <c>round_mode</c> attributes only concern float8 targets, which Squash does not support, so they are read and
/// have no effect. String, float8 and 4-bit types are not supported.
/// </summary>
internal sealed class CastOperator : Operator
{
    private readonly DataType _to;
    private readonly bool _like;

    /// <summary>Binds Cast, or CastLike when <paramref name="like"/>.</summary>
    public CastOperator(Node node, bool like) : base(node)
    {
        _like = like;
        Attributes.Int("saturate", 1);
        Attributes.String("round_mode", "up");
        if (like) return;
        if (!Attributes.Has("to")) throw Invalid("the attribute 'to' is required.");
        long to = Attributes.Int("to", 0);
        _to = to is > 0 and <= byte.MaxValue ? (DataType)to : DataType.Undefined;
        if (!DataTypes.IsSupported(_to)) throw UnsupportedType(to);
    }

    public override void InferOutputs(InferenceContext context)
    {
        var from = context.InputType(0);
        if (!DataTypes.IsSupported(from)) throw UnsupportedType((long)from);
        var to = _to;
        if (_like)
        {
            to = context.InputType(1);
            if (!DataTypes.IsSupported(to)) throw UnsupportedType((long)to);
        }
        context.SetOutput(0, to, context.InputShape(0));
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs) =>
        TensorConversion.Convert(context, Required(inputs, 0), outputs[0]);

    private SquashException UnsupportedType(long code) =>
        new(ErrorCodes.UnsupportedDataType,
            $"{Node.Describe()}: {Node.OpType} of {DataTypes.Name((DataType)code)} (ONNX type {code}) is not supported; " +
            "Squash supports float, double, float16, bfloat16, the 8- to 64-bit integers and bool (not string, float8 or 4-bit types).",
            Node.Name);
}
