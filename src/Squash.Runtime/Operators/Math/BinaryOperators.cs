using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Operators;

/// <summary>Broadcasting binary and variadic elementwise ops: arithmetic, comparison, logic, Where, Max Min Mean Sum.</summary>
internal static class BinaryOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        registry.Add("Add", n => new BinaryOperator(n, BinarySpecs.Add));
        registry.Add("Sub", n => new BinaryOperator(n, BinarySpecs.Sub));
        registry.Add("Mul", n => new BinaryOperator(n, BinarySpecs.Mul));
        registry.Add("Div", n => new BinaryOperator(n, BinarySpecs.Div));
        registry.Add("Pow", n => new BinaryOperator(n, BinarySpecs.Pow));
        registry.Add("Mod", n => new ModOperator(n), minOpset: 10);
        registry.Add("PRelu", n => new BinaryOperator(n, BinarySpecs.PRelu, unidirectional: true));
        registry.Add("Equal", n => new BinaryOperator(n, BinarySpecs.Equal));
        registry.Add("Greater", n => new BinaryOperator(n, BinarySpecs.Greater));
        registry.Add("GreaterOrEqual", n => new BinaryOperator(n, BinarySpecs.GreaterOrEqual), minOpset: 12);
        registry.Add("Less", n => new BinaryOperator(n, BinarySpecs.Less));
        registry.Add("LessOrEqual", n => new BinaryOperator(n, BinarySpecs.LessOrEqual), minOpset: 12);
        registry.Add("And", n => new BinaryOperator(n, BinarySpecs.And));
        registry.Add("Or", n => new BinaryOperator(n, BinarySpecs.Or));
        registry.Add("Xor", n => new BinaryOperator(n, BinarySpecs.Xor));
        registry.Add("BitShift", n => new BitShiftOperator(n), minOpset: 11);
        registry.Add("Max", n => new VariadicOperator(n, VariadicSpecs.Max));
        registry.Add("Min", n => new VariadicOperator(n, VariadicSpecs.Min));
        registry.Add("Sum", n => new VariadicOperator(n, VariadicSpecs.Sum));
        registry.Add("Mean", n => new VariadicOperator(n, VariadicSpecs.Mean));
        registry.Add("Where", n => new WhereOperator(n), minOpset: 9);
    }

    /// <summary>Plans a broadcast for a node, reporting one that needs too many loops as unsupported.</summary>
    internal static BroadcastPlan Plan(Operator op, int[] output, int[] a, int[] b)
    {
        if (!BroadcastPlan.TryCreate(output, a, b, out var plan)) throw TooManyLoops(op, output);
        return plan;
    }

    internal static SquashException TooManyLoops(Operator op, int[] output) =>
        new(ErrorCodes.UnsupportedAttribute,
            $"{op.Node.Describe()}: broadcasting to {Shapes.Format(output)} needs more than {BroadcastPlan.MaxLoops} loops after merging dimensions, which is not supported.",
            op.Node.Name);

    internal static SquashException UnsupportedType(Operator op, DataType type, string supported) =>
        UnsupportedTypes(op, DataTypes.Name(type), supported);

    internal static SquashException UnsupportedTypes(Operator op, string types, string supported) =>
        new(ErrorCodes.UnsupportedDataType, $"{op.Node.Describe()}: {types} inputs are not supported (supported: {supported}).", op.Node.Name);

    /// <summary>Multidirectional broadcast of inferred shapes (null when a rank is unknown).</summary>
    internal static int[]? BroadcastShapes(InferenceContext context, int[]? a, int[]? b)
    {
        if (a is null || b is null) return null;
        try
        {
            return Shapes.Broadcast(a, b);
        }
        catch (ArgumentException e)
        {
            throw context.Invalid(e.Message);
        }
    }
}

/// <summary>Runs one binary operation for the element types of its operands (already checked).</summary>
internal delegate void BinaryKernel(KernelContext context, in BroadcastPlan plan, Tensor x, Tensor y, Tensor output);

