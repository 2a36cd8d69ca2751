using System.Buffers;
using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Operators;

/// <summary>Reductions: ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd
/// ReduceSum ReduceSumSquare ArgMax ArgMin CumSum TopK.</summary>
internal static class ReduceOperators
{
    /// <summary>The Reduce* operators and what each computes.</summary>
    private static readonly (string OpType, ReductionKind Kind)[] s_reductions =
    [
        ("ReduceSum", ReductionKind.Sum),
        ("ReduceMean", ReductionKind.Mean),
        ("ReduceProd", ReductionKind.Prod),
        ("ReduceMax", ReductionKind.Max),
        ("ReduceMin", ReductionKind.Min),
        ("ReduceL1", ReductionKind.L1),
        ("ReduceL2", ReductionKind.L2),
        ("ReduceSumSquare", ReductionKind.SumSquare),
        ("ReduceLogSum", ReductionKind.LogSum),
        ("ReduceLogSumExp", ReductionKind.LogSumExp),
    ];

    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        foreach (var (opType, kind) in s_reductions)
            registry.Add(opType, n => new ReduceOperator(n, kind), minOpset: 1);
        registry.Add("ArgMax", n => new ArgExtremeOperator(n, max: true), minOpset: 1);
        registry.Add("ArgMin", n => new ArgExtremeOperator(n, max: false), minOpset: 1);
        registry.Add("CumSum", n => new CumSumOperator(n), minOpset: 11);
        registry.Add("TopK", n => new TopKOperator(n), minOpset: 1);
    }

    /// <summary>An exception for an element type the operator does not take.</summary>
    internal static SquashException UnsupportedType(Node node, DataType type) =>
        new(ErrorCodes.UnsupportedDataType, $"{node.Describe()}: {node.OpType} does not support {DataTypes.Name(type)} tensors.", node.Name);

    /// <summary>Splits a shape at <paramref name="axis"/> into [outer, length, inner].</summary>
    internal static (int Outer, int Length, int Inner) Split(int[] shape, int axis) =>
        (Shapes.Product(shape, 0, axis), shape.Length == 0 ? 1 : shape[axis], Shapes.Product(shape, axis + 1, shape.Length));
}

/// <summary>
/// ReduceSum, ReduceMean, ReduceProd, ReduceMax, ReduceMin, ReduceL1, ReduceL2, ReduceSumSquare, ReduceLogSum and
/// ReduceLogSumExp. Axes come from the <c>axes</c> attribute (before opset 13 for ReduceSum, 18 for the others) or
/// the optional second input (after); no axes means all axes, or none with <c>noop_with_empty_axes</c>.
/// </summary>
internal sealed class ReduceOperator : Operator
{
    private readonly ReductionKind _kind;
    private readonly long[]? _axesAttribute;
    private readonly bool _keepDims;
    private readonly bool _noopWithEmptyAxes;

    public ReduceOperator(Node node, ReductionKind kind) : base(node)
    {
        _kind = kind;
        _axesAttribute = Attributes.Ints("axes");
        _keepDims = Attributes.Int("keepdims", 1) != 0;
        _noopWithEmptyAxes = Attributes.Int("noop_with_empty_axes", 0) != 0;
        if (_axesAttribute is not null && node.Input(1) is not null)
            throw Invalid("axes are given both as an attribute and as an input.");
    }

