using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Squash.Runtime.Execution;
using Squash.Runtime.Gpu.Execution;
using Squash.Runtime.Gpu.Kernels;
using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;
using static Squash.Runtime.Gpu.Execution.LoweringContext;

namespace Squash.Runtime.Gpu.Lowering;

/// <summary>
/// Squash's int8 operators (com.squash QConv, QMatMul, QAdd, QMul, QConcat, QLookup, QGlobalAveragePool) and ONNX
/// QuantizeLinear / DequantizeLinear between fp32 and uint8 or int8. The per-channel constants are the CPU operator's,
/// computed with the same formulas when the model is created, so results are bit-identical.
/// </summary>
internal static class Int8Lowerings
{
    /// <summary>The default-domain operators.</summary>
    public static void Register(Dictionary<string, Lowering> t)
    {
        t["QuantizeLinear"] = QuantizeLinear;
        t["DequantizeLinear"] = DequantizeLinear;
    }

    /// <summary>The com.squash operators.</summary>
    public static void RegisterSquash(Dictionary<string, Lowering> t)
    {
        t["QConv"] = QConv;
        t["QMatMul"] = QMatMul;
        t["QAdd"] = QAdd;
        t["QMul"] = QMul;
        t["QConcat"] = QConcat;
        t["QLookup"] = QLookup;
        t["QGlobalAveragePool"] = QGlobalAveragePool;
    }

    /// <summary>The epilogue of a QConv or QMatMul (inputs: 1 x_scale, 2 x_zero_point, 4 w_scale, 6 y_scale,
    /// 7 y_zero_point, 8 bias): per-channel tables built as the CPU operator builds its <see cref="Int8Epilogue"/>. With
    /// <paramref name="weightSums"/> (the GEMM, which sums raw uint8 activations) the offsets fold in
    /// <c>-zx * sum(w)</c>, as the CPU's do; without (the depthwise kernel, which subtracts zx) they are the bias.</summary>
    private static Epilogue ReadEpilogue(LoweringContext c, int channels, int[]? weightSums)
    {
        var node = c.Node;
        var y = c.Output(0);
        float xScale = Scalar(c, 1, "x_scale");
        int xZero = ZeroPoint(c, 2);
        var wScales = c.ConstantInput(4, "w_scale").AsSpan<float>().ToArray();
        float WeightScale(int ch) => wScales.Length == 1 ? wScales[0] : wScales[ch];
        int[]? bias = c.Input(8) is null ? null : c.ConstantInput(8, "bias").AsSpan<int>().ToArray();
        float min = Attr.Float(node, "activation_min", float.NegativeInfinity), max = Attr.Float(node, "activation_max", float.PositiveInfinity);
        // int32 arithmetic wraps as the CPU's does; the true sums plus offsets fit.
        int[] Offsets(bool withBias) =>
            [.. Enumerable.Range(0, channels).Select(ch => unchecked((withBias && bias is not null ? bias[ch] : 0) - xZero * (weightSums?[ch] ?? 0)))];
        if (c.Input(6) is not null)
        {
            float yScale = Scalar(c, 6, "y_scale");
            int yZero = ZeroPoint(c, 7);
            var multipliers = new float[channels];
            for (int ch = 0; ch < channels; ch++) multipliers[ch] = Int8Epilogue.Multiplier(xScale, WeightScale(ch), yScale);
            var r = new RequantizedOutput
            {
                Y = c.View<byte>(y), Offsets = c.Upload(Offsets(withBias: true)), Multipliers = c.Upload(multipliers), ZeroPoint = yZero,
                Low = QuantizeBound(min, yScale, yZero) - yZero, High = QuantizeBound(max, yScale, yZero) - yZero,
            };
            return new Epilogue(true, r, default, xZero);
        }
        var scales = new float[channels];
        var floatBias = new float[channels];
        for (int ch = 0; ch < channels; ch++)
        {
            // The CPU's BiasScale: x_scale * w_scale in double, rounded once; the int32 bias times it in fp32.
            scales[ch] = (float)((double)xScale * WeightScale(ch));
            if (bias is not null) floatBias[ch] = bias[ch] * scales[ch];
        }
        var d = new DequantizedOutput
        {
            Y = c.View<float>(y), Scales = c.Upload(scales), Bias = c.Upload(floatBias), Offsets = c.Upload(Offsets(withBias: false)), Min = min, Max = max,
        };
        return new Epilogue(false, default, d, xZero);
    }

