using System.Numerics;
using System.Runtime.InteropServices;
using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Operators;

/// <summary>Indexing: Gather GatherElements GatherND ScatterND ScatterElements (and its opset 9-10 name Scatter).</summary>
internal static class IndexingOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        registry.Add("Gather", n => new GatherOperator(n), minOpset: 1);
        registry.Add("GatherElements", n => new GatherElementsOperator(n), minOpset: 11);
        registry.Add("GatherND", n => new GatherNDOperator(n), minOpset: 11);
        registry.Add("ScatterND", n => new ScatterNDOperator(n), minOpset: 11);
        registry.Add("ScatterElements", n => new ScatterElementsOperator(n), minOpset: 11);
        registry.Add("Scatter", n => new ScatterElementsOperator(n), minOpset: 9, maxOpset: 10);
    }

    /// <summary>Reinterprets a tensor's bytes as elements of the same size (copies do not care about the type).</summary>
    internal static Span<T> Raw<T>(Tensor t) where T : unmanaged => MemoryMarshal.Cast<byte, T>(t.Bytes);

    /// <summary>Checks that an index input is int32 or int64 (int64 only where the spec says so).</summary>
    internal static void CheckIndexType(InferenceContext context, int input, bool allowInt32)
    {
        var type = context.InputType(input);
        if (type != DataType.Int64 && !(allowInt32 && type == DataType.Int32))
            throw context.Invalid($"indices must be {(allowInt32 ? "int32 or int64" : "int64")}, not {DataTypes.Name(type)}.");
    }

    /// <summary>Indices made non-negative into <paramref name="destination"/>; throws for one out of [-dim, dim).</summary>
    internal static void NormalizeIndices(Tensor indices, int dim, Span<int> destination, Func<string, SquashException> invalid)
    {
        int bad = Indexing.Normalize(indices, dim, destination);
        if (bad >= 0) throw invalid($"index {indices.GetAsInt64(bad)} is out of range for an axis of size {dim}.");
    }

    /// <summary>Parses a scatter <c>reduction</c> attribute.</summary>
    internal static ScatterReduction ParseReduction(string value, Func<string, SquashException> invalid) => value switch
    {
        "none" => ScatterReduction.None,
        "add" => ScatterReduction.Add,
        "mul" => ScatterReduction.Mul,
        "max" => ScatterReduction.Max,
        "min" => ScatterReduction.Min,
        _ => throw invalid($"reduction '{value}' is not one of none, add, mul, max, min."),
    };
}

/// <summary>
/// Gather: picks slices along <c>axis</c> by index. Output shape <c>data[:axis] + indices + data[axis+1:]</c>;
/// every picked slice is a contiguous block copied with one memmove (embedding lookups on axis 0 copy whole rows).
/// </summary>
internal sealed class GatherOperator : Operator
{
    private readonly long _axis;

    public GatherOperator(Node node) : base(node) => _axis = Attributes.Int("axis", 0);

    public override void InferOutputs(InferenceContext context)
    {
        IndexingOperators.CheckIndexType(context, 1, allowInt32: true);
        var type = context.InputType(0);
        if (!DataTypes.IsSupported(type)) throw Unsupported($"{DataTypes.Name(type)} tensors are not supported.");
        var data = context.InputShape(0);
        var indices = context.InputShape(1);
        if (data is null || indices is null)
        {
            context.SetOutput(0, type, null);
            return;
        }
        int axis = Axis(data.Length);
        context.SetOutput(0, type, [.. data.AsSpan(0, axis), .. indices, .. data.AsSpan(axis + 1)]);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var data = Required(inputs, 0);
        var indices = Required(inputs, 1);
        int axis = Axis(data.Rank);
        int dim = data.Shape[axis];
        int count = indices.ElementCount;
        var index = Indexing.Rent(count);
        try
        {
            IndexingOperators.NormalizeIndices(indices, dim, index, Invalid);
            int outer = Shapes.Product(data.Shape, 0, axis);
            int block = Shapes.Product(data.Shape, axis + 1, data.Rank);
            int items = outer * count;
            int blockBytes = block * DataTypes.SizeOf(data.DataType);
            // About 16 KB of copying per parallel chunk keeps scheduling cost small against the memmoves.
            int grain = Math.Max(1, 16384 / Math.Max(1, blockBytes));
            switch (DataTypes.SizeOf(data.DataType))
            {
                case 1: context.For(items, new Body<byte>(data, outputs[0], index, count, dim, block), grain); break;
                case 2: context.For(items, new Body<ushort>(data, outputs[0], index, count, dim, block), grain); break;
                case 4: context.For(items, new Body<uint>(data, outputs[0], index, count, dim, block), grain); break;
                default: context.For(items, new Body<ulong>(data, outputs[0], index, count, dim, block), grain); break;
            }
        }
        finally
        {
            Indexing.Return(index);
        }
    }

