using System.Buffers;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Squash.Runtime.Kernels;

/// <summary>The packed tensors of one int4 weight in <see cref="Int4Layout"/> (spans over the constant tensors).</summary>
public readonly ref struct Int4Weights
{
    /// <summary>Wraps the packed values, the float16 scales and (for asymmetric blocks) the packed zero points.</summary>
    /// <exception cref="ArgumentException">A span's length does not match the layout.</exception>
    public Int4Weights(Int4Layout layout, ReadOnlySpan<byte> data, ReadOnlySpan<Half> scales, ReadOnlySpan<byte> zeroPoints)
    {
        layout.CheckData(data.Length, "int4 weights");
        if (scales.Length != layout.ScaleCount)
            throw new ArgumentException($"{scales.Length} scales given, the layout ({layout}) needs {layout.ScaleCount}.", nameof(scales));
        if (!zeroPoints.IsEmpty && zeroPoints.Length != layout.ZeroPointBytes)
            throw new ArgumentException($"{zeroPoints.Length} zero-point bytes given, the layout ({layout}) needs {layout.ZeroPointBytes}.", nameof(zeroPoints));
        Layout = layout;
        Data = data;
        Scales = scales;
        ZeroPoints = zeroPoints;
    }

    /// <summary>The geometry.</summary>
    public Int4Layout Layout { get; }

    /// <summary>Packed values, <see cref="Int4Layout.DataBytes"/> bytes.</summary>
    public ReadOnlySpan<byte> Data { get; }

    /// <summary>One float16 scale per (padded column, block).</summary>
    public ReadOnlySpan<Half> Scales { get; }

    /// <summary>Packed 4-bit zero points, or empty for symmetric weights (zero point 8).</summary>
    public ReadOnlySpan<byte> ZeroPoints { get; }

    /// <summary>True when the weights have no zero points (every block is symmetric around q = 8).</summary>
    public bool IsSymmetric => ZeroPoints.IsEmpty;
}

/// <summary>How the int4 kernels treat the activations (ONNX Runtime's MatMulNBits attribute accuracy_level: 0 and
/// 1 are fp32, 4 is int8).</summary>
public enum Int4ActivationPrecision
{
    /// <summary>fp32 activations times dequantized weights, fp32 sums (the default).</summary>
    Fp32 = 0,

    /// <summary>A single row (a decode step) is quantized to int8 per block (scale = max|x| / 127) and multiplied in
    /// integers, about twice as fast; several rows (a prompt) still run in fp32, which the attribute allows (it names a
    /// minimum accuracy). Adds the activations' rounding error (about 0.4% of each block's largest value) to the weights'.</summary>
    Int8 = 4,
}

/// <summary>
/// <c>C[M,N] = A[M,K] W + bias</c> with W in <see cref="Int4Layout"/>: weight-only int4, fp32 accumulation. One row
/// (a decode step) runs the fused GEMV (<see cref="Int4Gemv"/>, or <see cref="Int4Int8Gemv"/> on int8-quantized
/// activations); several rows (a prompt) dequantize panels of columns into fp32, each panel once, and multiply them
/// with the fp32 GEMM. Work is split over columns.
/// </summary>
public static unsafe class Int4MatMul
{
    /// <summary>Column groups per unit of parallel GEMV work (256 columns).</summary>
    private const int GemvGrain = 64;

    /// <summary>Computes <c>C = A W + bias</c>; A is [m, K] and C [m, N], both row-major and dense; bias is empty or [N].</summary>
    /// <exception cref="ArgumentException">A span is too short.</exception>
    public static void Multiply(KernelContext context, int m, ReadOnlySpan<float> a, Int4Weights w, ReadOnlySpan<float> bias, Span<float> c,
        Int4ActivationPrecision activations = Int4ActivationPrecision.Fp32) =>
        Multiply(context, Int4Gemv.Best, m, a, w, bias, c, activations);