    public override void InferOutputs(InferenceContext context)
    {
        var type = context.InputType(0);
        CheckType(type);
        var shape = context.InputShape(0);
        if (shape is null)
        {
            context.SetOutput(0, type, null);
            return;
        }
        if (!TryGetAxes(context.HasInput(1), context.InputValue(1), out var axes))
        {
            // Axes known only at run time: with keepdims the rank survives, but any dimension may become 1.
            int[]? guess = null;
            if (_keepDims)
            {
                guess = new int[shape.Length];
                for (int i = 0; i < shape.Length; i++) guess[i] = shape[i] == 1 ? 1 : -1;
            }
            context.SetOutput(0, type, guess);
            return;
        }
        var reduced = ReducedAxes(axes, shape.Length);
        context.SetOutput(0, type, reduced is null ? shape : OutputShape(shape, reduced));
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var input = Required(inputs, 0);
        TryGetAxes(Optional(inputs, 1) is not null, Optional(inputs, 1), out var axes);
        var reduced = ReducedAxes(axes, input.Rank);
        if (reduced is null)
        {
            input.Bytes.CopyTo(outputs[0].Bytes);
            return;
        }
        Reduction.Reduce(context, _kind, input, outputs[0], reduced);
    }

    private void CheckType(DataType type)
    {
        bool ok = DataTypes.IsFloatingPoint(type) || DataTypes.IsInteger(type)
            || (type == DataType.Bool && _kind is ReductionKind.Max or ReductionKind.Min);
        if (!ok) throw ReduceOperators.UnsupportedType(Node, type);
    }

    /// <summary>The axes, or false when they come from an input whose value is not known yet.</summary>
    private bool TryGetAxes(bool hasAxesInput, Tensor? axesValue, out long[] axes)
    {
        if (_axesAttribute is not null)
        {
            axes = _axesAttribute;
            return true;
        }
        if (!hasAxesInput)
        {
            axes = [];
            return true;
        }
        if (axesValue is null)
        {
            axes = [];
            return false;
        }
        if (axesValue.DataType != DataType.Int64) throw Invalid($"axes must be int64, not {DataTypes.Name(axesValue.DataType)}.");
        axes = axesValue.ToInt64Array();
        return true;
    }

    /// <summary>Which axes to reduce, or null for the no-op (empty axes with noop_with_empty_axes).</summary>
    private bool[]? ReducedAxes(long[] axes, int rank)
    {
        var reduced = new bool[rank];
        if (axes.Length == 0)
        {
            if (_noopWithEmptyAxes) return null;
            Array.Fill(reduced, true);
            return reduced;
        }
        foreach (long a in axes)
        {
            if (a < -rank || a >= rank) throw Invalid($"axis {a} is out of range for rank {rank}.");
            int axis = (int)(a < 0 ? a + rank : a);
            if (reduced[axis]) throw Invalid($"axis {a} is listed twice.");
            reduced[axis] = true;
        }
        return reduced;
    }

    private int[] OutputShape(int[] shape, bool[] reduced)
    {
        var result = new List<int>(shape.Length);
        for (int i = 0; i < shape.Length; i++)
        {
            if (!reduced[i]) result.Add(shape[i]);
            else if (_keepDims) result.Add(1);
        }
        return [.. result];
    }
}

/// <summary>ArgMax and ArgMin: int64 indices of the extreme along <c>axis</c>; <c>select_last_index</c> picks the
/// last of equal extremes instead of the first.</summary>
internal sealed class ArgExtremeOperator : Operator
{
    private readonly bool _max;
    private readonly long _axis;
    private readonly bool _keepDims;
    private readonly bool _lastIndex;

    public ArgExtremeOperator(Node node, bool max) : base(node)
    {
        _max = max;
        _axis = Attributes.Int("axis", 0);
        _keepDims = Attributes.Int("keepdims", 1) != 0;
        _lastIndex = Attributes.Int("select_last_index", 0) != 0;
    }

