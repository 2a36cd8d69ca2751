using ILGPU;
using ILGPU.Runtime;
using Squash.Runtime.Gpu.Execution;
using Squash.Runtime.Gpu.Kernels;
using static Squash.Runtime.Gpu.Execution.LoweringContext;

namespace Squash.Runtime.Gpu.Lowering;

/// <summary>Conv (implicit-im2col tiled GEMM, 1x1 as a plain GEMM, depthwise direct), ConvTranspose (direct), MatMul
/// and Gemm.</summary>
internal static class GemmLowerings
{
    public static void Register(Dictionary<string, Lowering> t)
    {
        t["Conv"] = Conv;
        t["ConvTranspose"] = ConvTranspose;
        t["MatMul"] = MatMul;
        t["Gemm"] = Gemm;
    }

    private static GpuStep Conv(LoweringContext c)
    {
        c.RequireFloat();
        var x = c.RequiredInput(0);
        var w = c.RequiredInput(1);
        var bias = c.Input(2);
        var y = c.Output(0);
        var xs = Shape(x);
        var ws = Shape(w);
        var ys = Shape(y);
        var win = Window.Read(c.Node, xs, ys, kernel: ws[2..]);
        var (n, cin, h, wd) = Window.Nchw(xs);
        var (_, cout, oh, ow) = Window.Nchw(ys);
        int group = (int)Attr.Int(c.Node, "group", 1);
        if (Count(y) == 0) return ElementwiseLowerings.Nothing;
        var vx = c.View<float>(x);
        var vw = c.View<float>(w);
        var vy = c.View<float>(y);
        var vb = bias is null ? c.Upload(new float[1]) : c.View<float>(bias);
        int cinG = cin / group, m = cout / group, taps = win.KH * win.KW;

        if (group == cin && cinG == 1 && group > 1)
        {
            var p = new ConvParams
            {
                Channels = cin, H = h, W = wd, OutChannels = cout, OutH = oh, OutW = ow, KH = win.KH, KW = win.KW,
                StrideH = win.StrideH, StrideW = win.StrideW, PadH = win.PadH, PadW = win.PadW,
                DilationH = win.DilationH, DilationW = win.DilationW, Multiplier = m, HasBias = bias is null ? 0 : 1,
            };
            var dw = c.Kernels.Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvParams>(GemmKernels.Depthwise);
            int count = Count(y);
            return new ActionStep(s => dw(s, count, vx, vw, vb, vy, p));
        }

        var gp = new GemmParams
        {
            M = m, N = oh * ow, K = cinG * taps, Batch2 = group, Alpha = 1, Beta = 1, HasBias = bias is null ? 0 : 1,
            C1 = cout * oh * ow, C2 = m * oh * ow, CRow = oh * ow, CCol = 1,
            Bias1 = 0, Bias2 = m, BiasRow = 1, BiasCol = 0,
        };
        var a = new StridedMatrix { Data = vw, Batch1 = 0, Batch2 = m * cinG * taps, Row = cinG * taps, Col = 1 };
        var config = Config(c, ref gp, n * group);
        bool pointwise = taps == 1 && win is { StrideH: 1, StrideW: 1, PadH: 0, PadW: 0 } && oh == h && ow == wd;
        if (pointwise)
        {
            var b = new StridedMatrix { Data = vx, Batch1 = cin * h * wd, Batch2 = cinG * h * wd, Row = h * wd, Col = 1 };
            var k = c.Kernels.Grouped<FloatOutput, ArrayView<float>, StridedMatrix, StridedMatrix, GemmParams>(GemmKernels.Gemm<StridedMatrix, StridedMatrix, FloatOutput>);
            return new ActionStep(s => k(s, config, new FloatOutput { Data = vy }, vb, a, b, gp));
        }
        var im2col = new Im2ColMatrix
        {
            Input = vx, Batch1 = cin * h * wd, Batch2 = cinG * h * wd, H = h, W = wd, KH = win.KH, KW = win.KW, OutW = ow,
            StrideH = win.StrideH, StrideW = win.StrideW, PadH = win.PadH, PadW = win.PadW,
            DilationH = win.DilationH, DilationW = win.DilationW,
        };
        var kc = c.Kernels.Grouped<FloatOutput, ArrayView<float>, StridedMatrix, Im2ColMatrix, GemmParams>(GemmKernels.Gemm<StridedMatrix, Im2ColMatrix, FloatOutput>);
        return new ActionStep(s => kc(s, config, new FloatOutput { Data = vy }, vb, a, im2col, gp));
    }