/// <summary>One binary operator of the table: which input types it takes, what it outputs, and its kernel.</summary>
/// <param name="Types">The supported input types, for messages.</param>
/// <param name="Accepts">Whether a (first, second) input type pair is supported.</param>
/// <param name="SameTypes">Whether the specification requires both inputs to have one type.</param>
/// <param name="BoolResult">True for comparisons: the output is bool, else the first input's type.</param>
/// <param name="Kernel">The kernel.</param>
internal sealed record BinarySpec(string Types, Func<DataType, DataType, bool> Accepts, bool SameTypes, bool BoolResult, BinaryKernel Kernel);

/// <summary>The binary operators' table.</summary>
internal static class BinarySpecs
{
    private const string NumericTypes = "float, double, float16, bfloat16, int8-int64, uint8-uint64";

    public static readonly BinarySpec Add = Arithmetic(BinaryKernels.Arithmetic<AddOp>);
    public static readonly BinarySpec Sub = Arithmetic(BinaryKernels.Arithmetic<SubtractOp>);
    public static readonly BinarySpec Mul = Arithmetic(BinaryKernels.Arithmetic<MultiplyOp>);
    public static readonly BinarySpec Div = Arithmetic(BinaryKernels.Arithmetic<DivideOp>);
    public static readonly BinarySpec PRelu = Arithmetic(BinaryKernels.Arithmetic<PReluOp>);
    public static readonly BinarySpec TruncatedMod = Arithmetic(BinaryKernels.Arithmetic<TruncatedModOp>);
    public static readonly BinarySpec FlooredMod = new("integer types (floating-point Mod needs fmod = 1)",
        (a, _) => DataTypes.IsInteger(a), true, false, BinaryKernels.Arithmetic<FlooredModOp>);

    public static readonly BinarySpec Pow = new(
        "base float, double, float16, int32, int64 with any numeric exponent; bfloat16 with bfloat16",
        (a, b) => a == DataType.BFloat16 || b == DataType.BFloat16
            ? a == b
            : a is DataType.Float or DataType.Double or DataType.Float16 or DataType.Int32 or DataType.Int64 && IsNumeric(b),
        false, false, BinaryKernels.Pow);

    public static readonly BinarySpec Equal = Comparison(BinaryKernels.Comparison<EqualOp>, allowBool: true);
    public static readonly BinarySpec Greater = Comparison(BinaryKernels.Comparison<GreaterOp>);
    public static readonly BinarySpec GreaterOrEqual = Comparison(BinaryKernels.Comparison<GreaterOrEqualOp>);
    public static readonly BinarySpec Less = Comparison(BinaryKernels.Comparison<LessOp>);
    public static readonly BinarySpec LessOrEqual = Comparison(BinaryKernels.Comparison<LessOrEqualOp>);

    public static readonly BinarySpec And = Logical(BinaryKernels.Logical<AndRows>);
    public static readonly BinarySpec Or = Logical(BinaryKernels.Logical<OrRows>);
    public static readonly BinarySpec Xor = Logical(BinaryKernels.Logical<XorRows>);

    public static readonly BinarySpec ShiftLeft = Shift(BinaryKernels.Shift<Kernels.ShiftLeft>);
    public static readonly BinarySpec ShiftRight = Shift(BinaryKernels.Shift<Kernels.ShiftRight>);

    public static bool IsNumeric(DataType type) => DataTypes.IsFloatingPoint(type) || DataTypes.IsInteger(type);

    private static BinarySpec Arithmetic(BinaryKernel kernel) =>
        new(NumericTypes, (a, _) => IsNumeric(a), true, false, kernel);

    private static BinarySpec Comparison(BinaryKernel kernel, bool allowBool = false) =>
        new(allowBool ? NumericTypes + ", bool" : NumericTypes, (a, _) => IsNumeric(a) || allowBool && a == DataType.Bool, true, true, kernel);

    private static BinarySpec Logical(BinaryKernel kernel) => new("bool", (a, _) => a == DataType.Bool, true, false, kernel);

    private static BinarySpec Shift(BinaryKernel kernel) =>
        new("uint8-uint64", (a, _) => a is DataType.UInt8 or DataType.UInt16 or DataType.UInt32 or DataType.UInt64, true, false, kernel);
}