    /// <summary>A real clamp bound as a uint8 output value: quantized as QuantizeLinear would (the CPU's ByteRange).</summary>
    private static byte QuantizeBound(float value, float scale, int zeroPoint) =>
        (byte)Math.Clamp(Math.Round((double)(value / scale), MidpointRounding.ToEven) + zeroPoint, 0, 255);

    private static float Scalar(LoweringContext c, int index, string what) => c.ConstantInput(index, what).AsSpan<float>()[0];

    private static int ZeroPoint(LoweringContext c, int index) =>
        c.Input(index) is null ? 0 : c.ConstantInput(index, "zero point").AsSpan<byte>()[0];

    private static GpuStep QConv(LoweringContext c)
    {
        var x = c.RequiredInput(0);
        var w = c.RequiredInput(3);
        var y = c.Output(0);
        int[] xs = Shape(x), ws = Shape(w), ys = Shape(y);
        var win = Window.Read(c.Node, xs, ys, kernel: ws[2..]);
        var (n, cin, h, wd) = Window.Nchw(xs);
        var (_, cout, oh, ow) = Window.Nchw(ys);
        int group = (int)Attr.Int(c.Node, "group", 1);
        if (Count(y) == 0) return ElementwiseLowerings.Nothing;
        var vx = c.View<byte>(x);
        var vw = c.View<sbyte>(w);
        int cinG = cin / group, m = cout / group, taps = win.KH * win.KW;
        if (group == cin && cinG == 1 && group > 1)
        {
            var e = ReadEpilogue(c, cout, weightSums: null);
            var p = new Int8DepthwiseParams
            {
                Channels = cin, H = h, W = wd, OutChannels = cout, OutH = oh, OutW = ow, KH = win.KH, KW = win.KW,
                StrideH = win.StrideH, StrideW = win.StrideW, PadH = win.PadH, PadW = win.PadW,
                DilationH = win.DilationH, DilationW = win.DilationW, Multiplier = m, ZeroPoint = e.InputZero,
            };
            return e.Requantize ? DepthwiseStep(c, e.R, vx, vw, p, Count(y)) : DepthwiseStep(c, e.D, vx, vw, p, Count(y));
        }
        var epilogue = ReadEpilogue(c, cout, WeightSums(c.ConstantInput(3, "w"), cout, cinG * taps, perColumn: false));
        var gp = new Int8GemmParams
        {
            M = m, N = oh * ow, K = cinG * taps, Batch2 = group, C1 = cout * oh * ow, C2 = m * oh * ow, CRow = oh * ow,
            ChannelsOnRows = 1, ChannelGroup = m,
        };
        var a = new ByteMatrix { Data = c.Bytes(w), Batch2 = m * cinG * taps, Row = cinG * taps, Col = 1 };
        bool pointwise = taps == 1 && win is { StrideH: 1, StrideW: 1, PadH: 0, PadW: 0 } && oh == h && ow == wd;
        if (pointwise)
        {
            var b = new ByteMatrix { Data = vx, Batch1 = cin * h * wd, Batch2 = cinG * h * wd, Row = h * wd, Col = 1 };
            return ConvGemm(c, epilogue, a, b, gp, n * group);
        }
        var im2col = new ByteIm2Col
        {
            Input = vx, Batch1 = cin * h * wd, Batch2 = cinG * h * wd, H = h, W = wd, KH = win.KH, KW = win.KW, OutW = ow,
            StrideH = win.StrideH, StrideW = win.StrideW, PadH = win.PadH, PadW = win.PadW,
            DilationH = win.DilationH, DilationW = win.DilationW, ZeroPoint = epilogue.InputZero,
        };
        return ConvGemm(c, epilogue, a, im2col, gp, n * group);
    }