    /// <summary>Counts the output tiles (64 x 64 on a GPU) of every batch entry into <paramref name="p"/>; one group per tile, at most
    /// <see cref="KernelCache.MaxGroups"/> groups (each then loops over several tiles).</summary>
    private static KernelConfig Config(LoweringContext c, ref GemmParams p, int batches)
    {
        int threads = c.Kernels.IsEmulator ? GemmKernels.EmulatorThreads : GemmKernels.GpuThreads;
        int tile = 4 * threads;
        p.Threads = threads;
        p.Depth = c.Kernels.IsEmulator ? GemmKernels.EmulatorDepth : GemmKernels.GpuDepth;
        p.TilesN = (p.N + tile - 1) / tile;
        p.TilesM = (p.M + tile - 1) / tile;
        p.Tiles = checked(p.TilesN * p.TilesM * batches);
        return new(new Index3D(Math.Min(p.Tiles, c.Kernels.MaxGroups), 1, 1), new Index3D(threads, threads, 1),
            SharedMemoryConfig.RequestDynamic<float>(GemmKernels.SharedFloats(threads, p.Depth)));
    }

    /// <summary>ConvTranspose (1-D, 2-D). The output shape is known; the leading padding follows ONNX (and the CPU
    /// operator): explicit pads, or, with output_shape or SAME_*, the padding that yields that size split evenly.</summary>
    private static GpuStep ConvTranspose(LoweringContext c)
    {
        c.RequireFloat();
        var x = c.RequiredInput(0);
        var w = c.RequiredInput(1);
        var bias = c.Input(2);
        var y = c.Output(0);
        int[] xs = Shape(x), ws = Shape(w), ys = Shape(y);
        int spatial = xs.Length - 2;
        if (spatial is < 1 or > 2) throw new NotOnDeviceException($"{spatial}-D transposed convolutions are not implemented on the device");
        var node = c.Node;
        long[] Per(string name, long fallback) => Attr.Ints(node, name) ?? [.. Enumerable.Repeat(fallback, spatial)];
        long[] strides = Per("strides", 1), dilations = Per("dilations", 1), outputPadding = Per("output_padding", 0);
        string autoPad = Attr.String(node, "auto_pad", "NOTSET");
        bool derived = Attr.Ints(node, "output_shape") is not null || autoPad is "SAME_UPPER" or "SAME_LOWER";
        var pads = Attr.Ints(node, "pads");
        var begin = new int[spatial];
        for (int d = 0; d < spatial; d++)
        {
            long full = strides[d] * (xs[d + 2] - 1) + outputPadding[d] + (ws[d + 2] - 1) * dilations[d] + 1;
            if (derived)
            {
                long total = full - ys[d + 2];
                long half = (long)Math.Floor(total / 2.0);
                begin[d] = (int)(autoPad == "SAME_UPPER" ? half : total - half);
            }
            else if (autoPad == "NOTSET" && pads is not null) begin[d] = (int)pads[d];
        }
        var (n, cin, h, wd) = Window.Nchw(xs);
        var (_, cout, oh, ow) = Window.Nchw(ys);
        bool oneD = spatial == 1;
        var p = new ConvTransposeParams
        {
            Channels = cin, H = h, W = wd, OutChannels = cout, OutH = oh, OutW = ow,
            KH = oneD ? 1 : ws[2], KW = ws[^1], StrideH = oneD ? 1 : (int)strides[0], StrideW = (int)strides[^1],
            PadH = oneD ? 0 : begin[0], PadW = begin[^1], DilationH = oneD ? 1 : (int)dilations[0], DilationW = (int)dilations[^1],
            Group = (int)Attr.Int(node, "group", 1), HasBias = bias is null ? 0 : 1,
        };
        int count = Count(y);
        if (count == 0) return ElementwiseLowerings.Nothing;
        var vx = c.View<float>(x);
        var vw = c.View<float>(w);
        var vb = bias is null ? c.Upload(new float[1]) : c.View<float>(bias);
        var vy = c.View<float>(y);
        var k = c.Kernels.Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvTransposeParams>(GemmKernels.ConvTranspose);
        return new ActionStep(s => k(s, count, vx, vw, vb, vy, p));
    }