    /// <summary><see cref="Multiply(KernelContext, int, ReadOnlySpan{float}, Int4Weights, ReadOnlySpan{float}, Span{float}, Int4ActivationPrecision)"/>
    /// with a chosen instruction set (tests run every one the machine supports).</summary>
    internal static void Multiply(KernelContext context, Int4Isa isa, int m, ReadOnlySpan<float> a, Int4Weights w, ReadOnlySpan<float> bias, Span<float> c,
        Int4ActivationPrecision activations = Int4ActivationPrecision.Fp32)
    {
        ArgumentNullException.ThrowIfNull(context);
        var layout = w.Layout;
        if (m < 0 || a.Length < (long)m * layout.K) throw new ArgumentException($"A needs {m} x {layout.K} values.", nameof(a));
        if (c.Length < (long)m * layout.N) throw new ArgumentException($"C needs {m} x {layout.N} values.", nameof(c));
        if (!bias.IsEmpty && bias.Length != layout.N) throw new ArgumentException($"The bias needs {layout.N} values.", nameof(bias));
        if (m == 0) return;
        fixed (byte* data = w.Data)
        fixed (Half* scales = w.Scales)
        fixed (byte* zeroPoints = w.ZeroPoints)
        fixed (float* pa = a)
        fixed (float* pb = bias)
        fixed (float* pc = c)
        {
            var pointers = new Int4Pointers(layout, data, scales, zeroPoints);
            if (m == 1 && activations == Int4ActivationPrecision.Int8) Int8Gemv(context, isa, pointers, pa, pb, pc);
            else if (m == 1) Gemv(context, isa, pointers, pa, pb, pc);
            else Gemm(context, isa, pointers, m, pa, pb, pc);
        }
    }