/// <summary>The type switches from tensors to the generic kernels.</summary>
internal static class BinaryKernels
{
    /// <summary>An <see cref="IArithmetic"/> operation on any numeric type; 16-bit floats compute in float.</summary>
    public static void Arithmetic<TOp>(KernelContext c, in BroadcastPlan p, Tensor x, Tensor y, Tensor o) where TOp : IArithmetic
    {
        switch (x.DataType)
        {
            case DataType.Float: Broadcast.Binary<float, float, float, ArithmeticRows<float, TOp>>(c, p, x, y, o); break;
            case DataType.Double: Broadcast.Binary<double, double, double, ArithmeticRows<double, TOp>>(c, p, x, y, o); break;
            case DataType.Float16: Broadcast.Binary<Half, Half, Half, WidenedRows<Half, HalfFormat, ArithmeticRows<float, TOp>>>(c, p, x, y, o); break;
            case DataType.BFloat16: Broadcast.Binary<BFloat16, BFloat16, BFloat16, WidenedRows<BFloat16, BFloat16Format, ArithmeticRows<float, TOp>>>(c, p, x, y, o); break;
            case DataType.Int8: Broadcast.Binary<sbyte, sbyte, sbyte, ArithmeticRows<sbyte, TOp>>(c, p, x, y, o); break;
            case DataType.UInt8: Broadcast.Binary<byte, byte, byte, ArithmeticRows<byte, TOp>>(c, p, x, y, o); break;
            case DataType.Int16: Broadcast.Binary<short, short, short, ArithmeticRows<short, TOp>>(c, p, x, y, o); break;
            case DataType.UInt16: Broadcast.Binary<ushort, ushort, ushort, ArithmeticRows<ushort, TOp>>(c, p, x, y, o); break;
            case DataType.Int32: Broadcast.Binary<int, int, int, ArithmeticRows<int, TOp>>(c, p, x, y, o); break;
            case DataType.UInt32: Broadcast.Binary<uint, uint, uint, ArithmeticRows<uint, TOp>>(c, p, x, y, o); break;
            case DataType.Int64: Broadcast.Binary<long, long, long, ArithmeticRows<long, TOp>>(c, p, x, y, o); break;
            case DataType.UInt64: Broadcast.Binary<ulong, ulong, ulong, ArithmeticRows<ulong, TOp>>(c, p, x, y, o); break;
            default: throw Unexpected(x.DataType);
        }
    }

    /// <summary>An <see cref="IComparison"/> on any numeric type or bool; the output is bool.</summary>
    public static void Comparison<TOp>(KernelContext c, in BroadcastPlan p, Tensor x, Tensor y, Tensor o) where TOp : IComparison
    {
        switch (x.DataType)
        {
            case DataType.Float: Broadcast.Binary<float, float, bool, ComparisonRows<float, TOp>>(c, p, x, y, o); break;
            case DataType.Double: Broadcast.Binary<double, double, bool, ComparisonRows<double, TOp>>(c, p, x, y, o); break;
            case DataType.Float16: Broadcast.Binary<Half, Half, bool, WidenedComparisonRows<Half, HalfFormat, ComparisonRows<float, TOp>>>(c, p, x, y, o); break;
            case DataType.BFloat16: Broadcast.Binary<BFloat16, BFloat16, bool, WidenedComparisonRows<BFloat16, BFloat16Format, ComparisonRows<float, TOp>>>(c, p, x, y, o); break;
            case DataType.Int8: Broadcast.Binary<sbyte, sbyte, bool, ComparisonRows<sbyte, TOp>>(c, p, x, y, o); break;
            case DataType.UInt8 or DataType.Bool: Broadcast.Binary<byte, byte, bool, ComparisonRows<byte, TOp>>(c, p, x, y, o); break;
            case DataType.Int16: Broadcast.Binary<short, short, bool, ComparisonRows<short, TOp>>(c, p, x, y, o); break;
            case DataType.UInt16: Broadcast.Binary<ushort, ushort, bool, ComparisonRows<ushort, TOp>>(c, p, x, y, o); break;
            case DataType.Int32: Broadcast.Binary<int, int, bool, ComparisonRows<int, TOp>>(c, p, x, y, o); break;
            case DataType.UInt32: Broadcast.Binary<uint, uint, bool, ComparisonRows<uint, TOp>>(c, p, x, y, o); break;
            case DataType.Int64: Broadcast.Binary<long, long, bool, ComparisonRows<long, TOp>>(c, p, x, y, o); break;
            case DataType.UInt64: Broadcast.Binary<ulong, ulong, bool, ComparisonRows<ulong, TOp>>(c, p, x, y, o); break;
            default: throw Unexpected(x.DataType);
        }
    }

