using System.Numerics;
using System.Numerics.Tensors;
using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Operators;

/// <summary>Pooling: AveragePool MaxPool LpPool GlobalAveragePool GlobalMaxPool GlobalLpPool.</summary>
internal static class PoolingOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        registry.Add("AveragePool", n => new PoolOperator(n, PoolKind.Average), minOpset: 1);
        registry.Add("MaxPool", n => new PoolOperator(n, PoolKind.Max), minOpset: 1);
        registry.Add("LpPool", n => new PoolOperator(n, PoolKind.Lp), minOpset: 1);
        registry.Add("GlobalAveragePool", n => new GlobalPoolOperator(n, GlobalPool.Average), minOpset: 1);
        registry.Add("GlobalMaxPool", n => new GlobalPoolOperator(n, GlobalPool.Max), minOpset: 1);
        registry.Add("GlobalLpPool", n => new GlobalPoolOperator(n, GlobalPool.Lp), minOpset: 1);
    }

    /// <summary>LpPool's and GlobalLpPool's <c>p</c>: a float before opset 2, an integer since; 2 by default.</summary>
    internal static float ReadP(AttributeReader attributes)
    {
        var raw = attributes.Raw("p");
        return raw is null ? 2f : raw.Kind == AttributeKind.Float ? raw.FloatValue : raw.IntValue;
    }

    /// <summary>An exception for an input of a type the operator does not take.</summary>
    internal static SquashException UnsupportedType(Node node, DataType type) =>
        new(ErrorCodes.UnsupportedDataType, $"{node.Describe()}: inputs of type {DataTypes.Name(type)} are not supported.", node.Name);
}

/// <summary>The windowed pooling operators.</summary>
internal enum PoolKind
{
    /// <summary>AveragePool.</summary>
    Average,
    /// <summary>MaxPool.</summary>
    Max,
    /// <summary>LpPool.</summary>
    Lp,
}

/// <summary>
/// AveragePool, MaxPool (with the optional Indices output) and LpPool over 1 to 3 spatial axes: kernel_shape,
/// strides, dilations, pads or auto_pad, ceil_mode, count_include_pad (AveragePool), storage_order (MaxPool), p (LpPool).
/// </summary>
internal sealed class PoolOperator : Operator
{
    private readonly PoolKind _kind;
    private readonly PoolSettings _settings;
    private readonly bool _columnMajor;
    private readonly float _p;
    private PoolGeometry? _cached;

    public PoolOperator(Node node, PoolKind kind) : base(node)
    {
        _kind = kind;
        string autoPad = Attributes.String("auto_pad", "NOTSET");
        long[] kernel = Attributes.Ints("kernel_shape") ?? throw Invalid("attribute 'kernel_shape' is required.");
        long[]? strides = Attributes.Ints("strides");
        long[]? dilations = Attributes.Ints("dilations");
        long[]? pads = Attributes.Ints("pads");
        bool ceilMode = Attributes.Int("ceil_mode", 0) != 0;
        bool countIncludePad = kind == PoolKind.Average && Attributes.Int("count_include_pad", 0) != 0;
        _columnMajor = kind == PoolKind.Max && Attributes.Int("storage_order", 0) != 0;
        _p = kind == PoolKind.Lp ? PoolingOperators.ReadP(Attributes) : 0;
        if (kind == PoolKind.Lp && !(_p > 0)) throw Invalid($"p must be positive, not {_p}.");

        int rank = kernel.Length;
        if (rank == 0) throw Invalid("kernel_shape is empty.");
        if (rank > 3) throw Unsupported($"pooling over {rank} spatial axes is not supported (at most 3).");
        var mode = autoPad switch
        {
            "NOTSET" or "" => PoolAutoPad.NotSet,
            "VALID" => PoolAutoPad.Valid,
            "SAME_UPPER" => PoolAutoPad.SameUpper,
            "SAME_LOWER" => PoolAutoPad.SameLower,
            _ => throw Invalid($"auto_pad '{autoPad}' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID."),
        };
        _settings = new PoolSettings(
            ToPositive(kernel, rank, "kernel_shape"),
            strides is null ? Ones(rank) : ToPositive(strides, rank, "strides"),
            dilations is null ? Ones(rank) : ToPositive(dilations, rank, "dilations"),
            pads is null || mode != PoolAutoPad.NotSet ? new int[2 * rank] : ToPads(pads, rank),
            mode, ceilMode, countIncludePad);
    }

