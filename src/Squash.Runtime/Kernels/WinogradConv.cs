using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Squash.Runtime.Kernels;

/// <summary>
/// 3x3 stride-1 convolution by Winograd's minimal filtering F(4x4, 3x3): each 4x4 block of outputs is
/// <c>A^T [ sum over c of (G w G^T) .* (B^T d B) ] A</c> for the 6x6 input patch d, which takes 36 multiplies per
/// input channel instead of 144. The element-wise products over channels are 36 GEMMs, one per position of the 6x6
/// transformed tile: <c>M_xi[M/G, tiles] = U_xi[M/G, C/G] x V_xi[C/G, tiles]</c>.
/// </summary>
/// <remarks>
/// <para>Tiles are processed in blocks of 32, one GEMM panel wide (AVX-512 only), made of two segments of up to 16
/// consecutive tiles of a tile row: the input transform writes V straight in packed-panel layout and the output
/// transform reads M from a 32-column scratch, so a block's working set (36 x (C/G + M/G) x 32 floats) stays in L2.
/// Transforms run on a segment per vector: the patch rows are combined along the image row, then the columns of
/// each tile are separated by permutes (stride 4).</para>
/// <para>Accuracy: the transforms scale values by up to 8 (and the weights by 1/24), so rounding errors are about ten
/// times those of the direct sum, still of order 1e-6 relative to the sum of |w x| terms.</para>
/// </remarks>
internal static unsafe class WinogradConv
{
    /// <summary>Tiles per block: the AVX-512 kernel's panel width.</summary>
    private const int Block = 32;

    private static readonly KernelContext s_singleThread = new(1);

    [ThreadStatic] private static float[]? t_transformed;
    [ThreadStatic] private static float[]? t_products;
    [ThreadStatic] private static float[]? t_strip;

    /// <summary>True when this machine runs the kernel (AVX-512, and the AVX-512 GEMM with its 32-wide panels).</summary>
    public static bool IsSupported =>
        Avx512F.IsSupported && Vector512.IsHardwareAccelerated && GemmKernel.Best.Kind == GemmKernelKind.Vector512;

    /// <summary>True when F(4x4, 3x3) applies and pays: 3x3, stride 1, dilation 1, enough channels for the GEMMs to
    /// dominate the transforms, few enough for a block to stay in L2, rows of at least 8 tiles (a segment is 16
    /// tiles wide; narrower images waste more of it than Winograd saves), and AVX-512.</summary>
    public static bool Applies(ConvGeometry g) =>
        IsSupported && g.Rank == 2 && Pays(g.Output[1], g.Kernel[0], g.Kernel[1], g.Strides[0], g.Strides[1], g.Dilations[0], g.Dilations[1],
            g.GroupInChannels, g.GroupOutChannels);

    /// <summary>The shape part of <see cref="Applies"/>, whatever this machine: the int8 planner keeps such convolutions in
    /// fp32, where Winograd's four times fewer multiplications beat the int8 GEMM's two times faster ones.</summary>
    internal static bool Pays(int outputWidth, int kernelH, int kernelW, int strideH, int strideW, int dilationH, int dilationW,
        int groupInChannels, int groupOutChannels) =>
        outputWidth >= 29 && kernelH == 3 && kernelW == 3 && strideH == 1 && strideW == 1 && dilationH == 1 && dilationW == 1
        && groupInChannels >= 8 && groupOutChannels >= 8 && groupInChannels + groupOutChannels <= 256;

    /// <summary>The transformed weights <c>U = G w G^T</c>, 36 packed [M/G, C/G] left operands per group
    /// (group-major, then transform position).</summary>
    public static PackedMatrix[] TransformWeights(ConvGeometry g, ReadOnlySpan<float> w)
    {
        ReadOnlySpan<double> G = [1.0 / 4, 0, 0, -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6, 1.0 / 6, -1.0 / 6,
            1.0 / 24, 1.0 / 12, 1.0 / 6, 1.0 / 24, -1.0 / 12, 1.0 / 6, 0, 0, 1];
        int mg = g.GroupOutChannels, cg = g.GroupInChannels;
        var packed = new PackedMatrix[g.Groups * 36];
        var u = new float[36 * mg * cg];
        Span<double> gw = stackalloc double[18];
        for (int group = 0; group < g.Groups; group++)
        {
            for (int m = 0; m < mg; m++)
                for (int c = 0; c < cg; c++)
                {
                    var kernel = w.Slice(((group * mg + m) * cg + c) * 9, 9);
                    for (int i = 0; i < 6; i++)
                        for (int b = 0; b < 3; b++)
                            gw[i * 3 + b] = G[i * 3] * kernel[b] + G[i * 3 + 1] * kernel[3 + b] + G[i * 3 + 2] * kernel[6 + b];
                    for (int i = 0; i < 6; i++)
                        for (int k = 0; k < 6; k++)
                            u[((i * 6 + k) * mg + m) * cg + c] = (float)(gw[i * 3] * G[k * 3] + gw[i * 3 + 1] * G[k * 3 + 1] + gw[i * 3 + 2] * G[k * 3 + 2]);
                }
            for (int xi = 0; xi < 36; xi++)
                packed[group * 36 + xi] = PackedMatrix.PackLeft(u.AsSpan(xi * mg * cg, mg * cg), cg, false, mg, cg);
        }
        return packed;
    }