    public override void InferOutputs(InferenceContext context)
    {
        var type = context.InputType(0);
        if (!DataTypes.IsFloatingPoint(type) && !DataTypes.IsInteger(type)) throw ReduceOperators.UnsupportedType(Node, type);
        var shape = context.InputShape(0);
        if (shape is null)
        {
            context.SetOutput(0, DataType.Int64, null);
            return;
        }
        int axis = Axis(shape.Length);
        var output = new List<int>(shape.Length);
        for (int i = 0; i < shape.Length; i++)
        {
            if (i != axis) output.Add(shape[i]);
            else if (_keepDims) output.Add(1);
        }
        context.SetOutput(0, DataType.Int64, [.. output]);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var x = Required(inputs, 0);
        var (outer, length, inner) = ReduceOperators.Split(x.Shape, Axis(x.Rank));
        if (outer * inner == 0) return;
        if (length == 0) throw Invalid($"cannot take the {(_max ? "ArgMax" : "ArgMin")} of an empty axis (input shape {Shapes.Format(x.Shape)}).");
        var y = outputs[0].AsSpan<long>();
        switch (x.DataType)
        {
            case DataType.Float: Run<float>(context, x, y, outer, length, inner); break;
            case DataType.Double: Run<double>(context, x, y, outer, length, inner); break;
            case DataType.Float16: Run<Half>(context, x, y, outer, length, inner); break;
            case DataType.Int8: Run<sbyte>(context, x, y, outer, length, inner); break;
            case DataType.UInt8: Run<byte>(context, x, y, outer, length, inner); break;
            case DataType.Int16: Run<short>(context, x, y, outer, length, inner); break;
            case DataType.UInt16: Run<ushort>(context, x, y, outer, length, inner); break;
            case DataType.Int32: Run<int>(context, x, y, outer, length, inner); break;
            case DataType.UInt32: Run<uint>(context, x, y, outer, length, inner); break;
            case DataType.Int64: Run<long>(context, x, y, outer, length, inner); break;
            case DataType.UInt64: Run<ulong>(context, x, y, outer, length, inner); break;
            case DataType.BFloat16:
                {
                    // bf16 widens to fp32 exactly, so comparisons are unchanged.
                    var wide = new float[x.ElementCount];
                    FloatBridge.Widen(x, wide);
                    Reduction.ArgExtreme<float>(wide, y, outer, length, inner, _max, _lastIndex, new float[inner]);
                    break;
                }
            default: throw ReduceOperators.UnsupportedType(Node, x.DataType);
        }
    }

    private void Run<T>(KernelContext context, Tensor x, Span<long> y, int outer, int length, int inner) where T : unmanaged, INumber<T>
    {
        var scratch = MemoryMarshal.Cast<byte, T>(context.Scratch(inner * System.Runtime.CompilerServices.Unsafe.SizeOf<T>()).AsSpan());
        Reduction.ArgExtreme(x.AsSpan<T>(), y, outer, length, inner, _max, _lastIndex, scratch);
    }

    private int Axis(int rank)
    {
        if (_axis < -rank || _axis >= rank) throw Invalid($"axis {_axis} is out of range for rank {rank}.");
        return (int)(_axis < 0 ? _axis + rank : _axis);
    }
}

/// <summary>CumSum: running sums along the axis given by the second input; <c>exclusive</c> leaves out the element
/// itself, <c>reverse</c> sums from the end. fp16 and bf16 sum in fp32 and round each result.</summary>
internal sealed class CumSumOperator : Operator
{
    private readonly bool _exclusive;
    private readonly bool _reverse;

    public CumSumOperator(Node node) : base(node)
    {
        _exclusive = Attributes.Int("exclusive", 0) != 0;
        _reverse = Attributes.Int("reverse", 0) != 0;
    }