    private int Axis(int rank)
    {
        if (rank == 0) throw Invalid("data must have rank 1 or more.");
        if (_axis < -rank || _axis >= rank) throw Invalid($"axis {_axis} is out of range for rank {rank}.");
        return (int)(_axis < 0 ? _axis + rank : _axis);
    }

    private readonly struct Body<T>(Tensor data, Tensor output, int[] index, int count, int dim, int block) : IRangeBody
        where T : unmanaged
    {
        public void Invoke(int start, int end) =>
            Indexing.GatherBlocks(IndexingOperators.Raw<T>(data), IndexingOperators.Raw<T>(output),
                index.AsSpan(0, count), dim, block, start, end);
    }
}

/// <summary>
/// GatherElements: <c>out[i][j][k] = data[index[i][j][k]][j][k]</c> along <c>axis</c> (shown for axis 0). The output
/// has the shape of <c>indices</c>, whose dimensions may be smaller than <c>data</c>'s off the axis.
/// </summary>
internal sealed class GatherElementsOperator : Operator
{
    private readonly long _axis;

    public GatherElementsOperator(Node node) : base(node) => _axis = Attributes.Int("axis", 0);

    public override void InferOutputs(InferenceContext context)
    {
        IndexingOperators.CheckIndexType(context, 1, allowInt32: true);
        var type = context.InputType(0);
        if (!DataTypes.IsSupported(type)) throw Unsupported($"{DataTypes.Name(type)} tensors are not supported.");
        var data = context.InputShape(0);
        var indices = context.InputShape(1);
        if (data is not null && indices is not null && data.Length != indices.Length)
            throw Invalid($"indices (rank {indices.Length}) must have the rank of data (rank {data.Length}).");
        context.SetOutput(0, type, indices);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var data = Required(inputs, 0);
        var indices = Required(inputs, 1);
        int rank = data.Rank;
        if (rank == 0 || _axis < -rank || _axis >= rank) throw Invalid($"axis {_axis} is out of range for rank {rank}.");
        int axis = (int)(_axis < 0 ? _axis + rank : _axis);
        for (int d = 0; d < rank; d++)
            if (d != axis && indices.Shape[d] > data.Shape[d])
                throw Invalid($"indices shape {Shapes.Format(indices.Shape)} exceeds data shape {Shapes.Format(data.Shape)} off the axis.");
        var index = Indexing.Rent(indices.ElementCount);
        try
        {
            IndexingOperators.NormalizeIndices(indices, data.Shape[axis], index, Invalid);
            switch (DataTypes.SizeOf(data.DataType))
            {
                case 1: Gather<byte>(data, indices.Shape, index, axis, outputs[0]); break;
                case 2: Gather<ushort>(data, indices.Shape, index, axis, outputs[0]); break;
                case 4: Gather<uint>(data, indices.Shape, index, axis, outputs[0]); break;
                default: Gather<ulong>(data, indices.Shape, index, axis, outputs[0]); break;
            }
        }
        finally
        {
            Indexing.Return(index);
        }
    }

