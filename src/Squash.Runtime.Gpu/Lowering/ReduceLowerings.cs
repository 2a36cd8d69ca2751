using ILGPU;
using ILGPU.Runtime;
using Squash.Runtime.Gpu.Execution;
using Squash.Runtime.Gpu.Kernels;
using static Squash.Runtime.Gpu.Execution.LoweringContext;

namespace Squash.Runtime.Gpu.Lowering;

/// <summary>Reductions over one run of adjacent axes, the global pools, Softmax/LogSoftmax, LayerNormalization,
/// InstanceNormalization, RMSNormalization; ArgMax, ArgMin and CumSum (one thread per row).</summary>
internal static class ReduceLowerings
{
    public static void Register(Dictionary<string, Lowering> t)
    {
        t["ReduceSum"] = Reduce<SumReduce>;
        t["ReduceMean"] = Reduce<MeanReduce>;
        t["ReduceMax"] = Reduce<MaxReduce>;
        t["ReduceMin"] = Reduce<MinReduce>;
        t["ReduceProd"] = Reduce<ProdReduce>;
        t["ReduceSumSquare"] = Reduce<SumSquareReduce>;
        t["ReduceL1"] = Reduce<L1Reduce>;
        t["ReduceL2"] = Reduce<L2Reduce>;
        t["ReduceLogSum"] = Reduce<LogSumReduce>;
        t["GlobalAveragePool"] = GlobalPool<MeanReduce>;
        t["GlobalMaxPool"] = GlobalPool<MaxReduce>;
        t["Softmax"] = c => Softmax(c, log: false);
        t["LogSoftmax"] = c => Softmax(c, log: true);
        t["LayerNormalization"] = LayerNormalization;
        t["InstanceNormalization"] = InstanceNormalization;
        t["ArgMax"] = c => ArgExtreme(c, max: true);
        t["ArgMin"] = c => ArgExtreme(c, max: false);
        t["CumSum"] = CumSum;
        t["RMSNormalization"] = RmsNormalization;
    }

    /// <summary>One group per row, at most <see cref="KernelCache.MaxGroups"/> (each then loops over several rows).</summary>
    private static KernelConfig Rows(LoweringContext c, int rows) =>
        new(new Index3D(Math.Min(rows, c.Kernels.MaxGroups), 1, 1), new Index3D(Threads(c), 1, 1),
            SharedMemoryConfig.RequestDynamic<float>(Threads(c)));

    private static int Threads(LoweringContext c) => c.Kernels.IsEmulator ? RowKernels.EmulatorThreads : RowKernels.GpuThreads;

    private static GpuStep RowReduce<TOp>(LoweringContext c, Ir.Value x, Ir.Value y, int length, int inner) where TOp : struct, IReduceOp
    {
        int rows = Count(y);
        if (rows == 0) return ElementwiseLowerings.Nothing;
        if (length == 0) throw new NotOnDeviceException("reducing an empty axis");
        var vx = c.View<float>(x);
        var vy = c.View<float>(y);
        var p = new RowParams { Threads = Threads(c), Rows = rows, Length = length, Inner = inner };
        var k = c.Kernels.Grouped<ArrayView<float>, ArrayView<float>, RowParams>(RowKernels.Reduce<TOp>);
        var config = Rows(c, rows);
        return new ActionStep(s => k(s, config, vx, vy, p));
    }

    private static GpuStep GlobalPool<TOp>(LoweringContext c) where TOp : struct, IReduceOp
    {
        c.RequireFloat();
        var x = c.RequiredInput(0);
        var shape = Shape(x);
        int length = 1;
        for (int k = 2; k < shape.Length; k++) length *= shape[k];
        return RowReduce<TOp>(c, x, c.Output(0), length, 1);
    }