    /// <summary>Per output channel, the sum of its int8 weights: rows of a [channels, depth] tensor (QConv) or columns
    /// of a [depth, channels] one (QMatMul).</summary>
    private static int[] WeightSums(Tensor w, int channels, int depth, bool perColumn)
    {
        var values = w.AsSpan<sbyte>();
        var sums = new int[channels];
        for (int ch = 0; ch < channels; ch++)
            for (int k = 0; k < depth; k++) sums[ch] += values[perColumn ? k * channels + ch : ch * depth + k];
        return sums;
    }

    /// <summary>dp4a where the device has it (CUDA sm_61+, and the emulator, which runs its byte-by-byte branch).</summary>
    private static bool HasDp4a(LoweringContext c) =>
        c.Accelerator is not CudaAccelerator cuda || cuda.Architecture >= CudaArchitecture.SM_61;

    private static GpuStep ConvGemm<TB>(LoweringContext c, Epilogue e, ByteMatrix a, TB b, Int8GemmParams p, int batches)
        where TB : struct, IByteMatrix
    {
        if (HasDp4a(c))
            return e.Requantize ? GemmStep<RequantizedOutput, ByteMatrix, TB, WeightsLeftDp4a>(c, e.R, a, b, p, batches)
                : GemmStep<DequantizedOutput, ByteMatrix, TB, WeightsLeftDp4a>(c, e.D, a, b, p, batches);
        return e.Requantize ? GemmStep<RequantizedOutput, ByteMatrix, TB, WeightsLeft>(c, e.R, a, b, p, batches)
            : GemmStep<DequantizedOutput, ByteMatrix, TB, WeightsLeft>(c, e.D, a, b, p, batches);
    }

    private static GpuStep QMatMul(LoweringContext c)
    {
        var a = c.RequiredInput(0);
        var b = c.RequiredInput(3);
        var y = c.Output(0);
        int k = Shape(b)[0], n = Shape(b)[1];
        int m = k == 0 ? 0 : Count(a) / k;
        if (Count(y) == 0) return ElementwiseLowerings.Nothing;
        var e = ReadEpilogue(c, n, WeightSums(c.ConstantInput(3, "b"), n, k, perColumn: true));
        var gp = new Int8GemmParams { M = m, N = n, K = k, Batch2 = 1, CRow = n, ChannelsOnRows = 0 };
        var ma = new ByteMatrix { Data = c.View<byte>(a), Row = k, Col = 1 };
        var mb = new ByteMatrix { Data = c.Bytes(b), Row = n, Col = 1 };
        if (HasDp4a(c))
            return e.Requantize ? GemmStep<RequantizedOutput, ByteMatrix, ByteMatrix, ActivationsLeftDp4a>(c, e.R, ma, mb, gp, 1)
                : GemmStep<DequantizedOutput, ByteMatrix, ByteMatrix, ActivationsLeftDp4a>(c, e.D, ma, mb, gp, 1);
        return e.Requantize ? GemmStep<RequantizedOutput, ByteMatrix, ByteMatrix, ActivationsLeft>(c, e.R, ma, mb, gp, 1)
            : GemmStep<DequantizedOutput, ByteMatrix, ByteMatrix, ActivationsLeft>(c, e.D, ma, mb, gp, 1);
    }

    /// <summary>The epilogue's outputs (one used, by <see cref="Requantize"/>) and the input zero point.</summary>
    private sealed record Epilogue(bool Requantize, RequantizedOutput R, DequantizedOutput D, int InputZero);

