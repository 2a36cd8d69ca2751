using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Operators;

/// <summary>
/// Elementwise unary math: Abs Neg Sign Ceil Floor Round Exp Log Sqrt Reciprocal Erf, the trigonometric and
/// hyperbolic functions and their inverses, Not, IsNaN, IsInf. Each is a row of the table in
/// <see cref="Register"/>: its kernels by input type, run by one <see cref="UnaryOperator"/> class.
/// </summary>
internal static class UnaryOperators
{
    private static readonly DataType[] s_integers =
        [DataType.Int8, DataType.Int16, DataType.Int32, DataType.Int64, DataType.UInt8, DataType.UInt16, DataType.UInt32, DataType.UInt64];

    private static readonly DataType[] s_signed = [DataType.Int8, DataType.Int16, DataType.Int32, DataType.Int64];

    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        Add(registry, "Abs", UnaryKernels.Numeric(new AbsFamily(), s_integers));
        Add(registry, "Neg", UnaryKernels.Numeric(new NegateFamily(), s_signed));
        Add(registry, "Sign", UnaryKernels.Numeric(new SignFamily(), s_integers), minOpset: 9);
        Add(registry, "Ceil", UnaryKernels.Floating(TensorPrimitives.Ceiling, TensorPrimitives.Ceiling));
        Add(registry, "Floor", UnaryKernels.Floating(TensorPrimitives.Floor, TensorPrimitives.Floor));
        // TensorPrimitives.Round rounds half to even, as ONNX's Round does.
        Add(registry, "Round", UnaryKernels.Floating(TensorPrimitives.Round, TensorPrimitives.Round), minOpset: 11);
        Add(registry, "Exp", UnaryKernels.Floating(new ExpFunction()));
        Add(registry, "Log", UnaryKernels.Floating(TensorPrimitives.Log, TensorPrimitives.Log));
        Add(registry, "Sqrt", UnaryKernels.Floating(TensorPrimitives.Sqrt, TensorPrimitives.Sqrt));
        Add(registry, "Reciprocal", UnaryKernels.Floating(TensorPrimitives.Reciprocal, TensorPrimitives.Reciprocal));
        Add(registry, "Erf", UnaryKernels.Floating(new ErfFunction()), minOpset: 9);
        Add(registry, "Sin", UnaryKernels.Floating(TensorPrimitives.Sin, TensorPrimitives.Sin));
        Add(registry, "Cos", UnaryKernels.Floating(TensorPrimitives.Cos, TensorPrimitives.Cos));
        Add(registry, "Tan", UnaryKernels.Floating(TensorPrimitives.Tan, TensorPrimitives.Tan));
        Add(registry, "Asin", UnaryKernels.Floating(TensorPrimitives.Asin, TensorPrimitives.Asin));
        Add(registry, "Acos", UnaryKernels.Floating(TensorPrimitives.Acos, TensorPrimitives.Acos));
        Add(registry, "Atan", UnaryKernels.Floating(TensorPrimitives.Atan, TensorPrimitives.Atan));
        Add(registry, "Sinh", UnaryKernels.Floating(TensorPrimitives.Sinh, TensorPrimitives.Sinh), minOpset: 9);
        Add(registry, "Cosh", UnaryKernels.Floating(TensorPrimitives.Cosh, TensorPrimitives.Cosh), minOpset: 9);
        Add(registry, "Tanh", UnaryKernels.Floating(new TanhFunction()));
        Add(registry, "Asinh", UnaryKernels.Floating(TensorPrimitives.Asinh, TensorPrimitives.Asinh), minOpset: 9);
        Add(registry, "Acosh", UnaryKernels.Floating(TensorPrimitives.Acosh, TensorPrimitives.Acosh), minOpset: 9);
        Add(registry, "Atanh", UnaryKernels.Floating(TensorPrimitives.Atanh, TensorPrimitives.Atanh), minOpset: 9);
        Add(registry, "Not", new UnaryKernels().Add<bool, bool>(Not));
        Add(registry, "IsNaN", UnaryKernels.FloatingPredicate(TensorPrimitives.IsNaN, TensorPrimitives.IsNaN), minOpset: 9);
        Add(registry, "IsInf", IsInf, minOpset: 10);
    }

    /// <summary>Registers an elementwise operator whose kernels depend on no attribute.</summary>
    internal static void Add(OperatorRegistry.Builder registry, string opType, UnaryKernels kernels, int minOpset = 7) =>
        registry.Add(opType, n => new UnaryOperator(n, _ => kernels), minOpset);

    /// <summary>Registers an elementwise operator whose kernels the node's attributes choose.</summary>
    internal static void Add(OperatorRegistry.Builder registry, string opType, Func<AttributeReader, UnaryKernels> kernels, int minOpset = 7) =>
        registry.Add(opType, n => new UnaryOperator(n, kernels), minOpset);

    private static void Not(ReadOnlySpan<bool> x, Span<bool> y) =>
        TensorPrimitives.IsZero(MemoryMarshal.Cast<bool, byte>(x), y);

    private static UnaryKernels IsInf(AttributeReader attributes)
    {
        bool negative = attributes.Int("detect_negative", 1) != 0;
        bool positive = attributes.Int("detect_positive", 1) != 0;
        return (negative, positive) switch
        {
            (true, true) => UnaryKernels.FloatingPredicate(TensorPrimitives.IsInfinity, TensorPrimitives.IsInfinity),
            (false, true) => UnaryKernels.FloatingPredicate(TensorPrimitives.IsPositiveInfinity, TensorPrimitives.IsPositiveInfinity),
            (true, false) => UnaryKernels.FloatingPredicate(TensorPrimitives.IsNegativeInfinity, TensorPrimitives.IsNegativeInfinity),
            (false, false) => UnaryKernels.FloatingPredicate(static (_, y) => y.Clear(), static (_, y) => y.Clear()),
        };
    }

    private readonly struct AbsFamily : INumericFamily
    {
        public void Map<T>(ReadOnlySpan<T> x, Span<T> y) where T : unmanaged, INumber<T> => Elementwise.Map(new AbsFunction<T>(), x, y);
    }

    private readonly struct NegateFamily : INumericFamily
    {
        public void Map<T>(ReadOnlySpan<T> x, Span<T> y) where T : unmanaged, INumber<T> => Elementwise.Map(new NegateFunction<T>(), x, y);
    }

    private readonly struct SignFamily : INumericFamily
    {
        public void Map<T>(ReadOnlySpan<T> x, Span<T> y) where T : unmanaged, INumber<T> => Elementwise.Map(new SignFunction<T>(), x, y);
    }
}