    /// <summary>A logical operation on bools (viewed as bytes).</summary>
    public static void Logical<TRows>(KernelContext c, in BroadcastPlan p, Tensor x, Tensor y, Tensor o)
        where TRows : IBinaryRowKernel<byte, byte, byte> =>
        Broadcast.Binary<byte, byte, byte, TRows>(c, p, x, y, o);

    /// <summary>BitShift on an unsigned type.</summary>
    public static void Shift<TDirection>(KernelContext c, in BroadcastPlan p, Tensor x, Tensor y, Tensor o) where TDirection : IShiftDirection
    {
        switch (x.DataType)
        {
            case DataType.UInt8: Broadcast.Binary<byte, byte, byte, ShiftRows<byte, TDirection>>(c, p, x, y, o); break;
            case DataType.UInt16: Broadcast.Binary<ushort, ushort, ushort, ShiftRows<ushort, TDirection>>(c, p, x, y, o); break;
            case DataType.UInt32: Broadcast.Binary<uint, uint, uint, ShiftRows<uint, TDirection>>(c, p, x, y, o); break;
            case DataType.UInt64: Broadcast.Binary<ulong, ulong, ulong, ShiftRows<ulong, TDirection>>(c, p, x, y, o); break;
            default: throw Unexpected(x.DataType);
        }
    }

    /// <summary>Pow: same-type floating point through vectorized pow, everything else through <see cref="MixedPowRows{TBase, TExponent}"/>.</summary>
    public static void Pow(KernelContext c, in BroadcastPlan p, Tensor x, Tensor y, Tensor o)
    {
        switch (x.DataType)
        {
            case DataType.Float when y.DataType == DataType.Float: Broadcast.Binary<float, float, float, PowRows<float>>(c, p, x, y, o); break;
            case DataType.Double when y.DataType == DataType.Double: Broadcast.Binary<double, double, double, PowRows<double>>(c, p, x, y, o); break;
            case DataType.Float16 when y.DataType == DataType.Float16: Broadcast.Binary<Half, Half, Half, WidenedRows<Half, HalfFormat, PowRows<float>>>(c, p, x, y, o); break;
            case DataType.BFloat16: Broadcast.Binary<BFloat16, BFloat16, BFloat16, WidenedRows<BFloat16, BFloat16Format, PowRows<float>>>(c, p, x, y, o); break;
            case DataType.Float: MixedPow<float>(c, p, x, y, o); break;
            case DataType.Double: MixedPow<double>(c, p, x, y, o); break;
            case DataType.Float16: MixedPow<Half>(c, p, x, y, o); break;
            case DataType.Int32: MixedPow<int>(c, p, x, y, o); break;
            case DataType.Int64: MixedPow<long>(c, p, x, y, o); break;
            default: throw Unexpected(x.DataType);
        }
    }