    /// <summary>MatMul: fp32, or fp16 operands and output with fp32 accumulation (rounded once at the store).</summary>
    private static GpuStep MatMul(LoweringContext c)
    {
        var type = c.FloatType();
        var a = c.RequiredInput(0);
        var b = c.RequiredInput(1);
        var y = c.Output(0);
        int[] sa = Shape(a), sb = Shape(b);
        // 1-D operands are promoted to matrices (a row for A, a column for B); the output omits that dimension.
        int[] ma = sa.Length == 1 ? [1, sa[0]] : sa;
        int[] mb = sb.Length == 1 ? [sb[0], 1] : sb;
        int m = ma[^2], k = ma[^1], n = mb[^1];
        int[] batchA = ma[..^2], batchB = mb[..^2];
        int rank = Math.Max(batchA.Length, batchB.Length);
        var batch = new int[rank];
        for (int d = 0; d < rank; d++)
        {
            int da = d - (rank - batchA.Length) is var ia && ia >= 0 ? batchA[ia] : 1;
            int db = d - (rank - batchB.Length) is var ib && ib >= 0 ? batchB[ib] : 1;
            batch[d] = Math.Max(da, db);
        }
        long[] strideA = [.. NdLayout.BroadcastStrides(batchA, batch).Select(s => s * m * k)];
        long[] strideB = [.. NdLayout.BroadcastStrides(batchB, batch).Select(s => s * k * n)];
        long[] strideC = [.. NdLayout.RowMajorStrides(batch).Select(s => s * m * n)];
        var (dims, st) = NdLayout.Collapse(batch, strideA, strideB, strideC);
        if (dims.D0 * dims.D1 * dims.D2 * dims.D3 != 1)
            throw new NotOnDeviceException("the batch dimensions do not merge into two levels");
        if (Count(y) == 0) return ElementwiseLowerings.Nothing;
        var p = new GemmParams
        {
            M = m, N = n, K = k, Batch2 = dims.D5, Alpha = 1, Beta = 0, HasBias = 0,
            C1 = st[2].S4, C2 = st[2].S5, CRow = n, CCol = 1,
        };
        var noBias = c.Upload(new float[1]);
        int batches = dims.D4 * dims.D5;
        if (type == DataType.Float16)
        {
            var ha = new HalfMatrix { Data = c.Bytes(a).Cast<ushort>(), Batch1 = st[0].S4, Batch2 = st[0].S5, Row = k, Col = 1 };
            var hb = new HalfMatrix { Data = c.Bytes(b).Cast<ushort>(), Batch1 = st[1].S4, Batch2 = st[1].S5, Row = n, Col = 1 };
            return GemmStep(c, p, batches, new HalfOutput { Data = c.Bytes(y).Cast<ushort>() }, noBias, ha, hb);
        }
        var fa = new StridedMatrix { Data = c.View<float>(a), Batch1 = st[0].S4, Batch2 = st[0].S5, Row = k, Col = 1 };
        var fb = new StridedMatrix { Data = c.View<float>(b), Batch1 = st[1].S4, Batch2 = st[1].S5, Row = n, Col = 1 };
        return GemmStep(c, p, batches, new FloatOutput { Data = c.View<float>(y) }, noBias, fa, fb);
    }

