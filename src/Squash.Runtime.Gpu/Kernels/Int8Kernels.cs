using ILGPU;
using ILGPU.Runtime.Cuda;

namespace Squash.Runtime.Gpu.Kernels;

/// <summary>An integer operand of the int8 GEMM: element (row, col) of matrix (b1, b2) as an int (uint8 activations
/// already minus their zero point, int8 weights as stored).</summary>
internal interface IIntMatrix
{
    /// <summary>The element; callers stay within the matrix.</summary>
    int Load(int b1, int b2, int row, int col);
}

/// <summary>int8 weights in memory with element strides.</summary>
internal struct Int8Matrix : IIntMatrix
{
    public ArrayView<sbyte> Data;
    public int Batch1, Batch2, Row, Col;

    public readonly int Load(int b1, int b2, int row, int col) => Data[b1 * Batch1 + b2 * Batch2 + row * Row + col * Col];
}

/// <summary>uint8 activations in memory with element strides, read minus their zero point.</summary>
internal struct UInt8Matrix : IIntMatrix
{
    public ArrayView<byte> Data;
    public int Batch1, Batch2, Row, Col, ZeroPoint;

    public readonly int Load(int b1, int b2, int row, int col) => Data[b1 * Batch1 + b2 * Batch2 + row * Row + col * Col] - ZeroPoint;
}

/// <summary>The implicit im2col matrix of a uint8 convolution input (as <see cref="Im2ColMatrix"/>), read minus the
/// zero point: the padding is 0, which is what the CPU's padding with the zero point contributes.</summary>
internal struct UInt8Im2Col : IIntMatrix
{
    public ArrayView<byte> Input;
    public int Batch1, Batch2, H, W, KH, KW, OutW, StrideH, StrideW, PadH, PadW, DilationH, DilationW, ZeroPoint;

    public readonly int Load(int b1, int b2, int row, int col)
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
        return (uint)iy < (uint)H && (uint)ix < (uint)W ? Input[b1 * Batch1 + b2 * Batch2 + (ci * H + iy) * W + ix] - ZeroPoint : 0;
    }
}

/// <summary>What an int8 product writes from its exact int32 sum <c>acc = sum (x - zx) * w</c> for an output element of
/// a channel: the CPU's <c>Int8Epilogue</c>, one struct per output kind.</summary>
internal interface IInt8Output
{
    /// <summary>Writes output element <paramref name="index"/> of channel <paramref name="channel"/>.</summary>
    void Store(int index, int channel, int acc);
}

/// <summary>uint8 out: <c>clamp(roundHalfEven((float)(acc + bias[c]) * multiplier[c]), low, high) + zy</c>.</summary>
internal struct RequantizedOutput : IInt8Output
{
    public ArrayView<byte> Y;
    /// <summary>The int32 bias per channel (zeros without one).</summary>
    public ArrayView<int> Bias;
    public ArrayView<float> Multipliers;
    public int ZeroPoint;
    /// <summary>The uint8 output range minus the zero point (a fused Relu or Clip narrows it).</summary>
    public float Low, High;

    public readonly void Store(int index, int channel, int acc) =>
        Y[index] = Int8Math.Requantize(acc + Bias[channel], Multipliers[channel], Low, High, ZeroPoint);
}

/// <summary>fp32 out: <c>clamp(fma((float)acc, scale[c], bias[c]), min, max)</c> (bias already in fp32).</summary>
internal struct DequantizedOutput : IInt8Output
{
    public ArrayView<float> Y, Scales, Bias;
    public float Min, Max;

    public readonly void Store(int index, int channel, int acc) =>
        Y[index] = Int8Math.Clamp(Int8Math.Fma(acc, Scales[channel], Bias[channel]), Min, Max);
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
    /// <summary>Ints of dynamic shared memory a group of T x T threads needs with steps of D along K.</summary>
    public static int SharedInts(int threads, int depth) => 2 * 4 * threads * depth;

    /// <summary>
    /// Tiled integer GEMM with the layout of <see cref="GemmKernels.Gemm{TA, TB, TC}"/> (a T x T group computes a 4T x 4T
    /// tile, operands staged in shared memory, persistent groups), int32 accumulators, and the int8 epilogue at the
    /// store. Operands are staged as ints (uint8 already minus its zero point): the products are exact and their sum
    /// is exact while K is at most the CPU's bound (65 793).
    /// </summary>
    public static void Gemm<TA, TB, TOut>(TOut output, TA a, TB b, Int8GemmParams p)
        where TA : struct, IIntMatrix
        where TB : struct, IIntMatrix
        where TOut : struct, IInt8Output
    {
        var shared = SharedMemory.GetDynamic<int>();
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
            ComputeTile(output, a, b, p, tileA, tileB, tx, ty, tid, batch, tileM * tile, tileN * tile);
        }
    }

    private static void ComputeTile<TA, TB, TOut>(TOut output, TA a, TB b, Int8GemmParams p,
        ArrayView<int> tileA, ArrayView<int> tileB, int tx, int ty, int tid, int batch, int m0, int n0)
        where TA : struct, IIntMatrix
        where TB : struct, IIntMatrix
        where TOut : struct, IInt8Output
    {
        int b1 = batch / p.Batch2, b2 = batch - b1 * p.Batch2;
        int t1 = p.Threads, t2 = 2 * p.Threads, t3 = 3 * p.Threads, tile = 4 * p.Threads, group = p.Threads * p.Threads;

        int c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
        int c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
        for (int k0 = 0; k0 < p.K; k0 += p.Depth)
        {
            for (int e = tid; e < tile * p.Depth; e += group)
            {
                int mm = e / p.Depth, kk = e - mm * p.Depth;
                int m = m0 + mm, k = k0 + kk;
                tileA[kk * tile + mm] = m < p.M && k < p.K ? a.Load(b1, b2, m, k) : 0;
                int kb = e / tile, nn = e - kb * tile;
                int n = n0 + nn;
                k = k0 + kb;
                tileB[kb * tile + nn] = k < p.K && n < p.N ? b.Load(b1, b2, k, n) : 0;
            }
            Group.Barrier();
            for (int kk = 0; kk < p.Depth; kk++)
            {
                int ra = kk * tile + ty, rb = kk * tile + tx;
                int a0 = tileA[ra], a1 = tileA[ra + t1], a2 = tileA[ra + t2], a3 = tileA[ra + t3];
                int v0 = tileB[rb], v1 = tileB[rb + t1], v2 = tileB[rb + t2], v3 = tileB[rb + t3];
                c00 += a0 * v0; c01 += a0 * v1; c02 += a0 * v2; c03 += a0 * v3;
                c10 += a1 * v0; c11 += a1 * v1; c12 += a1 * v2; c13 += a1 * v3;
                c20 += a2 * v0; c21 += a2 * v1; c22 += a2 * v2; c23 += a2 * v3;
                c30 += a3 * v0; c31 += a3 * v1; c32 += a3 * v2; c33 += a3 * v3;
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

    /// <summary>QGlobalAveragePool, one thread per (image, channel) plane: the exact integer sum, then
    /// <c>x_scale * (sum / count - x_zero_point)</c> in double, rounded once, as on the CPU.</summary>
    [NeedsFloat64]
    public static void GlobalAveragePool(Index1D index, Range1D r, ArrayView<byte> x, ArrayView<float> y, int size, int zero, float scale)
    {
        for (int plane = index; plane < r.Count; plane += r.Stride)
        {
            int sum = 0;
            int start = plane * size;
            for (int j = 0; j < size; j++) sum += x[start + j];
            y[plane] = (float)(((double)sum / size - zero) * scale);
        }
    }
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