    private static int[] Ones(int rank) => Enumerable.Repeat(1, rank).ToArray();

    private int[] ToPositive(long[] values, int rank, string name)
    {
        if (values.Length != rank) throw Invalid($"{name} has {values.Length} values; kernel_shape has {rank}.");
        var result = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            if (values[i] < 1 || values[i] > int.MaxValue) throw Invalid($"{name} values must be positive, not {values[i]}.");
            result[i] = (int)values[i];
        }
        return result;
    }

    private int[] ToPads(long[] pads, int rank)
    {
        if (pads.Length != 2 * rank) throw Invalid($"pads has {pads.Length} values; expected {2 * rank} (begins, then ends).");
        var result = new int[pads.Length];
        for (int i = 0; i < pads.Length; i++)
        {
            if (pads[i] < 0 || pads[i] > int.MaxValue) throw Invalid($"pads must not be negative, not {pads[i]}.");
            result[i] = (int)pads[i];
        }
        return result;
    }

    private bool WantsIndices => _kind == PoolKind.Max && Node.Outputs.Count > 1 && Node.Outputs[1].Name.Length > 0;

    public override void InferOutputs(InferenceContext context)
    {
        var type = context.InputType(0);
        bool supported = type is DataType.Float or DataType.Double or DataType.Float16 or DataType.BFloat16
            || (_kind == PoolKind.Max && type is DataType.Int8 or DataType.UInt8);
        if (!supported) throw PoolingOperators.UnsupportedType(Node, type);
        var shape = context.InputShape(0);
        int[]? output = null;
        if (shape is not null)
        {
            int rank = _settings.Rank;
            if (shape.Length != rank + 2)
                throw Invalid($"the input has shape {Shapes.Format(shape)}; kernel_shape has {rank} axes, so it needs rank {rank + 2}.");
            output = new int[shape.Length];
            output[0] = shape[0];
            output[1] = shape[1];
            for (int i = 0; i < rank; i++)
            {
                output[i + 2] = _settings.OutputSize(i, shape[i + 2]);
                if (shape[i + 2] >= 0 && output[i + 2] < 1)
                    throw Invalid($"the pooling window does not fit spatial axis {i} of size {shape[i + 2]}.");
            }
        }
        context.SetOutput(0, type, output);
        context.SetOutput(1, DataType.Int64, output);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        Tensor x = Required(inputs, 0);
        Tensor y = outputs[0];
        PoolGeometry geometry = Geometry(x.Shape);
        Tensor? indices = WantsIndices ? outputs[1] : null;
        if (ReducedFloat.Handles(x.DataType))
        {
            var (wideX, wideY) = ReducedFloat.Stage(context, x, y.Shape);
            RunFloating<float>(context, geometry, wideX, wideY, indices, inPlace: true);
            ReducedFloat.Narrow(wideY.AsSpan<float>(), y);
            return;
        }
        switch (x.DataType)
        {
            case DataType.Float: RunFloating<float>(context, geometry, x, y, indices, inPlace: false); break;
            case DataType.Double: RunFloating<double>(context, geometry, x, y, indices, inPlace: false); break;
            case DataType.Int8: RunMax<sbyte>(context, geometry, x, y, indices); break;
            case DataType.UInt8: RunMax<byte>(context, geometry, x, y, indices); break;
            default: throw PoolingOperators.UnsupportedType(Node, x.DataType);
        }
    }

    private PoolGeometry Geometry(int[] shape)
    {
        // Shapes rarely change between runs; the tables are rebuilt only when they do. One reference is swapped,
        // so concurrent runs see either geometry whole.
        if (_cached is { } cached && Shapes.Equal(cached.InputShape, shape)) return cached;
        PoolGeometry geometry;
        try
        {
            geometry = new PoolGeometry(_settings, shape);
        }
        catch (ArgumentException e)
        {
            throw Invalid(e.Message);
        }
        _cached = geometry;
        return geometry;
    }

    private void RunMax<T>(KernelContext context, PoolGeometry geometry, Tensor x, Tensor y, Tensor? indices)
        where T : unmanaged, INumber<T>, IMinMaxValue<T>
    {
        if (indices is not null) Pooling.MaxWithIndices<T>(context, geometry, x, y, indices, _columnMajor);
        else Pooling.Run<T, MaxCombine<T>>(context, geometry, x, y, divide: false);
    }

    // inPlace: x is a scratch copy that LpPool may overwrite.
    private void RunFloating<T>(KernelContext context, PoolGeometry geometry, Tensor x, Tensor y, Tensor? indices, bool inPlace)
        where T : unmanaged, IFloatingPointIeee754<T>, IMinMaxValue<T>
    {
        switch (_kind)
        {
            case PoolKind.Max:
                RunMax<T>(context, geometry, x, y, indices);
                break;
            case PoolKind.Average:
                Pooling.Run<T, SumCombine<T>>(context, geometry, x, y, divide: true);
                break;
            default:
                // LpPool: sum |x|^p over each window (padding adds 0), then take the p-th root.
                Tensor powers = inPlace ? x : new Tensor(x.DataType, x.Shape, context.Scratch(x.ByteLength), 0);
                ReadOnlySpan<T> source = x.AsSpan<T>();
                Span<T> pw = powers.AsSpan<T>();
                T p = T.CreateChecked(_p);
                if (_p == 2) TensorPrimitives.Multiply(source, source, pw);
                else
                {
                    TensorPrimitives.Abs(source, pw);
                    if (_p != 1) TensorPrimitives.Pow(pw, p, pw);
                }
                Pooling.Run<T, SumCombine<T>>(context, geometry, powers, y, divide: false);
                Span<T> ys = y.AsSpan<T>();
                if (_p == 2) TensorPrimitives.Sqrt(ys, ys);
                else if (_p != 1) TensorPrimitives.Pow(ys, T.One / p, ys);
                break;
        }
    }
}

