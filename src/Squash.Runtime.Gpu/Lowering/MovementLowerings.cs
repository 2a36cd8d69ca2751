using ILGPU;
using ILGPU.Runtime;
using Squash.Runtime.Gpu.Execution;
using Squash.Runtime.Gpu.Kernels;
using Squash.Runtime.Ir;
using static Squash.Runtime.Gpu.Execution.LoweringContext;

namespace Squash.Runtime.Gpu.Lowering;

/// <summary>Reshape-like copies, Transpose, Slice, Concat, Split, Where, Expand, Tile, DepthToSpace, SpaceToDepth,
/// Pad, Gather, Resize/Upsample (nearest, linear), Cast.
/// All but linear Resize and Cast move elements of any type by size.</summary>
internal static class MovementLowerings
{
    public static void Register(Dictionary<string, Lowering> t)
    {
        // The output has the input's bytes in the same order: a device-side copy into the output's slot.
        foreach (var op in new[] { "Reshape", "Flatten", "Squeeze", "Unsqueeze" }) t[op] = Copy;
        t["Transpose"] = Transpose;
        t["Slice"] = Slice;
        t["Concat"] = Concat;
        t["Split"] = Split;
        t["Where"] = Where;
        t["Expand"] = Expand;
        t["Gather"] = Gather;
        t["Resize"] = Resize;
        t["Upsample"] = Resize;
        t["Cast"] = Cast;
        t["CastLike"] = Cast;
        t["Pad"] = Pad;
        t["Tile"] = Tile;
        t["DepthToSpace"] = DepthToSpace;
        t["SpaceToDepth"] = SpaceToDepth;
    }

    private static GpuStep Copy(LoweringContext c)
    {
        var x = c.RequiredInput(0);
        var y = c.Output(0);
        if (Count(y) == 0) return ElementwiseLowerings.Nothing;
        var vx = c.Bytes(x);
        var vy = c.Bytes(y);
        return new ActionStep(s => vx.CopyTo(s, vy));
    }

    /// <summary>y[i] = x[offset + strided(i)] for any element type.</summary>
    private static GpuStep StridedGather(LoweringContext c, Value x, Value y, int[] shape, long[] strides, int offset)
    {
        if (Count(y) == 0) return ElementwiseLowerings.Nothing;
        var (d, s) = NdLayout.Collapse(shape, strides);
        return DataTypes.SizeOf(x.Type) switch
        {
            1 => Gather<byte>(c, x, y, d, s[0], offset),
            2 => Gather<ushort>(c, x, y, d, s[0], offset),
            4 => Gather<uint>(c, x, y, d, s[0], offset),
            8 => Gather<ulong>(c, x, y, d, s[0], offset),
            _ => throw new NotOnDeviceException($"{DataTypes.Name(x.Type)} elements"),
        };
    }

    private static GpuStep Gather<T>(LoweringContext c, Value x, Value y, Dims6 d, Strides6 s, int offset) where T : unmanaged
    {
        var vx = c.Bytes(x).Cast<T>();
        var vy = c.Bytes(y).Cast<T>();
        int n = Count(y);
        var k = c.Kernels.Auto<ArrayView<T>, ArrayView<T>, Dims6, Strides6, int>(MovementKernels.Gather<T>);
        return new ActionStep(st => k(st, n, vx, vy, d, s, offset));
    }

    private static GpuStep Scatter<T>(LoweringContext c, Value x, Value y, Dims6 d, Strides6 s, int offset) where T : unmanaged
    {
        var vx = c.Bytes(x).Cast<T>();
        var vy = c.Bytes(y).Cast<T>();
        int n = Count(x);
        var k = c.Kernels.Auto<ArrayView<T>, ArrayView<T>, Dims6, Strides6, int>(MovementKernels.Scatter<T>);
        return new ActionStep(st => k(st, n, vx, vy, d, s, offset));
    }

    private static GpuStep Transpose(LoweringContext c)
    {
        var x = c.RequiredInput(0);
        var y = c.Output(0);
        var shape = Shape(x);
        var perm = Attr.Ints(c.Node, "perm")?.Select(p => c.Axis(p, shape.Length)).ToArray()
            ?? [.. Enumerable.Range(0, shape.Length).Reverse()];
        var own = NdLayout.RowMajorStrides(shape);
        return StridedGather(c, x, y, Shape(y), [.. perm.Select(p => own[p])], 0);
    }

