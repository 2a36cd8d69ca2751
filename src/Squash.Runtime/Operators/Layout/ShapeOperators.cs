using System.Numerics;
using System.Runtime.InteropServices;
using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Operators;

/// <summary>Shape arithmetic: Shape Size Reshape Flatten Squeeze Unsqueeze Expand ConstantOfShape Range.</summary>
internal static class ShapeOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        registry.Add("Shape", n => new ShapeOperator(n), minOpset: 1);
        registry.Add("Size", n => new SizeOperator(n), minOpset: 1);
        registry.Add("Reshape", n => new ReshapeOperator(n), minOpset: 5);
        registry.Add("Flatten", n => new FlattenOperator(n), minOpset: 1);
        registry.Add("Squeeze", n => new SqueezeOperator(n), minOpset: 1);
        registry.Add("Unsqueeze", n => new UnsqueezeOperator(n), minOpset: 1);
        registry.Add("Expand", n => new ExpandOperator(n), minOpset: 8);
        registry.Add("ConstantOfShape", n => new ConstantOfShapeOperator(n), minOpset: 9);
        registry.Add("Range", n => new RangeOperator(n), minOpset: 11);
    }
}

/// <summary>Shape and index helpers shared by the shape and data-movement operators.</summary>
internal abstract class LayoutOperator(Node node) : Operator(node)
{
    /// <summary>A shape of <paramref name="rank"/> unknown dimensions.</summary>
    protected static int[] Unknown(int rank)
    {
        var shape = new int[rank];
        Array.Fill(shape, -1);
        return shape;
    }

    /// <summary>The length of a 1-D input (such as a shape or axes list) when its shape says it; otherwise -1.</summary>
    protected static int LengthOf(InferenceContext context, int index) =>
        context.HasInput(index) && context.InputShape(index) is [int n] ? n : -1;

    /// <summary>Checks that a dimension computed from model data fits a tensor.</summary>
    protected int Dim(long value, string what) =>
        value is >= 0 and <= int.MaxValue ? (int)value : throw Invalid($"{what} {value} is not a valid dimension.");

    /// <summary>Normalizes a possibly negative axis, rejecting one outside [-rank, rank).</summary>
    protected int Axis(long axis, int rank)
    {
        long a = axis < 0 ? axis + rank : axis;
        if (a < 0 || a >= rank) throw Invalid($"axis {axis} is out of range for rank {rank}.");
        return (int)a;
    }

    /// <summary>Normalizes a list of axes and rejects duplicates.</summary>
    protected int[] Axes(long[] axes, int rank)
    {
        // Bounds first: the duplicate check below is quadratic, and a hostile model lists half a million axes.
        if (rank > Shapes.MaxRank) throw Invalid($"the axes make a tensor of {rank} dimensions, more than the {Shapes.MaxRank} Squash supports.");
        if (axes.Length > Math.Max(rank, 1)) throw Invalid($"{axes.Length} axes for a tensor of {rank} dimensions: some axis is listed twice.");
        var result = new int[axes.Length];
        for (int i = 0; i < axes.Length; i++)
        {
            result[i] = Axis(axes[i], rank);
            for (int j = 0; j < i; j++)
                if (result[j] == result[i]) throw Invalid($"axis {axes[i]} is listed twice.");
        }
        return result;
    }

    /// <summary>Ranks up to which per-run index arrays live on the stack.</summary>
    protected const int StackRank = 16;

    /// <summary>Row-major strides in elements, as longs for offset arithmetic.</summary>
    protected static void Strides(ReadOnlySpan<int> shape, Span<long> strides)
    {
        long s = 1;
        for (int k = shape.Length - 1; k >= 0; k--)
        {
            strides[k] = s;
            s *= shape[k];
        }
    }

    /// <summary>An integer tensor's values as longs: the tensor's own memory for int64, else copied into <paramref name="buffer"/>.</summary>
    protected static ReadOnlySpan<long> Longs(Tensor tensor, Span<long> buffer)
    {
        if (tensor.DataType == DataType.Int64) return tensor.AsSpan<long>();
        var values = buffer[..tensor.ElementCount];
        for (int i = 0; i < values.Length; i++) values[i] = tensor.GetAsInt64(i);
        return values;
    }

    /// <summary>Copies the input's bytes unchanged (the reshaping operators change only the shape).</summary>
    protected void CopyData(ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var input = Required(inputs, 0);
        if (input.ByteLength != outputs[0].ByteLength)
            throw Invalid($"cannot view {input} as {outputs[0]}.");
        input.Bytes.CopyTo(outputs[0].Bytes);
    }
}