    /// <summary>
    /// One group of one image: <c>y[M/G, OH, OW] = activation(conv(x) + bias)</c> for x the group's [C/G, H, W]
    /// channels; <paramref name="u"/> holds the group's 36 transformed weights from <paramref name="firstU"/>.
    /// </summary>
    public static void Run(KernelContext context, ConvGeometry g, float* x, PackedMatrix[] u, int firstU, float* bias, float* y,
        GemmActivation activation)
    {
        // Work comes in segments of up to 16 tiles along a tile row (one vector of tiles); a block multiplies two.
        var segmentation = new Segmentation((g.Output[0] + 3) / 4, (g.Output[1] + 3) / 4);
        int segments = segmentation.Count;
        var body = new Body(g, x, u, firstU, bias, y, activation, segmentation);
        int blocks = (segments + 1) / 2;
        if (context.ThreadCount == 1) body.Invoke(0, blocks);
        else context.For(blocks, body);
    }

    /// <summary>
    /// The segments of a group's tiles, in order: each tile row in segments of 16 tiles from its first; where a row's
    /// last segment has 8 tiles or fewer, those of two consecutive rows share one segment (lanes 0-7 the first row's,
    /// 8-15 the second's), so the GEMMs and the output transform do not run on a vector that is half padding (det's
    /// 160-wide maps: 40 tiles a row, 16 + 16 + 8; six segments for two rows become five).
    /// </summary>
    private readonly struct Segmentation
    {
        private readonly int _tilesH, _perRow, _perPair;
        private readonly bool _pairs;

        public Segmentation(int tilesH, int tilesW)
        {
            _tilesH = tilesH;
            _perRow = (tilesW + 15) / 16;
            _pairs = tilesW - 16 * (_perRow - 1) <= 8;
            _perPair = 2 * _perRow - 1;
            Count = !_pairs ? tilesH * _perRow : tilesH / 2 * _perPair + tilesH % 2 * _perRow;
        }

        public int Count { get; }

        /// <summary>Segment <paramref name="index"/>: its tile row, first tile and, for a shared segment, the second
        /// row (-1 otherwise; then all 16 lanes are the first row's).</summary>
        public (int Row, int Tile0, int SecondRow) this[int index]
        {
            get
            {
                if (!_pairs) return (index / _perRow, index % _perRow * 16, -1);
                int pair = index / _perPair, j = index % _perPair, row = 2 * pair;
                if (row + 1 >= _tilesH) return (row, j * 16, -1);
                if (j < 2 * (_perRow - 1)) return (row + j / (_perRow - 1), j % (_perRow - 1) * 16, -1);
                return (row, (_perRow - 1) * 16, row + 1);
            }
        }
    }