    private static void Gather<T>(Tensor data, int[] shape, int[] index, int axis, Tensor output) where T : unmanaged
    {
        var src = IndexingOperators.Raw<T>(data);
        var dst = IndexingOperators.Raw<T>(output);
        int rank = shape.Length;
        var strides = Shapes.Strides(data.Shape);
        int axisStride = strides[axis];
        int inner = shape[rank - 1];
        if (dst.Length == 0) return;
        // Walk the rows of the index tensor (all dimensions but the last); the last one runs in the inner loop.
        Span<int> counter = stackalloc int[rank];
        int rows = dst.Length / inner;
        for (int row = 0, p = 0; row < rows; row++)
        {
            int baseOffset = 0;
            for (int d = 0; d < rank - 1; d++)
                if (d != axis) baseOffset += counter[d] * strides[d];
            if (axis == rank - 1)
            {
                for (int j = 0; j < inner; j++, p++) dst[p] = src[baseOffset + index[p]];
            }
            else
            {
                for (int j = 0; j < inner; j++, p++) dst[p] = src[baseOffset + j + index[p] * axisStride];
            }
            for (int d = rank - 2; d >= 0; d--)
            {
                if (++counter[d] < shape[d]) break;
                counter[d] = 0;
            }
        }
    }
}

/// <summary>
/// GatherND: index tuples of length <c>k</c> (the last dimension of <c>indices</c>) pick blocks of
/// <c>data[batch_dims + k:]</c>; the first <c>batch_dims</c> dimensions of both inputs are matched batches.
/// </summary>
internal sealed class GatherNDOperator : Operator
{
    private readonly int _batchDims;

    public GatherNDOperator(Node node) : base(node)
    {
        long b = Attributes.Int("batch_dims", 0);
        if (b < 0) throw Invalid($"batch_dims must be 0 or more, not {b}.");
        _batchDims = (int)b;
    }

    public override void InferOutputs(InferenceContext context)
    {
        IndexingOperators.CheckIndexType(context, 1, allowInt32: false);
        var type = context.InputType(0);
        if (!DataTypes.IsSupported(type)) throw Unsupported($"{DataTypes.Name(type)} tensors are not supported.");
        var data = context.InputShape(0);
        var indices = context.InputShape(1);
        if (data is null || indices is null || indices.Length == 0 || indices[^1] < 0)
        {
            context.SetOutput(0, type, null);
            return;
        }
        int k = indices[^1];
        Check(data.Length, indices.Length, k);
        for (int d = 0; d < _batchDims; d++)
            if (data[d] >= 0 && indices[d] >= 0 && data[d] != indices[d])
                throw Invalid($"batch dimension {d} differs between data {Shapes.Format(data)} and indices {Shapes.Format(indices)}.");
        context.SetOutput(0, type, [.. indices.AsSpan(0, indices.Length - 1), .. data.AsSpan(_batchDims + k)]);
    }