    /// <summary>Gemm: fp32, or fp16 with fp32 accumulation (an fp16 C must be a constant; it is widened once).</summary>
    private static GpuStep Gemm(LoweringContext c)
    {
        var type = c.FloatType();
        var a = c.RequiredInput(0);
        var b = c.RequiredInput(1);
        var bias = c.Input(2);
        var y = c.Output(0);
        int[] sa = Shape(a), sb = Shape(b);
        bool transA = Attr.Int(c.Node, "transA", 0) != 0, transB = Attr.Int(c.Node, "transB", 0) != 0;
        int m = transA ? sa[1] : sa[0], k = transA ? sa[0] : sa[1], n = transB ? sb[0] : sb[1];
        var p = new GemmParams
        {
            M = m, N = n, K = k, Batch2 = 1, Alpha = Attr.Float(c.Node, "alpha", 1f), Beta = Attr.Float(c.Node, "beta", 1f),
            HasBias = bias is null ? 0 : 1, CRow = n, CCol = 1,
        };
        if (bias is not null)
        {
            var s = NdLayout.BroadcastStrides(Shape(bias), [m, n]);
            p.BiasRow = (int)s[0];
            p.BiasCol = (int)s[1];
        }
        if (Count(y) == 0) return ElementwiseLowerings.Nothing;
        int rowA = transA ? 1 : sa[1], colA = transA ? sa[1] : 1, rowB = transB ? 1 : sb[1], colB = transB ? sb[1] : 1;
        if (type == DataType.Float16)
        {
            var widened = bias is null ? null : c.ConstantInput(2, "C");
            var vbias = c.Upload(widened is null ? new float[1] : [.. Enumerable.Range(0, widened.ElementCount).Select(i => (float)widened.GetAsDouble(i))]);
            var ha = new HalfMatrix { Data = c.Bytes(a).Cast<ushort>(), Row = rowA, Col = colA };
            var hb = new HalfMatrix { Data = c.Bytes(b).Cast<ushort>(), Row = rowB, Col = colB };
            return GemmStep(c, p, 1, new HalfOutput { Data = c.Bytes(y).Cast<ushort>() }, vbias, ha, hb, adjacentColumns: !transB);
        }
        var fa = new StridedMatrix { Data = c.View<float>(a), Row = rowA, Col = colA };
        var fb = new StridedMatrix { Data = c.View<float>(b), Row = rowB, Col = colB };
        return GemmStep(c, p, 1, new FloatOutput { Data = c.View<float>(y) }, bias is null ? c.Upload(new float[1]) : c.View<float>(bias), fa, fb,
            adjacentColumns: !transB);
    }

    /// <summary>Rows of A up to which a product with adjacent columns of B runs <see cref="GemmKernels.Gemv{TA, TB, TC}"/>.</summary>
    private const int GemvMaxRows = 16;

    private static GpuStep GemmStep<TC, TM>(LoweringContext c, GemmParams p, int batches, TC y, ArrayView<float> bias, TM a, TM b,
        bool adjacentColumns = true)
        where TC : struct, IGemmOutput
        where TM : struct, IMatrix
    {
        if (p.M <= GemvMaxRows && adjacentColumns)
        {
            // Columns per group and rows of threads along K: 32 x 32 on a GPU, 4 x 4 on the CPU accelerator.
            int columns = c.Kernels.IsEmulator ? 4 : 32, lanes = c.Kernels.IsEmulator ? 4 : 32;
            p.Threads = columns;
            p.Depth = lanes;
            p.TilesN = (p.N + columns - 1) / columns;
            p.TilesM = p.M;
            p.Tiles = checked(p.TilesN * p.M * batches);
            var gemvConfig = new KernelConfig(new Index3D(Math.Min(p.Tiles, c.Kernels.MaxGroups), 1, 1), new Index3D(columns, lanes, 1),
                SharedMemoryConfig.RequestDynamic<float>(columns * lanes));
            var gemv = c.Kernels.Grouped<TC, ArrayView<float>, TM, TM, GemmParams>(GemmKernels.Gemv<TM, TM, TC>);
            return new ActionStep(s => gemv(s, gemvConfig, y, bias, a, b, p));
        }
        var config = Config(c, ref p, batches);
        var k = c.Kernels.Grouped<TC, ArrayView<float>, TM, TM, GemmParams>(GemmKernels.Gemm<TM, TM, TC>);
        return new ActionStep(s => k(s, config, y, bias, a, b, p));
    }
}
