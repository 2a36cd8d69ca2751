using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Operators;

/// <summary>Data movement: Concat Split Slice Transpose Tile Pad DepthToSpace SpaceToDepth Trilu.</summary>
internal static class MovementOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        registry.Add("Concat", n => new ConcatOperator(n), minOpset: 4);
        registry.Add("Split", n => new SplitOperator(n), minOpset: 2);
        registry.Add("Slice", n => new SliceOperator(n), minOpset: 1);
        registry.Add("Transpose", n => new TransposeOperator(n), minOpset: 1);
        registry.Add("Tile", n => new TileOperator(n), minOpset: 6);
        registry.Add("Pad", n => new PadOperator(n), minOpset: 2);
        registry.Add("DepthToSpace", n => new DepthToSpaceOperator(n), minOpset: 1);
        registry.Add("SpaceToDepth", n => new SpaceToDepthOperator(n), minOpset: 1);
        registry.Add("Trilu", n => new TriluOperator(n), minOpset: 14);
    }
}

/// <summary><c>Concat</c>: joins the inputs along <c>axis</c>.</summary>
internal sealed class ConcatOperator : LayoutOperator
{
    private readonly long _axis;

    public ConcatOperator(Node node) : base(node)
    {
        _axis = Attributes.Int("axis", long.MinValue);
        if (_axis == long.MinValue) throw Invalid("requires the axis attribute.");
        if (node.Inputs.Count == 0) throw Invalid("requires at least one input.");
    }

    public override void InferOutputs(InferenceContext context)
    {
        int count = Node.Inputs.Count;
        int[]? output = null;
        for (int i = 0; i < count && output is null; i++)
            if (context.InputShape(i) is { } shape) output = Unknown(shape.Length);
        if (output is not null)
        {
            int axis = Axis(_axis, output.Length);
            long total = 0;
            for (int i = 0; i < count; i++)
            {
                var shape = context.InputShape(i);
                if (shape is null)
                {
                    total = -1;
                    continue;
                }
                if (shape.Length != output.Length) throw Invalid($"input {i} has rank {shape.Length}, not {output.Length}.");
                for (int k = 0; k < shape.Length; k++)
                {
                    if (k == axis || shape[k] < 0) continue;
                    if (output[k] >= 0 && output[k] != shape[k])
                        throw Invalid($"input {i} of shape {Shapes.Format(shape)} does not match the others outside axis {axis}.");
                    output[k] = shape[k];
                }
                total = total < 0 || shape[axis] < 0 ? -1 : total + shape[axis];
            }
            output[axis] = total < 0 ? -1 : Dim(total, "concatenated dimension");
        }
        // Inputs share one type T: a copy sized by the output's element type must not read another type's bytes.
        var type = context.InputType(0);
        for (int i = 1; i < count; i++)
        {
            var t = context.InputType(i);
            if (t != DataType.Undefined && type != DataType.Undefined && t != type)
                throw Invalid($"input {i} is {DataTypes.Name(t)} but input 0 is {DataTypes.Name(type)}; all inputs must have one type.");
            if (type == DataType.Undefined) type = t;
        }
        context.SetOutput(0, type, output);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var output = outputs[0];
        int axis = Axis(_axis, output.Rank);
        int es = DataTypes.SizeOf(output.DataType);
        int outer = Shapes.Product(output.Shape, 0, axis), inner = Shapes.Product(output.Shape, axis + 1, output.Rank);
        long outputBlock = (long)output.Shape[axis] * inner, offset = 0;
        for (int i = 0; i < Node.Inputs.Count; i++)
        {
            // Each input is [outer, its block] rows, written at its column offset of the output's rows.
            var input = Required(inputs, i);
            long block = (long)input.Shape[axis] * inner;
            StridedCopy.Copy(context, es, [outer, (int)block], input.Bytes, 0, [block, 1], output.Bytes, offset, [outputBlock, 1]);
            offset += block;
        }
    }
}

