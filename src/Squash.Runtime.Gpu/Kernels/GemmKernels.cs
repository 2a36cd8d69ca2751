using ILGPU;

namespace Squash.Runtime.Gpu.Kernels;

/// <summary>Element (row, col) of matrix number (b1, b2) of a batch: how the tiled GEMM reads its operands.</summary>
internal interface IMatrix
{
    /// <summary>The element; callers stay within the matrix.</summary>
    float Load(int b1, int b2, int row, int col);
}

/// <summary>A matrix in memory with arbitrary element strides (transposes and broadcast batches are strides).</summary>
internal struct StridedMatrix : IMatrix
{
    public ArrayView<float> Data;
    public int Batch1, Batch2, Row, Col;

    public readonly float Load(int b1, int b2, int row, int col) => Data[b1 * Batch1 + b2 * Batch2 + row * Row + col * Col];
}

/// <summary>An fp16 matrix (bits in ushorts) with element strides, read widened to fp32 (exact).</summary>
internal struct HalfMatrix : IMatrix
{
    public ArrayView<ushort> Data;
    public int Batch1, Batch2, Row, Col;

    public readonly float Load(int b1, int b2, int row, int col) => HalfBits.ToFloat(Data[b1 * Batch1 + b2 * Batch2 + row * Row + col * Col]);
}

/// <summary>Where the GEMM writes an fp32 result: fp32 as it is, or fp16 rounded to nearest even (the fp32
/// accumulation of an fp16 product, rounded once at the end, as the CPU does).</summary>
internal interface IGemmOutput
{
    /// <summary>Writes element <paramref name="index"/>.</summary>
    void Store(int index, float value);
}

/// <summary>An fp32 output.</summary>
internal struct FloatOutput : IGemmOutput
{
    public ArrayView<float> Data;

    public readonly void Store(int index, float value) => Data[index] = value;
}

/// <summary>An fp16 output.</summary>
internal struct HalfOutput : IGemmOutput
{
    public ArrayView<ushort> Data;

    public readonly void Store(int index, float value) => Data[index] = HalfBits.FromFloat(value);
}

/// <summary>
/// The im2col matrix of a 2-D convolution, never materialized: row k = (input channel of the group, ky, kx), column
/// n = (oy, ox); an element is the input pixel under that kernel tap, or 0 in the padding. b1 is the image, b2 the group.
/// </summary>
internal struct Im2ColMatrix : IMatrix
{
    public ArrayView<float> Input;
    public int Batch1, Batch2, H, W, KH, KW, OutW, StrideH, StrideW, PadH, PadW, DilationH, DilationW;

    public readonly float Load(int b1, int b2, int row, int col)
    {
        int taps = KH * KW;
        int ci = row / taps;
        int r = row - ci * taps;
        int ky = r / KW;
        int kx = r - ky * KW;
        int oy = col / OutW;
        int ox = col - oy * OutW;
        int iy = oy * StrideH - PadH + ky * DilationH;
        int ix = ox * StrideW - PadW + kx * DilationW;
        return (uint)iy < (uint)H && (uint)ix < (uint)W ? Input[b1 * Batch1 + b2 * Batch2 + (ci * H + iy) * W + ix] : 0f;
    }
}

/// <summary>Sizes and output/bias addressing of a batched GEMM: C(b1, b2) = alpha * A * B + beta * bias.</summary>
internal struct GemmParams
{
    public int M, N, K, Batch2;
    /// <summary>Threads per group along each axis (the tile is four times as wide), and the step along K.</summary>
    public int Threads, Depth;
    /// <summary>Tiles along N, along M, and in all (times the batches).</summary>
    public int TilesN, TilesM, Tiles;
    public float Alpha, Beta;
    public int HasBias;
    public int C1, C2, CRow, CCol;
    public int Bias1, Bias2, BiasRow, BiasCol;
}

/// <summary>Parameters of a direct 2-D convolution (depthwise).</summary>
internal struct ConvParams
{
    public int Channels, H, W, OutChannels, OutH, OutW, KH, KW, StrideH, StrideW, PadH, PadW, DilationH, DilationW, Multiplier, HasBias;
}

/// <summary>Parameters of a 2-D transposed convolution; W is [C, M / group, KH, KW].</summary>
internal struct ConvTransposeParams
{
    public int Channels, H, W, OutChannels, OutH, OutW, KH, KW, StrideH, StrideW, PadH, PadW, DilationH, DilationW, Group, HasBias;
}

