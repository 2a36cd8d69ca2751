using System.Numerics;
using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Operators;

/// <summary>
/// Activations: Relu LeakyRelu Elu Selu Celu Sigmoid HardSigmoid HardSwish Softplus Softsign Mish Gelu
/// ThresholdedRelu, each a row of the table in <see cref="Register"/> run by <see cref="UnaryOperator"/>; and Clip.
/// </summary>
internal static class ActivationOperators
{
    private static readonly DataType[] s_signed = [DataType.Int8, DataType.Int16, DataType.Int32, DataType.Int64];

    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        // Relu takes signed integers from opset 14; the float types go through the 512-bit-capable float path.
        UnaryOperators.Add(registry, "Relu", UnaryKernels.Floating(new ReluFunction()).AddIntegers(new ReluFamily(), s_signed));
        UnaryOperators.Add(registry, "LeakyRelu", a => UnaryKernels.Floating(new LeakyReluFunction(a.Float("alpha", 0.01f))));
        UnaryOperators.Add(registry, "ThresholdedRelu", a => UnaryKernels.Floating(new ThresholdedReluFunction(a.Float("alpha", 1f))), minOpset: 10);
        UnaryOperators.Add(registry, "Elu", a => UnaryKernels.Floating(new EluFunction(a.Float("alpha", 1f))));
        UnaryOperators.Add(registry, "Selu", a => UnaryKernels.Floating(new SeluFunction(
            a.Float("alpha", 1.67326319217681884765625f), a.Float("gamma", 1.05070102214813232421875f))));
        UnaryOperators.Add(registry, "Celu", a => UnaryKernels.Floating(new CeluFunction(a.Float("alpha", 1f))), minOpset: 12);
        UnaryOperators.Add(registry, "Sigmoid", UnaryKernels.Floating(new SigmoidFunction()));
        UnaryOperators.Add(registry, "HardSigmoid", a => UnaryKernels.Floating(new HardSigmoidFunction(a.Float("alpha", 0.2f), a.Float("beta", 0.5f))));
        UnaryOperators.Add(registry, "HardSwish", UnaryKernels.Floating(new HardSwishFunction()), minOpset: 14);
        UnaryOperators.Add(registry, "Softplus", UnaryKernels.Floating(new SoftplusFunction()));
        UnaryOperators.Add(registry, "Softsign", UnaryKernels.Floating(new SoftsignFunction()));
        UnaryOperators.Add(registry, "Mish", UnaryKernels.Floating(new MishFunction()), minOpset: 18);
        UnaryOperators.Add(registry, "Gelu", Gelu, minOpset: 20);
        registry.Add("Clip", n => new ClipOperator(n));
    }

    private static UnaryKernels Gelu(AttributeReader attributes) => attributes.String("approximate", "none") switch
    {
        "none" => UnaryKernels.Floating(new GeluFunction()),
        "tanh" => UnaryKernels.Floating(new GeluTanhFunction()),
        var other => throw new ArgumentException($"attribute 'approximate' must be \"none\" or \"tanh\", not \"{other}\"."),
    };

    private readonly struct ReluFamily : INumericFamily
    {
        public void Map<T>(ReadOnlySpan<T> x, Span<T> y) where T : unmanaged, INumber<T> => Elementwise.Map(new NumericReluFunction<T>(), x, y);
    }
}

/// <summary>
/// <c>min(max(x, min), max)</c>. Before opset 11 the bounds are the float attributes <c>min</c> and <c>max</c>;
/// from opset 11 they are optional scalar inputs of the input's type, defaulting to the type's lowest and highest
/// values. Where min &gt; max every element becomes max. NaN stays NaN.
/// </summary>
internal sealed class ClipOperator : Operator
{
    private readonly float? _minAttribute;
    private readonly float? _maxAttribute;

    public ClipOperator(Node node) : base(node)
    {
        _minAttribute = Attributes.Has("min") ? Attributes.Float("min", 0) : null;
        _maxAttribute = Attributes.Has("max") ? Attributes.Float("max", 0) : null;
        if ((_minAttribute is not null || _maxAttribute is not null) && node.OpsetVersion >= 11)
            throw Invalid("the attributes 'min' and 'max' were replaced by inputs in opset 11.");
    }