    private readonly struct Body(ConvGeometry g, float* x, PackedMatrix[] u, int firstU, float* bias, float* y,
        GemmActivation activation, Segmentation segmentation) : IRangeBody
    {
        /// <summary>Floats per strip row: four input columns per tile, two more for the last tile's patch, and
        /// room for the whole-vector loads of the phase split (80 columns).</summary>
        private const int StripWidth = 96;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Invoke(int start, int end)
        {
            int cg = g.GroupInChannels, mg = g.GroupOutChannels;
            float* transformed = GemmScratch.Get(ref t_transformed, 36 * cg * Block);
            float* products = GemmScratch.Get(ref t_products, 36 * mg * Block);
            // The strip, then Z = B^T d for 16 tiles (6 rows x 80 columns).
            float* strip = GemmScratch.Get(ref t_strip, 6 * StripWidth + 6 * 80);
            float* z = strip + 6 * StripWidth;
            int segments = segmentation.Count;
            for (int block = start; block < end; block++)
            {
                int first = 2 * block, count = Math.Min(2, segments - first);
                for (int half = 0; half < count; half++)
                {
                    var (tileRow, tile0, secondRow) = segmentation[first + half];
                    for (int c = 0; c < cg; c++)
                    {
                        float* v = transformed + c * Block + 16 * half;
                        FillStrip(strip, x + (long)c * g.InputSize, tileRow, tile0);
                        TransformInput(strip, z, v, cg * Block, secondRow < 0 ? 16 : 8);
                        if (secondRow < 0) continue;
                        FillStrip(strip, x + (long)c * g.InputSize, secondRow, tile0);
                        TransformInput(strip, z, v + 8, cg * Block, 8);
                    }
                }
                for (int xi = 0; xi < 36; xi++)
                {
                    var weights = u[firstU + xi];
                    var right = new PackedRight<PrepackedPanels>(new PrepackedPanels(transformed + xi * cg * Block, Block));
                    Gemm.Run<PrepackedPanels, PackedRight<PrepackedPanels>, PackedRows>(s_singleThread, weights.Kernel, mg, Block, cg,
                        weights.Source, right, products + xi * mg * Block, Block, TileEpilogue.Raw);
                }
                for (int half = 0; half < count; half++)
                {
                    var (tileRow, tile0, secondRow) = segmentation[first + half];
                    for (int m = 0; m < mg; m++)
                        TransformOutput(products + m * Block + 16 * half, mg * Block, bias == null ? 0 : bias[m],
                            y + (long)m * g.OutputSize, tileRow, tile0, secondRow);
                }
            }
        }

        /// <summary>The six input rows of a tile row, columns from a segment's first tile, zero outside the image.</summary>
        private void FillStrip(float* strip, float* plane, int tileRow, int tile0)
        {
            int height = g.Input[0], width = g.Input[1];
            int column0 = 4 * tile0 - g.PadsBegin[1];
            int lo = Math.Clamp(-column0, 0, StripWidth), hi = Math.Clamp(width - column0, lo, StripWidth);
            for (int r = 0; r < 6; r++)
            {
                float* dst = strip + r * StripWidth;
                int ih = 4 * tileRow - g.PadsBegin[0] + r;
                if ((uint)ih >= (uint)height)
                {
                    PanelCopy.Zero(dst, StripWidth);
                    continue;
                }
                PanelCopy.Zero(dst, lo);
                PanelCopy.Copy(dst + lo, plane + (long)ih * width + column0 + lo, hi - lo);
                PanelCopy.Zero(dst + hi, StripWidth - hi);
            }
        }

        /// <summary>
        /// <c>V = B^T d B</c> for 16 tiles whose patches start every 4 columns of <paramref name="strip"/>: the rows are
        /// combined along the strip (Z = B^T d, into <paramref name="z"/>), then each Z row is split into its stride-4
        /// phases so that column l of every tile's patch is one vector, and combined again. V position xi goes to
        /// <c>v + xi * positionStride</c>, 16 tiles contiguous (<paramref name="lanes"/> 16), or only the first eight
        /// (<paramref name="lanes"/> 8: half of a shared segment, <see cref="TransformHalf"/>).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static void TransformInput(float* strip, float* z, float* v, int positionStride, int lanes)
        {
            if (lanes == 8)
            {
                TransformHalf(strip, z, v, positionStride);
                return;
            }
            CombineRows(strip, z, 80);
            var phase = Vector512.Create(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
            var one = Vector512.Create(1);
            var next = Vector512.Create(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
            var nextButOne = Vector512.Create(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17);
            for (int i = 0; i < 6; i++, z += 80)
            {
                var a0 = Vector512.Load(z);
                var a1 = Vector512.Load(z + 16);
                var a2 = Vector512.Load(z + 32);
                var a3 = Vector512.Load(z + 48);
                var a4 = Vector512.Load(z + 64);
                // p_l[t] = z[4t + l]; columns 4 and 5 of tile t are columns 0 and 1 of tile t + 1 (the last from a4).
                var p0 = Phase(a0, a1, a2, a3, phase);
                var p1 = Phase(a0, a1, a2, a3, phase + one);
                var p2 = Phase(a0, a1, a2, a3, phase + one + one);
                var p3 = Phase(a0, a1, a2, a3, phase + one + one + one);
                var p4 = Avx512F.PermuteVar16x32x2(p0, next, a4);
                var p5 = Avx512F.PermuteVar16x32x2(p1, nextButOne, a4);
                RowTransform(p0, p1, p2, p3, p4, p5, out var w0, out var w1, out var w2, out var w3, out var w4, out var w5);
                float* dst = v + i * 6 * positionStride;
                w0.Store(dst);
                w1.Store(dst + positionStride);
                w2.Store(dst + 2 * positionStride);
                w3.Store(dst + 3 * positionStride);
                w4.Store(dst + 4 * positionStride);
                w5.Store(dst + 5 * positionStride);
            }
        }

        /// <summary>
        /// <see cref="TransformInput"/> for the first eight tiles only, stored as eight lanes: their patches span 34 strip
        /// columns, so three column vectors are combined instead of five and each column phase is one permute of the
        /// first 32 values (a shared segment's two halves cost one segment's transform, not two).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static void TransformHalf(float* strip, float* z, float* v, int positionStride)
        {
            CombineRows(strip, z, 48);
            var phase = Vector512.Create(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
            var one = Vector512.Create(1);
            // Lanes 0-6 from the tile after, lane 7 (columns 32 and 33) from the third vector.
            var next = Vector512.Create(1, 2, 3, 4, 5, 6, 7, 16, 0, 0, 0, 0, 0, 0, 0, 0);
            var nextButOne = Vector512.Create(1, 2, 3, 4, 5, 6, 7, 17, 0, 0, 0, 0, 0, 0, 0, 0);
            for (int i = 0; i < 6; i++, z += 80)
            {
                var a0 = Vector512.Load(z);
                var a1 = Vector512.Load(z + 16);
                var a2 = Vector512.Load(z + 32);
                var p0 = Avx512F.PermuteVar16x32x2(a0, phase, a1);
                var p1 = Avx512F.PermuteVar16x32x2(a0, phase + one, a1);
                var p2 = Avx512F.PermuteVar16x32x2(a0, phase + one + one, a1);
                var p3 = Avx512F.PermuteVar16x32x2(a0, phase + one + one + one, a1);
                var p4 = Avx512F.PermuteVar16x32x2(p0, next, a2);
                var p5 = Avx512F.PermuteVar16x32x2(p1, nextButOne, a2);
                RowTransform(p0, p1, p2, p3, p4, p5, out var w0, out var w1, out var w2, out var w3, out var w4, out var w5);
                float* dst = v + i * 6 * positionStride;
                w0.GetLower().Store(dst);
                w1.GetLower().Store(dst + positionStride);
                w2.GetLower().Store(dst + 2 * positionStride);
                w3.GetLower().Store(dst + 3 * positionStride);
                w4.GetLower().Store(dst + 4 * positionStride);
                w5.GetLower().Store(dst + 5 * positionStride);
            }
        }

        /// <summary>Z = B^T d over the first <paramref name="columns"/> columns of the strip's six rows (a multiple of
        /// 16), into the six rows of <paramref name="z"/> (80 floats apart).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void CombineRows(float* strip, float* z, int columns)
        {
            for (int part = 0; part < columns; part += 16)
            {
                float* s = strip + part;
                RowTransform(Vector512.Load(s), Vector512.Load(s + StripWidth), Vector512.Load(s + 2 * StripWidth),
                    Vector512.Load(s + 3 * StripWidth), Vector512.Load(s + 4 * StripWidth), Vector512.Load(s + 5 * StripWidth),
                    out var z0, out var z1, out var z2, out var z3, out var z4, out var z5);
                z0.Store(z + part);
                z1.Store(z + 80 + part);
                z2.Store(z + 160 + part);
                z3.Store(z + 240 + part);
                z4.Store(z + 320 + part);
                z5.Store(z + 400 + part);
            }
        }

        /// <summary>From 64 consecutive floats, the 16 at <paramref name="index"/> (4t + l, t &lt; 8) of the first 32 and of the last 32.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector512<float> Phase(Vector512<float> a0, Vector512<float> a1, Vector512<float> a2, Vector512<float> a3,
            Vector512<int> index)
        {
            var low = Avx512F.PermuteVar16x32x2(a0, index, a1);
            var high = Avx512F.PermuteVar16x32x2(a2, index, a3);
            // The first eight lanes of each: 128-bit lanes 0 and 1 of low, then 0 and 1 of high.
            return Avx512F.Shuffle4x128(low, high, 0b01_00_01_00);
        }

        /// <summary>The six combinations of B^T (F(4x4, 3x3) with points 0, 1, -1, 2, -2 and infinity).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void RowTransform(Vector512<float> d0, Vector512<float> d1, Vector512<float> d2, Vector512<float> d3,
            Vector512<float> d4, Vector512<float> d5, out Vector512<float> r0, out Vector512<float> r1, out Vector512<float> r2,
            out Vector512<float> r3, out Vector512<float> r4, out Vector512<float> r5)
        {
            var four = Vector512.Create(4f);
            var five = Vector512.Create(5f);
            var two = Vector512.Create(2f);
            // 4 d0 - 5 d2 + d4
            r0 = Vector512.FusedMultiplyAdd(four, d0, Vector512.FusedMultiplyAdd(-five, d2, d4));
            // -4 (d1 + d2) + d3 + d4 and 4 (d1 - d2) - d3 + d4
            r1 = Vector512.FusedMultiplyAdd(-four, d1 + d2, d3 + d4);
            r2 = Vector512.FusedMultiplyAdd(four, d1 - d2, d4 - d3);
            // -2 (d1 - d3) - d2 + d4 and 2 (d1 - d3) - d2 + d4
            var c = d4 - d2;
            var e = d1 - d3;
            r3 = Vector512.FusedMultiplyAdd(-two, e, c);
            r4 = Vector512.FusedMultiplyAdd(two, e, c);
            // 4 d1 - 5 d3 + d5
            r5 = Vector512.FusedMultiplyAdd(four, d1, Vector512.FusedMultiplyAdd(-five, d3, d5));
        }

        /// <summary>
        /// <c>Y = A^T M A</c> for 16 tiles (M position xi at <c>m + xi * positionStride</c>), plus the bias and the
        /// activation, written to output rows 4 x tileRow .. + 3 and columns 4 x tile0 ..., clipped to the image.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void TransformOutput(float* m, int positionStride, float bias, float* plane, int tileRow, int tile0, int secondRow)
        {
            int outHeight = g.Output[0], outWidth = g.Output[1];
            int column0 = 4 * tile0;
            // T = A^T M (4 x 6), column k at a time; then each row of T combined along k.
            float* t = stackalloc float[24 * 16];
            for (int k = 0; k < 6; k++)
            {
                float* mk = m + k * positionStride;
                OutputTransform(Vector512.Load(mk), Vector512.Load(mk + 6 * positionStride), Vector512.Load(mk + 12 * positionStride),
                    Vector512.Load(mk + 18 * positionStride), Vector512.Load(mk + 24 * positionStride), Vector512.Load(mk + 30 * positionStride),
                    out var t0, out var t1, out var t2, out var t3);
                t0.Store(t + k * 16);
                t1.Store(t + (6 + k) * 16);
                t2.Store(t + (12 + k) * 16);
                t3.Store(t + (18 + k) * 16);
            }
            var biasVector = Vector512.Create(bias);
            float* row = stackalloc float[64];
            int valid = Math.Min(secondRow < 0 ? 64 : 32, outWidth - column0);
            for (int a = 0; a < 4 && 4 * tileRow + a < outHeight; a++)
            {
                float* ta = t + a * 6 * 16;
                OutputTransform(Vector512.Load(ta), Vector512.Load(ta + 16), Vector512.Load(ta + 32), Vector512.Load(ta + 48),
                    Vector512.Load(ta + 64), Vector512.Load(ta + 80), out var y0, out var y1, out var y2, out var y3);
                y0 = activation.ApplyInRegisters(y0 + biasVector);
                y1 = activation.ApplyInRegisters(y1 + biasVector);
                y2 = activation.ApplyInRegisters(y2 + biasVector);
                y3 = activation.ApplyInRegisters(y3 + biasVector);
                float* dst = plane + (long)(4 * tileRow + a) * outWidth + column0;
                RowInterleave.Four(y0, y1, y2, y3, valid == 64 ? dst : row);
                if (valid < 64) new Span<float>(row, valid).CopyTo(new Span<float>(dst, valid));
                // A shared segment: tiles 8-15 (the 32 floats after the first row's) are the second row's.
                if (secondRow >= 0 && 4 * secondRow + a < outHeight)
                    new Span<float>(row + 32, valid).CopyTo(new Span<float>(plane + (long)(4 * secondRow + a) * outWidth + column0, valid));
            }
        }

        /// <summary>The four combinations of A^T.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void OutputTransform(Vector512<float> m0, Vector512<float> m1, Vector512<float> m2, Vector512<float> m3,
            Vector512<float> m4, Vector512<float> m5, out Vector512<float> r0, out Vector512<float> r1,
            out Vector512<float> r2, out Vector512<float> r3)
        {
            var sum12 = m1 + m2;
            var diff12 = m1 - m2;
            var sum34 = m3 + m4;
            var diff34 = m3 - m4;
            r0 = m0 + sum12 + sum34;
            r1 = Vector512.FusedMultiplyAdd(Vector512.Create(2f), diff34, diff12);
            r2 = Vector512.FusedMultiplyAdd(Vector512.Create(4f), sum34, sum12);
            r3 = Vector512.FusedMultiplyAdd(Vector512.Create(8f), diff34, diff12) + m5;
        }
    }
}