    private static GpuStep Expand(LoweringContext c)
    {
        var x = c.RequiredInput(0);
        var y = c.Output(0);
        return StridedGather(c, x, y, Shape(y), NdLayout.BroadcastStrides(Shape(x), Shape(y)), 0);
    }

    /// <summary>Slice with ONNX's clamping rules; the output shape is known, so only the starts and steps matter.</summary>
    private static GpuStep Slice(LoweringContext c)
    {
        var x = c.RequiredInput(0);
        var y = c.Output(0);
        var shape = Shape(x);
        long[] starts, axes, steps;
        if (c.Node.OpsetVersion is > 0 and < 10)
        {
            starts = Attr.Ints(c.Node, "starts") ?? [];
            axes = Attr.Ints(c.Node, "axes") ?? [.. Enumerable.Range(0, starts.Length).Select(a => (long)a)];
            steps = [.. starts.Select(_ => 1L)];
        }
        else
        {
            starts = c.ConstantInput(1, "starts").ToInt64Array();
            axes = c.Input(3) is null ? [.. Enumerable.Range(0, starts.Length).Select(a => (long)a)] : c.ConstantInput(3, "axes").ToInt64Array();
            steps = c.Input(4) is null ? [.. starts.Select(_ => 1L)] : c.ConstantInput(4, "steps").ToInt64Array();
        }
        var own = NdLayout.RowMajorStrides(shape);
        var strides = (long[])own.Clone();
        long offset = 0;
        for (int k = 0; k < starts.Length; k++)
        {
            int a = c.Axis(axes[k], shape.Length);
            long dim = shape[a], start = starts[k], step = steps[k];
            if (start < 0) start += dim;
            start = step > 0 ? Math.Clamp(start, 0, dim) : Math.Clamp(start, 0, dim - 1);
            if (Shape(y)[a] > 0) offset += start * own[a];
            strides[a] = own[a] * step;
        }
        return StridedGather(c, x, y, Shape(y), strides, checked((int)offset));
    }

    private static GpuStep Concat(LoweringContext c)
    {
        var y = c.Output(0);
        var outShape = Shape(y);
        int axis = c.Axis(Attr.Int(c.Node, "axis", 0), outShape.Length);
        var own = NdLayout.RowMajorStrides(outShape);
        var steps = new List<GpuStep>();
        long position = 0;
        foreach (var x in c.Node.Inputs)
        {
            if (x is null) continue;
            var shape = Shape(x);
            if (Count(x) > 0)
            {
                var (d, s) = NdLayout.Collapse(shape, own);
                int offset = checked((int)(position * own[axis]));
                steps.Add(DataTypes.SizeOf(x.Type) switch
                {
                    1 => Scatter<byte>(c, x, y, d, s[0], offset),
                    2 => Scatter<ushort>(c, x, y, d, s[0], offset),
                    4 => Scatter<uint>(c, x, y, d, s[0], offset),
                    8 => Scatter<ulong>(c, x, y, d, s[0], offset),
                    _ => throw new NotOnDeviceException($"{DataTypes.Name(x.Type)} elements"),
                });
            }
            position += shape[axis];
        }
        return new ActionStep(s => { foreach (var step in steps) step.Run(s); });
    }

    /// <summary>Split: each output is a strided copy of its range along the axis (the sizes are the output shapes).</summary>
    private static GpuStep Split(LoweringContext c)
    {
        var x = c.RequiredInput(0);
        var shape = Shape(x);
        int axis = c.Axis(Attr.Int(c.Node, "axis", 0), shape.Length);
        var own = NdLayout.RowMajorStrides(shape);
        var steps = new List<GpuStep>();
        long position = 0;
        foreach (var y in c.Node.Outputs)
        {
            steps.Add(StridedGather(c, x, y, Shape(y), own, checked((int)(position * own[axis]))));
            position += Shape(y)[axis];
        }
        return new ActionStep(s => { foreach (var step in steps) step.Run(s); });
    }