    private static GpuStep Reduce<TOp>(LoweringContext c) where TOp : struct, IReduceOp
    {
        c.RequireFloat(dataInputs: 1);
        var x = c.RequiredInput(0);
        var y = c.Output(0);
        var shape = Shape(x);
        // The axes moved from an attribute to an input at opset 13 for ReduceSum and 18 for the others.
        int inputSince = c.Node.OpType == "ReduceSum" ? 13 : 18;
        long[]? axes = c.Node.OpsetVersion >= inputSince
            ? c.Input(1) is null ? null : c.ConstantInput(1, "axes").ToInt64Array()
            : Attr.Ints(c.Node, "axes");
        if (axes is null || axes.Length == 0)
        {
            if (Attr.Int(c.Node, "noop_with_empty_axes", 0) != 0)
                return ElementwiseLowerings.UnaryStep(c, x, y, new IdentityOp());
            axes = [.. Enumerable.Range(0, shape.Length).Select(a => (long)a)];
        }
        var set = axes.Select(a => c.Axis(a, shape.Length)).Distinct().Order().ToArray();
        if (set.Length == 0) return ElementwiseLowerings.UnaryStep(c, x, y, new IdentityOp());
        if (set[^1] - set[0] + 1 != set.Length)
            throw new NotOnDeviceException("the reduced axes are not adjacent");
        int length = 1, inner = 1;
        for (int a = set[0]; a <= set[^1]; a++) length *= shape[a];
        for (int a = set[^1] + 1; a < shape.Length; a++) inner *= shape[a];
        return RowReduce<TOp>(c, x, y, length, inner);
    }

    private static GpuStep Softmax(LoweringContext c, bool log)
    {
        c.RequireFloat();
        var x = c.RequiredInput(0);
        var y = c.Output(0);
        var shape = Shape(x);
        bool legacy = c.Node.OpsetVersion is > 0 and < 13;
        int axis = shape.Length == 0 ? 0 : c.Axis(Attr.Int(c.Node, "axis", legacy ? 1 : -1), shape.Length);
        int outer = 1, length = 1, inner = 1;
        for (int a = 0; a < axis; a++) outer *= shape[a];
        if (legacy) for (int a = axis; a < shape.Length; a++) length *= shape[a];
        else
        {
            length = shape.Length == 0 ? 1 : shape[axis];
            for (int a = axis + 1; a < shape.Length; a++) inner *= shape[a];
        }
        int rows = outer * inner;
        if (rows == 0 || length == 0) return ElementwiseLowerings.Nothing;
        var vx = c.View<float>(x);
        var vy = c.View<float>(y);
        var p = new RowParams { Threads = Threads(c), Rows = rows, Length = length, Inner = inner, Flag = log ? 1 : 0 };
        var k = c.Kernels.Grouped<ArrayView<float>, ArrayView<float>, RowParams>(RowKernels.Softmax);
        var config = Rows(c, rows);
        return new ActionStep(s => k(s, config, vx, vy, p));
    }

    private static GpuStep LayerNormalization(LoweringContext c)
    {
        if (c.Node.Outputs.Count > 1) throw new NotOnDeviceException("the Mean and InvStdDev outputs are not computed on the device");
        c.RequireFloat();
        var x = c.RequiredInput(0);
        var scale = c.RequiredInput(1);
        var bias = c.Input(2);
        var y = c.Output(0);
        var shape = Shape(x);
        int axis = c.Axis(Attr.Int(c.Node, "axis", -1), shape.Length);
        int rows = 1, length = 1;
        for (int a = 0; a < axis; a++) rows *= shape[a];
        for (int a = axis; a < shape.Length; a++) length *= shape[a];
        if (Count(scale) != length || (bias is not null && Count(bias) != length))
            throw new NotOnDeviceException("scale and bias must have the normalized shape's size");
        if (rows == 0 || length == 0) return ElementwiseLowerings.Nothing;
        var p = new RowParams { Threads = Threads(c), Rows = rows, Length = length, Inner = 1, Epsilon = Attr.Float(c.Node, "epsilon", 1e-5f), Flag = bias is null ? 0 : 1 };
        var vx = c.View<float>(x);
        var vy = c.View<float>(y);
        var vs = c.View<float>(scale);
        var vb = bias is null ? vs : c.View<float>(bias);
        var k = c.Kernels.Grouped<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, RowParams>(RowKernels.LayerNorm);
        var config = Rows(c, rows);
        return new ActionStep(s => k(s, config, vx, vy, vs, vb, p));
    }