/// <summary>
/// <c>Split</c>: parts along <c>axis</c> of the sizes in <c>split</c> (an attribute before opset 13, an input from 13),
/// or equal parts, the last one smaller when <c>num_outputs</c> (opset 18) does not divide the dimension.
/// </summary>
internal sealed class SplitOperator : LayoutOperator
{
    private readonly long _axis;
    private readonly long[]? _split;
    private readonly long _numOutputs;

    public SplitOperator(Node node) : base(node)
    {
        _axis = Attributes.Int("axis", 0);
        _split = Attributes.Ints("split");
        _numOutputs = Attributes.Int("num_outputs", 0);
        if (Attributes.Has("num_outputs") && _numOutputs != node.Outputs.Count)
            throw Invalid($"num_outputs is {_numOutputs} but the node has {node.Outputs.Count} outputs.");
    }

    /// <summary>The size of every part (-1 where unknown), for a dimension of <paramref name="dim"/> (-1 if unknown).</summary>
    private int[] Sizes(InferenceContext context, int dim)
    {
        int parts = Node.Outputs.Count;
        long[]? split = _split ?? context.InputValue(1)?.ToInt64Array();
        // Some exporters pass an empty split for "equal parts".
        bool equalParts = split is { Length: 0 };
        if (split is not null && !equalParts)
        {
            if (split.Length != parts) throw Invalid($"split has {split.Length} entries for {parts} outputs.");
            var sizes = new int[parts];
            long sum = 0;
            for (int i = 0; i < parts; i++) sum += sizes[i] = Dim(split[i], "split entry");
            if (dim >= 0 && sum != dim) throw Invalid($"the split sizes add up to {sum}, not to the dimension {dim}.");
            return sizes;
        }
        if (dim < 0 || context.HasInput(1) && !equalParts) return Unknown(parts);
        var equal = new int[parts];
        if (_numOutputs > 0)
        {
            int chunk = (dim + parts - 1) / parts, left = dim;
            for (int i = 0; i < parts; i++)
            {
                equal[i] = Math.Min(chunk, left);
                left -= equal[i];
            }
        }
        else
        {
            if (dim % parts != 0) throw Invalid($"dimension {dim} does not split into {parts} equal parts.");
            Array.Fill(equal, dim / parts);
        }
        return equal;
    }

    public override void InferOutputs(InferenceContext context)
    {
        var input = context.InputShape(0);
        var type = context.InputType(0);
        int parts = Node.Outputs.Count;
        if (input is null)
        {
            for (int i = 0; i < parts; i++) context.SetOutput(i, type, null);
            return;
        }
        int axis = Axis(_axis, input.Length);
        var sizes = Sizes(context, input[axis]);
        for (int i = 0; i < parts; i++)
        {
            var shape = (int[])input.Clone();
            shape[axis] = sizes[i];
            context.SetOutput(i, type, shape);
        }
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var input = Required(inputs, 0);
        int axis = Axis(_axis, input.Rank);
        int es = DataTypes.SizeOf(input.DataType);
        int outer = Shapes.Product(input.Shape, 0, axis), inner = Shapes.Product(input.Shape, axis + 1, input.Rank);
        long inputBlock = (long)input.Shape[axis] * inner, offset = 0;
        foreach (var output in outputs)
        {
            long block = (long)output.Shape[axis] * inner;
            StridedCopy.Copy(context, es, [outer, (int)block], input.Bytes, offset, [inputBlock, 1], output.Bytes);
            offset += block;
        }
    }
}

/// <summary>
/// <c>Slice</c>: <c>starts</c>, <c>ends</c>, <c>axes</c> (attributes before opset 10; inputs from 10, with
/// <c>steps</c>), negative indices counting from the end and out-of-range ones clamped as the spec says.
/// </summary>
internal sealed class SliceOperator : LayoutOperator
{
    private readonly long[]? _starts;
    private readonly long[]? _ends;
    private readonly long[]? _axes;

    public SliceOperator(Node node) : base(node)
    {
        _starts = Attributes.Ints("starts");
        _ends = Attributes.Ints("ends");
        _axes = Attributes.Ints("axes");
        if ((_starts is null) != (_ends is null)) throw Invalid("starts and ends must be given together.");
    }

