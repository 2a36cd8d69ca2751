using ILGPU;
using ILGPU.Runtime.Cuda;

namespace Squash.Runtime.Gpu.Kernels;

/// <summary>A byte operand of the int8 GEMM: element (row, col) of matrix (b1, b2) as it is stored (uint8 activations
/// raw, their zero point folded into the per-channel offsets; int8 weights as their two's complement byte), packed four
/// along K into a word by the kernel.</summary>
internal interface IByteMatrix
{
    /// <summary>The element's byte (0..255); callers stay within the matrix.</summary>
    int Byte(int b1, int b2, int row, int col);
}

/// <summary>Bytes in memory with element strides (int8 weights or uint8 activations).</summary>
internal struct ByteMatrix : IByteMatrix
{
    public ArrayView<byte> Data;
    public int Batch1, Batch2, Row, Col;

    public readonly int Byte(int b1, int b2, int row, int col) => Data[b1 * Batch1 + b2 * Batch2 + row * Row + col * Col];
}

/// <summary>The implicit im2col matrix of a uint8 convolution input (as <see cref="Im2ColMatrix"/>): the padding reads
/// the zero point, as the CPU pads, so that the folded offset <c>-zx * sum(w)</c> cancels it exactly.</summary>
internal struct ByteIm2Col : IByteMatrix
{
    public ArrayView<byte> Input;
    public int Batch1, Batch2, H, W, KH, KW, OutW, StrideH, StrideW, PadH, PadW, DilationH, DilationW, ZeroPoint;

    public readonly int Byte(int b1, int b2, int row, int col)
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
        return (uint)iy < (uint)H && (uint)ix < (uint)W ? Input[b1 * Batch1 + b2 * Batch2 + (ci * H + iy) * W + ix] : ZeroPoint;
    }
}

/// <summary>The dot product of two words of four bytes each (one from A, one from B) added to an int32: which one is
/// unsigned (the activations) and how it is computed (dp4a on CUDA sm_61+, byte by byte elsewhere).</summary>
internal interface IDot4
{
    /// <summary><c>acc + sum over the four bytes of a_i * b_i</c>.</summary>
    int Dot(uint a, uint b, int acc);
}

/// <summary>Activations on the left (QMatMul), dp4a where CUDA runs it.</summary>
internal readonly struct ActivationsLeftDp4a : IDot4
{
    public int Dot(uint a, uint b, int acc) => Int8Math.Dp4a(a, b, acc);
}

/// <summary>Weights on the left (QConv), dp4a where CUDA runs it.</summary>
internal readonly struct WeightsLeftDp4a : IDot4
{
    public int Dot(uint a, uint b, int acc) => Int8Math.Dp4a(b, a, acc);
}

/// <summary>Activations on the left, byte by byte (CUDA devices before sm_61).</summary>
internal readonly struct ActivationsLeft : IDot4
{
    public int Dot(uint a, uint b, int acc) => Int8Math.Dot4(a, b, acc);
}

/// <summary>Weights on the left, byte by byte.</summary>
internal readonly struct WeightsLeft : IDot4
{
    public int Dot(uint a, uint b, int acc) => Int8Math.Dot4(b, a, acc);
}

/// <summary>What an int8 product writes from its int32 sum for an output element of a channel: the CPU's
/// <c>Int8Epilogue</c>, one struct per output kind. The sum plus the channel's offset is the exact
/// <c>sum (x - zx) * w (+ bias)</c>: the GEMM sums raw uint8 times int8 and its offsets are <c>bias - zx * sum(w)</c>
/// (the CPU's), the depthwise kernel subtracts zx itself and its offsets are the bias.</summary>
internal interface IInt8Output
{
    /// <summary>Writes output element <paramref name="index"/> of channel <paramref name="channel"/>.</summary>
    void Store(int index, int channel, int acc);
}

/// <summary>uint8 out: <c>clamp(roundHalfEven((float)(acc + offset[c]) * multiplier[c]), low, high) + zy</c>.</summary>
internal struct RequantizedOutput : IInt8Output
{
    public ArrayView<byte> Y;
    /// <summary>The int32 offset per channel (with the int32 bias).</summary>
    public ArrayView<int> Offsets;
    public ArrayView<float> Multipliers;
    public int ZeroPoint;
    /// <summary>The uint8 output range minus the zero point (a fused Relu or Clip narrows it).</summary>
    public float Low, High;

    public readonly void Store(int index, int channel, int acc) =>
        Y[index] = Int8Math.Requantize(acc + Offsets[channel], Multipliers[channel], Low, High, ZeroPoint);
}

