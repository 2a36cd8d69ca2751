using Squash.Runtime.Ir;

namespace Squash.Runtime.Operators;

/// <summary>Operators that pass data through: Identity, Dropout (inference), Constant.</summary>
internal static class BasicOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        registry.Add("Identity", n => new IdentityOperator(n), minOpset: 1);
        registry.Add("Dropout", n => new DropoutOperator(n), minOpset: 1);
        registry.Add("Constant", n => new ConstantOperator(n), minOpset: 1);
    }
}

/// <summary><c>Y = X</c>.</summary>
internal sealed class IdentityOperator(Node node) : Operator(node)
{
    public override int ViewedInput => 0;

    public override void InferOutputs(InferenceContext context) =>
        context.SetOutput(0, context.InputType(0), context.InputShape(0));

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs) =>
        Required(inputs, 0).Bytes.CopyTo(outputs[0].Bytes);
}

/// <summary>
/// Dropout at inference: <c>output = data</c>, <c>mask = true</c>. Training mode is random and not supported,
/// except with a ratio of 0, where it is the identity too.
/// </summary>
internal sealed class DropoutOperator : Operator
{
    private readonly float _ratio;

    public DropoutOperator(Node node) : base(node)
    {
        _ratio = Attributes.Float("ratio", 0.5f);
        Attributes.Int("seed", 0);
        Attributes.Int("is_test", 1);
    }

    /// <summary>A view when no mask is asked for and training mode is off or a constant (checked by shape
    /// inference); a training_mode computed at run time must be checked by <see cref="Run"/>.</summary>
    public override int ViewedInput =>
        (Node.Outputs.Count < 2 || Node.Outputs[1].Name.Length == 0)
        && (Node.Inputs.Count < 3 || Node.Inputs[2] is null || Node.Inputs[2]!.Constant is not null) ? 0 : -1;

    public override void InferOutputs(InferenceContext context)
    {
        CheckInference(context.InputValue(1), context.InputValue(2));
        context.SetOutput(0, context.InputType(0), context.InputShape(0));
        context.SetOutput(1, DataType.Bool, context.InputShape(0));
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        CheckInference(Optional(inputs, 1), Optional(inputs, 2));
        Required(inputs, 0).Bytes.CopyTo(outputs[0].Bytes);
        if (outputs.Length > 1) outputs[1].AsSpan<bool>().Fill(true);
    }

    private void CheckInference(Tensor? ratio, Tensor? training)
    {
        if (training is null || training.GetAsDouble(0) == 0) return;
        double r = ratio?.GetAsDouble(0) ?? (Node.OpsetVersion >= 12 ? 0.5 : _ratio);
        if (r != 0)
            throw Unsupported("training mode (training_mode = true) drops values at random and is not supported; export the model for inference.");
    }
}

/// <summary>A constant from one of the attributes <c>value</c>, <c>value_float(s)</c>, <c>value_int(s)</c>.</summary>
internal sealed class ConstantOperator : Operator
{
    private readonly Tensor _value;

    public ConstantOperator(Node node) : base(node)
    {
        var tensor = Attributes.Tensor("value");
        var f = Attributes.Raw("value_float");
        var fs = Attributes.Floats("value_floats");
        var i = Attributes.Raw("value_int");
        var ints = Attributes.Ints("value_ints");
        if (Attributes.Has("sparse_value") || Attributes.Has("value_string") || Attributes.Has("value_strings"))
            throw Unsupported("sparse and string constants are not supported.");
        _value = tensor
            ?? (f is not null ? Tensor.Scalar(f.FloatValue)
            : fs is not null ? Tensor.From<float>(fs, fs.Length)
            : i is not null ? Tensor.Scalar(i.IntValue)
            : ints is not null ? Tensor.From<long>(ints, ints.Length)
            : throw Invalid("has no value attribute."));
    }

    /// <summary>The constant.</summary>
    public Tensor Value => _value;

    public override void InferOutputs(InferenceContext context) => context.SetOutput(0, _value.DataType, _value.Shape);

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs) =>
        _value.Bytes.CopyTo(outputs[0].Bytes);
}