/// <summary>An elementwise operator with one input and one output of the same shape, computed by the kernel that
/// <see cref="UnaryKernels"/> holds for the input's type.</summary>
internal sealed class UnaryOperator : Operator
{
    private readonly UnaryKernels _kernels;

    /// <summary>Binds the operator; <paramref name="kernels"/> reads the attributes it needs and throws
    /// <see cref="ArgumentException"/> for a value the specification does not allow.</summary>
    public UnaryOperator(Node node, Func<AttributeReader, UnaryKernels> kernels) : base(node)
    {
        try
        {
            _kernels = kernels(Attributes);
        }
        catch (ArgumentException e)
        {
            throw Invalid(e.Message);
        }
    }

    /// <summary>The kernels map spans that are either disjoint or the same memory (<see cref="SpanMap{TIn, TOut}"/>).</summary>
    public override bool CanRunInPlace(int input) => input == 0;

    public override void InferOutputs(InferenceContext context)
    {
        var type = context.InputType(0);
        context.SetOutput(0, Kernel(type).OutputType(type), context.InputShape(0));
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var x = Required(inputs, 0);
        Kernel(x.DataType).Run(context, x, outputs[0]);
    }

    private UnaryKernel Kernel(DataType type) =>
        _kernels.Find(type) ?? throw new SquashException(ErrorCodes.UnsupportedDataType,
            $"{Node.Describe()}: {Node.OpType} does not support {DataTypes.Name(type)} inputs (supported: {_kernels.Describe()}).", Node.Name);
}