    private static GpuStep Where(LoweringContext c)
    {
        var condition = c.RequiredInput(0);
        var x = c.RequiredInput(1);
        var y = c.RequiredInput(2);
        var output = c.Output(0);
        if (condition.Type != DataType.Bool) throw new NotOnDeviceException("the condition is not bool");
        var shape = Shape(output);
        if (Count(output) == 0) return ElementwiseLowerings.Nothing;
        var (d, st) = NdLayout.Collapse(shape, NdLayout.BroadcastStrides(Shape(condition), shape),
            NdLayout.BroadcastStrides(Shape(x), shape), NdLayout.BroadcastStrides(Shape(y), shape));
        var strides = new WhereStrides { Condition = st[0], X = st[1], Y = st[2] };
        return DataTypes.SizeOf(x.Type) switch
        {
            1 => WhereStep<byte>(c, d, strides),
            2 => WhereStep<ushort>(c, d, strides),
            4 => WhereStep<uint>(c, d, strides),
            8 => WhereStep<ulong>(c, d, strides),
            _ => throw new NotOnDeviceException($"{DataTypes.Name(x.Type)} elements"),
        };
    }

    private static GpuStep WhereStep<T>(LoweringContext c, Dims6 d, WhereStrides strides) where T : unmanaged
    {
        var vc = c.Bytes(c.RequiredInput(0));
        var vx = c.Bytes(c.RequiredInput(1)).Cast<T>();
        var vy = c.Bytes(c.RequiredInput(2)).Cast<T>();
        var vo = c.Bytes(c.Output(0)).Cast<T>();
        int n = Count(c.Output(0));
        var k = c.Kernels.Auto<ArrayView<byte>, ArrayView<T>, ArrayView<T>, ArrayView<T>, Dims6, WhereStrides>(MovementKernels.Where<T>);
        return new ActionStep(s => k(s, n, vc, vx, vy, vo, d, strides));
    }

    private static GpuStep Gather(LoweringContext c)
    {
        var x = c.RequiredInput(0);
        var indices = c.RequiredInput(1);
        var y = c.Output(0);
        var shape = Shape(x);
        int axis = c.Axis(Attr.Int(c.Node, "axis", 0), shape.Length);
        int outer = 1, inner = 1;
        for (int a = 0; a < axis; a++) outer *= shape[a];
        for (int a = axis + 1; a < shape.Length; a++) inner *= shape[a];
        var p = new Dims6 { D3 = shape[axis], D4 = Count(indices), D5 = inner };
        if (Count(y) == 0) return ElementwiseLowerings.Nothing;
        return (DataTypes.SizeOf(x.Type), indices.Type) switch
        {
            (4, DataType.Int64) => GatherAxis<uint, Int64Indices>(c, x, y, new Int64Indices { Values = c.View<long>(indices) }, p),
            (4, DataType.Int32) => GatherAxis<uint, Int32Indices>(c, x, y, new Int32Indices { Values = c.View<int>(indices) }, p),
            (8, DataType.Int64) => GatherAxis<ulong, Int64Indices>(c, x, y, new Int64Indices { Values = c.View<long>(indices) }, p),
            (8, DataType.Int32) => GatherAxis<ulong, Int32Indices>(c, x, y, new Int32Indices { Values = c.View<int>(indices) }, p),
            (2, DataType.Int64) => GatherAxis<ushort, Int64Indices>(c, x, y, new Int64Indices { Values = c.View<long>(indices) }, p),
            (1, DataType.Int64) => GatherAxis<byte, Int64Indices>(c, x, y, new Int64Indices { Values = c.View<long>(indices) }, p),
            _ => throw new NotOnDeviceException($"Gather of {DataTypes.Name(x.Type)} by {DataTypes.Name(indices.Type)}"),
        };
    }

    private static GpuStep GatherAxis<T, TIndex>(LoweringContext c, Value x, Value y, TIndex indices, Dims6 p)
        where T : unmanaged
        where TIndex : struct, IIndices
    {
        var vx = c.Bytes(x).Cast<T>();
        var vy = c.Bytes(y).Cast<T>();
        int n = Count(y);
        var k = c.Kernels.Auto<ArrayView<T>, ArrayView<T>, TIndex, Dims6>(MovementKernels.GatherAxis<T, TIndex>);
        return new ActionStep(s => k(s, n, vx, vy, indices, p));
    }