    private static GpuStep InstanceNormalization(LoweringContext c)
    {
        c.RequireFloat();
        var x = c.RequiredInput(0);
        var y = c.Output(0);
        var shape = Shape(x);
        int channels = shape[1], rows = shape[0] * shape[1], length = 1;
        for (int a = 2; a < shape.Length; a++) length *= shape[a];
        if (rows == 0 || length == 0) return ElementwiseLowerings.Nothing;
        var p = new RowParams { Threads = Threads(c), Rows = rows, Length = length, Channels = channels, Epsilon = Attr.Float(c.Node, "epsilon", 1e-5f) };
        var vx = c.View<float>(x);
        var vy = c.View<float>(y);
        var vs = c.View<float>(c.RequiredInput(1));
        var vb = c.View<float>(c.RequiredInput(2));
        var k = c.Kernels.Grouped<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, RowParams>(RowKernels.InstanceNorm);
        var config = Rows(c, rows);
        return new ActionStep(s => k(s, config, vx, vy, vs, vb, p));
    }

    private static GpuStep RmsNormalization(LoweringContext c)
    {
        c.RequireFloat();
        var x = c.RequiredInput(0);
        var scale = c.RequiredInput(1);
        var y = c.Output(0);
        var shape = Shape(x);
        int axis = c.Axis(Attr.Int(c.Node, "axis", -1), shape.Length);
        int rows = 1, length = 1;
        for (int a = 0; a < axis; a++) rows *= shape[a];
        for (int a = axis; a < shape.Length; a++) length *= shape[a];
        if (Count(scale) != length) throw new NotOnDeviceException("scale must have the normalized shape's size");
        if (rows == 0 || length == 0) return ElementwiseLowerings.Nothing;
        var p = new RowParams { Threads = Threads(c), Rows = rows, Length = length, Epsilon = Attr.Float(c.Node, "epsilon", 1e-5f) };
        var vx = c.View<float>(x);
        var vy = c.View<float>(y);
        var vs = c.View<float>(scale);
        var k = c.Kernels.Grouped<ArrayView<float>, ArrayView<float>, ArrayView<float>, RowParams>(RowKernels.RmsNorm);
        var config = Rows(c, rows);
        return new ActionStep(s => k(s, config, vx, vy, vs, p));
    }

    private static (int Outer, int Length, int Inner) AroundAxis(int[] shape, int axis)
    {
        int outer = 1, inner = 1;
        for (int a = 0; a < axis; a++) outer *= shape[a];
        for (int a = axis + 1; a < shape.Length; a++) inner *= shape[a];
        return (outer, shape[axis], inner);
    }

    private static GpuStep ArgExtreme(LoweringContext c, bool max)
    {
        var x = c.RequiredInput(0);
        if (x.Type != DataType.Float) throw new NotOnDeviceException($"'{x.Name}' is {DataTypes.Name(x.Type)}; the device kernel takes fp32");
        var shape = Shape(x);
        var (outer, length, inner) = AroundAxis(shape, c.Axis(Attr.Int(c.Node, "axis", 0), shape.Length));
        int n = outer * inner;
        if (n == 0) return ElementwiseLowerings.Nothing;
        if (length == 0) throw new NotOnDeviceException("an empty axis");
        var p = new RowParams { Length = length, Inner = inner, Flag = max ? 1 : 0, SelectLast = (int)Attr.Int(c.Node, "select_last_index", 0) };
        var vx = c.View<float>(x);
        var vy = c.View<long>(c.Output(0));
        var k = c.Kernels.Auto<ArrayView<float>, ArrayView<long>, RowParams>(RowKernels.ArgExtreme);
        return new ActionStep(s => k(s, n, vx, vy, p));
    }

    private static GpuStep CumSum(LoweringContext c)
    {
        c.RequireFloat(dataInputs: 1);
        var x = c.RequiredInput(0);
        var shape = Shape(x);
        if (c.Output(0).Type != DataType.Float) throw new NotOnDeviceException("a non-fp32 output");
        var (outer, length, inner) = AroundAxis(shape, c.Axis(c.ConstantInput(1, "axis").GetAsInt64(0), shape.Length));
        int n = outer * inner;
        if (n == 0 || length == 0) return ElementwiseLowerings.Nothing;
        int flag = (Attr.Int(c.Node, "exclusive", 0) != 0 ? 1 : 0) | (Attr.Int(c.Node, "reverse", 0) != 0 ? 2 : 0);
        var p = new RowParams { Length = length, Inner = inner, Flag = flag };
        var vx = c.View<float>(x);
        var vy = c.View<float>(c.Output(0));
        var k = c.Kernels.Auto<ArrayView<float>, ArrayView<float>, RowParams>(RowKernels.CumSum);
        return new ActionStep(s => k(s, n, vx, vy, p));
    }
}