    private void Check(int r, int q, int k)
    {
        if (q < 1 || r < 1) throw Invalid("data and indices must have rank 1 or more.");
        if (_batchDims >= Math.Min(r, q)) throw Invalid($"batch_dims {_batchDims} must be less than the ranks of data ({r}) and indices ({q}).");
        if (k < 1 || k > r - _batchDims) throw Invalid($"the last dimension of indices ({k}) must be in [1, {r - _batchDims}].");
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var data = Required(inputs, 0);
        var indices = Required(inputs, 1);
        int r = data.Rank, q = indices.Rank;
        int k = indices.Shape[q - 1];
        Check(r, q, k);
        int batches = Shapes.Product(data.Shape, 0, _batchDims);
        int tuples = Shapes.Product(indices.Shape, _batchDims, q - 1);
        int block = Shapes.Product(data.Shape, _batchDims + k, r);
        int batchStride = Shapes.Product(data.Shape, _batchDims, r);
        var strides = Shapes.Strides(data.Shape);
        var idx = indices.AsSpan<long>();
        var offsets = Indexing.Rent(batches * tuples);
        try
        {
            for (int b = 0, t = 0; b < batches; b++)
                for (int j = 0; j < tuples; j++, t++)
                {
                    long offset = (long)b * batchStride;
                    for (int i = 0; i < k; i++)
                    {
                        int dim = data.Shape[_batchDims + i];
                        long v = idx[t * k + i];
                        if (v < 0) v += dim;
                        if ((ulong)v >= (ulong)dim) throw Invalid($"index {idx[t * k + i]} is out of range for an axis of size {dim}.");
                        offset += v * strides[_batchDims + i];
                    }
                    offsets[t] = (int)offset;
                }
            switch (DataTypes.SizeOf(data.DataType))
            {
                case 1: Copy<byte>(data, outputs[0], offsets, batches * tuples, block); break;
                case 2: Copy<ushort>(data, outputs[0], offsets, batches * tuples, block); break;
                case 4: Copy<uint>(data, outputs[0], offsets, batches * tuples, block); break;
                default: Copy<ulong>(data, outputs[0], offsets, batches * tuples, block); break;
            }
        }
        finally
        {
            Indexing.Return(offsets);
        }
    }

    private static void Copy<T>(Tensor data, Tensor output, int[] offsets, int count, int block) where T : unmanaged
    {
        var src = IndexingOperators.Raw<T>(data);
        var dst = IndexingOperators.Raw<T>(output);
        if (block == 1)
            for (int t = 0; t < count; t++) dst[t] = src[offsets[t]];
        else
            for (int t = 0; t < count; t++) src.Slice(offsets[t], block).CopyTo(dst.Slice(t * block, block));
    }
}

/// <summary>
/// ScatterND: a copy of <c>data</c> where the blocks addressed by the index tuples of <c>indices</c> are replaced
/// by (or, with <c>reduction</c>, combined with) the matching blocks of <c>updates</c>, in index order.
/// </summary>
internal sealed class ScatterNDOperator : Operator
{
    private readonly ScatterReduction _reduction;

    public ScatterNDOperator(Node node) : base(node) =>
        _reduction = IndexingOperators.ParseReduction(Attributes.String("reduction", "none"), Invalid);

    public override void InferOutputs(InferenceContext context)
    {
        IndexingOperators.CheckIndexType(context, 1, allowInt32: false);
        var type = context.InputType(0);
        ScatterKernels.CheckType(type, _reduction, Unsupported);
        if (context.InputType(2) != type) throw Invalid("updates must have the type of data.");
        context.SetOutput(0, type, context.InputShape(0));
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var data = Required(inputs, 0);
        var indices = Required(inputs, 1);
        var updates = Required(inputs, 2);
        var output = outputs[0];
        int r = data.Rank, q = indices.Rank;
        if (q < 1) throw Invalid("indices must have rank 1 or more.");
        int k = indices.Shape[q - 1];
        if (k < 1 || k > r) throw Invalid($"the last dimension of indices ({k}) must be in [1, {r}].");
        int[] expected = [.. indices.Shape.AsSpan(0, q - 1), .. data.Shape.AsSpan(k)];
        if (!Shapes.Equal(expected, updates.Shape))
            throw Invalid($"updates has shape {Shapes.Format(updates.Shape)}, expected {Shapes.Format(expected)}.");
        int count = Shapes.Product(indices.Shape, 0, q - 1);
        int block = Shapes.Product(data.Shape, k, r);
        var strides = Shapes.Strides(data.Shape);
        var idx = indices.AsSpan<long>();
        var offsets = Indexing.Rent(count);
        try
        {
            for (int t = 0; t < count; t++)
            {
                long offset = 0;
                for (int i = 0; i < k; i++)
                {
                    long v = idx[t * k + i];
                    if (v < 0) v += data.Shape[i];
                    if ((ulong)v >= (ulong)data.Shape[i]) throw Invalid($"index {idx[t * k + i]} is out of range for an axis of size {data.Shape[i]}.");
                    offset += v * strides[i];
                }
                offsets[t] = (int)offset;
            }
            data.Bytes.CopyTo(output.Bytes);
            ScatterKernels.ScatterBlocks(output, updates, offsets.AsSpan(0, count), block, _reduction);
        }
        finally
        {
            Indexing.Return(offsets);
        }
    }
}