/// <summary><c>Shape</c>: the input's dimensions as int64, optionally the slice [start, end) of them (opset 15).</summary>
internal sealed class ShapeOperator : LayoutOperator
{
    private readonly long _start;
    private readonly long _end;

    public ShapeOperator(Node node) : base(node)
    {
        _start = Attributes.Int("start", 0);
        _end = Attributes.Int("end", long.MaxValue);
    }

    /// <summary>The dimensions the output holds, for an input of <paramref name="rank"/> dimensions (clamped as the spec says).</summary>
    private (int Start, int Count) Window(int rank)
    {
        long start = Math.Clamp(_start < 0 ? _start + rank : _start, 0, rank);
        long end = Math.Clamp(_end < 0 ? _end + rank : _end, 0, rank);
        return ((int)start, (int)Math.Max(0, end - start));
    }

    public override void InferOutputs(InferenceContext context)
    {
        var shape = context.InputShape(0);
        context.SetOutput(0, DataType.Int64, shape is null ? [-1] : [Window(shape.Length).Count]);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var shape = Required(inputs, 0).Shape;
        var (start, _) = Window(shape.Length);
        var values = outputs[0].AsSpan<long>();
        for (int i = 0; i < values.Length; i++) values[i] = shape[start + i];
    }
}

/// <summary><c>Size</c>: the input's element count as an int64 scalar.</summary>
internal sealed class SizeOperator(Node node) : LayoutOperator(node)
{
    public override void InferOutputs(InferenceContext context) => context.SetOutput(0, DataType.Int64, []);

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs) =>
        outputs[0].AsSpan<long>()[0] = Required(inputs, 0).ElementCount;
}

/// <summary>
/// <c>Reshape</c>: a 0 in the target shape copies the input's dimension (unless <c>allowzero</c>, opset 14), and
/// one -1 is inferred from the element count.
/// </summary>
internal sealed class ReshapeOperator : LayoutOperator
{
    private readonly bool _allowZero;

    public ReshapeOperator(Node node) : base(node) => _allowZero = Attributes.Int("allowzero", 0) != 0;

    public override void InferOutputs(InferenceContext context)
    {
        var input = context.InputShape(0);
        int[]? output;
        if (context.InputValue(1) is { } target) output = Resolve(input, target.ToInt64Array());
        else output = LengthOf(context, 1) is var n and >= 0 ? Unknown(n) : null;
        context.SetOutput(0, context.InputType(0), output);
    }

    /// <summary>The output shape for input shape <paramref name="input"/> (null or with -1 where unknown).</summary>
    private int[] Resolve(int[]? input, long[] target)
    {
        var output = new int[target.Length];
        var copied = new bool[target.Length];
        int inferred = -1;
        bool hasZero = false;
        for (int i = 0; i < target.Length; i++)
        {
            long v = target[i];
            if (v == -1)
            {
                if (inferred >= 0) throw Invalid("the shape has more than one -1.");
                inferred = i;
                output[i] = -1;
            }
            else if (v == 0 && !_allowZero)
            {
                if (input is not null && i >= input.Length)
                    throw Invalid($"shape entry {i} is 0 (copy the input's dimension) but the input has only {input.Length} dimensions.");
                output[i] = input?[i] ?? -1;
                copied[i] = true;
            }
            else
            {
                hasZero |= v == 0;
                output[i] = Dim(v, "shape entry");
            }
        }
        if (hasZero && inferred >= 0) throw Invalid("with allowzero = 1 the shape may not hold both 0 and -1.");
        if (input is null) return output;

        // Dimensions copied by 0 cancel on both sides, so -1 can be inferred even when only those are unknown.
        long inputProduct = 1, outputProduct = 1;
        bool known = true;
        for (int j = 0; j < input.Length; j++)
        {
            if (j < copied.Length && copied[j]) continue;
            if (input[j] < 0) known = false;
            else inputProduct *= input[j];
        }
        for (int i = 0; i < output.Length; i++)
            if (i != inferred && !copied[i]) outputProduct *= output[i];
        if (!known) return output;
        if (inferred >= 0)
        {
            if (outputProduct == 0 || inputProduct % outputProduct != 0)
                throw Invalid($"cannot reshape {Shapes.Format(input)} to [{string.Join(",", target)}]: the element counts do not divide.");
            output[inferred] = Dim(inputProduct / outputProduct, "inferred dimension");
        }
        else if (inputProduct != outputProduct)
        {
            throw Invalid($"cannot reshape {Shapes.Format(input)} to [{string.Join(",", target)}]: the element counts differ.");
        }
        return output;
    }