    private bool FromAttributes => _starts is not null;

    /// <summary>
    /// Fills, per input axis, the output dimension (-1 where the input's is unknown), the first index and the step.
    /// Empty <paramref name="axes"/> or <paramref name="steps"/> mean the defaults (the leading axes, steps of 1).
    /// </summary>
    private void Resolve(ReadOnlySpan<int> input, ReadOnlySpan<long> starts, ReadOnlySpan<long> ends, ReadOnlySpan<long> axes,
        ReadOnlySpan<long> steps, Span<int> shape, Span<long> start, Span<long> step)
    {
        int rank = input.Length, count = starts.Length;
        if (ends.Length != count || axes.Length != 0 && axes.Length != count || steps.Length != 0 && steps.Length != count)
            throw Invalid("starts, ends, axes and steps must have the same length.");
        if (count > rank) throw Invalid($"{count} starts for rank {rank}.");
        input.CopyTo(shape);
        start.Clear();
        step.Fill(1);
        Span<bool> seen = rank <= StackRank ? stackalloc bool[rank] : new bool[rank];
        for (int i = 0; i < count; i++)
        {
            int k = axes.Length == 0 ? i : Axis(axes[i], rank);
            if (seen[k]) throw Invalid($"axis {k} is sliced twice.");
            seen[k] = true;
            long st = steps.Length == 0 ? 1 : steps[i];
            if (st == 0) throw Invalid("steps must not be 0.");
            step[k] = st;
            long dim = input[k];
            if (dim < 0) continue;
            long b = starts[i], e = ends[i];
            if (b < 0) b += dim;
            if (e < 0) e += dim;
            long length;
            if (dim == 0)
            {
                b = 0;
                length = 0;
            }
            else if (st > 0)
            {
                b = Math.Clamp(b, 0, dim);
                e = Math.Clamp(e, 0, dim);
                length = e > b ? (e - b - 1) / st + 1 : 0;
            }
            else
            {
                b = Math.Clamp(b, 0, dim - 1);
                e = Math.Clamp(e, -1, dim - 1);
                long back = st == long.MinValue ? long.MaxValue : -st;
                length = b > e ? (b - e - 1) / back + 1 : 0;
            }
            start[k] = b;
            shape[k] = (int)length;
        }
    }

    public override void InferOutputs(InferenceContext context)
    {
        var input = context.InputShape(0);
        int[]? output = null;
        if (input is not null)
        {
            long[]? starts = _starts ?? context.InputValue(1)?.ToInt64Array();
            long[]? ends = _ends ?? context.InputValue(2)?.ToInt64Array();
            long[]? axes = FromAttributes ? _axes : context.InputValue(3)?.ToInt64Array();
            long[]? steps = FromAttributes ? null : context.InputValue(4)?.ToInt64Array();
            bool axesKnown = FromAttributes || !context.HasInput(3) || axes is not null;
            bool stepsKnown = FromAttributes || !context.HasInput(4) || steps is not null;
            output = new int[input.Length];
            if (starts is not null && ends is not null && axesKnown && stepsKnown)
            {
                Resolve(input, starts, ends, axes, steps, output, new long[input.Length], new long[input.Length]);
            }
            else
            {
                // Only the sliced axes become unknown, when it is known which they are.
                int count = starts?.Length ?? ends?.Length ?? LengthOf(context, 1);
                input.CopyTo(output);
                if (axes is not null) foreach (int k in Axes(axes, input.Length)) output[k] = -1;
                else if (axesKnown && count >= 0 && count <= input.Length) Array.Fill(output, -1, 0, count);
                else Array.Fill(output, -1);
            }
        }
        context.SetOutput(0, context.InputType(0), output);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var input = Required(inputs, 0);
        int rank = input.Rank;
        bool onStack = rank <= StackRank;
        Span<int> shape = onStack ? stackalloc int[rank] : new int[rank];
        Span<long> start = onStack ? stackalloc long[rank] : new long[rank];
        Span<long> step = onStack ? stackalloc long[rank] : new long[rank];
        Span<long> strides = onStack ? stackalloc long[rank] : new long[rank];
        if (FromAttributes)
        {
            Resolve(input.Shape, _starts, _ends, _axes, default, shape, start, step);
        }
        else
        {
            // Index inputs are int32 or int64; int64 ones are read in place, without copies.
            Span<long> buffer = onStack ? stackalloc long[4 * rank] : new long[4 * rank];
            var starts = Required(inputs, 1);
            if (starts.ElementCount > rank) throw Invalid($"{starts.ElementCount} starts for rank {rank}.");
            Resolve(input.Shape, Longs(starts, buffer[..rank]), Indices(Required(inputs, 2), buffer.Slice(rank, rank)),
                Indices(Optional(inputs, 3), buffer.Slice(2 * rank, rank)), Indices(Optional(inputs, 4), buffer.Slice(3 * rank, rank)),
                shape, start, step);
        }
        Strides(input.Shape, strides);
        long offset = 0;
        for (int k = 0; k < rank; k++)
        {
            offset += start[k] * strides[k];
            strides[k] *= step[k];
        }
        var output = outputs[0];
        StridedCopy.Copy(context, DataTypes.SizeOf(input.DataType), output.Shape, input.Bytes, offset, strides, output.Bytes);
    }