/// <summary>
/// ScatterElements (and Scatter, its name in opsets 9-10): a copy of <c>data</c> where
/// <c>out[index[i][j]][j] = updates[i][j]</c> along <c>axis</c> (shown for axis 0), or combined with
/// <c>reduction</c>, in row-major order of <c>updates</c>.
/// </summary>
internal sealed class ScatterElementsOperator : Operator
{
    private readonly long _axis;
    private readonly ScatterReduction _reduction;

    public ScatterElementsOperator(Node node) : base(node)
    {
        _axis = Attributes.Int("axis", 0);
        _reduction = IndexingOperators.ParseReduction(Attributes.String("reduction", "none"), Invalid);
    }

    public override void InferOutputs(InferenceContext context)
    {
        IndexingOperators.CheckIndexType(context, 1, allowInt32: true);
        var type = context.InputType(0);
        ScatterKernels.CheckType(type, _reduction, Unsupported);
        if (context.InputType(2) != type) throw Invalid("updates must have the type of data.");
        context.SetOutput(0, type, context.InputShape(0));
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var data = Required(inputs, 0);
        var indices = Required(inputs, 1);
        var updates = Required(inputs, 2);
        int rank = data.Rank;
        if (rank == 0 || _axis < -rank || _axis >= rank) throw Invalid($"axis {_axis} is out of range for rank {rank}.");
        int axis = (int)(_axis < 0 ? _axis + rank : _axis);
        if (indices.Rank != rank || !Shapes.Equal(indices.Shape, updates.Shape))
            throw Invalid($"indices {Shapes.Format(indices.Shape)} and updates {Shapes.Format(updates.Shape)} must have one shape of the rank of data.");
        for (int d = 0; d < rank; d++)
            if (d != axis && indices.Shape[d] > data.Shape[d])
                throw Invalid($"indices shape {Shapes.Format(indices.Shape)} exceeds data shape {Shapes.Format(data.Shape)} off the axis.");
        var index = Indexing.Rent(indices.ElementCount);
        var offsets = Indexing.Rent(indices.ElementCount);
        try
        {
            IndexingOperators.NormalizeIndices(indices, data.Shape[axis], index, Invalid);
            // Flat output offset of every update: its own position with the axis coordinate replaced by the index.
            var strides = Shapes.Strides(data.Shape);
            var shape = indices.Shape;
            Span<int> counter = stackalloc int[rank];
            for (int p = 0; p < indices.ElementCount; p++)
            {
                int offset = 0;
                for (int d = 0; d < rank; d++) offset += (d == axis ? index[p] : counter[d]) * strides[d];
                offsets[p] = offset;
                for (int d = rank - 1; d >= 0; d--)
                {
                    if (++counter[d] < shape[d]) break;
                    counter[d] = 0;
                }
            }
            data.Bytes.CopyTo(outputs[0].Bytes);
            ScatterKernels.ScatterBlocks(outputs[0], updates, offsets.AsSpan(0, indices.ElementCount), 1, _reduction);
        }
        finally
        {
            Indexing.Return(index);
            Indexing.Return(offsets);
        }
    }
}

/// <summary>Typed dispatch for the scatter operators.</summary>
internal static class ScatterKernels
{
    /// <summary>Throws unless <paramref name="type"/> supports <paramref name="reduction"/>.</summary>
    public static void CheckType(DataType type, ScatterReduction reduction, Func<string, SquashException> unsupported)
    {
        if (!DataTypes.IsSupported(type)) throw unsupported($"{DataTypes.Name(type)} tensors are not supported.");
        if (reduction != ScatterReduction.None && type == DataType.Bool)
            throw unsupported($"reduction {reduction.ToString().ToLowerInvariant()} is not defined for bool tensors.");
    }