    /// <summary>Clip maps each element on its own (the bounds are separate scalars).</summary>
    public override bool CanRunInPlace(int input) => input == 0;

    public override void InferOutputs(InferenceContext context)
    {
        var type = context.InputType(0);
        if (!DataTypes.IsFloatingPoint(type) && !DataTypes.IsInteger(type))
            throw new SquashException(ErrorCodes.UnsupportedDataType,
                $"{Node.Describe()}: Clip does not support {DataTypes.Name(type)} inputs (supported: all numeric types).", Node.Name);
        for (int i = 1; i <= 2; i++)
        {
            if (!context.HasInput(i)) continue;
            if (context.InputType(i) != type)
                throw Invalid($"input {i} is {DataTypes.Name(context.InputType(i))}, but the input is {DataTypes.Name(type)}.");
            if (context.InputShape(i) is { } shape && Shapes.IsKnown(shape) && Shapes.ElementCount(shape) != 1)
                throw Invalid($"input {i} must be a scalar, not of shape {Shapes.Format(shape)}.");
        }
        context.SetOutput(0, type, context.InputShape(0));
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var x = Required(inputs, 0);
        var low = Optional(inputs, 1);
        var high = Optional(inputs, 2);
        var y = outputs[0];
        switch (x.DataType)
        {
            case DataType.Float or DataType.Float16 or DataType.BFloat16:
                // The default bounds are the type's own extremes, so that infinities clip to them as ONNX says.
                float largest = x.DataType switch
                {
                    DataType.Float16 => (float)Half.MaxValue,
                    DataType.BFloat16 => (float)new BFloat16(0x7F7F),
                    _ => float.MaxValue,
                };
                var function = new ClipFunction(Bound(low, _minAttribute, -largest), Bound(high, _maxAttribute, largest));
                context.For(x.ElementCount, new FloatFunctionBody<ClipFunction>(function, x, y), UnaryKernel.Grain);
                break;
            case DataType.Double: Clip<double>(context, x, low, high, y); break;
            case DataType.Int8: Clip<sbyte>(context, x, low, high, y); break;
            case DataType.Int16: Clip<short>(context, x, low, high, y); break;
            case DataType.Int32: Clip<int>(context, x, low, high, y); break;
            case DataType.Int64: Clip<long>(context, x, low, high, y); break;
            case DataType.UInt8: Clip<byte>(context, x, low, high, y); break;
            case DataType.UInt16: Clip<ushort>(context, x, low, high, y); break;
            case DataType.UInt32: Clip<uint>(context, x, low, high, y); break;
            case DataType.UInt64: Clip<ulong>(context, x, low, high, y); break;
            default:
                throw new SquashException(ErrorCodes.UnsupportedDataType,
                    $"{Node.Describe()}: Clip does not support {DataTypes.Name(x.DataType)} inputs.", Node.Name);
        }
    }

    /// <summary>A float bound: the input's value (float16 and bfloat16 widen exactly), else the attribute, else the default.</summary>
    private static float Bound(Tensor? input, float? attribute, float fallback) =>
        input is not null ? (float)input.GetAsDouble(0) : attribute ?? fallback;

    private void Clip<T>(KernelContext context, Tensor x, Tensor? low, Tensor? high, Tensor y)
        where T : unmanaged, INumber<T>, IMinMaxValue<T>
    {
        var lo = low is not null ? low.AsSpan<T>()[0] : _minAttribute is { } min ? T.CreateSaturating(min) : T.MinValue;
        var hi = high is not null ? high.AsSpan<T>()[0] : _maxAttribute is { } max ? T.CreateSaturating(max) : T.MaxValue;
        var function = new NumericClipFunction<T>(lo, hi);
        context.For(x.ElementCount, new NumericFunctionBody<T, NumericClipFunction<T>>(function, x, y), UnaryKernel.Grain);
    }
}