    private ReadOnlySpan<long> Indices(Tensor? tensor, Span<long> buffer)
    {
        if (tensor is null) return default;
        if (tensor.ElementCount > buffer.Length) throw Invalid("starts, ends, axes and steps must have the same length.");
        return Longs(tensor, buffer);
    }
}

/// <summary><c>Transpose</c>: output axis <c>k</c> is input axis <c>perm[k]</c>; without <c>perm</c>, the axes reverse.</summary>
internal sealed class TransposeOperator : LayoutOperator
{
    private readonly long[]? _perm;
    /// <summary>The last permutation built, reused while the rank stays (immutable once published).</summary>
    private int[]? _lastPerm;

    public TransposeOperator(Node node) : base(node) => _perm = Attributes.Ints("perm");

    private int[] Perm(int rank)
    {
        var cached = _lastPerm;
        if (cached is not null && cached.Length == rank) return cached;
        return _lastPerm = BuildPerm(rank);
    }

    private int[] BuildPerm(int rank)
    {
        var perm = new int[rank];
        if (_perm is null)
        {
            for (int k = 0; k < rank; k++) perm[k] = rank - 1 - k;
            return perm;
        }
        if (_perm.Length != rank) throw Invalid($"perm has {_perm.Length} entries for rank {rank}.");
        var seen = new bool[rank];
        for (int k = 0; k < rank; k++)
        {
            long axis = _perm[k];
            if (axis < 0 || axis >= rank || seen[axis]) throw Invalid($"perm [{string.Join(",", _perm)}] is not a permutation of {rank} axes.");
            seen[axis] = true;
            perm[k] = (int)axis;
        }
        return perm;
    }

    public override void InferOutputs(InferenceContext context)
    {
        var input = context.InputShape(0);
        int[]? output = null;
        if (input is null && _perm is not null) output = Unknown(_perm.Length);
        if (input is not null)
        {
            var perm = Perm(input.Length);
            output = new int[input.Length];
            for (int k = 0; k < output.Length; k++) output[k] = input[perm[k]];
        }
        context.SetOutput(0, context.InputType(0), output);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var input = Required(inputs, 0);
        Transpose.Permute(context, DataTypes.SizeOf(input.DataType), input.Shape, Perm(input.Rank), input.Bytes, outputs[0].Bytes);
    }
}