/// <summary>GEMM and convolution kernels.</summary>
internal static class GemmKernels
{
    /// <summary>Depth of one step along K on a GPU (a 16 KB shared tile pair with 16 x 16 threads).</summary>
    public const int GpuDepth = 16;

    /// <summary>Depth of one step along K on the CPU accelerator: deeper steps, fewer barriers.</summary>
    public const int EmulatorDepth = 64;

    /// <summary>Threads per group along each axis on a GPU: 16 x 16 threads, 64 x 64 output tiles.</summary>
    public const int GpuThreads = 16;

    /// <summary>Threads per group along each axis on the CPU accelerator: 4 x 4 threads, 16 x 16 output tiles (every
    /// barrier there synchronizes one OS thread per GPU thread, so small groups are much faster).</summary>
    public const int EmulatorThreads = 4;

    /// <summary>Floats of dynamic shared memory a group of <paramref name="threads"/> x <paramref name="threads"/> needs
    /// with steps of <paramref name="depth"/> along K.</summary>
    public static int SharedFloats(int threads, int depth) => 2 * 4 * threads * depth;

    /// <summary>
    /// Tiled GEMM (fp32 accumulation; fp16 operands and outputs through <see cref="HalfMatrix"/> and
    /// <see cref="HalfOutput"/>). A group of T x T threads (T = <see cref="GemmParams.Threads"/>) computes a 4T x 4T output tile;
    /// groups loop over the tiles of every batch entry (persistent groups: the grid may be smaller than the work). Each
    /// step along K, the group stages a 4T x D slice of A and a D x 4T slice of B (D = <see cref="GemmParams.Depth"/>) in shared memory (A transposed),
    /// consecutive threads loading consecutive columns; then each thread accumulates a 4 x 4 block of outputs in
    /// registers, rows ty + Ti and columns tx + Tj, so that consecutive threads read consecutive shared words (no
    /// bank conflicts) and write consecutive output columns (coalesced).
    /// </summary>
    public static void Gemm<TA, TB, TC>(TC c, ArrayView<float> bias, TA a, TB b, GemmParams p)
        where TA : struct, IMatrix
        where TB : struct, IMatrix
        where TC : struct, IGemmOutput
    {
        var shared = SharedMemory.GetDynamic<float>();
        int tile = 4 * p.Threads;
        var tileA = shared.SubView(0, tile * p.Depth);
        var tileB = shared.SubView(tile * p.Depth, tile * p.Depth);
        int tx = Group.IdxX, ty = Group.IdxY;
        int tid = ty * p.Threads + tx;
        for (int work = Grid.IdxX; work < p.Tiles; work += Grid.DimX)
        {
            int tileN = work % p.TilesN;
            int t = work / p.TilesN;
            int tileM = t % p.TilesM;
            int batch = t / p.TilesM;
            ComputeTile(c, bias, a, b, p, tileA, tileB, tx, ty, tid, batch, tileM * tile, tileN * tile);
        }
    }