    /// <summary>Writes columns [n0, n0 + count) of W, dequantized, as rows of <paramref name="destination"/> (row j at
    /// offset j * <paramref name="stride"/>, K values each): the transposed panel a GEMM reads with transB.</summary>
    public static void Dequantize(Int4Weights w, int n0, int count, Span<float> destination, int stride)
    {
        var layout = w.Layout;
        if (n0 < 0 || count < 0 || n0 + count > layout.N) throw new ArgumentOutOfRangeException(nameof(count));
        if (stride < layout.K) throw new ArgumentOutOfRangeException(nameof(stride), "The stride must hold K values.");
        if (count > 0 && destination.Length < (long)(count - 1) * stride + layout.K)
            throw new ArgumentException("The destination is too short.", nameof(destination));
        if (count == 0) return;
        fixed (byte* data = w.Data)
        fixed (Half* scales = w.Scales)
        fixed (byte* zeroPoints = w.ZeroPoints)
        fixed (float* output = destination)
        {
            var pointers = new Int4Pointers(layout, data, scales, zeroPoints);
            if (layout.PaddedK == layout.K)
            {
                DequantizeColumns(Int4Gemv.Best, pointers, n0, count, output, stride);
                return;
            }
            // The last block is partial: dequantize whole blocks into a row of PaddedK and copy the first K.
            var row = ArrayPool<float>.Shared.Rent(layout.PaddedK);
            try
            {
                fixed (float* r = row)
                {
                    for (int j = 0; j < count; j++)
                    {
                        DequantizeColumns(Int4Gemv.Best, pointers, n0 + j, 1, r, layout.PaddedK);
                        new ReadOnlySpan<float>(r, layout.K).CopyTo(destination.Slice(j * stride, layout.K));
                    }
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(row);
            }
        }
    }

    private static void Gemv(KernelContext context, Int4Isa isa, in Int4Pointers w, float* a, float* bias, float* c)
    {
        var layout = w.Layout;
        float* x = a;
        if (layout.PaddedK != layout.K)
        {
            // The kernels run whole blocks; the padded weights are 0, and x is padded with zeros so that 0 * x stays 0.
            var buffer = context.Scratch(layout.PaddedK * sizeof(float));
            var padded = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(buffer.AsSpan(0, layout.PaddedK * sizeof(float)));
            new ReadOnlySpan<float>(a, layout.K).CopyTo(padded);
            padded[layout.K..].Clear();
            fixed (float* px = padded)
            {
                context.For(layout.Groups, new GemvBody(isa, w, px, bias, c), GemvGrain);
            }
            return;
        }
        context.For(layout.Groups, new GemvBody(isa, w, x, bias, c), GemvGrain);
    }

    private static void Int8Gemv(KernelContext context, Int4Isa isa, in Int4Pointers w, float* a, float* bias, float* c)
    {
        // Quantized once, before the columns are split; the ranges only read it.
        var scratch = context.Scratch(Int8ActivationRow.ScratchBytes(w.Layout));
        fixed (byte* p = scratch)
        {
            var row = Int8ActivationRow.Quantize(w.Layout, a, p);
            context.For(w.Layout.Groups, new Int8GemvBody(isa, w, row, bias, c), GemvGrain);
        }
    }

    private readonly struct Int8GemvBody(Int4Isa isa, Int4Pointers w, Int8ActivationRow x, float* bias, float* y) : IRangeBody
    {
        public void Invoke(int start, int end) => Int4Int8Gemv.Run(isa, w, x, bias, y, start, end);
    }

    private readonly struct GemvBody(Int4Isa isa, Int4Pointers w, float* x, float* bias, float* y) : IRangeBody
    {
        public void Invoke(int start, int end) => Int4Gemv.Run(isa, w, x, bias, y, start, end);
    }

    private static void Gemm(KernelContext context, Int4Isa isa, in Int4Pointers w, int m, float* a, float* bias, float* c)
    {
        var layout = w.Layout;
        // A is packed once; the GEMM driver asks for B a block at a time (its own K x N blocking, so packed A stays in
        // cache across a wide block of columns), and the weight is dequantized straight into those packed blocks.
        var packedA = PackedMatrix.PackLeft(new ReadOnlySpan<float>(a, m * layout.K), layout.K, false, m, layout.K);
        var epilogue = new GemmEpilogue { ColumnBias = bias is null ? default : new ReadOnlySpan<float>(bias, layout.N) };
        Kernels.Gemm.Multiply(context, packedA, new Int4Panels(isa, w), layout.N, new Span<float>(c, m * layout.N), layout.N, epilogue);
    }

    /// <summary>
    /// The int4 weight as the GEMM's right operand, dequantized on demand into packed panels (kc depths x width columns,
    /// depth outermost). Per group of four columns, each column's blocks covering the depths are dequantized into a
    /// small buffer, then four depths at a time are transposed (4 x 4) into the panel's rows.
    /// </summary>
    private readonly struct Int4Panels(Int4Isa isa, Int4Pointers w) : IPanelSource
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public float* Panels(int start, int count, int p0, int kc, int width, float* scratch)
        {
            var layout = w.Layout;
            int bs = layout.BlockSize, b0 = p0 / bs, b1 = (p0 + kc + bs - 1) / bs, span = (b1 - b0) * bs, skip = p0 - b0 * bs;
            int paddedN = layout.Groups * Int4Layout.ColumnGroup;
            // Four columns of the blocks covering [p0, p0 + kc): kc <= GemmKernel.MaxKc (320) and blocks of at most 256
            // make at most 4 x 832 floats (13 KB).
            Debug.Assert(span <= GemmKernel.MaxKc + 2 * 256);
            Span<float> buffer = stackalloc float[4 * span];
            fixed (float* columns = buffer)
            {
                for (int q = 0; q * width < count; q++)
                {
                    float* panel = scratch + (nint)q * width * kc;
                    for (int c0 = 0; c0 < width; c0 += Int4Layout.ColumnGroup)
                    {
                        int n0 = start + q * width + c0;
                        if (n0 >= paddedN)
                        {
                            // Past the weight's padded columns: zeros (the padding columns themselves dequantize to 0).
                            for (int p = 0; p < kc; p++) Vector128<float>.Zero.Store(panel + (nint)p * width + c0);
                            continue;
                        }
                        for (int c = 0; c < Int4Layout.ColumnGroup; c++) DequantizeBlocks(isa, w, n0 + c, b0, b1, columns + c * span);
                        Transpose4(columns + skip, span, kc, panel + c0, width);
                    }
                }
            }
            return scratch;
        }
    }