/// <summary><c>Tile</c>: repeats the input <c>repeats[k]</c> times along each axis <c>k</c>.</summary>
internal sealed class TileOperator(Node node) : LayoutOperator(node)
{
    public override void InferOutputs(InferenceContext context)
    {
        var input = context.InputShape(0);
        var repeats = context.InputValue(1);
        // The rank is the input's, or the count of repeats when only they are known.
        int rank = input?.Length ?? repeats?.ElementCount ?? LengthOf(context, 1);
        int[]? output = rank < 0 ? null : Unknown(rank);
        if (output is not null && repeats is not null)
        {
            if (repeats.ElementCount != rank) throw Invalid($"repeats has {repeats.ElementCount} entries for rank {rank}.");
            for (int k = 0; k < rank; k++)
            {
                long r = repeats.GetAsInt64(k);
                if (r < 0) throw Invalid($"repeats entry {r} is negative.");
                int d = input?[k] ?? -1;
                output[k] = r == 0 ? 0 : d < 0 ? -1 : Dim(r * d, "tiled dimension");
            }
        }
        context.SetOutput(0, context.InputType(0), output);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var input = Required(inputs, 0);
        var output = outputs[0];
        int rank = input.Rank;
        bool onStack = rank <= StackRank;
        // The output is the row-major view [r0, d0, r1, d1, ...] where the repeat axes read with stride 0.
        Span<int> shape = onStack ? stackalloc int[2 * rank] : new int[2 * rank];
        Span<long> strides = onStack ? stackalloc long[2 * rank] : new long[2 * rank];
        Span<long> inputStrides = onStack ? stackalloc long[rank] : new long[rank];
        Strides(input.Shape, inputStrides);
        strides.Clear();
        for (int k = 0; k < rank; k++)
        {
            int d = input.Shape[k];
            shape[2 * k] = d == 0 ? 0 : output.Shape[k] / d;
            shape[2 * k + 1] = d;
            strides[2 * k + 1] = inputStrides[k];
        }
        StridedCopy.Copy(context, DataTypes.SizeOf(input.DataType), shape, input.Bytes, 0, strides, output.Bytes);
    }
}

/// <summary>
/// <c>Pad</c> in modes constant, reflect, edge and wrap (opset 19). <c>pads</c> and <c>value</c> are attributes
/// before opset 11; from 11 <c>pads</c> and <c>constant_value</c> are inputs, and from 18 <c>axes</c> too.
/// </summary>
internal sealed class PadOperator : LayoutOperator
{
    private readonly PadMode _mode;
    private readonly long[]? _pads;
    private readonly float _value;

    public PadOperator(Node node) : base(node)
    {
        string mode = Attributes.String("mode", "constant");
        _mode = mode switch
        {
            "constant" => PadMode.Constant,
            "reflect" => PadMode.Reflect,
            "edge" => PadMode.Edge,
            "wrap" => PadMode.Wrap,
            _ => throw Invalid($"mode '{mode}' is not one of constant, reflect, edge, wrap."),
        };
        _pads = Attributes.Ints("pads");
        _value = Attributes.Float("value", 0f);
    }

    /// <summary>The pads before and after every axis, or null when they are not known yet.</summary>
    private (int[] Begin, int[] End)? Pads(int rank, long[]? pads, long[]? axes)
    {
        if (pads is null) return null;
        var normalized = axes is null ? null : Axes(axes, rank);
        int count = normalized?.Length ?? rank;
        if (pads.Length != 2 * count) throw Invalid($"pads has {pads.Length} entries; {2 * count} are needed.");
        var begin = new int[rank];
        var end = new int[rank];
        for (int i = 0; i < count; i++)
        {
            int k = normalized?[i] ?? i;
            begin[k] = checked((int)Math.Clamp(pads[i], int.MinValue, int.MaxValue));
            end[k] = checked((int)Math.Clamp(pads[i + count], int.MinValue, int.MaxValue));
        }
        return (begin, end);
    }

    private int[] OutputShape(int[] input, int[] begin, int[] end)
    {
        var output = new int[input.Length];
        for (int k = 0; k < input.Length; k++)
            output[k] = input[k] < 0 ? -1 : Dim((long)input[k] + begin[k] + end[k], "padded dimension");
        return output;
    }