/// <summary>fp32 out: <c>clamp(fma((float)(acc + offset[c]), scale[c], bias[c]), min, max)</c> (the bias in fp32; the
/// offsets without it).</summary>
internal struct DequantizedOutput : IInt8Output
{
    public ArrayView<float> Y, Scales, Bias;
    public ArrayView<int> Offsets;
    public float Min, Max;

    public readonly void Store(int index, int channel, int acc) =>
        Y[index] = Int8Math.Clamp(Int8Math.Fma(acc + Offsets[channel], Scales[channel], Bias[channel]), Min, Max);
}

/// <summary>Sizes and output addressing of the int8 GEMM (as <see cref="GemmParams"/>) and how an output maps to its
/// channel: the row plus <c>b2 * ChannelGroup</c> (a convolution's weights on the left: channel = group's first channel
/// + row), or the column (a MatMul's weights on the right).</summary>
internal struct Int8GemmParams
{
    public int M, N, K, Batch2;
    public int Threads, Depth;
    public int TilesN, TilesM, Tiles;
    public int C1, C2, CRow;
    public int ChannelsOnRows, ChannelGroup;
}

/// <summary>Parameters of a direct uint8 depthwise convolution.</summary>
internal struct Int8DepthwiseParams
{
    public int Channels, H, W, OutChannels, OutH, OutW, KH, KW, StrideH, StrideW, PadH, PadW, DilationH, DilationW, Multiplier, ZeroPoint;
}

/// <summary>Where QuantizeLinear's and DequantizeLinear's scale of an element comes from (the CPU's
/// <c>QuantizationLayout</c>): element i is (outer, channel, j) with <c>i = (outer * Channels + channel) * Inner + j</c>;
/// the scale index is the channel, or with blocks <c>(outer * Blocks + channel / Block) * Inner + j</c>. Per tensor is
/// one channel.</summary>
internal struct QuantizeParams
{
    public int Channels, Inner, Block, Blocks;
    /// <summary>The output type's range (0..255 or -128..127) for QuantizeLinear; 1 for signed input in DequantizeLinear.</summary>
    public int Min, Max, Signed;
}

/// <summary>The scalar arithmetic the int8 kernels share, as the CPU's scalar tails compute it.</summary>
internal static class Int8Math
{
    /// <summary>
    /// fma(a, b, c) rounded once, as the CPU's <see cref="MathF.FusedMultiplyAdd"/>. ILGPU 1.5 does not map that method
    /// (PTX and OpenCL get a call to an undefined function, even in a branch never taken), so CUDA gets the instruction
    /// as inline PTX and other devices (the emulator, OpenCL) an exact emulation in fp32 arithmetic: Boldo and
    /// Melquiond's (IEEE TC 2008), the product split exactly (Dekker), the addend added exactly (TwoSum), the low parts
    /// summed rounding to odd, then one rounding to nearest. Exact barring overflow and underflow of the low parts,
    /// which the int8 epilogues' magnitudes stay far from.
    /// </summary>
    public static float Fma(float a, float b, float c)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("fma.rn.f32 %0, %1, %2, %3;", out float result, a, b, c);
            return result;
        }
        float uh = a * b;
        float ul = ProductError(a, b, uh);
        float th = c + uh;
        float tl = SumError(c, uh, th);
        return th + AddRoundToOdd(tl, ul);
    }

    /// <summary>a * b - p exactly, for p = a * b rounded (Dekker's product with Veltkamp's split at 12 bits).</summary>
    private static float ProductError(float a, float b, float p)
    {
        float ga = 4097f * a, gb = 4097f * b;
        float ah = ga - (ga - a), bh = gb - (gb - b);
        float al = a - ah, bl = b - bh;
        return ((ah * bh - p) + ah * bl + al * bh) + al * bl;
    }

    /// <summary>a + b - s exactly, for s = a + b rounded (Knuth's TwoSum).</summary>
    private static float SumError(float a, float b, float s)
    {
        float bb = s - a;
        return (a - (s - bb)) + (b - bb);
    }

    /// <summary>a + b rounded to odd: the rounded sum, or when that was inexact and its last bit is even, its
    /// neighbour on the side of the exact sum (whose last bit is odd).</summary>
    private static float AddRoundToOdd(float a, float b)
    {
        float s = a + b;
        float e = SumError(a, b, s);
        uint bits = Interop.FloatAsInt(s);
        if (e != 0f && (bits & 1) == 0) bits = (e > 0f) == (s > 0f) ? bits + 1 : bits - 1;
        return Interop.IntAsFloat(bits);
    }

    /// <summary>a * b rounded to nearest: mul.rn on CUDA, which ptxas may not contract with a following addition into
    /// an fma (a plain mul.f32 it may, which would change a rounding).</summary>
    public static float Mul(float a, float b)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("mul.rn.f32 %0, %1, %2;", out float result, a, b);
            return result;
        }
        return a * b;
    }

    /// <summary><c>acc + sum of u_i * s_i</c> over the four bytes of each word, u unsigned and s signed: one
    /// <c>dp4a.u32.s32</c> on CUDA (sm_61 and later; the lowering uses <see cref="Dot4"/> before), byte by byte elsewhere.</summary>
    public static int Dp4a(uint u, uint s, int acc)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("dp4a.u32.s32 %0, %1, %2, %3;", out int result, u, s, acc);
            return result;
        }
        return Dot4(u, s, acc);
    }

    /// <summary><see cref="Dp4a"/> byte by byte (exact int32 arithmetic, wrapping as dp4a does).</summary>
    public static int Dot4(uint u, uint s, int acc) =>
        acc + (int)(u & 0xFF) * (sbyte)s + (int)((u >> 8) & 0xFF) * (sbyte)(s >> 8)
            + (int)((u >> 16) & 0xFF) * (sbyte)(s >> 16) + (int)(u >> 24) * (sbyte)(s >> 24);

    /// <summary>NaN becomes <paramref name="low"/> (as the CPU's clamp, whose vector form is max then min).</summary>
    public static float Clamp(float value, float low, float high) => value > low ? (value < high ? value : high) : low;

    /// <summary><c>clamp(roundHalfEven((float)acc * multiplier), low, high) + zero</c> as a byte (clamping before
    /// rounding to integer bounds equals saturating after it).</summary>
    public static byte Requantize(int acc, float multiplier, float low, float high, int zero) =>
        (byte)((int)DeviceMath.RoundHalfEven(Clamp(Mul(acc, multiplier), low, high)) + zero);
}