/// <summary>The kernel of one elementwise function for one input type.</summary>
internal abstract class UnaryKernel
{
    /// <summary>Elements one thread takes at a time: big enough to amortize scheduling, small enough to share.</summary>
    public const int Grain = 1 << 15;

    /// <summary>The element type of the result for an input of type <paramref name="input"/>.</summary>
    public abstract DataType OutputType(DataType input);

    /// <summary>Computes <paramref name="y"/> from <paramref name="x"/> (same element count).</summary>
    public abstract void Run(KernelContext context, Tensor x, Tensor y);
}

/// <summary>One numeric function for every primitive number type (a generic method stands in for the generic
/// function struct, which C# cannot pass around unbound).</summary>
internal interface INumericFamily
{
    /// <summary>Applies the function to a span of <typeparamref name="T"/>.</summary>
    void Map<T>(ReadOnlySpan<T> x, Span<T> y) where T : unmanaged, INumber<T>;
}

/// <summary>The kernels of one elementwise function, by input type.</summary>
internal sealed class UnaryKernels
{
    private readonly Dictionary<DataType, UnaryKernel> _byType = [];

    /// <summary>The kernel for <paramref name="type"/>, or null when the function does not support it.</summary>
    public UnaryKernel? Find(DataType type) => _byType.GetValueOrDefault(type);

    /// <summary>The supported input types, for messages.</summary>
    public string Describe() => string.Join(", ", _byType.Keys.Order().Select(DataTypes.Name));

    /// <summary>Adds (or replaces) the kernel for input type <typeparamref name="TIn"/>.</summary>
    public UnaryKernels Add<TIn, TOut>(SpanMap<TIn, TOut> map) where TIn : unmanaged where TOut : unmanaged =>
        Add(DataTypes.Of<TIn>(), new MapKernel<TIn, TOut>(map));

    /// <summary>Adds (or replaces) the kernel for <paramref name="type"/>.</summary>
    public UnaryKernels Add(DataType type, UnaryKernel kernel)
    {
        _byType[type] = kernel;
        return this;
    }

    /// <summary>Float, double, float16 and bfloat16 kernels of a vectorized float function.</summary>
    public static UnaryKernels Floating<TF>(TF function) where TF : struct, IFloatFunction
    {
        var kernel = new FloatFunctionKernel<TF>(function);
        return new UnaryKernels().Add(DataType.Float, kernel).Add(DataType.Double, kernel)
            .Add(DataType.Float16, kernel).Add(DataType.BFloat16, kernel);
    }

    /// <summary>Float and double kernels from span functions; float16 and bfloat16 compute through float.</summary>
    public static UnaryKernels Floating(SpanMap<float, float> single, SpanMap<double, double> @double) =>
        new UnaryKernels().Add(single).Add(@double).Add(Elementwise.ForFloat16(single)).Add(Elementwise.ForBFloat16(single));

    /// <summary>Kernels of a test on float types whose result is bool.</summary>
    public static UnaryKernels FloatingPredicate(SpanMap<float, bool> single, SpanMap<double, bool> @double) =>
        new UnaryKernels().Add(single).Add(@double).Add(Elementwise.ForFloat16To(single)).Add(Elementwise.ForBFloat16To(single));

    /// <summary>Kernels of a numeric function for the float types and the given integer types.</summary>
    public static UnaryKernels Numeric<TFamily>(TFamily family, ReadOnlySpan<DataType> integers) where TFamily : struct, INumericFamily
    {
        SpanMap<float, float> single = (x, y) => family.Map(x, y);
        return new UnaryKernels()
            .Add(DataType.Float, new FamilyKernel<float, TFamily>(family))
            .Add(DataType.Double, new FamilyKernel<double, TFamily>(family))
            .Add(Elementwise.ForFloat16(single))
            .Add(Elementwise.ForBFloat16(single))
            .AddIntegers(family, integers);
    }