    public override int ViewedInput => 0;

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs) => CopyData(inputs, outputs);
}

/// <summary><c>Flatten</c>: a 2-D view, dimensions before <c>axis</c> times those after.</summary>
internal sealed class FlattenOperator : LayoutOperator
{
    private readonly long _axis;

    public FlattenOperator(Node node) : base(node) => _axis = Attributes.Int("axis", 1);

    public override void InferOutputs(InferenceContext context)
    {
        var input = context.InputShape(0);
        int[] output = [-1, -1];
        if (input is not null)
        {
            long axis = _axis < 0 ? _axis + input.Length : _axis;
            if (axis < 0 || axis > input.Length) throw Invalid($"axis {_axis} is out of range for rank {input.Length}.");
            output = [Product(input, 0, (int)axis), Product(input, (int)axis, input.Length)];
        }
        context.SetOutput(0, context.InputType(0), output);
    }

    private static int Product(int[] shape, int start, int end)
    {
        long p = 1;
        for (int i = start; i < end; i++)
        {
            if (shape[i] < 0) return -1;
            p *= shape[i];
        }
        return (int)p;
    }

    public override int ViewedInput => 0;

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs) => CopyData(inputs, outputs);
}

/// <summary><c>Squeeze</c>: removes dimensions of size 1 (the listed <c>axes</c>, an attribute before opset 13 and an input from 13; or all).</summary>
internal sealed class SqueezeOperator : LayoutOperator
{
    private readonly long[]? _axes;

    public SqueezeOperator(Node node) : base(node) => _axes = Attributes.Ints("axes");

    public override void InferOutputs(InferenceContext context)
    {
        var input = context.InputShape(0);
        long[]? axes = _axes ?? context.InputValue(1)?.ToInt64Array();
        int[]? output = null;
        if (axes is null && context.HasInput(1))
        {
            // Axes computed at run time: only the rank is known, and only when their count is.
            int count = LengthOf(context, 1);
            if (input is not null && count >= 0) output = Unknown(input.Length - count);
        }
        else if (input is not null)
        {
            output = Squeeze(input, axes);
        }
        context.SetOutput(0, context.InputType(0), output);
    }

    private int[]? Squeeze(int[] input, long[]? axes)
    {
        var remove = new bool[input.Length];
        if (axes is null)
        {
            // An unknown dimension might be 1, so the output rank is unknown.
            if (!Shapes.IsKnown(input)) return null;
            for (int k = 0; k < input.Length; k++) remove[k] = input[k] == 1;
        }
        else
        {
            foreach (int k in Axes(axes, input.Length))
            {
                if (input[k] > 1 || input[k] == 0) throw Invalid($"cannot squeeze axis {k} of shape {Shapes.Format(input)}: its size is not 1.");
                remove[k] = true;
            }
        }
        var output = new List<int>(input.Length);
        for (int k = 0; k < input.Length; k++)
            if (!remove[k]) output.Add(input[k]);
        return [.. output];
    }

    public override int ViewedInput => 0;

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs) => CopyData(inputs, outputs);
}

/// <summary><c>Unsqueeze</c>: inserts dimensions of size 1 at <c>axes</c> of the output (an attribute before opset 13, an input from 13).</summary>
internal sealed class UnsqueezeOperator : LayoutOperator
{
    private readonly long[]? _axes;

    public UnsqueezeOperator(Node node) : base(node) => _axes = Attributes.Ints("axes");

    public override void InferOutputs(InferenceContext context)
    {
        var input = context.InputShape(0);
        long[]? axes = _axes ?? context.InputValue(1)?.ToInt64Array();
        if (axes is null && !context.HasInput(1)) throw Invalid("requires axes.");
        int[]? output = null;
        if (input is not null)
        {
            if (axes is null)
            {
                int count = LengthOf(context, 1);
                if (count >= 0) output = Unknown(input.Length + count);
            }
            else
            {
                output = new int[input.Length + axes.Length];
                var insert = Axes(axes, output.Length);
                foreach (int k in insert) output[k] = -2;
                for (int k = 0, j = 0; k < output.Length; k++) output[k] = output[k] == -2 ? 1 : input[j++];
            }
        }
        context.SetOutput(0, context.InputType(0), output);
    }

    public override int ViewedInput => 0;

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs) => CopyData(inputs, outputs);
}