    /// <summary>
    /// <c>output[offsets[t] .. + block] (op)= updates[t * block .. + block]</c> for each t in order.
    /// </summary>
    public static void ScatterBlocks(Tensor output, Tensor updates, ReadOnlySpan<int> offsets, int block, ScatterReduction reduction)
    {
        if (reduction == ScatterReduction.None)
        {
            switch (DataTypes.SizeOf(output.DataType))
            {
                case 1: Replace<byte>(output, updates, offsets, block); break;
                case 2: Replace<ushort>(output, updates, offsets, block); break;
                case 4: Replace<uint>(output, updates, offsets, block); break;
                default: Replace<ulong>(output, updates, offsets, block); break;
            }
            return;
        }
        switch (output.DataType)
        {
            case DataType.Float: Reduce<float>(output, updates, offsets, block, reduction); break;
            case DataType.Double: Reduce<double>(output, updates, offsets, block, reduction); break;
            case DataType.Float16: Reduce<Half>(output, updates, offsets, block, reduction); break;
            case DataType.Int8: Reduce<sbyte>(output, updates, offsets, block, reduction); break;
            case DataType.UInt8: Reduce<byte>(output, updates, offsets, block, reduction); break;
            case DataType.Int16: Reduce<short>(output, updates, offsets, block, reduction); break;
            case DataType.UInt16: Reduce<ushort>(output, updates, offsets, block, reduction); break;
            case DataType.Int32: Reduce<int>(output, updates, offsets, block, reduction); break;
            case DataType.UInt32: Reduce<uint>(output, updates, offsets, block, reduction); break;
            case DataType.Int64: Reduce<long>(output, updates, offsets, block, reduction); break;
            case DataType.UInt64: Reduce<ulong>(output, updates, offsets, block, reduction); break;
            case DataType.BFloat16: ReduceBFloat16(output, updates, offsets, block, reduction); break;
            default: throw new NotSupportedException(DataTypes.Name(output.DataType));
        }
    }

    private static void Replace<T>(Tensor output, Tensor updates, ReadOnlySpan<int> offsets, int block) where T : unmanaged
    {
        var dst = IndexingOperators.Raw<T>(output);
        var src = IndexingOperators.Raw<T>(updates);
        if (block == 1)
            for (int t = 0; t < offsets.Length; t++) dst[offsets[t]] = src[t];
        else
            for (int t = 0; t < offsets.Length; t++) src.Slice(t * block, block).CopyTo(dst.Slice(offsets[t], block));
    }

    private static void Reduce<T>(Tensor output, Tensor updates, ReadOnlySpan<int> offsets, int block, ScatterReduction reduction)
        where T : unmanaged, INumber<T>
    {
        var dst = output.AsSpan<T>();
        var src = updates.AsSpan<T>();
        if (block == 1)
            for (int t = 0; t < offsets.Length; t++) dst[offsets[t]] = Indexing.Combine(dst[offsets[t]], src[t], reduction);
        else
            for (int t = 0; t < offsets.Length; t++) Indexing.Combine(dst.Slice(offsets[t], block), src.Slice(t * block, block), reduction);
    }

    private static void ReduceBFloat16(Tensor output, Tensor updates, ReadOnlySpan<int> offsets, int block, ScatterReduction reduction)
    {
        // bfloat16 has no arithmetic of its own: combine in float and round back once per element.
        var dst = output.AsSpan<BFloat16>();
        var src = updates.AsSpan<BFloat16>();
        for (int t = 0; t < offsets.Length; t++)
            for (int j = 0; j < block; j++)
            {
                ref var d = ref dst[offsets[t] + j];
                d = (BFloat16)Indexing.Combine((float)d, (float)src[t * block + j], reduction);
            }
    }
}