    /// <summary>One launch of the tiled int8 GEMM: output tiles of 4T x 4T (T = 16 on a GPU, 4 on the emulator) for
    /// every batch entry, at most <see cref="KernelCache.MaxGroups"/> groups.</summary>
    private static GpuStep GemmStep<TOut, TA, TB, TDot>(LoweringContext c, TOut output, TA a, TB b, Int8GemmParams p, int batches)
        where TOut : struct, IInt8Output
        where TA : struct, IByteMatrix
        where TB : struct, IByteMatrix
        where TDot : struct, IDot4
    {
        int threads = c.Kernels.IsEmulator ? GemmKernels.EmulatorThreads : GemmKernels.GpuThreads;
        int tile = 4 * threads;
        p.Threads = threads;
        p.Depth = c.Kernels.IsEmulator ? GemmKernels.EmulatorDepth : GemmKernels.GpuDepth;
        p.TilesN = (p.N + tile - 1) / tile;
        p.TilesM = (p.M + tile - 1) / tile;
        p.Tiles = checked(p.TilesN * p.TilesM * batches);
        var config = new KernelConfig(new Index3D(Math.Min(p.Tiles, c.Kernels.MaxGroups), 1, 1), new Index3D(threads, threads, 1),
            SharedMemoryConfig.RequestDynamic<uint>(Int8Kernels.SharedWords(threads, p.Depth)));
        var kernel = c.Kernels.Grouped<TOut, TA, TB, Int8GemmParams>(Int8Kernels.Gemm<TA, TB, TOut, TDot>);
        return new ActionStep(s => kernel(s, config, output, a, b, p));
    }

    private static GpuStep DepthwiseStep<TOut>(LoweringContext c, TOut output, ArrayView<byte> x, ArrayView<sbyte> w, Int8DepthwiseParams p, int count)
        where TOut : struct, IInt8Output
    {
        var kernel = c.Kernels.Auto<TOut, ArrayView<byte>, ArrayView<sbyte>, Int8DepthwiseParams>(Int8Kernels.Depthwise);
        return new ActionStep(s => kernel(s, count, output, x, w, p));
    }

    private static GpuStep QAdd(LoweringContext c)
    {
        var a = c.RequiredInput(0);
        var b = c.RequiredInput(3);
        var y = c.Output(0);
        int count = Count(y);
        if (count == 0) return ElementwiseLowerings.Nothing;
        float aScale = Scalar(c, 1, "a_scale"), bScale = Scalar(c, 4, "b_scale"), yScale = Scalar(c, 6, "y_scale");
        int yZero = ZeroPoint(c, 7);
        float min = Attr.Float(c.Node, "activation_min", float.NegativeInfinity), max = Attr.Float(c.Node, "activation_max", float.PositiveInfinity);
        var p = new QAddParams
        {
            AZero = ZeroPoint(c, 2), BZero = ZeroPoint(c, 5), YZero = yZero,
            AMultiplier = Int8Requantize.Multiplier(aScale, yScale), BMultiplier = Int8Requantize.Multiplier(bScale, yScale),
            Low = QuantizeBound(min, yScale, yZero) - yZero, High = QuantizeBound(max, yScale, yZero) - yZero,
        };
        var va = c.View<byte>(a);
        var vb = c.View<byte>(b);
        var vy = c.View<byte>(y);
        var kernel = c.Kernels.Auto<ArrayView<byte>, ArrayView<byte>, ArrayView<byte>, QAddParams>(Int8Kernels.Add);
        return new ActionStep(s => kernel(s, count, va, vb, vy, p));
    }

    /// <summary>QMul: a kernel computes the per-channel multipliers from the gate (computed at run time on the device)
    /// into a table made when the model is created, then the requantization reads them.</summary>
    private static GpuStep QMul(LoweringContext c)
    {
        RequireFloat64(c);
        var a = c.RequiredInput(0);
        var b = c.RequiredInput(3);
        var y = c.Output(0);
        int[] sa = Shape(a), sb = Shape(b);
        int count = Count(y);
        if (count == 0) return ElementwiseLowerings.Nothing;
        // The CPU operator accepts one gate value, or one per channel along one axis of a (it has checked which).
        int axis = -1;
        for (int d = 0; d < sb.Length; d++)
            if (sb[d] != 1) axis = d + sa.Length - sb.Length;
        int channels = axis < 0 ? 1 : sa[axis];
        int inner = axis < 0 ? count : Shapes.Product(sa, axis + 1, sa.Length);
        float aScale = Scalar(c, 1, "a_scale"), yScale = Scalar(c, 4, "y_scale");
        var p = new RequantizeParams { InZero = ZeroPoint(c, 2), OutZero = ZeroPoint(c, 5), Inner = inner, Channels = channels };
        var gates = c.View<float>(b);
        var multipliers = c.Upload(new float[channels]);
        var va = c.View<byte>(a);
        var vy = c.View<byte>(y);
        var prepare = c.Kernels.Auto<ArrayView<float>, ArrayView<float>, float, float>(Int8Kernels.MulMultipliers);
        var kernel = c.Kernels.Auto<ArrayView<byte>, ArrayView<byte>, ArrayView<float>, RequantizeParams>(Int8Kernels.Requantize);
        return new ActionStep(s =>
        {
            prepare(s, channels, gates, multipliers, aScale, yScale);
            kernel(s, count, va, vy, multipliers, p);
        });
    }