/// <summary>
/// int8 kernels (com.squash QConv, QMatMul, QAdd, QMul, QConcat, QLookup, QGlobalAveragePool; QuantizeLinear and
/// DequantizeLinear). Sums are exact int32, as on the CPU, so outputs are bit-identical to the CPU operators: the
/// requantization is the same fp32 multiplication, clamp and round-half-even, and fp32 results the same fused
/// multiply-add.
/// </summary>
internal static class Int8Kernels
{
    /// <summary>Words of dynamic shared memory a group of T x T threads needs with steps of D along K (D / 4 words).</summary>
    public static int SharedWords(int threads, int depth) => 2 * 4 * threads * (depth / 4);

    /// <summary>
    /// Tiled integer GEMM with the layout of <see cref="GemmKernels.Gemm{TA, TB, TC}"/> (a T x T group computes a 4T x 4T
    /// tile, operands staged in shared memory, persistent groups), int32 accumulators, and the int8 epilogue at the
    /// store. Operands are staged as words of four consecutive k (bytes as stored; k past K is 0, and the weights' 0
    /// there makes any activation byte harmless), and each pair of words is one <see cref="IDot4"/>: a dp4a on CUDA,
    /// four products elsewhere. The sums are exact (wrapping int32 arithmetic, whose true value fits while K is at most
    /// the CPU's bound, 65 793) and the epilogue's offsets turn them into the CPU's.
    /// </summary>
    public static void Gemm<TA, TB, TOut, TDot>(TOut output, TA a, TB b, Int8GemmParams p)
        where TA : struct, IByteMatrix
        where TB : struct, IByteMatrix
        where TOut : struct, IInt8Output
        where TDot : struct, IDot4
    {
        var shared = SharedMemory.GetDynamic<uint>();
        int tile = 4 * p.Threads, words = p.Depth / 4;
        var tileA = shared.SubView(0, tile * words);
        var tileB = shared.SubView(tile * words, tile * words);
        int tx = Group.IdxX, ty = Group.IdxY;
        int tid = ty * p.Threads + tx;
        for (int work = Grid.IdxX; work < p.Tiles; work += Grid.DimX)
        {
            int tileN = work % p.TilesN;
            int t = work / p.TilesN;
            int tileM = t % p.TilesM;
            int batch = t / p.TilesM;
            ComputeTile<TA, TB, TOut, TDot>(output, a, b, p, tileA, tileB, tx, ty, tid, batch, tileM * tile, tileN * tile);
        }
    }