    public override void InferOutputs(InferenceContext context)
    {
        var type = context.InputType(0);
        if (!DataTypes.IsFloatingPoint(type) && !DataTypes.IsInteger(type)) throw ReduceOperators.UnsupportedType(Node, type);
        if (context.InputValue(1) is { } axis && axis.ElementCount != 1) throw Invalid("axis must hold one value.");
        context.SetOutput(0, type, context.InputShape(0));
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var x = Required(inputs, 0);
        var axisTensor = Required(inputs, 1);
        if (axisTensor.ElementCount != 1 || axisTensor.DataType is not (DataType.Int32 or DataType.Int64))
            throw Invalid("axis must be one int32 or int64 value.");
        long a = axisTensor.GetAsInt64(0);
        int rank = x.Rank;
        if (a < -rank || a >= rank) throw Invalid($"axis {a} is out of range for rank {rank}.");
        var (outer, length, inner) = ReduceOperators.Split(x.Shape, (int)(a < 0 ? a + rank : a));
        var y = outputs[0];
        switch (x.DataType)
        {
            case DataType.Float: Scan(x.AsSpan<float>(), y.AsSpan<float>(), outer, length, inner); break;
            case DataType.Double: Scan(x.AsSpan<double>(), y.AsSpan<double>(), outer, length, inner); break;
            case DataType.Int8: Scan(x.AsSpan<sbyte>(), y.AsSpan<sbyte>(), outer, length, inner); break;
            case DataType.UInt8: Scan(x.AsSpan<byte>(), y.AsSpan<byte>(), outer, length, inner); break;
            case DataType.Int16: Scan(x.AsSpan<short>(), y.AsSpan<short>(), outer, length, inner); break;
            case DataType.UInt16: Scan(x.AsSpan<ushort>(), y.AsSpan<ushort>(), outer, length, inner); break;
            case DataType.Int32: Scan(x.AsSpan<int>(), y.AsSpan<int>(), outer, length, inner); break;
            case DataType.UInt32: Scan(x.AsSpan<uint>(), y.AsSpan<uint>(), outer, length, inner); break;
            case DataType.Int64: Scan(x.AsSpan<long>(), y.AsSpan<long>(), outer, length, inner); break;
            case DataType.UInt64: Scan(x.AsSpan<ulong>(), y.AsSpan<ulong>(), outer, length, inner); break;
            case DataType.Float16 or DataType.BFloat16:
                {
                    var wide = new float[2 * x.ElementCount];
                    FloatBridge.Widen(x, wide.AsSpan(0, x.ElementCount));
                    Scan<float>(wide.AsSpan(0, x.ElementCount), wide.AsSpan(x.ElementCount), outer, length, inner);
                    FloatBridge.Narrow(wide.AsSpan(x.ElementCount), y);
                    break;
                }
            default: throw ReduceOperators.UnsupportedType(Node, x.DataType);
        }
    }

    /// <summary>Running sums over [outer, length, inner]: whole rows of <paramref name="inner"/> at a time.</summary>
    private void Scan<T>(ReadOnlySpan<T> x, Span<T> y, int outer, int length, int inner) where T : unmanaged, INumber<T>
    {
        int step = _reverse ? -1 : 1;
        for (int o = 0; o < outer; o++)
        {
            var xb = x.Slice(o * length * inner, length * inner);
            var yb = y.Slice(o * length * inner, length * inner);
            int first = _reverse ? length - 1 : 0;
            if (inner == 1)
            {
                T sum = T.Zero;
                for (int k = 0, r = first; k < length; k++, r += step)
                {
                    if (_exclusive)
                    {
                        yb[r] = sum;
                        sum += xb[r];
                    }
                    else
                    {
                        sum += xb[r];
                        yb[r] = sum;
                    }
                }
                continue;
            }
            // Row r (of inner elements) is row r-step plus x row r (inclusive) or x row r-step (exclusive).
            if (length == 0) continue;
            if (_exclusive) yb.Slice(first * inner, inner).Clear();
            else xb.Slice(first * inner, inner).CopyTo(yb.Slice(first * inner, inner));
            for (int k = 1, r = first + step; k < length; k++, r += step)
            {
                int source = _exclusive ? r - step : r;
                TensorPrimitives.Add<T>(yb.Slice((r - step) * inner, inner), xb.Slice(source * inner, inner), yb.Slice(r * inner, inner));
            }
        }
    }
}

/// <summary>
/// TopK: the k largest (or smallest) elements along <c>axis</c> and their int64 indices, best first. Equal values
/// keep the lower index first, as the specification asks; NaN counts as larger than every number. Results are sorted
/// also when <c>sorted</c> = 0 (the order is then unspecified, so sorted is valid).
/// </summary>
internal sealed class TopKOperator : Operator
{
    private readonly long? _kAttribute;
    private readonly long _axis;
    private readonly bool _largest;