    private static GpuStep Cast(LoweringContext c)
    {
        var x = c.RequiredInput(0);
        var y = c.Output(0);
        if (x.Type == y.Type) return Copy(c);
        if (Count(y) == 0) return ElementwiseLowerings.Nothing;
        return (x.Type, y.Type) switch
        {
            (DataType.Float, DataType.Int32) => CastStep<float, int, FloatToInt32>(c),
            (DataType.Float, DataType.Int64) => CastStep<float, long, FloatToInt64>(c),
            (DataType.Float, DataType.Bool) => CastStep<float, byte, FloatToBool>(c),
            (DataType.Float, DataType.Float16) => CastStep<float, ushort, FloatToHalf>(c),
            (DataType.Int32, DataType.Float) => CastStep<int, float, Int32ToFloat>(c),
            (DataType.Int64, DataType.Float) => CastStep<long, float, Int64ToFloat>(c),
            (DataType.UInt8, DataType.Float) => CastStep<byte, float, UInt8ToFloat>(c),
            (DataType.Int8, DataType.Float) => CastStep<sbyte, float, Int8ToFloat>(c),
            (DataType.Bool, DataType.Float) => CastStep<byte, float, BoolToFloat>(c),
            (DataType.Float16, DataType.Float) => CastStep<ushort, float, HalfToFloat>(c),
            (DataType.Int64, DataType.Int32) => CastStep<long, int, Int64ToInt32>(c),
            (DataType.Int32, DataType.Int64) => CastStep<int, long, Int32ToInt64>(c),
            _ => throw new NotOnDeviceException($"Cast from {DataTypes.Name(x.Type)} to {DataTypes.Name(y.Type)}"),
        };
    }

    private static GpuStep CastStep<TIn, TOut, TConvert>(LoweringContext c)
        where TIn : unmanaged
        where TOut : unmanaged
        where TConvert : struct, IConvert<TIn, TOut>
    {
        var vx = c.Bytes(c.RequiredInput(0)).Cast<TIn>();
        var vy = c.Bytes(c.Output(0)).Cast<TOut>();
        int n = Count(c.Output(0));
        var k = c.Kernels.Auto<ArrayView<TIn>, ArrayView<TOut>>(CastKernels.Cast<TIn, TOut, TConvert>);
        return new ActionStep(s => k(s, n, vx, vy));
    }

    private static GpuStep Resize(LoweringContext c) => ResizeLowering.Lower(c);

    /// <summary>Tile as a gather over interleaved (repeat, input) dimension pairs: stride 0 along each repeat.</summary>
    private static GpuStep Tile(LoweringContext c)
    {
        var x = c.RequiredInput(0);
        var y = c.Output(0);
        var inShape = Shape(x);
        var own = NdLayout.RowMajorStrides(inShape);
        var shape = new int[2 * inShape.Length];
        var strides = new long[2 * inShape.Length];
        for (int k = 0; k < inShape.Length; k++)
        {
            shape[2 * k] = inShape[k] == 0 ? 0 : Shape(y)[k] / inShape[k];
            shape[2 * k + 1] = inShape[k];
            strides[2 * k + 1] = own[k];
        }
        return StridedGather(c, x, y, shape, strides, 0);
    }

    /// <summary>DepthToSpace: the output viewed as [N, C', H, b, W, b] gathers from the input viewed as
    /// [N, b, b, C', H, W] (DCR) or [N, C', b, b, H, W] (CRD).</summary>
    private static GpuStep DepthToSpace(LoweringContext c)
    {
        var x = c.RequiredInput(0);
        var xs = Shape(x);
        if (xs.Length != 4) throw new NotOnDeviceException("rank other than 4");
        int b = (int)Attr.Int(c.Node, "blocksize", 1);
        int n = xs[0], ch = xs[1], h = xs[2], w = xs[3], co = ch / (b * b);
        long plane = (long)h * w;
        bool crd = Attr.String(c.Node, "mode", "DCR") == "CRD";
        long sC = crd ? b * b * plane : plane, sB1 = crd ? b * plane : (long)b * co * plane, sB2 = crd ? plane : co * plane;
        return StridedGather(c, x, c.Output(0), [n, co, h, b, w, b], [ch * plane, sC, w, sB1, 1, sB2], 0);
    }

    /// <summary>SpaceToDepth: the output viewed as [N, b, b, C, H', W'] gathers from the input viewed as
    /// [N, C, H', b, W', b].</summary>
    private static GpuStep SpaceToDepth(LoweringContext c)
    {
        var x = c.RequiredInput(0);
        var xs = Shape(x);
        if (xs.Length != 4) throw new NotOnDeviceException("rank other than 4");
        int b = (int)Attr.Int(c.Node, "blocksize", 1);
        int n = xs[0], ch = xs[1], h = xs[2], w = xs[3];
        long plane = (long)h * w;
        return StridedGather(c, x, c.Output(0), [n, b, b, ch, h / b, w / b], [ch * plane, w, 1, plane, (long)b * w, b], 0);
    }