    private static void ComputeTile<TA, TB, TOut, TDot>(TOut output, TA a, TB b, Int8GemmParams p,
        ArrayView<uint> tileA, ArrayView<uint> tileB, int tx, int ty, int tid, int batch, int m0, int n0)
        where TA : struct, IByteMatrix
        where TB : struct, IByteMatrix
        where TOut : struct, IInt8Output
        where TDot : struct, IDot4
    {
        int b1 = batch / p.Batch2, b2 = batch - b1 * p.Batch2;
        int t1 = p.Threads, t2 = 2 * p.Threads, t3 = 3 * p.Threads, tile = 4 * p.Threads, group = p.Threads * p.Threads;
        int words = p.Depth / 4;
        var dot = default(TDot);

        int c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
        int c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
        for (int k0 = 0; k0 < p.K; k0 += p.Depth)
        {
            for (int e = tid; e < tile * words; e += group)
            {
                int mm = e / words, kw = e - mm * words;
                int m = m0 + mm, k = k0 + 4 * kw;
                uint word = 0;
                if (m < p.M)
                    for (int j = 0; j < 4; j++)
                        if (k + j < p.K) word |= (uint)(a.Byte(b1, b2, m, k + j) & 0xFF) << (8 * j);
                tileA[kw * tile + mm] = word;
                int kb = e / tile, nn = e - kb * tile;
                int n = n0 + nn;
                k = k0 + 4 * kb;
                word = 0;
                if (n < p.N)
                    for (int j = 0; j < 4; j++)
                        if (k + j < p.K) word |= (uint)(b.Byte(b1, b2, k + j, n) & 0xFF) << (8 * j);
                tileB[kb * tile + nn] = word;
            }
            Group.Barrier();
            for (int kw = 0; kw < words; kw++)
            {
                int ra = kw * tile + ty, rb = kw * tile + tx;
                uint a0 = tileA[ra], a1 = tileA[ra + t1], a2 = tileA[ra + t2], a3 = tileA[ra + t3];
                uint v0 = tileB[rb], v1 = tileB[rb + t1], v2 = tileB[rb + t2], v3 = tileB[rb + t3];
                c00 = dot.Dot(a0, v0, c00); c01 = dot.Dot(a0, v1, c01); c02 = dot.Dot(a0, v2, c02); c03 = dot.Dot(a0, v3, c03);
                c10 = dot.Dot(a1, v0, c10); c11 = dot.Dot(a1, v1, c11); c12 = dot.Dot(a1, v2, c12); c13 = dot.Dot(a1, v3, c13);
                c20 = dot.Dot(a2, v0, c20); c21 = dot.Dot(a2, v1, c21); c22 = dot.Dot(a2, v2, c22); c23 = dot.Dot(a2, v3, c23);
                c30 = dot.Dot(a3, v0, c30); c31 = dot.Dot(a3, v1, c31); c32 = dot.Dot(a3, v2, c32); c33 = dot.Dot(a3, v3, c33);
            }
            Group.Barrier();
        }
        int r0 = m0 + ty, q0 = n0 + tx;
        Store(output, p, b1, b2, r0, q0, c00); Store(output, p, b1, b2, r0, q0 + t1, c01);
        Store(output, p, b1, b2, r0, q0 + t2, c02); Store(output, p, b1, b2, r0, q0 + t3, c03);
        Store(output, p, b1, b2, r0 + t1, q0, c10); Store(output, p, b1, b2, r0 + t1, q0 + t1, c11);
        Store(output, p, b1, b2, r0 + t1, q0 + t2, c12); Store(output, p, b1, b2, r0 + t1, q0 + t3, c13);
        Store(output, p, b1, b2, r0 + t2, q0, c20); Store(output, p, b1, b2, r0 + t2, q0 + t1, c21);
        Store(output, p, b1, b2, r0 + t2, q0 + t2, c22); Store(output, p, b1, b2, r0 + t2, q0 + t3, c23);
        Store(output, p, b1, b2, r0 + t3, q0, c30); Store(output, p, b1, b2, r0 + t3, q0 + t1, c31);
        Store(output, p, b1, b2, r0 + t3, q0 + t2, c32); Store(output, p, b1, b2, r0 + t3, q0 + t3, c33);
    }

