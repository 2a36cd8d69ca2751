using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Operators;

/// <summary>
/// Squash's fused operators (domain com.squash), which the compiler's fusion passes make from standard nodes:
/// FusedConv, FusedConvTranspose, FusedGemm and FusedMatMul (a product with its bias, a residual, an activation and a
/// per-channel affine map applied as results are stored), and FusedElementwise (a chain of elementwise nodes in one
/// pass). The products are the standard operator classes with an epilogue (<see cref="FusedOutput"/>).
/// </summary>
internal static class FusedOperators
{
    /// <summary>The version of the com.squash domain these operators implement.</summary>
    public const int Opset = 1;

    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        const string domain = OperatorRegistry.SquashDomain;
        registry.Add(domain, "FusedConv", n => new ConvOperator(n, fused: true), Opset, Opset);
        registry.Add(domain, "FusedConvTranspose", n => new ConvTransposeOperator(n, fused: true), Opset, Opset);
        registry.Add(domain, "FusedConvTransposeChain", n => new ConvTransposeChainOperator(n), Opset, Opset);
        registry.Add(domain, "FusedPyramidConv", n => new PyramidConvOperator(n), Opset, Opset);
        registry.Add(domain, "FusedGemm", n => new GemmOperator(n, fused: true), Opset, Opset);
        registry.Add(domain, "FusedMatMul", n => new MatMulOperator(n, fused: true), Opset, Opset);
        registry.Add(domain, "FusedElementwise", n => new FusedElementwiseOperator(n), Opset, Opset);
    }
}

/// <summary>
/// What a fused product does after its own arithmetic (bias included):
/// <code>
///   Y = activation(product + Z) * scale + shift
/// </code>
/// Attributes: <c>activation</c> (Relu, Clip, LeakyRelu, HardSigmoid, HardSwish, Sigmoid; absent for none) and
/// <c>activation_params</c> (Clip: min, max; LeakyRelu: alpha; HardSigmoid: alpha, beta), as ONNX Runtime's FusedConv
/// names them. Inputs after the product's own three: Z (3, shaped like Y, optional), scale and shift (4 and 5, one
/// value per channel, optional). Channels are Y's axis 1 for convolutions and its last axis for Gemm and MatMul. fp32 only.
/// </summary>
internal sealed class FusedOutput
{
    /// <summary>Index of the residual input Z.</summary>
    public const int ResidualInput = 3;

    /// <summary>Index of the per-channel scale input.</summary>
    public const int ScaleInput = 4;

    /// <summary>Index of the per-channel shift input.</summary>
    public const int ShiftInput = 5;

    private readonly Node _node;

    /// <summary>Reads the activation attributes of <paramref name="node"/>.</summary>
    public FusedOutput(Node node, AttributeReader attributes)
    {
        _node = node;
        Activation = ReadActivation(node, attributes, "activation");
    }

    /// <summary>The activation named by attribute <paramref name="name"/> (none when absent), with its parameters in
    /// <c><paramref name="name"/>_params</c>.</summary>
    public static GemmActivation ReadActivation(Node node, AttributeReader attributes, string name)
    {
        string kind = attributes.String(name, "");
        var p = attributes.Floats(name + "_params") ?? [];
        float Parameter(int i, string what) => i < p.Length ? p[i]
            : throw new SquashException(ErrorCodes.InvalidModel, $"{node.Describe()}: {name} {kind} needs {name}_params with its {what}.", node.Name);
        return kind switch
        {
            "" => GemmActivation.None,
            "Relu" => GemmActivation.Relu,
            "Clip" => GemmActivation.Clip(Parameter(0, "minimum"), Parameter(1, "maximum")),
            "LeakyRelu" => GemmActivation.LeakyRelu(Parameter(0, "alpha")),
            "HardSigmoid" => GemmActivation.HardSigmoid(Parameter(0, "alpha"), Parameter(1, "beta")),
            "HardSwish" => GemmActivation.HardSwish,
            "Sigmoid" => GemmActivation.Sigmoid,
            _ => throw new SquashException(ErrorCodes.UnsupportedAttribute,
                $"{node.Describe()}: {name} '{kind}' is not supported (Relu, Clip, LeakyRelu, HardSigmoid, HardSwish, Sigmoid are).", node.Name),
        };
    }

    /// <summary>The activation.</summary>
    public GemmActivation Activation { get; }