    /// <summary>Four columns of <paramref name="kc"/> floats (column c at <paramref name="source"/> + c * stride) into
    /// kc rows of four at <paramref name="destination"/>, rows <paramref name="width"/> floats apart.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose4(float* source, int stride, int kc, float* destination, int width)
    {
        int p = 0;
        if (Sse.IsSupported)
        {
            // Other architectures take the scalar loop below.
            for (; p + 4 <= kc; p += 4)
            {
                var v0 = Vector128.Load(source + p);
                var v1 = Vector128.Load(source + stride + p);
                var v2 = Vector128.Load(source + 2 * stride + p);
                var v3 = Vector128.Load(source + 3 * stride + p);
                var t0 = Sse.UnpackLow(v0, v1);
                var t1 = Sse.UnpackLow(v2, v3);
                var t2 = Sse.UnpackHigh(v0, v1);
                var t3 = Sse.UnpackHigh(v2, v3);
                float* row = destination + (nint)p * width;
                Sse.MoveLowToHigh(t0, t1).Store(row);
                Sse.MoveHighToLow(t1, t0).Store(row + width);
                Sse.MoveLowToHigh(t2, t3).Store(row + 2 * width);
                Sse.MoveHighToLow(t3, t2).Store(row + 3 * width);
            }
        }
        for (; p < kc; p++)
            for (int c = 0; c < Int4Layout.ColumnGroup; c++) destination[(nint)p * width + c] = source[c * stride + p];
    }

    /// <summary>Blocks [b0, b1) of column <paramref name="n"/> dequantized, one after another, at <paramref name="destination"/>.</summary>
    private static void DequantizeBlocks(Int4Isa isa, in Int4Pointers w, int n, int b0, int b1, float* destination)
    {
        var layout = w.Layout;
        int half = layout.BlockBytes;
        for (int b = b0; b < b1; b++)
        {
            int at = layout.ScaleIndex(n, b);
            float scale = (float)w.Scales[at];
            int zero = w.ZeroPoints is null ? Int4Layout.SymmetricZeroPoint : (w.ZeroPoints[at / 2] >> (4 * (at & 1))) & 0xF;
            byte* d = w.Data + (long)at * half;
            float* o = destination + (b - b0) * layout.BlockSize;
            if (isa == Int4Isa.Avx512) Block512(d, half, scale, zero, o);
            else if (isa == Int4Isa.Avx2) Block256(d, half, scale, zero, o);
            else BlockScalar(d, half, scale, zero, o);
        }
    }

    /// <summary>Columns [n0, n0 + count) dequantized as rows of PaddedK floats at <paramref name="destination"/>.</summary>
    internal static void DequantizeColumns(Int4Isa isa, in Int4Pointers w, int n0, int count, float* destination, int stride)
    {
        for (int j = 0; j < count; j++) DequantizeBlocks(isa, w, n0 + j, 0, w.Layout.Blocks, destination + (long)j * stride);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Block512(byte* d, int half, float scale, int zero, float* o)
    {
        var table = (Vector512.Create(0f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) - Vector512.Create((float)zero)) * Vector512.Create(scale);
        for (int j = 0; j < half; j += 16)
        {
            var q = Avx512F.ConvertToVector512Int32(Vector128.Load(d + j));
            Avx512F.PermuteVar16x32(table, q).Store(o + j);
            Avx512F.PermuteVar16x32(table, Avx512F.ShiftRightLogical(q, 4)).Store(o + half + j);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Block256(byte* d, int half, float scale, int zero, float* o)
    {
        var mask = Vector256.Create(0xF);
        var zeroPoint = Vector256.Create(zero);
        var s = Vector256.Create(scale);
        for (int j = 0; j < half; j += 8)
        {
            var q = Avx2.ConvertToVector256Int32(d + j);
            (Avx.ConvertToVector256Single((q & mask) - zeroPoint) * s).Store(o + j);
            (Avx.ConvertToVector256Single(Avx2.ShiftRightLogical(q, 4) - zeroPoint) * s).Store(o + half + j);
        }
    }

    private static void BlockScalar(byte* d, int half, float scale, int zero, float* o)
    {
        Span<float> table = stackalloc float[16];
        for (int i = 0; i < 16; i++) table[i] = (i - zero) * scale;
        for (int j = 0; j < half; j++)
        {
            o[j] = table[d[j] & 0xF];
            o[half + j] = table[d[j] >> 4];
        }
    }
}