    /// <summary>Pad in every mode, through per-axis source maps computed on the host.</summary>
    private static GpuStep Pad(LoweringContext c)
    {
        var x = c.RequiredInput(0);
        var y = c.Output(0);
        var inShape = Shape(x);
        var outShape = Shape(y);
        int rank = inShape.Length;
        if (rank > 6) throw new NotOnDeviceException("more than six dimensions");
        string mode = Attr.String(c.Node, "mode", "constant");
        bool legacy = c.Node.OpsetVersion is > 0 and < 11;
        long[] pads = legacy ? Attr.Ints(c.Node, "pads") ?? [] : c.ConstantInput(1, "pads").ToInt64Array();
        int[] axes = legacy || c.Input(3) is null
            ? [.. Enumerable.Range(0, rank)]
            : [.. c.ConstantInput(3, "axes").ToInt64Array().Select(a => c.Axis(a, rank))];
        var begin = new int[rank];
        for (int k = 0; k < axes.Length; k++) begin[axes[k]] = (int)pads[k];
        byte[] value = new byte[DataTypes.SizeOf(x.Type)];
        if (!legacy && c.Input(2) is not null && c.ConstantInput(2, "constant_value") is { ElementCount: > 0 } v) value = v.Bytes.ToArray();
        else
        {
            float f = legacy ? Attr.Float(c.Node, "value", 0f) : 0f;
            if (x.Type == DataType.Float) value = BitConverter.GetBytes(f);
            else if (f != 0) throw new NotOnDeviceException($"a pad value for {DataTypes.Name(x.Type)}");
        }
        // Table: a 0 for the padding axes of the six, then each axis's map.
        var table = new List<int> { 0 };
        var starts = new int[6];
        int shift = 6 - rank;
        for (int a = 0; a < rank; a++)
        {
            starts[shift + a] = table.Count;
            for (int o = 0; o < outShape[a]; o++) table.Add(Source(o - begin[a], inShape[a], mode));
        }
        var own = NdLayout.RowMajorStrides(inShape);
        int S(int k) => k < shift ? 0 : checked((int)own[k - shift]);
        int D(int k) => k < shift ? 1 : outShape[k - shift];
        var p = new PadParams
        {
            Output = new Dims6 { D0 = D(0), D1 = D(1), D2 = D(2), D3 = D(3), D4 = D(4), D5 = D(5) },
            Input = new Strides6 { S0 = S(0), S1 = S(1), S2 = S(2), S3 = S(3), S4 = S(4), S5 = S(5) },
            MapStart = new Strides6 { S0 = starts[0], S1 = starts[1], S2 = starts[2], S3 = starts[3], S4 = starts[4], S5 = starts[5] },
        };
        int n = Count(y);
        if (n == 0) return ElementwiseLowerings.Nothing;
        var map = c.Upload(table.ToArray());
        return value.Length switch
        {
            1 => PadStep(c, map, p, value[0]),
            2 => PadStep(c, map, p, BitConverter.ToUInt16(value)),
            4 => PadStep(c, map, p, BitConverter.ToUInt32(value)),
            _ => PadStep(c, map, p, BitConverter.ToUInt64(value)),
        };
    }

    /// <summary>The input coordinate an output coordinate <paramref name="i"/> (relative to the input's start) reads,
    /// or -1 for the constant.</summary>
    private static int Source(int i, int n, string mode)
    {
        if (i >= 0 && i < n) return i;
        if (n == 0) return -1;
        switch (mode)
        {
            case "edge": return Math.Clamp(i, 0, n - 1);
            case "wrap": return ((i % n) + n) % n;
            case "reflect":
                if (n == 1) return 0;
                int period = 2 * (n - 1);
                int j = Math.Abs(i) % period;
                return j < n ? j : period - j;
            default: return -1;
        }
    }

    private static GpuStep PadStep<T>(LoweringContext c, ArrayView<int> map, PadParams p, T value) where T : unmanaged
    {
        var vx = c.Bytes(c.RequiredInput(0)).Cast<T>();
        var vy = c.Bytes(c.Output(0)).Cast<T>();
        int n = Count(c.Output(0));
        var k = c.Kernels.Auto<ArrayView<T>, ArrayView<T>, ArrayView<int>, PadParams, T>(MovementKernels.Pad<T>);
        return new ActionStep(s => k(s, n, vx, vy, map, p, value));
    }
}