    /// <summary>Adds kernels of a numeric function for the given integer types.</summary>
    public UnaryKernels AddIntegers<TFamily>(TFamily family, ReadOnlySpan<DataType> integers) where TFamily : struct, INumericFamily
    {
        foreach (var type in integers)
        {
            Add(type, type switch
            {
                DataType.Int8 => new FamilyKernel<sbyte, TFamily>(family),
                DataType.Int16 => new FamilyKernel<short, TFamily>(family),
                DataType.Int32 => new FamilyKernel<int, TFamily>(family),
                DataType.Int64 => new FamilyKernel<long, TFamily>(family),
                DataType.UInt8 => new FamilyKernel<byte, TFamily>(family),
                DataType.UInt16 => new FamilyKernel<ushort, TFamily>(family),
                DataType.UInt32 => new FamilyKernel<uint, TFamily>(family),
                DataType.UInt64 => new FamilyKernel<ulong, TFamily>(family),
                _ => throw new ArgumentException($"{DataTypes.Name(type)} is not an integer type.", nameof(integers)),
            });
        }
        return this;
    }
}

/// <summary>Runs a span function over a tensor, split across threads.</summary>
internal sealed class MapKernel<TIn, TOut>(SpanMap<TIn, TOut> map) : UnaryKernel where TIn : unmanaged where TOut : unmanaged
{
    public override DataType OutputType(DataType input) => DataTypes.Of<TOut>();

    public override void Run(KernelContext context, Tensor x, Tensor y) => context.For(x.ElementCount, new Body(map, x, y), Grain);

    private readonly struct Body(SpanMap<TIn, TOut> map, Tensor x, Tensor y) : IRangeBody
    {
        public void Invoke(int start, int end) => map(x.AsSpan<TIn>()[start..end], y.AsSpan<TOut>()[start..end]);
    }
}

/// <summary>Runs a vectorized float function over a float, double, float16 or bfloat16 tensor.</summary>
internal sealed class FloatFunctionKernel<TF>(TF function) : UnaryKernel where TF : struct, IFloatFunction
{
    public override DataType OutputType(DataType input) => input;

    public override void Run(KernelContext context, Tensor x, Tensor y) =>
        context.For(x.ElementCount, new FloatFunctionBody<TF>(function, x, y), Grain);
}

/// <summary>Applies a float function to a range of a float, double, float16 or bfloat16 tensor.</summary>
internal readonly struct FloatFunctionBody<TF>(TF function, Tensor x, Tensor y) : IRangeBody where TF : struct, IFloatFunction
{
    public void Invoke(int start, int end)
    {
        switch (x.DataType)
        {
            case DataType.Float: Elementwise.Map(function, x.AsSpan<float>()[start..end], y.AsSpan<float>()[start..end]); break;
            case DataType.Double: Elementwise.Map(function, x.AsSpan<double>()[start..end], y.AsSpan<double>()[start..end]); break;
            case DataType.Float16: Elementwise.Map(function, x.AsSpan<Half>()[start..end], y.AsSpan<Half>()[start..end]); break;
            case DataType.BFloat16: Elementwise.Map(function, x.AsSpan<BFloat16>()[start..end], y.AsSpan<BFloat16>()[start..end]); break;
            default: throw new InvalidOperationException($"A float function cannot run on {DataTypes.Name(x.DataType)}.");
        }
    }
}

/// <summary>Runs a numeric function family's member for <typeparamref name="T"/> over a tensor.</summary>
internal sealed class FamilyKernel<T, TFamily>(TFamily family) : UnaryKernel
    where T : unmanaged, INumber<T> where TFamily : struct, INumericFamily
{
    public override DataType OutputType(DataType input) => input;

    public override void Run(KernelContext context, Tensor x, Tensor y) => context.For(x.ElementCount, new Body(family, x, y), Grain);

    private readonly struct Body(TFamily family, Tensor x, Tensor y) : IRangeBody
    {
        public void Invoke(int start, int end) => family.Map(x.AsSpan<T>()[start..end], y.AsSpan<T>()[start..end]);
    }
}

/// <summary>Applies a numeric function to a range of a tensor of <typeparamref name="T"/>.</summary>
internal readonly struct NumericFunctionBody<T, TF>(TF function, Tensor x, Tensor y) : IRangeBody
    where T : unmanaged, INumber<T> where TF : struct, INumericFunction<T>
{
    public void Invoke(int start, int end) => Elementwise.Map<T, TF>(function, x.AsSpan<T>()[start..end], y.AsSpan<T>()[start..end]);
}