    /// <summary>Checks the element type and the fused inputs against the output <paramref name="output"/> (null or
    /// with -1 where unknown), whose channels are along <paramref name="channelAxis"/>.</summary>
    public void Check(InferenceContext context, DataType type, int[]? output, int channelAxis)
    {
        if (type != DataType.Float)
            throw new SquashException(ErrorCodes.UnsupportedDataType,
                $"{_node.Describe()}: {_node.OpType} supports float only, not {DataTypes.Name(type)}.", _node.Name);
        for (int i = ResidualInput; i <= ShiftInput; i++)
            if (context.HasInput(i) && context.InputType(i) != DataType.Float)
                throw Invalid($"input {i} is {DataTypes.Name(context.InputType(i))}; it must be float.");
        if (output is null) return;
        if (context.HasInput(ResidualInput) && context.InputShape(ResidualInput) is { } z && Shapes.IsKnown(z) && Shapes.IsKnown(output)
            && !Shapes.Equal(z, output))
            throw Invalid($"Z {Shapes.Format(z)} must have the output's shape {Shapes.Format(output)}.");
        int channels = channelAxis < output.Length ? output[channelAxis] : -1;
        for (int i = ScaleInput; i <= ShiftInput; i++)
            if (context.HasInput(i) && context.InputShape(i) is { } s && Shapes.IsKnown(s) && channels >= 0 && (s.Length != 1 || s[0] != channels))
                throw Invalid($"input {i} {Shapes.Format(s)} must hold one value per output channel ([{channels}]).");
    }

    /// <summary><paramref name="epilogue"/> (the product's own: bias, alpha, beta) followed by the fused steps, for
    /// output <paramref name="y"/> with <paramref name="channels"/> channels, which are the rows of the product when
    /// <paramref name="channelsAreRows"/> (convolutions) and its columns otherwise.</summary>
    public GemmEpilogue Complete(GemmEpilogue epilogue, scoped ReadOnlySpan<Tensor?> inputs, Tensor y, int channels, bool channelsAreRows)
    {
        var residual = Input(inputs, ResidualInput);
        var scale = Input(inputs, ScaleInput);
        var shift = Input(inputs, ShiftInput);
        if (residual is not null && !Shapes.Equal(residual.Shape, y.Shape))
            throw Invalid($"Z {Shapes.Format(residual.Shape)} must have the output's shape {Shapes.Format(y.Shape)}.");
        if (scale is not null && scale.ElementCount != channels || shift is not null && shift.ElementCount != channels)
            throw Invalid($"the scale and shift must hold one value per output channel ({channels}).");
        var result = epilogue with { Activation = Activation, Residual = Values(residual) };
        return channelsAreRows
            ? result with { RowScale = Values(scale), RowShift = Values(shift) }
            : result with { ColumnScale = Values(scale), ColumnShift = Values(shift) };
    }

    private static Tensor? Input(ReadOnlySpan<Tensor?> inputs, int index) => index < inputs.Length ? inputs[index] : null;

    private static ReadOnlySpan<float> Values(Tensor? t) => t is null ? [] : t.AsSpan<float>();

    private SquashException Invalid(string message) => new(ErrorCodes.InvalidModel, $"{_node.Describe()}: {message}", _node.Name);
}

/// <summary>
/// com.squash FusedElementwise: a chain of elementwise steps over one fp32 tensor in one pass
/// (<see cref="ElementwiseChain"/>). The accumulator starts as input 0 (whose shape the output has); step i applies
/// <c>ops[i]</c>: Add, Sub, Mul or Div with input <c>operands[i]</c> (on the left when <c>reversed[i]</c> is 1), or
/// one of Relu, LeakyRelu, Sigmoid, HardSigmoid, HardSwish, Clip, Tanh, Exp, Erf, Neg, Abs, Sqrt with the parameters
/// <c>params[2i]</c>, <c>params[2i+1]</c> (operand -1). Operands broadcast to the output element for element, as a
/// scalar, one value per row ([1, C, 1, 1] against [N, C, H, W]) or one vector per row ([W]).
/// </summary>
internal sealed class FusedElementwiseOperator : Operator
{
    private sealed record Plan(int[][] Shapes, ChainLayout[] Layouts, int Rows, int RowLength);

    private readonly ChainStep[] _steps;
    private Plan? _plan;