    private static void ComputeTile<TA, TB, TC>(TC c, ArrayView<float> bias, TA a, TB b, GemmParams p,
        ArrayView<float> tileA, ArrayView<float> tileB, int tx, int ty, int tid, int batch, int m0, int n0)
        where TA : struct, IMatrix
        where TB : struct, IMatrix
        where TC : struct, IGemmOutput
    {
        int b1 = batch / p.Batch2, b2 = batch - b1 * p.Batch2;
        int t1 = p.Threads, t2 = 2 * p.Threads, t3 = 3 * p.Threads, tile = 4 * p.Threads, group = p.Threads * p.Threads;

        float c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
        float c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
        for (int k0 = 0; k0 < p.K; k0 += p.Depth)
        {
            for (int e = tid; e < tile * p.Depth; e += group)
            {
                int mm = e / p.Depth, kk = e - mm * p.Depth;
                int m = m0 + mm, k = k0 + kk;
                tileA[kk * tile + mm] = m < p.M && k < p.K ? a.Load(b1, b2, m, k) : 0f;
                int kb = e / tile, nn = e - kb * tile;
                int n = n0 + nn;
                k = k0 + kb;
                tileB[kb * tile + nn] = k < p.K && n < p.N ? b.Load(b1, b2, k, n) : 0f;
            }
            Group.Barrier();
            for (int kk = 0; kk < p.Depth; kk++)
            {
                int ra = kk * tile + ty, rb = kk * tile + tx;
                float a0 = tileA[ra], a1 = tileA[ra + t1], a2 = tileA[ra + t2], a3 = tileA[ra + t3];
                float v0 = tileB[rb], v1 = tileB[rb + t1], v2 = tileB[rb + t2], v3 = tileB[rb + t3];
                c00 += a0 * v0; c01 += a0 * v1; c02 += a0 * v2; c03 += a0 * v3;
                c10 += a1 * v0; c11 += a1 * v1; c12 += a1 * v2; c13 += a1 * v3;
                c20 += a2 * v0; c21 += a2 * v1; c22 += a2 * v2; c23 += a2 * v3;
                c30 += a3 * v0; c31 += a3 * v1; c32 += a3 * v2; c33 += a3 * v3;
            }
            Group.Barrier();
        }
        int r0 = m0 + ty, q0 = n0 + tx;
        Store(c, bias, p, b1, b2, r0, q0, c00); Store(c, bias, p, b1, b2, r0, q0 + t1, c01);
        Store(c, bias, p, b1, b2, r0, q0 + t2, c02); Store(c, bias, p, b1, b2, r0, q0 + t3, c03);
        Store(c, bias, p, b1, b2, r0 + t1, q0, c10); Store(c, bias, p, b1, b2, r0 + t1, q0 + t1, c11);
        Store(c, bias, p, b1, b2, r0 + t1, q0 + t2, c12); Store(c, bias, p, b1, b2, r0 + t1, q0 + t3, c13);
        Store(c, bias, p, b1, b2, r0 + t2, q0, c20); Store(c, bias, p, b1, b2, r0 + t2, q0 + t1, c21);
        Store(c, bias, p, b1, b2, r0 + t2, q0 + t2, c22); Store(c, bias, p, b1, b2, r0 + t2, q0 + t3, c23);
        Store(c, bias, p, b1, b2, r0 + t3, q0, c30); Store(c, bias, p, b1, b2, r0 + t3, q0 + t1, c31);
        Store(c, bias, p, b1, b2, r0 + t3, q0 + t2, c32); Store(c, bias, p, b1, b2, r0 + t3, q0 + t3, c33);
    }

    /// <summary>
    /// The product for a few rows of A (a decode step), where the tiled kernel's 64-row tiles would be all but empty
    /// and its few groups would leave the GPU idle: one group per (batch entry, row of A, <see cref="GemmParams.Threads"/>
    /// columns), its <see cref="GemmParams.Depth"/> rows of threads splitting K (thread row ty takes k = ty, ty + D, ...,
    /// four loads in flight), so consecutive threads read consecutive columns of a row of B (coalesced) and many groups
    /// keep enough loads in flight for the memory. The partial sums meet in shared memory (a tree over the thread
    /// rows); then the same bias, alpha and beta as <see cref="Gemm{TA, TB, TC}"/>. B's columns must be adjacent.
    /// </summary>
    public static void Gemv<TA, TB, TC>(TC c, ArrayView<float> bias, TA a, TB b, GemmParams p)
        where TA : struct, IMatrix
        where TB : struct, IMatrix
        where TC : struct, IGemmOutput
    {
        var shared = SharedMemory.GetDynamic<float>();
        int columns = p.Threads, lanes = p.Depth;
        int tx = Group.IdxX, ty = Group.IdxY;
        for (int work = Grid.IdxX; work < p.Tiles; work += Grid.DimX)
        {
            int tileN = work % p.TilesN;
            int t = work / p.TilesN;
            int m = t % p.M;
            int batch = t / p.M;
            int b1 = batch / p.Batch2, b2 = batch - b1 * p.Batch2;
            int n = tileN * columns + tx;
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            if (n < p.N)
            {
                int k = ty;
                for (; k + 3 * lanes < p.K; k += 4 * lanes)
                {
                    s0 += a.Load(b1, b2, m, k) * b.Load(b1, b2, k, n);
                    s1 += a.Load(b1, b2, m, k + lanes) * b.Load(b1, b2, k + lanes, n);
                    s2 += a.Load(b1, b2, m, k + 2 * lanes) * b.Load(b1, b2, k + 2 * lanes, n);
                    s3 += a.Load(b1, b2, m, k + 3 * lanes) * b.Load(b1, b2, k + 3 * lanes, n);
                }
                for (; k < p.K; k += lanes) s0 += a.Load(b1, b2, m, k) * b.Load(b1, b2, k, n);
            }
            shared[ty * columns + tx] = (s0 + s1) + (s2 + s3);
            Group.Barrier();
            for (int step = lanes / 2; step > 0; step >>= 1)
            {
                if (ty < step) shared[ty * columns + tx] += shared[(ty + step) * columns + tx];
                Group.Barrier();
            }
            if (ty == 0) Store(c, bias, p, b1, b2, m, n, shared[tx]);
            Group.Barrier();
        }
    }