    private static void MixedPow<TBase>(KernelContext c, in BroadcastPlan p, Tensor x, Tensor y, Tensor o)
        where TBase : unmanaged, INumber<TBase>
    {
        switch (y.DataType)
        {
            case DataType.Float: Broadcast.Binary<TBase, float, TBase, MixedPowRows<TBase, float>>(c, p, x, y, o); break;
            case DataType.Double: Broadcast.Binary<TBase, double, TBase, MixedPowRows<TBase, double>>(c, p, x, y, o); break;
            case DataType.Float16: Broadcast.Binary<TBase, Half, TBase, MixedPowRows<TBase, Half>>(c, p, x, y, o); break;
            case DataType.Int8: Broadcast.Binary<TBase, sbyte, TBase, MixedPowRows<TBase, sbyte>>(c, p, x, y, o); break;
            case DataType.UInt8: Broadcast.Binary<TBase, byte, TBase, MixedPowRows<TBase, byte>>(c, p, x, y, o); break;
            case DataType.Int16: Broadcast.Binary<TBase, short, TBase, MixedPowRows<TBase, short>>(c, p, x, y, o); break;
            case DataType.UInt16: Broadcast.Binary<TBase, ushort, TBase, MixedPowRows<TBase, ushort>>(c, p, x, y, o); break;
            case DataType.Int32: Broadcast.Binary<TBase, int, TBase, MixedPowRows<TBase, int>>(c, p, x, y, o); break;
            case DataType.UInt32: Broadcast.Binary<TBase, uint, TBase, MixedPowRows<TBase, uint>>(c, p, x, y, o); break;
            case DataType.Int64: Broadcast.Binary<TBase, long, TBase, MixedPowRows<TBase, long>>(c, p, x, y, o); break;
            case DataType.UInt64: Broadcast.Binary<TBase, ulong, TBase, MixedPowRows<TBase, ulong>>(c, p, x, y, o); break;
            default: throw Unexpected(y.DataType);
        }
    }

    // The operators check types before running; reaching this is a bug, not a model problem.
    private static InvalidOperationException Unexpected(DataType type) => new($"No kernel for {DataTypes.Name(type)}.");
}

/// <summary>
/// A two-input elementwise operator with multidirectional broadcasting (or unidirectional, for PRelu: the
/// second input broadcasts to the first's shape), defined by a row of <see cref="BinarySpecs"/>.
/// </summary>
internal class BinaryOperator : Operator
{
    private readonly bool _unidirectional;

    public BinaryOperator(Node node, BinarySpec spec, bool unidirectional = false) : base(node)
    {
        Spec = spec;
        _unidirectional = unidirectional;
    }

    /// <summary>For subclasses, which choose <see cref="Spec"/> from attributes in their constructors.</summary>
    protected BinaryOperator(Node node) : base(node) => Spec = null!;

    /// <summary>The operation this node runs.</summary>
    protected BinarySpec Spec { get; init; }

    /// <summary>Every row kernel reads both operands' elements before writing the same output element
    /// (<see cref="IBinaryRowKernel{TLeft, TRight, TResult}"/>).</summary>
    public override bool CanRunInPlace(int input) => input is 0 or 1;

    public override void InferOutputs(InferenceContext context)
    {
        DataType a = context.InputType(0), b = context.InputType(1);
        if (Spec.SameTypes && a != b)
            throw Invalid($"both inputs must have one type, not {DataTypes.Name(a)} and {DataTypes.Name(b)}.");
        if (!Spec.Accepts(a, b))
            throw BinaryOperators.UnsupportedTypes(this, a == b ? DataTypes.Name(a) : $"{DataTypes.Name(a)} and {DataTypes.Name(b)}", Spec.Types);
        int[]? x = context.InputShape(0), y = context.InputShape(1), shape;
        if (_unidirectional)
        {
            shape = x;
            var both = BinaryOperators.BroadcastShapes(context, x, y);
            if (x is not null && both is not null && (both.Length != x.Length || !IsUnidirectional(x, both)))
                throw Invalid($"input 1 of shape {Shapes.Format(y)} does not broadcast to input 0's shape {Shapes.Format(x)}.");
        }
        else
        {
            shape = BinaryOperators.BroadcastShapes(context, x, y);
        }
        context.SetOutput(0, Spec.BoolResult ? DataType.Bool : a, shape);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        Tensor x = Required(inputs, 0), y = Required(inputs, 1), output = outputs[0];
        var plan = BinaryOperators.Plan(this, output.Shape, x.Shape, y.Shape);
        Spec.Kernel(context, plan, x, y, output);
    }