    private static GpuStep QConcat(LoweringContext c)
    {
        var y = c.Output(0);
        int[] ys = Shape(y);
        if (Count(y) == 0) return ElementwiseLowerings.Nothing;
        int axis = c.Axis(Attr.Int(c.Node, "axis", 0), ys.Length);
        int inner = Shapes.Product(ys, axis + 1, ys.Length), rowBytes = ys[axis] * inner;
        float yScale = Scalar(c, 0, "y_scale");
        int yZero = ZeroPoint(c, 1);
        var vy = c.View<byte>(y);
        var kernel = c.Kernels.Auto<ArrayView<byte>, ArrayView<byte>, ConcatParams>(Int8Kernels.Concat);
        var launches = new List<(ArrayView<byte> X, int Count, ConcatParams P)>();
        int offset = 0;
        for (int i = 0; 2 + 3 * i < c.Node.Inputs.Count; i++)
        {
            var x = c.RequiredInput(2 + 3 * i);
            float scale = Scalar(c, 3 + 3 * i, $"x{i}_scale");
            int zero = ZeroPoint(c, 4 + 3 * i);
            int block = Shape(x)[axis] * inner;
            var p = new ConcatParams
            {
                Block = block, RowBytes = rowBytes, Offset = offset, InZero = zero, OutZero = yZero,
                Copy = scale == yScale && zero == yZero ? 1 : 0, Multiplier = Int8Requantize.Multiplier(scale, yScale),
            };
            if (Count(x) > 0) launches.Add((c.View<byte>(x), Count(x), p));
            offset += block;
        }
        return new ActionStep(s =>
        {
            foreach (var (x, n, p) in launches) kernel(s, n, x, vy, p);
        });
    }

    /// <summary>QLookup: the tables are the CPU operator's own output for every uint8 value (it evaluates the body with
    /// the float model's operators), run once when the model is created on a probe of x's rank.</summary>
    private static GpuStep QLookup(LoweringContext c)
    {
        var x = c.RequiredInput(0);
        var y = c.Output(0);
        int count = Count(y);
        if (count == 0) return ElementwiseLowerings.Nothing;
        int[] xs = Shape(x);
        int rank = Math.Max(1, xs.Length);
        var probeShape = Enumerable.Repeat(1, rank).ToArray();
        int channels = 1, inner = count, channelStride = 0, valueStride = 1;
        if (c.Node.Attributes.ContainsKey("axis"))
        {
            int axis = c.Axis(Attr.Int(c.Node, "axis", 0), rank);
            if (rank < 2) throw new NotOnDeviceException("a per-channel lookup needs rank 2 or more");
            channels = xs[axis];
            inner = Shapes.Product(xs, axis + 1, xs.Length);
            int valueAxis = axis == rank - 1 ? rank - 2 : rank - 1;
            probeShape[axis] = channels;
            probeShape[valueAxis] = Int8Lookup.TableSize;
            channelStride = (int)NdLayout.RowMajorStrides(probeShape)[axis];
            valueStride = (int)NdLayout.RowMajorStrides(probeShape)[valueAxis];
        }
        else probeShape[^1] = Int8Lookup.TableSize;
        var probe = new Tensor(DataType.UInt8, probeShape);
        var probeBytes = probe.AsSpan<byte>();
        for (int ch = 0; ch < channels; ch++)
            for (int q = 0; q < Int8Lookup.TableSize; q++) probeBytes[ch * channelStride + q * valueStride] = (byte)q;
        var result = RunAlone(c, probe);
        var tables = new byte[channels * Int8Lookup.TableSize];
        for (int ch = 0; ch < channels; ch++)
            for (int q = 0; q < Int8Lookup.TableSize; q++) tables[ch * Int8Lookup.TableSize + q] = result[ch * channelStride + q * valueStride];
        var vt = c.Upload(tables);
        var vx = c.View<byte>(x);
        var vy = c.View<byte>(y);
        var kernel = c.Kernels.Auto<ArrayView<byte>, ArrayView<byte>, ArrayView<byte>, int, int>(Int8Kernels.Lookup);
        return new ActionStep(s => kernel(s, count, vx, vy, vt, channels, inner));
    }