    private static void Store<TC>(TC c, ArrayView<float> bias, GemmParams p, int b1, int b2, int m, int n, float v)
        where TC : struct, IGemmOutput
    {
        if (m >= p.M || n >= p.N) return;
        float r = p.Alpha * v;
        if (p.HasBias != 0) r += p.Beta * bias[b1 * p.Bias1 + b2 * p.Bias2 + m * p.BiasRow + n * p.BiasCol];
        c.Store(b1 * p.C1 + b2 * p.C2 + m * p.CRow + n * p.CCol, r);
    }

    /// <summary>Depthwise (and channel-multiplier) 2-D convolution, one thread per output: each output channel reads
    /// one input channel, so there is no reduction over channels to tile.</summary>
    public static void Depthwise(Index1D index, Range1D r, ArrayView<float> x, ArrayView<float> w, ArrayView<float> bias, ArrayView<float> y, ConvParams p)
    {
        for (int i = index; i < r.Count; i += r.Stride)
        {
            int ox = i % p.OutW;
            int t = i / p.OutW;
            int oy = t % p.OutH;
            t /= p.OutH;
            int co = t % p.OutChannels;
            int image = t / p.OutChannels;
            int ci = co / p.Multiplier;
            float acc = p.HasBias != 0 ? bias[co] : 0f;
            int xBase = (image * p.Channels + ci) * p.H * p.W;
            int wBase = co * p.KH * p.KW;
            for (int ky = 0; ky < p.KH; ky++)
            {
                int iy = oy * p.StrideH - p.PadH + ky * p.DilationH;
                if ((uint)iy >= (uint)p.H) continue;
                for (int kx = 0; kx < p.KW; kx++)
                {
                    int ix = ox * p.StrideW - p.PadW + kx * p.DilationW;
                    if ((uint)ix < (uint)p.W) acc += x[xBase + iy * p.W + ix] * w[wBase + ky * p.KW + kx];
                }
            }
            y[i] = acc;
        }
    }

    /// <summary>
    /// Transposed 2-D convolution as a gather, one thread per output (no atomics): output (oy, ox) receives input
    /// (iy, ix) through tap (ky, kx) when oy + pad - ky * dilation = iy * stride; the thread visits the taps, keeps those
    /// that land on an input position, and sums over the group's input channels.
    /// </summary>
    public static void ConvTranspose(Index1D index, Range1D r, ArrayView<float> x, ArrayView<float> w, ArrayView<float> bias, ArrayView<float> y, ConvTransposeParams p)
    {
        for (int i = index; i < r.Count; i += r.Stride)
        {
            int ox = i % p.OutW;
            int t = i / p.OutW;
            int oy = t % p.OutH;
            t /= p.OutH;
            int co = t % p.OutChannels;
            int image = t / p.OutChannels;
            int outPerGroup = p.OutChannels / p.Group, inPerGroup = p.Channels / p.Group;
            int g = co / outPerGroup, col = co - g * outPerGroup;
            float acc = p.HasBias != 0 ? bias[co] : 0f;
            for (int ky = 0; ky < p.KH; ky++)
            {
                int ty = oy + p.PadH - ky * p.DilationH;
                if (ty < 0 || ty % p.StrideH != 0) continue;
                int iy = ty / p.StrideH;
                if (iy >= p.H) continue;
                for (int kx = 0; kx < p.KW; kx++)
                {
                    int tx = ox + p.PadW - kx * p.DilationW;
                    if (tx < 0 || tx % p.StrideW != 0) continue;
                    int ix = tx / p.StrideW;
                    if (ix >= p.W) continue;
                    for (int c = 0; c < inPerGroup; c++)
                    {
                        int ci = g * inPerGroup + c;
                        acc += x[((image * p.Channels + ci) * p.H + iy) * p.W + ix] * w[((ci * outPerGroup + col) * p.KH + ky) * p.KW + kx];
                    }
                }
            }
            y[i] = acc;
        }
    }
}