    // The broadcast of both shapes may differ from the first only where the first's dimension is unknown.
    private static bool IsUnidirectional(int[] x, int[] both)
    {
        for (int i = 0; i < x.Length; i++)
            if (x[i] >= 0 && x[i] != both[i]) return false;
        return true;
    }
}

/// <summary>Mod: <c>fmod = 0</c> (default) gives the sign of the divisor, integers only; <c>fmod = 1</c> the sign of the dividend.</summary>
internal sealed class ModOperator : BinaryOperator
{
    public ModOperator(Node node) : base(node)
    {
        Spec = Attributes.Int("fmod", 0) switch
        {
            0 => BinarySpecs.FlooredMod,
            1 => BinarySpecs.TruncatedMod,
            var v => throw Invalid($"attribute fmod must be 0 or 1, not {v}."),
        };
    }

    public override void InferOutputs(InferenceContext context)
    {
        if (Spec == BinarySpecs.FlooredMod && DataTypes.IsFloatingPoint(context.InputType(0)))
            throw Invalid("floating-point inputs require fmod = 1.");
        base.InferOutputs(context);
    }
}

/// <summary>BitShift of unsigned integers, <c>direction</c> LEFT or RIGHT.</summary>
internal sealed class BitShiftOperator : BinaryOperator
{
    public BitShiftOperator(Node node) : base(node)
    {
        Spec = Attributes.String("direction", "") switch
        {
            "LEFT" => BinarySpecs.ShiftLeft,
            "RIGHT" => BinarySpecs.ShiftRight,
            var v => throw Invalid($"attribute direction must be LEFT or RIGHT, not '{v}'."),
        };
    }
}

/// <summary>One variadic operator: the binary kernel it folds with and whether it divides by the count.</summary>
/// <param name="Types">The supported input types, for messages.</param>
/// <param name="Accepts">Whether an input type is supported.</param>
/// <param name="Fold">Combines the running result with the next input.</param>
/// <param name="Sums">True for Sum and Mean, which accumulate 16-bit floats in float.</param>
/// <param name="Mean">True to divide the sum by the number of inputs.</param>
internal sealed record VariadicSpec(string Types, Func<DataType, bool> Accepts, BinaryKernel Fold, bool Sums, bool Mean);

/// <summary>The variadic operators' table.</summary>
internal static class VariadicSpecs
{
    private const string FloatTypes = "float, double, float16, bfloat16";

    public static readonly VariadicSpec Max = new("float, double, float16, bfloat16, int8-int64, uint8-uint64", BinarySpecs.IsNumeric, BinaryKernels.Arithmetic<MaxOp>, false, false);
    public static readonly VariadicSpec Min = new("float, double, float16, bfloat16, int8-int64, uint8-uint64", BinarySpecs.IsNumeric, BinaryKernels.Arithmetic<MinOp>, false, false);
    public static readonly VariadicSpec Sum = new(FloatTypes, DataTypes.IsFloatingPoint, BinaryKernels.Arithmetic<AddOp>, true, false);
    public static readonly VariadicSpec Mean = new(FloatTypes, DataTypes.IsFloatingPoint, BinaryKernels.Arithmetic<AddOp>, true, true);
}

/// <summary>
/// Max, Min, Sum, Mean of one or more inputs with multidirectional broadcasting: folds left to right into the
/// output (<c>out = op(in0, in1)</c>, then <c>out = op(out, in_k)</c>). Sum and Mean of 16-bit floats accumulate
/// in float and round once.
/// </summary>
internal sealed class VariadicOperator(Node node, VariadicSpec spec) : Operator(node)
{
    /// <summary>The first fold reads inputs 0 and 1 element by element; later inputs are read after the output was
    /// first written, so they may not share its memory.</summary>
    public override bool CanRunInPlace(int input) => input is 0 or 1;