    /// <summary>Runs the node being lowered by itself on the CPU with <paramref name="input"/> as its first input (the
    /// others are its constants) and returns its output's bytes.</summary>
    private static byte[] RunAlone(LoweringContext c, Tensor input)
    {
        var node = c.Node;
        var graph = new Graph("probe");
        graph.OpsetImports[""] = 21;
        graph.OpsetImports[node.Domain] = node.OpsetVersion;
        var copy = new Node(node.OpType, node.Name, node.Domain, node.OpsetVersion);
        foreach (var (name, a) in node.Attributes) copy.Attributes[name] = a;
        var first = new Value("probe", input.DataType, input.Shape);
        graph.Inputs.Add(first);
        copy.AddInput(first);
        for (int i = 1; i < node.Inputs.Count; i++)
        {
            if (node.Input(i) is null)
            {
                copy.AddInput(null);
                continue;
            }
            var constant = new Value($"c{i}", c.ConstantInput(i, $"input {i}"));
            graph.Initializers.Add(constant);
            copy.AddInput(constant);
        }
        var output = new Value("probe_out");
        copy.AddOutput(output);
        graph.Outputs.Add(output);
        graph.Nodes.Add(copy);
        return new GraphExecutor(graph).Run(new Dictionary<string, Tensor> { ["probe"] = input })["probe_out"].Bytes.ToArray();
    }

    private static GpuStep QGlobalAveragePool(LoweringContext c)
    {
        RequireFloat64(c);
        var x = c.RequiredInput(0);
        var y = c.Output(0);
        int[] xs = Shape(x);
        int planes = xs[0] * xs[1];
        if (planes == 0) return ElementwiseLowerings.Nothing;
        int size = Count(x) / planes;
        if ((long)size * 255 > int.MaxValue) throw new NotOnDeviceException($"planes of {size} values could overflow the int32 sum");
        if (size == 0) throw new NotOnDeviceException("empty planes");
        float scale = Scalar(c, 1, "x_scale");
        int zero = ZeroPoint(c, 2);
        var vx = c.View<byte>(x);
        var vy = c.View<float>(y);
        int threads = c.Kernels.IsEmulator ? RowKernels.EmulatorThreads : RowKernels.GpuThreads;
        var p = new QPoolParams { Planes = planes, Size = size, Threads = threads, Zero = zero, Scale = scale };
        var config = new KernelConfig(new Index3D(Math.Min(planes, c.Kernels.MaxGroups), 1, 1), new Index3D(threads, 1, 1),
            SharedMemoryConfig.RequestDynamic<int>(threads));
        var kernel = c.Kernels.Grouped<ArrayView<byte>, ArrayView<float>, QPoolParams>(Int8Kernels.GlobalAveragePool);
        return new ActionStep(s => kernel(s, config, vx, vy, p));
    }

    private static void RequireFloat64(LoweringContext c)
    {
        // CUDA devices and the emulator compute fp64; OpenCL devices may not.
        if (c.Accelerator.Capabilities is ILGPU.Runtime.OpenCL.CLCapabilityContext { Float64: false })
            throw new NotOnDeviceException("the kernel computes in fp64 (as the CPU operator), which this device lacks");
    }