/// <summary><c>Expand</c>: broadcasts the input to the bidirectional broadcast of its shape and the given shape.</summary>
internal sealed class ExpandOperator(Node node) : LayoutOperator(node)
{
    public override void InferOutputs(InferenceContext context)
    {
        var input = context.InputShape(0);
        int[]? output = null;
        if (context.InputValue(1) is { } target)
        {
            var shape = new int[target.ElementCount];
            for (int i = 0; i < shape.Length; i++) shape[i] = Dim(target.GetAsInt64(i), "shape entry");
            if (input is not null) output = Broadcast(input, shape);
        }
        else if (input is not null && LengthOf(context, 1) is var n and >= 0)
        {
            // Only dimensions above 1 are certain: the target may only be 1 or equal there.
            output = Unknown(Math.Max(n, input.Length));
            for (int k = 0; k < input.Length; k++)
                if (input[k] > 1) output[output.Length - input.Length + k] = input[k];
        }
        context.SetOutput(0, context.InputType(0), output);
    }

    private int[] Broadcast(int[] a, int[] b)
    {
        try
        {
            return Shapes.Broadcast(a, b);
        }
        catch (ArgumentException e)
        {
            throw Invalid(e.Message);
        }
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var input = Required(inputs, 0);
        var output = outputs[0];
        int rank = output.Rank, offset = rank - input.Rank;
        Span<long> inputStrides = input.Rank <= StackRank ? stackalloc long[input.Rank] : new long[input.Rank];
        Strides(input.Shape, inputStrides);
        Span<long> strides = rank <= StackRank ? stackalloc long[rank] : new long[rank];
        strides.Clear();
        for (int k = offset; k < rank; k++)
            strides[k] = input.Shape[k - offset] == 1 ? 0 : inputStrides[k - offset];
        StridedCopy.Copy(context, DataTypes.SizeOf(input.DataType), output.Shape, input.Bytes, 0, strides, output.Bytes);
    }
}

/// <summary><c>ConstantOfShape</c>: a tensor of the given shape filled with <c>value</c> (default float 0).</summary>
internal sealed class ConstantOfShapeOperator : LayoutOperator
{
    private readonly Tensor _value;

    public ConstantOfShapeOperator(Node node) : base(node)
    {
        _value = Attributes.Tensor("value") ?? Tensor.Scalar(0f);
        if (_value.ElementCount != 1) throw Invalid($"value must hold one element, not {_value.ElementCount}.");
    }

    public override void InferOutputs(InferenceContext context)
    {
        int[]? output = null;
        if (context.InputValue(0) is { } shape)
        {
            output = new int[shape.ElementCount];
            for (int i = 0; i < output.Length; i++) output[i] = Dim(shape.GetAsInt64(i), "shape entry");
        }
        else if (LengthOf(context, 0) is var n and >= 0)
        {
            output = Unknown(n);
        }
        context.SetOutput(0, _value.DataType, output);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs) =>
        StridedCopy.Fill(outputs[0].Bytes, _value.Bytes);
}

/// <summary><c>Range</c>: <c>start + i * delta</c> for <c>i &lt; max(ceil((limit - start) / delta), 0)</c>, of any numeric type.</summary>
internal sealed class RangeOperator(Node node) : LayoutOperator(node)
{
    public override void InferOutputs(InferenceContext context)
    {
        var type = context.InputType(0);
        if (!DataTypes.IsFloatingPoint(type) && !DataTypes.IsInteger(type))
            throw new SquashException(ErrorCodes.UnsupportedDataType, $"{Node.Describe()}: Range of {DataTypes.Name(type)} is not supported.", Node.Name);
        int[] output = [-1];
        if (context.InputValue(0) is { } start && context.InputValue(1) is { } limit && context.InputValue(2) is { } delta)
            output = [Count(start, limit, delta)];
        context.SetOutput(0, type, output);
    }

    private int Count(Tensor start, Tensor limit, Tensor delta)
    {
        if (start.ElementCount != 1 || limit.ElementCount != 1 || delta.ElementCount != 1)
            throw Invalid("start, limit and delta must be scalars.");
        if (start.DataType != limit.DataType || start.DataType != delta.DataType)
            throw Invalid("start, limit and delta must have one type.");
        if (DataTypes.IsFloatingPoint(start.DataType))
        {
            double s = start.GetAsDouble(0), l = limit.GetAsDouble(0), d = delta.GetAsDouble(0);
            if (d == 0 || !double.IsFinite(s) || !double.IsFinite(l) || !double.IsFinite(d))
                throw Invalid("start, limit and delta must be finite and delta non-zero.");
            return Dim((long)Math.Max(0, Math.Ceiling((l - s) / d)), "element count");
        }
        Int128 si = Wide(start), li = Wide(limit), di = Wide(delta);
        if (di == 0) throw Invalid("delta must not be zero.");
        Int128 span = li - si;
        // Ceiling division for either sign of delta.
        Int128 count = span / di + (span % di != 0 && (span < 0) == (di < 0) ? 1 : 0);
        return Dim((long)Int128.Clamp(count, 0, long.MaxValue), "element count");
    }