    public override void InferOutputs(InferenceContext context)
    {
        if (context.InputCount == 0) throw Invalid("needs at least one input.");
        DataType type = context.InputType(0);
        int[]? shape = context.InputShape(0);
        for (int i = 1; i < context.InputCount; i++)
        {
            if (context.InputType(i) != type)
                throw Invalid($"all inputs must have one type; input {i} is {DataTypes.Name(context.InputType(i))}, input 0 {DataTypes.Name(type)}.");
            shape = BinaryOperators.BroadcastShapes(context, shape, context.InputShape(i));
        }
        if (!spec.Accepts(type)) throw BinaryOperators.UnsupportedType(this, type, spec.Types);
        context.SetOutput(0, type, shape);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var output = outputs[0];
        var first = Required(inputs, 0);
        if (inputs.Length == 1)
        {
            first.Bytes.CopyTo(output.Bytes);
            return;
        }
        if (spec.Sums && output.DataType is DataType.Float16 or DataType.BFloat16)
        {
            AccumulateInFloat(context, inputs, output);
            return;
        }
        spec.Fold(context, BinaryOperators.Plan(this, output.Shape, first.Shape, Required(inputs, 1).Shape), first, Required(inputs, 1), output);
        for (int i = 2; i < inputs.Length; i++)
        {
            var next = Required(inputs, i);
            spec.Fold(context, BinaryOperators.Plan(this, output.Shape, output.Shape, next.Shape), output, next, output);
        }
        if (!spec.Mean) return;
        if (output.DataType == DataType.Float) TensorPrimitives.Divide(output.AsSpan<float>(), inputs.Length, output.AsSpan<float>());
        else TensorPrimitives.Divide(output.AsSpan<double>(), inputs.Length, output.AsSpan<double>());
    }

    private void AccumulateInFloat(KernelContext context, ReadOnlySpan<Tensor?> inputs, Tensor output)
    {
        if (output.DataType == DataType.Float16) AccumulateInFloat<Half, HalfFormat>(context, inputs, output);
        else AccumulateInFloat<BFloat16, BFloat16Format>(context, inputs, output);
    }

    private void AccumulateInFloat<T, TFormat>(KernelContext context, ReadOnlySpan<Tensor?> inputs, Tensor output)
        where T : unmanaged where TFormat : IFloat16Format<T>
    {
        // The float sum lives in the context's scratch buffer; only the small Tensor view over it is allocated.
        var sum = new Tensor(DataType.Float, output.Shape, context.Scratch(output.ElementCount * sizeof(float)), 0);
        Tensor first = Required(inputs, 0), second = Required(inputs, 1);
        Broadcast.Binary<T, T, float, WidenBothRows<T, TFormat, ArithmeticRows<float, AddOp>>>(
            context, BinaryOperators.Plan(this, output.Shape, first.Shape, second.Shape), first, second, sum);
        for (int i = 2; i < inputs.Length; i++)
        {
            var next = Required(inputs, i);
            Broadcast.Binary<float, T, float, WidenRightRows<T, TFormat, ArithmeticRows<float, AddOp>>>(
                context, BinaryOperators.Plan(this, output.Shape, output.Shape, next.Shape), sum, next, sum);
        }
        var values = sum.AsSpan<float>();
        if (spec.Mean) TensorPrimitives.Divide(values, inputs.Length, values);
        TFormat.FromSingle(values, MemoryMarshal.Cast<byte, T>(output.Bytes));
    }
}

/// <summary>Where: <c>output = condition ? x : y</c>, all three broadcast multidirectionally. Copies elements by
/// size, so every type is supported.</summary>
internal sealed class WhereOperator(Node node) : Operator(node)
{
    /// <summary>Each output element is chosen after reading X's and Y's elements at its index.</summary>
    public override bool CanRunInPlace(int input) => input is 1 or 2;