    /// <summary>The layout of a QuantizeLinear/DequantizeLinear node's scale (a constant fp32 one; the zero point a
    /// constant of the same shape or absent) as kernel parameters and device tables.</summary>
    private static (QuantizeParams P, ArrayView<float> Scales, ArrayView<int> Zeros) Layout(LoweringContext c, int[] x)
    {
        var scale = c.ConstantInput(1, "the scale");
        if (scale.DataType != DataType.Float) throw new NotOnDeviceException($"the scale is {DataTypes.Name(scale.DataType)}; the device kernels take fp32");
        var zeroTensor = c.Input(2) is null ? null : c.ConstantInput(2, "the zero point");
        long axis = Attr.Int(c.Node, "axis", 1), block = Attr.Int(c.Node, "block_size", 0);
        int scaleCount = scale.ElementCount;
        var p = new QuantizeParams { Channels = 1, Inner = Math.Max(1, (int)Shapes.ElementCount(x)), Block = 1, Blocks = 1 };
        if (scaleCount != 1 || block != 0)
        {
            int a = c.Axis(axis, x.Length);
            p.Channels = x[a];
            p.Inner = Math.Max(1, Shapes.Product(x, a + 1, x.Length));
            if (block != 0)
            {
                p.Block = (int)block;
                p.Blocks = (x[a] + p.Block - 1) / p.Block;
            }
        }
        var zeros = new int[scaleCount];
        for (int i = 0; zeroTensor is not null && i < scaleCount; i++) zeros[i] = (int)zeroTensor.GetAsDouble(i);
        return (p, c.Upload(scale.AsSpan<float>().ToArray()), c.Upload(zeros));
    }

    private static GpuStep QuantizeLinear(LoweringContext c)
    {
        var x = c.RequiredInput(0);
        var y = c.Output(0);
        if (x.Type != DataType.Float) throw new NotOnDeviceException($"x is {DataTypes.Name(x.Type)}; the device quantizes fp32");
        if (y.Type is not (DataType.UInt8 or DataType.Int8)) throw new NotOnDeviceException($"the output is {DataTypes.Name(y.Type)}; the device quantizes to uint8 and int8");
        // The division is fp32 unless precision asks for another type.
        if (Attr.Int(c.Node, "precision", 0) is not (0 or (long)DataType.Float)) throw new NotOnDeviceException("precision other than fp32");
        int count = Count(y);
        if (count == 0) return ElementwiseLowerings.Nothing;
        var (p, scales, zeros) = Layout(c, Shape(x));
        (p.Min, p.Max) = y.Type == DataType.UInt8 ? (0, 255) : (-128, 127);
        var vx = c.View<float>(x);
        var vy = c.Bytes(y);
        var kernel = c.Kernels.Auto<ArrayView<float>, ArrayView<byte>, ArrayView<float>, ArrayView<int>, QuantizeParams>(Int8Kernels.Quantize);
        return new ActionStep(s => kernel(s, count, vx, vy, scales, zeros, p));
    }

    private static GpuStep DequantizeLinear(LoweringContext c)
    {
        var x = c.RequiredInput(0);
        var y = c.Output(0);
        if (x.Type is not (DataType.UInt8 or DataType.Int8)) throw new NotOnDeviceException($"x is {DataTypes.Name(x.Type)}; the device dequantizes uint8 and int8");
        if (y.Type != DataType.Float) throw new NotOnDeviceException($"the output is {DataTypes.Name(y.Type)}; the device dequantizes to fp32");
        int count = Count(y);
        if (count == 0) return ElementwiseLowerings.Nothing;
        var (p, scales, zeros) = Layout(c, Shape(x));
        p.Signed = x.Type == DataType.Int8 ? 1 : 0;
        var vx = c.Bytes(x);
        var vy = c.View<float>(y);
        var kernel = c.Kernels.Auto<ArrayView<byte>, ArrayView<float>, ArrayView<float>, ArrayView<int>, QuantizeParams>(Int8Kernels.Dequantize);
        return new ActionStep(s => kernel(s, count, vx, vy, scales, zeros, p));
    }
}