    private static void Store<TOut>(TOut output, Int8GemmParams p, int b1, int b2, int m, int n, int acc)
        where TOut : struct, IInt8Output
    {
        if (m >= p.M || n >= p.N) return;
        int channel = p.ChannelsOnRows != 0 ? b2 * p.ChannelGroup + m : n;
        output.Store(b1 * p.C1 + b2 * p.C2 + m * p.CRow + n, channel, acc);
    }

    /// <summary>Depthwise (and channel-multiplier) uint8 convolution, one thread per output, exact int32 sums of
    /// (x - zx) * w over the taps inside the input (the padding holds the zero point, which contributes 0).</summary>
    public static void Depthwise<TOut>(Index1D index, Range1D r, TOut output, ArrayView<byte> x, ArrayView<sbyte> w, Int8DepthwiseParams p)
        where TOut : struct, IInt8Output
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
            int acc = 0;
            int xBase = (image * p.Channels + ci) * p.H * p.W;
            int wBase = co * p.KH * p.KW;
            for (int ky = 0; ky < p.KH; ky++)
            {
                int iy = oy * p.StrideH - p.PadH + ky * p.DilationH;
                if ((uint)iy >= (uint)p.H) continue;
                for (int kx = 0; kx < p.KW; kx++)
                {
                    int ix = ox * p.StrideW - p.PadW + kx * p.DilationW;
                    if ((uint)ix < (uint)p.W) acc += (x[xBase + iy * p.W + ix] - p.ZeroPoint) * w[wBase + ky * p.KW + kx];
                }
            }
            output.Store(i, co, acc);
        }
    }

    private static int ScaleIndex(int i, QuantizeParams p)
    {
        int t = i / p.Inner;
        int channel = t % p.Channels;
        if (p.Block == 1) return channel;
        int outer = t / p.Channels;
        return (outer * p.Blocks + channel / p.Block) * p.Inner + (i - t * p.Inner);
    }

    /// <summary>QuantizeLinear, fp32 to uint8 or int8: <c>clamp(roundHalfEven(x / scale), min - z, max - z) + z</c>
    /// (the IEEE division, as ONNX specifies; NaN becomes the lowest value).</summary>
    public static void Quantize(Index1D index, Range1D r, ArrayView<float> x, ArrayView<byte> y, ArrayView<float> scales, ArrayView<int> zeros, QuantizeParams p)
    {
        for (int i = index; i < r.Count; i += r.Stride)
        {
            int s = ScaleIndex(i, p);
            int zero = zeros[s];
            float q = Int8Math.Clamp(x[i] / scales[s], p.Min - zero, p.Max - zero);
            y[i] = (byte)((int)DeviceMath.RoundHalfEven(q) + zero);
        }
    }

    /// <summary>DequantizeLinear, uint8 or int8 (<see cref="QuantizeParams.Signed"/>) to fp32: <c>(float)(q - z) * scale</c>.</summary>
    public static void Dequantize(Index1D index, Range1D r, ArrayView<byte> x, ArrayView<float> y, ArrayView<float> scales, ArrayView<int> zeros, QuantizeParams p)
    {
        for (int i = index; i < r.Count; i += r.Stride)
        {
            int s = ScaleIndex(i, p);
            int q = p.Signed != 0 ? (sbyte)x[i] : x[i];
            y[i] = Int8Math.Mul(q - zeros[s], scales[s]);
        }
    }

    /// <summary>QAdd: <c>clamp(round(fma(b - zb, mb, (a - za) * ma)), low, high) + zy</c>, as the CPU's.</summary>
    public static void Add(Index1D index, Range1D r, ArrayView<byte> a, ArrayView<byte> b, ArrayView<byte> y, QAddParams p)
    {
        for (int i = index; i < r.Count; i += r.Stride)
        {
            float sum = Int8Math.Fma(b[i] - p.BZero, p.BMultiplier, Int8Math.Mul(a[i] - p.AZero, p.AMultiplier));
            y[i] = (byte)((int)DeviceMath.RoundHalfEven(Int8Math.Clamp(sum, p.Low, p.High)) + p.YZero);
        }
    }

    /// <summary>QMul's per-channel multipliers <c>a_scale * gate[c] / y_scale</c>, evaluated in double and rounded to
    /// fp32 once, as on the CPU (one thread per channel; the only int8 kernel besides the global pool that needs fp64).</summary>
    [NeedsFloat64]
    public static void MulMultipliers(Index1D index, Range1D r, ArrayView<float> gates, ArrayView<float> multipliers, float aScale, float yScale)
    {
        for (int i = index; i < r.Count; i += r.Stride)
            multipliers[i] = (float)((double)aScale * gates[i] / yScale);
    }

    /// <summary>Requantization of runs of <see cref="RequantizeParams.Inner"/> uint8 values, run j with multiplier
    /// <c>multipliers[j % channels]</c> (QMul's channels; one for all with one channel).</summary>
    public static void Requantize(Index1D index, Range1D r, ArrayView<byte> x, ArrayView<byte> y, ArrayView<float> multipliers, RequantizeParams p)
    {
        for (int i = index; i < r.Count; i += r.Stride)
        {
            float multiplier = multipliers[i / p.Inner % p.Channels];
            y[i] = Int8Math.Requantize(x[i] - p.InZero, multiplier, -p.OutZero, 255 - p.OutZero, p.OutZero);
        }
    }

    /// <summary>One input of QConcat into its place in the output (runs of <see cref="ConcatParams.Block"/> bytes,
    /// one per outer index), requantized to the output's parameters or copied when they are the same.</summary>
    public static void Concat(Index1D index, Range1D r, ArrayView<byte> x, ArrayView<byte> y, ConcatParams p)
    {
        for (int i = index; i < r.Count; i += r.Stride)
        {
            int o = i / p.Block;
            int target = o * p.RowBytes + p.Offset + (i - o * p.Block);
            y[target] = p.Copy != 0 ? x[i] : Int8Math.Requantize(x[i] - p.InZero, p.Multiplier, -p.OutZero, 255 - p.OutZero, p.OutZero);
        }
    }

    /// <summary>QLookup: <c>y[i] = table[channel][x[i]]</c>, channel = (i / inner) % channels.</summary>
    public static void Lookup(Index1D index, Range1D r, ArrayView<byte> x, ArrayView<byte> y, ArrayView<byte> tables, int channels, int inner)
    {
        for (int i = index; i < r.Count; i += r.Stride)
            y[i] = tables[i / inner % channels * 256 + x[i]];
    }

    /// <summary>QGlobalAveragePool, one group per (image, channel) plane (persistent groups loop over planes): the
    /// threads sum the plane's bytes with the group's stride, a tree in shared memory adds the partial sums (exact
    /// integers, so the order does not matter), and thread 0 evaluates <c>x_scale * (sum / count - x_zero_point)</c>
    /// in double, rounded once, as on the CPU. <see cref="QPoolParams.Threads"/> is the group size, a power of two.</summary>
    [NeedsFloat64]
    public static void GlobalAveragePool(ArrayView<byte> x, ArrayView<float> y, QPoolParams p)
    {
        var shared = SharedMemory.GetDynamic<int>();
        int t = Group.IdxX;
        for (int plane = Grid.IdxX; plane < p.Planes; plane += Grid.DimX)
        {
            int sum = 0;
            int start = plane * p.Size;
            for (int j = t; j < p.Size; j += p.Threads) sum += x[start + j];
            shared[t] = sum;
            Group.Barrier();
            for (int s = p.Threads / 2; s > 0; s >>= 1)
            {
                if (t < s) shared[t] += shared[t + s];
                Group.Barrier();
            }
            if (t == 0) y[plane] = (float)(((double)shared[0] / p.Size - p.Zero) * p.Scale);
            // Every thread has read the total before the next plane's partial sums overwrite it.
            Group.Barrier();
        }
    }
}

/// <summary>QGlobalAveragePool's parameters: planes, bytes per plane, threads per group, and x's quantization.</summary>
internal struct QPoolParams
{
    public int Planes, Size, Threads, Zero;
    public float Scale;
}

/// <summary>QAdd's parameters: zero points, multipliers <c>scale / y_scale</c>, and the output range minus zy.</summary>
internal struct QAddParams
{
    public int AZero, BZero, YZero;
    public float AMultiplier, BMultiplier, Low, High;
}

/// <summary>A requantization over runs: zero points, the run length and the number of channels.</summary>
internal struct RequantizeParams
{
    public int InZero, OutZero, Inner, Channels;
}

/// <summary>One QConcat input: its run length, the output's run length and this input's offset in it, and its
/// requantization.</summary>
internal struct ConcatParams
{
    public int Block, RowBytes, Offset, InZero, OutZero, Copy;
    public float Multiplier;
}

/// <summary>Marks a kernel that computes in fp64 (as the CPU operator does, to give its results exactly). CUDA
/// devices all have fp64; on an OpenCL device without it the node runs on the host.</summary>
[AttributeUsage(AttributeTargets.Method)]
internal sealed class NeedsFloat64Attribute : Attribute;