    public override void InferOutputs(InferenceContext context)
    {
        if (context.InputType(0) != DataType.Bool) throw Invalid($"the condition must be bool, not {DataTypes.Name(context.InputType(0))}.");
        DataType type = context.InputType(1);
        if (context.InputType(2) != type)
            throw Invalid($"X and Y must have one type, not {DataTypes.Name(type)} and {DataTypes.Name(context.InputType(2))}.");
        if (!DataTypes.IsSupported(type)) throw BinaryOperators.UnsupportedType(this, type, "every fixed-size type");
        var shape = BinaryOperators.BroadcastShapes(context,
            BinaryOperators.BroadcastShapes(context, context.InputShape(0), context.InputShape(1)), context.InputShape(2));
        context.SetOutput(0, type, shape);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        Tensor condition = Required(inputs, 0), x = Required(inputs, 1), y = Required(inputs, 2), output = outputs[0];
        if (!BroadcastPlan.TryCreate(output.Shape, condition.Shape, x.Shape, y.Shape, out var plan))
            throw BinaryOperators.TooManyLoops(this, output.Shape);
        switch (DataTypes.SizeOf(output.DataType))
        {
            case 1: Broadcast.For(context, plan.ElementCount, new WhereBody<byte>(plan, condition, x, y, output)); break;
            case 2: Broadcast.For(context, plan.ElementCount, new WhereBody<ushort>(plan, condition, x, y, output)); break;
            case 4: Broadcast.For(context, plan.ElementCount, new WhereBody<uint>(plan, condition, x, y, output)); break;
            default: Broadcast.For(context, plan.ElementCount, new WhereBody<ulong>(plan, condition, x, y, output)); break;
        }
    }

    private readonly struct WhereBody<T>(BroadcastPlan plan, Tensor condition, Tensor x, Tensor y, Tensor output) : IRangeBody
        where T : unmanaged
    {
        private readonly BroadcastPlan _plan = plan;

        public void Invoke(int start, int end)
        {
            ReadOnlySpan<byte> c = condition.Bytes;
            ReadOnlySpan<T> xs = MemoryMarshal.Cast<byte, T>(x.Bytes), ys = MemoryMarshal.Cast<byte, T>(y.Bytes);
            Span<T> o = MemoryMarshal.Cast<byte, T>(output.Bytes);
            bool cRow = _plan.IsRowContiguous(0), xRow = _plan.IsRowContiguous(1), yRow = _plan.IsRowContiguous(2);
            var rows = _plan.Rows(start, end);
            while (rows.MoveNext())
            {
                var d = o.Slice(rows.OutputOffset, rows.Length);
                if (!cRow)
                {
                    // One condition for the whole row: copy or fill from the chosen side.
                    bool pick = c[rows.Offset0] != 0;
                    var source = pick ? xs : ys;
                    int offset = pick ? rows.Offset1 : rows.Offset2;
                    if (pick ? xRow : yRow) source.Slice(offset, d.Length).CopyTo(d);
                    else d.Fill(source[offset]);
                    continue;
                }
                var cs = c.Slice(rows.Offset0, d.Length);
                if (xRow && yRow) Select(cs, xs.Slice(rows.Offset1, d.Length), ys.Slice(rows.Offset2, d.Length), d);
                else if (xRow) SelectSpanScalar(cs, xs.Slice(rows.Offset1, d.Length), ys[rows.Offset2], d, true);
                else if (yRow) SelectSpanScalar(cs, ys.Slice(rows.Offset2, d.Length), xs[rows.Offset1], d, false);
                else
                {
                    T a = xs[rows.Offset1], b = ys[rows.Offset2];
                    for (int i = 0; i < d.Length; i++) d[i] = cs[i] != 0 ? a : b;
                }
            }
        }

        private static void Select(ReadOnlySpan<byte> c, ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> d)
        {
            for (int i = 0; i < d.Length; i++) d[i] = c[i] != 0 ? x[i] : y[i];
        }

        // d[i] = c[i] ? span[i] : scalar when spanWhenTrue, else c[i] ? scalar : span[i].
        private static void SelectSpanScalar(ReadOnlySpan<byte> c, ReadOnlySpan<T> span, T scalar, Span<T> d, bool spanWhenTrue)
        {
            if (spanWhenTrue)
                for (int i = 0; i < d.Length; i++) d[i] = c[i] != 0 ? span[i] : scalar;
            else
                for (int i = 0; i < d.Length; i++) d[i] = c[i] != 0 ? scalar : span[i];
        }
    }
}