    public TopKOperator(Node node) : base(node)
    {
        // Opset 1 takes k as an attribute; opset 10 and later as the second input.
        _kAttribute = Attributes.Has("k") ? Attributes.Int("k", 0) : null;
        _axis = Attributes.Int("axis", -1);
        _largest = Attributes.Int("largest", 1) != 0;
        Attributes.Int("sorted", 1);
        if (_kAttribute is null && node.Input(1) is null) throw Invalid("k is missing (attribute before opset 10, input after).");
        if (_kAttribute < 0) throw Invalid($"k = {_kAttribute} is negative.");
        if (node.Outputs.Count != 2) throw Invalid($"has {node.Outputs.Count} outputs; TopK has two (values and indices).");
    }

    public override void InferOutputs(InferenceContext context)
    {
        var type = context.InputType(0);
        if (!DataTypes.IsFloatingPoint(type) && !DataTypes.IsInteger(type)) throw ReduceOperators.UnsupportedType(Node, type);
        var shape = context.InputShape(0);
        int[]? output = null;
        if (shape is not null)
        {
            int axis = Axis(shape.Length);
            output = (int[])shape.Clone();
            long? k = _kAttribute ?? (context.InputValue(1) is { } kt ? ReadK(kt) : null);
            if (k is { } kv && shape[axis] >= 0 && kv > shape[axis])
                throw Invalid($"k = {kv} is larger than the axis ({shape[axis]} elements).");
            output[axis] = k is { } known ? (int)known : -1;
        }
        context.SetOutput(0, type, output);
        context.SetOutput(1, DataType.Int64, output);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var x = Required(inputs, 0);
        int k = (int)(_kAttribute ?? ReadK(Required(inputs, 1)));
        var (outer, length, inner) = ReduceOperators.Split(x.Shape, Axis(x.Rank));
        var indices = outputs[1].AsSpan<long>();
        var values = outputs[0];
        switch (x.DataType)
        {
            case DataType.Float: Select(x.AsSpan<float>(), values.AsSpan<float>(), indices, outer, length, inner, k); break;
            case DataType.Double: Select(x.AsSpan<double>(), values.AsSpan<double>(), indices, outer, length, inner, k); break;
            case DataType.Float16: Select(x.AsSpan<Half>(), values.AsSpan<Half>(), indices, outer, length, inner, k); break;
            case DataType.Int8: Select(x.AsSpan<sbyte>(), values.AsSpan<sbyte>(), indices, outer, length, inner, k); break;
            case DataType.UInt8: Select(x.AsSpan<byte>(), values.AsSpan<byte>(), indices, outer, length, inner, k); break;
            case DataType.Int16: Select(x.AsSpan<short>(), values.AsSpan<short>(), indices, outer, length, inner, k); break;
            case DataType.UInt16: Select(x.AsSpan<ushort>(), values.AsSpan<ushort>(), indices, outer, length, inner, k); break;
            case DataType.Int32: Select(x.AsSpan<int>(), values.AsSpan<int>(), indices, outer, length, inner, k); break;
            case DataType.UInt32: Select(x.AsSpan<uint>(), values.AsSpan<uint>(), indices, outer, length, inner, k); break;
            case DataType.Int64: Select(x.AsSpan<long>(), values.AsSpan<long>(), indices, outer, length, inner, k); break;
            case DataType.UInt64: Select(x.AsSpan<ulong>(), values.AsSpan<ulong>(), indices, outer, length, inner, k); break;
            case DataType.BFloat16:
                {
                    var wide = new float[x.ElementCount + values.ElementCount];
                    FloatBridge.Widen(x, wide.AsSpan(0, x.ElementCount));
                    Select<float>(wide.AsSpan(0, x.ElementCount), wide.AsSpan(x.ElementCount), indices, outer, length, inner, k);
                    FloatBridge.Narrow(wide.AsSpan(x.ElementCount), values);
                    break;
                }
            default: throw ReduceOperators.UnsupportedType(Node, x.DataType);
        }
    }