    public FusedElementwiseOperator(Node node) : base(node)
    {
        var ops = Attributes.Strings("ops") ?? [];
        var operands = Attributes.Ints("operands") ?? [];
        var reversed = Attributes.Ints("reversed") ?? [];
        var parameters = Attributes.Floats("params") ?? [];
        if (ops.Length is 0 or > ElementwiseChain.MaxSteps)
            throw Invalid($"ops must list 1 to {ElementwiseChain.MaxSteps} steps, not {ops.Length}.");
        if (operands.Length != ops.Length || reversed.Length != ops.Length || parameters.Length != 2 * ops.Length)
            throw Invalid("operands and reversed need one value per step, params two.");
        _steps = new ChainStep[ops.Length];
        for (int i = 0; i < ops.Length; i++)
        {
            if (!Enum.TryParse<ChainOp>(ops[i], ignoreCase: false, out var op) || int.TryParse(ops[i], out _))
                throw Unsupported($"step {i} is '{ops[i]}', which FusedElementwise does not know.");
            var step = new ChainStep(op, (int)operands[i], reversed[i] != 0, parameters[2 * i], parameters[2 * i + 1]);
            if (step.IsBinary ? operands[i] < 0 || operands[i] >= node.Inputs.Count : operands[i] != -1)
                throw Invalid($"step {i} ({ops[i]}) has operand {operands[i]}.");
            _steps[i] = step;
        }
    }

    /// <summary>
    /// Input 0, and any operand of the output's shape: blocks are disjoint, and within a block each operand element is
    /// read before the last step writes the output element at the same place.
    /// </summary>
    public override bool CanRunInPlace(int input) =>
        input == 0 || Volatile.Read(ref _plan) is { } plan && input < plan.Layouts.Length && plan.Layouts[input] == ChainLayout.Full;

    public override void InferOutputs(InferenceContext context)
    {
        for (int i = 0; i < context.InputCount; i++)
            if (context.InputType(i) != DataType.Float)
                throw new SquashException(ErrorCodes.UnsupportedDataType,
                    $"{Node.Describe()}: FusedElementwise supports float only; input {i} is {DataTypes.Name(context.InputType(i))}.", Node.Name);
        var shape = context.InputShape(0);
        var shapes = new int[context.InputCount][];
        bool known = shape is not null && Shapes.IsKnown(shape);
        for (int i = 0; i < shapes.Length && known; i++)
            if (context.InputShape(i) is { } s && Shapes.IsKnown(s)) shapes[i] = s;
            else known = false;
        if (known) Bind(shapes);
        context.SetOutput(0, DataType.Float, shape);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var tensors = new ElementwiseChain.Inputs();
        var plan = Volatile.Read(ref _plan);
        bool same = plan is not null && plan.Shapes.Length == Node.Inputs.Count;
        for (int i = 0; i < Node.Inputs.Count; i++)
        {
            tensors[i] = Required(inputs, i);
            same &= plan is not null && Shapes.Equal(plan.Shapes[i], tensors[i]!.Shape);
        }
        if (!same)
        {
            var shapes = new int[Node.Inputs.Count][];
            for (int i = 0; i < shapes.Length; i++) shapes[i] = (int[])tensors[i]!.Shape.Clone();
            plan = Bind(shapes);
        }
        ElementwiseChain.Run(context, _steps, plan!.Layouts, tensors, outputs[0], plan.Rows, plan.RowLength);
    }

    /// <summary>The layout of every input and the row split of the output (input 0's shape), cached for the last shapes.</summary>
    private Plan Bind(int[][] shapes)
    {
        var output = shapes[0];
        var layouts = new ChainLayout[shapes.Length];
        int split = -1;
        for (int i = 0; i < shapes.Length; i++)
        {
            if (ElementwiseChain.Classify(shapes[i], output) is not var (layout, at))
                throw Invalid($"input {i} {Shapes.Format(shapes[i])} does not broadcast to {Shapes.Format(output)} as a chain operand.");
            layouts[i] = layout;
            if (layout is ChainLayout.Full or ChainLayout.Scalar) continue;
            if (split >= 0 && split != at)
                throw Invalid($"input {i} {Shapes.Format(shapes[i])} splits the output into rows differently from another input.");
            split = at;
        }
        split = Math.Max(split, 0);
        var plan = new Plan(shapes, layouts, Shapes.Product(output, 0, split), Shapes.Product(output, split, output.Length));
        Volatile.Write(ref _plan, plan);
        return plan;
    }
}