    public override void InferOutputs(InferenceContext context)
    {
        var input = context.InputShape(0);
        int[]? output = null;
        if (input is not null)
        {
            long[]? pads = _pads ?? context.InputValue(1)?.ToInt64Array();
            long[]? axes = context.InputValue(3)?.ToInt64Array();
            bool axesKnown = !context.HasInput(3) || axes is not null;
            output = axesKnown && Pads(input.Length, pads, axes) is var (begin, end)
                ? OutputShape(input, begin, end)
                : Unknown(input.Length);
        }
        else if (!context.HasInput(3) && (_pads?.Length ?? LengthOf(context, 1)) is var count and >= 0)
        {
            // Pads for every axis: their count gives the rank.
            output = Unknown(count / 2);
        }
        context.SetOutput(0, context.InputType(0), output);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var input = Required(inputs, 0);
        var output = outputs[0];
        var (begin, _) = Pads(input.Rank, _pads ?? Required(inputs, 1).ToInt64Array(), Optional(inputs, 3)?.ToInt64Array())!.Value;
        ReadOnlySpan<byte> value;
        if (Optional(inputs, 2) is { ElementCount: > 0 } constant)
        {
            if (constant.DataType != input.DataType || constant.ElementCount != 1)
                throw Invalid($"constant_value must be one {DataTypes.Name(input.DataType)}, not {constant}.");
            value = constant.Bytes;
        }
        else
        {
            value = ElementBytes.Of(input.DataType, _value);
        }
        try
        {
            Kernels.Pad.Run(context, input.Shape, input.Bytes, output.Shape, begin, _mode, value, output.Bytes);
        }
        catch (ArgumentException e)
        {
            throw Invalid(e.Message);
        }
    }
}

/// <summary>The block rearrangements DepthToSpace and SpaceToDepth: 4-D, <c>blocksize</c> b, as one strided copy.</summary>
internal abstract class BlockOperator : LayoutOperator
{
    protected BlockOperator(Node node) : base(node)
    {
        Block = Attributes.Int("blocksize", 0);
        if (Block <= 0 || Block > 1 << 15) throw Invalid($"blocksize must be positive, not {Block}.");
    }

    /// <summary>The block size.</summary>
    protected long Block { get; }

    /// <summary>The output shape for a 4-D input shape (with -1 where unknown).</summary>
    protected abstract int[] OutputShape(int[] input);

    /// <summary>Fills the 6-D view of the output and the matching input strides, for an [N, C, H, W] input.</summary>
    protected abstract void View(int n, int c, int h, int w, Span<int> shape, Span<long> strides);

    public override void InferOutputs(InferenceContext context)
    {
        var input = context.InputShape(0);
        if (input is not null && input.Length != 4) throw Invalid($"requires a 4-D input, not shape {Shapes.Format(input)}.");
        context.SetOutput(0, context.InputType(0), input is null ? Unknown(4) : OutputShape(input));
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var input = Required(inputs, 0);
        var s = input.Shape;
        Span<int> shape = stackalloc int[6];
        Span<long> strides = stackalloc long[6];
        View(s[0], s[1], s[2], s[3], shape, strides);
        StridedCopy.Copy(context, DataTypes.SizeOf(input.DataType), shape, input.Bytes, 0, strides, outputs[0].Bytes);
    }
}

/// <summary><c>DepthToSpace</c>: channels move into b x b spatial blocks, in DCR (default) or CRD order (opset 11).</summary>
internal sealed class DepthToSpaceOperator : BlockOperator
{
    private readonly bool _crd;

    public DepthToSpaceOperator(Node node) : base(node)
    {
        string mode = Attributes.String("mode", "DCR");
        _crd = mode switch
        {
            "DCR" => false,
            "CRD" => true,
            _ => throw Invalid($"mode '{mode}' is not DCR or CRD."),
        };
    }

    protected override int[] OutputShape(int[] input)
    {
        int b = (int)Block, c = input[1];
        if (c >= 0 && c % (b * b) != 0) throw Invalid($"channels {c} are not a multiple of blocksize² = {b * b}.");
        return [input[0], c < 0 ? -1 : c / (b * b), input[2] < 0 ? -1 : Dim((long)input[2] * b, "height"), input[3] < 0 ? -1 : Dim((long)input[3] * b, "width")];
    }