    private long ReadK(Tensor k)
    {
        if (k.ElementCount != 1 || k.DataType != DataType.Int64) throw Invalid("K must be a one-element int64 tensor.");
        long value = k.GetAsInt64(0);
        if (value < 0) throw Invalid($"k = {value} is negative.");
        return value;
    }

    private int Axis(int rank)
    {
        if (_axis < -rank || _axis >= rank) throw Invalid($"axis {_axis} is out of range for rank {rank}.");
        return (int)(_axis < 0 ? _axis + rank : _axis);
    }

    /// <summary>
    /// For each line along the axis, a bounded heap of the best k seen so far (its root the worst of them, so a
    /// candidate is compared once in the common case), then the k sorted best first: O(length log k).
    /// </summary>
    private void Select<T>(ReadOnlySpan<T> x, Span<T> values, Span<long> indices, int outer, int length, int inner, int k)
        where T : unmanaged, INumber<T>
    {
        if (k > length) throw Invalid($"k = {k} is larger than the axis ({length} elements).");
        if (k == 0) return;
        var order = new Order<T>(_largest);
        var heap = ArrayPool<Entry<T>>.Shared.Rent(k);
        try
        {
            var h = heap.AsSpan(0, k);
            for (int o = 0; o < outer; o++)
            {
                for (int c = 0; c < inner; c++)
                {
                    int start = o * length * inner + c;
                    for (int i = 0; i < k; i++) h[i] = new Entry<T>(x[start + i * inner], i);
                    for (int i = k / 2 - 1; i >= 0; i--) SiftDown(h, i, order);
                    for (int i = k; i < length; i++)
                    {
                        var e = new Entry<T>(x[start + i * inner], i);
                        if (order.Compare(e, h[0]) < 0)
                        {
                            h[0] = e;
                            SiftDown(h, 0, order);
                        }
                    }
                    h.Sort(order);
                    int outStart = o * k * inner + c;
                    for (int i = 0; i < k; i++)
                    {
                        values[outStart + i * inner] = h[i].Value;
                        indices[outStart + i * inner] = h[i].Index;
                    }
                }
            }
        }
        finally
        {
            ArrayPool<Entry<T>>.Shared.Return(heap);
        }
    }

    /// <summary>Restores the heap property below <paramref name="i"/>: every parent ranks after its children.</summary>
    private static void SiftDown<T>(Span<Entry<T>> h, int i, Order<T> order) where T : unmanaged, INumber<T>
    {
        while (true)
        {
            int worst = i, l = 2 * i + 1, r = l + 1;
            if (l < h.Length && order.Compare(h[l], h[worst]) > 0) worst = l;
            if (r < h.Length && order.Compare(h[r], h[worst]) > 0) worst = r;
            if (worst == i) return;
            (h[i], h[worst]) = (h[worst], h[i]);
            i = worst;
        }
    }

    private readonly record struct Entry<T>(T Value, int Index);

    /// <summary>Ranks entries best first: by value (descending when largest), then by lower index.</summary>
    private readonly struct Order<T>(bool largest) : IComparer<Entry<T>> where T : unmanaged, INumber<T>
    {
        public int Compare(Entry<T> a, Entry<T> b)
        {
            int byValue = CompareValues(a.Value, b.Value);
            if (byValue != 0) return largest ? -byValue : byValue;
            return a.Index.CompareTo(b.Index);
        }

        /// <summary>Ascending, with NaN above everything (as NumPy sorts).</summary>
        private static int CompareValues(T a, T b)
        {
            bool an = T.IsNaN(a), bn = T.IsNaN(b);
            if (an || bn) return an == bn ? 0 : an ? 1 : -1;
            return a < b ? -1 : a > b ? 1 : 0;
        }
    }
}