/// <summary>GlobalAveragePool, GlobalMaxPool and GlobalLpPool: one value per (N, C) plane.</summary>
internal sealed class GlobalPoolOperator : Operator
{
    private readonly GlobalPool _kind;
    private readonly float _p;

    public GlobalPoolOperator(Node node, GlobalPool kind) : base(node)
    {
        _kind = kind;
        _p = kind == GlobalPool.Lp ? PoolingOperators.ReadP(Attributes) : 0;
        if (kind == GlobalPool.Lp && !(_p > 0)) throw Invalid($"p must be positive, not {_p}.");
    }

    public override void InferOutputs(InferenceContext context)
    {
        var type = context.InputType(0);
        if (!DataTypes.IsFloatingPoint(type)) throw PoolingOperators.UnsupportedType(Node, type);
        var shape = context.InputShape(0);
        int[]? output = null;
        if (shape is not null)
        {
            if (shape.Length < 2) throw Invalid($"the input has shape {Shapes.Format(shape)}; it needs at least [N, C].");
            output = new int[shape.Length];
            output.AsSpan().Fill(1);
            output[0] = shape[0];
            output[1] = shape[1];
        }
        context.SetOutput(0, type, output);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        Tensor x = Required(inputs, 0);
        Tensor y = outputs[0];
        int planes = x.Shape[0] * x.Shape[1];
        switch (x.DataType)
        {
            case DataType.Float: Pooling.Global<float>(context, _kind, _p, x, y, planes); break;
            case DataType.Double: Pooling.Global<double>(context, _kind, _p, x, y, planes); break;
            default:
                var (wideX, wideY) = ReducedFloat.Stage(context, x, y.Shape);
                Pooling.Global<float>(context, _kind, _p, wideX, wideY, planes);
                ReducedFloat.Narrow(wideY.AsSpan<float>(), y);
                break;
        }
    }
}