    protected override void View(int n, int c, int h, int w, Span<int> shape, Span<long> strides)
    {
        int b = (int)Block, cOut = c / (b * b);
        long plane = (long)h * w;
        // Output [N, C', H, b1, W, b2]; input channel = (b1 * b + b2) * C' + c' (DCR) or c' * b² + b1 * b + b2 (CRD).
        long sc = _crd ? b * b * plane : plane;
        long sb1 = _crd ? b * plane : b * cOut * plane;
        long sb2 = _crd ? plane : cOut * plane;
        ((ReadOnlySpan<int>)[n, cOut, h, b, w, b]).CopyTo(shape);
        ((ReadOnlySpan<long>)[c * plane, sc, w, sb1, 1, sb2]).CopyTo(strides);
    }
}

/// <summary><c>SpaceToDepth</c>: b x b spatial blocks move into channels (block position major, as DCR).</summary>
internal sealed class SpaceToDepthOperator(Node node) : BlockOperator(node)
{
    protected override int[] OutputShape(int[] input)
    {
        int b = (int)Block;
        if (input[2] >= 0 && input[2] % b != 0 || input[3] >= 0 && input[3] % b != 0)
            throw Invalid($"height and width of {Shapes.Format(input)} are not multiples of blocksize {b}.");
        return [input[0], input[1] < 0 ? -1 : Dim((long)input[1] * b * b, "channels"), input[2] < 0 ? -1 : input[2] / b, input[3] < 0 ? -1 : input[3] / b];
    }

    protected override void View(int n, int c, int h, int w, Span<int> shape, Span<long> strides)
    {
        int b = (int)Block;
        // Output [N, b1, b2, C, H', W'] reads input [n, c, h' * b + b1, w' * b + b2].
        ((ReadOnlySpan<int>)[n, b, b, c, h / b, w / b]).CopyTo(shape);
        ((ReadOnlySpan<long>)[(long)c * h * w, w, 1, (long)h * w, (long)b * w, b]).CopyTo(strides);
    }
}

/// <summary><c>Trilu</c>: keeps the upper (default) or lower triangle of the last two axes, offset by diagonal <c>k</c>.</summary>
internal sealed class TriluOperator : LayoutOperator
{
    private readonly bool _upper;

    public TriluOperator(Node node) : base(node) => _upper = Attributes.Int("upper", 1) != 0;

    public override void InferOutputs(InferenceContext context)
    {
        var input = context.InputShape(0);
        if (input is not null && input.Length < 2) throw Invalid($"requires at least 2 dimensions, not shape {Shapes.Format(input)}.");
        context.SetOutput(0, context.InputType(0), input);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var input = Required(inputs, 0);
        int rows = input.Shape[^2], width = input.Shape[^1];
        // Beyond ±(rows + width) every k gives the same result; clamping keeps i + k from overflowing.
        long k = Math.Clamp(Optional(inputs, 1)?.GetAsInt64(0) ?? 0, -(long)rows - width, (long)rows + width);
        int es = DataTypes.SizeOf(input.DataType);
        var src = input.Bytes;
        var dst = outputs[0].Bytes;
        int rowBytes = width * es, count = rows == 0 || width == 0 ? 0 : input.ElementCount / width;
        for (int r = 0; r < count; r++)
        {
            long i = r % rows;
            // Upper keeps columns j >= i + k; lower keeps j <= i + k. Zero bytes are zero in every type.
            int split = (int)Math.Clamp(_upper ? i + k : i + k + 1, 0, width) * es;
            var from = src.Slice(r * rowBytes, rowBytes);
            var to = dst.Slice(r * rowBytes, rowBytes);
            if (_upper)
            {
                to[..split].Clear();
                from[split..].CopyTo(to[split..]);
            }
            else
            {
                from[..split].CopyTo(to[..split]);
                to[split..].Clear();
            }
        }
    }
}