    private static Int128 Wide(Tensor t) => t.DataType == DataType.UInt64 ? t.AsSpan<ulong>()[0] : t.GetAsInt64(0);

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var start = Required(inputs, 0);
        var delta = Required(inputs, 2);
        var output = outputs[0];
        double s = start.GetAsDouble(0), d = delta.GetAsDouble(0);
        // Integers use wrapping 64-bit arithmetic (the same bits for signed and unsigned); floats compute each
        // value in double and round once, rather than accumulating delta's rounding error.
        long si = (long)Wide(start), di = (long)Wide(delta);
        switch (output.DataType)
        {
            case DataType.Float: FillFloat(output.AsSpan<float>(), s, d); break;
            case DataType.Double: FillFloat(output.AsSpan<double>(), s, d); break;
            case DataType.Float16: FillFloat(output.AsSpan<Half>(), s, d); break;
            case DataType.BFloat16:
                var bf = output.AsSpan<BFloat16>();
                for (int i = 0; i < bf.Length; i++) bf[i] = (BFloat16)(float)(s + i * d);
                break;
            case DataType.Int8: FillInteger(output.AsSpan<sbyte>(), si, di); break;
            case DataType.UInt8: FillInteger(output.AsSpan<byte>(), si, di); break;
            case DataType.Int16: FillInteger(output.AsSpan<short>(), si, di); break;
            case DataType.UInt16: FillInteger(output.AsSpan<ushort>(), si, di); break;
            case DataType.Int32: FillInteger(output.AsSpan<int>(), si, di); break;
            case DataType.UInt32: FillInteger(output.AsSpan<uint>(), si, di); break;
            case DataType.Int64: FillInteger(output.AsSpan<long>(), si, di); break;
            case DataType.UInt64: FillInteger(output.AsSpan<ulong>(), si, di); break;
            default: throw new SquashException(ErrorCodes.UnsupportedDataType, $"{Node.Describe()}: Range of {DataTypes.Name(output.DataType)} is not supported.", Node.Name);
        }
    }

    private static void FillFloat<T>(Span<T> output, double start, double delta) where T : INumberBase<T>
    {
        for (int i = 0; i < output.Length; i++) output[i] = T.CreateTruncating(start + i * delta);
    }

    private static void FillInteger<T>(Span<T> output, long start, long delta) where T : IBinaryInteger<T>
    {
        long value = start;
        for (int i = 0; i < output.Length; i++, value = unchecked(value + delta)) output[i] = T.CreateTruncating(value);
    }
}

/// <summary>Element values as raw bytes, for fill values given as attributes of another type.</summary>
internal static class ElementBytes
{
    /// <summary>The bytes of <paramref name="value"/> converted to <paramref name="type"/> (integers truncate).</summary>
    public static byte[] Of(DataType type, double value)
    {
        var bytes = new byte[DataTypes.SizeOf(type)];
        switch (type)
        {
            case DataType.Float: MemoryMarshal.Write(bytes, (float)value); break;
            case DataType.Double: MemoryMarshal.Write(bytes, value); break;
            case DataType.Float16: MemoryMarshal.Write(bytes, (Half)value); break;
            case DataType.BFloat16: MemoryMarshal.Write(bytes, (BFloat16)(float)value); break;
            case DataType.Bool: bytes[0] = value != 0 ? (byte)1 : (byte)0; break;
            case DataType.Int8: bytes[0] = (byte)(sbyte)value; break;
            case DataType.UInt8: bytes[0] = (byte)value; break;
            case DataType.Int16: MemoryMarshal.Write(bytes, (short)value); break;
            case DataType.UInt16: MemoryMarshal.Write(bytes, (ushort)value); break;
            case DataType.Int32: MemoryMarshal.Write(bytes, (int)value); break;
            case DataType.UInt32: MemoryMarshal.Write(bytes, (uint)value); break;
            case DataType.Int64: MemoryMarshal.Write(bytes, (long)value); break;
            case DataType.UInt64: MemoryMarshal.Write(bytes, (ulong)value); break;
        }
        return bytes;
    }
}
