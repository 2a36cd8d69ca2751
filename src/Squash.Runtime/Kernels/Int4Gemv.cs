using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Squash.Runtime.Kernels;

/// <summary>The instruction sets the int4 kernels are written for (tests run every one the machine has).</summary>
internal enum Int4Isa
{
    /// <summary>Plain scalar loops.</summary>
    Scalar,
    /// <summary>Portable 128-bit vectors (SSE, NEON).</summary>
    Vector128,
    /// <summary>AVX2 with FMA.</summary>
    Avx2,
    /// <summary>AVX-512F.</summary>
    Avx512,
}

/// <summary>Raw views of the packed tensors of one int4 weight, valid while the caller keeps them pinned.</summary>
internal readonly unsafe struct Int4Pointers(Int4Layout layout, byte* data, Half* scales, byte* zeroPoints)
{
    public readonly Int4Layout Layout = layout;
    public readonly byte* Data = data;
    public readonly Half* Scales = scales;
    /// <summary>Null for symmetric weights (zero point 8 everywhere).</summary>
    public readonly byte* ZeroPoints = zeroPoints;

    /// <summary>Widens the scales (and zero points) of groups [g0, g0 + count) to float: index (g*blocks + b)*4 + c.</summary>
    public void WidenParameters(int g0, int count, Span<float> scales, Span<float> zeroPoints)
    {
        int per = Layout.Blocks * Int4Layout.ColumnGroup;
        int start = g0 * per, n = count * per;
        FloatConversions.ToSingle(new ReadOnlySpan<Half>(Scales + start, n), scales[..n]);
        if (ZeroPoints is null) return;
        byte* z = ZeroPoints + start / 2;
        for (int i = 0; i < n; i += 2)
        {
            zeroPoints[i] = z[i / 2] & 0xF;
            zeroPoints[i + 1] = z[i / 2] >> 4;
        }
    }
}

/// <summary>
/// One row times an int4 weight (<c>y[N] = x[K] W + bias</c>), the decode step of a language model. Memory-bound:
/// every weight byte is read once, dequantized in registers and never written back. Each group of four interleaved
/// columns is one sequential stream (hardware prefetchers follow it; short strided streams per column defeat them).
/// </summary>
/// <remarks>
/// AVX-512: the 16 possible weights of a (column, block), scale * (q - zero point), form a 16-float table and
/// <c>vpermps</c> looks the nibbles up (it reads the low 4 bits of each index, so the low nibble needs no mask),
/// replacing the int-to-float conversion and the scale multiply. AVX2 and Vector128 convert and scale per block.
/// Every product and sum is fp32; only the order of the sums differs from a dequantize-then-multiply reference.
/// </remarks>
internal static unsafe class Int4Gemv
{
    /// <summary>Column groups whose scales are widened at a time (bounded so the stack buffer stays small).</summary>
    private const int ParameterFloats = 4096;

    /// <summary>y[n] = x W[:, n] + bias[n] for the columns of groups [g0, g1) (only the N real columns are written);
    /// <paramref name="x"/> holds PaddedK values (zeros past K), <paramref name="bias"/> may be null.</summary>
    public static void Run(Int4Isa isa, in Int4Pointers w, float* x, float* bias, float* y, int g0, int g1) =>
        RunGroups(w, bias, y, g0, g1, new FloatGroups(isa, x, w.Layout));

    /// <summary>One group of four interleaved columns: writes their four dot products with the row to <c>sums</c>.</summary>
    internal interface IGroupKernel
    {
        /// <summary><paramref name="d"/>: the group's packed bytes; <paramref name="s"/>, <paramref name="z"/>: its widened
        /// scales and zero points (z null when symmetric), index b * 4 + c.</summary>
        void Group(byte* d, float* s, float* z, float* sums);

        /// <summary>Two consecutive groups at once (the second's bytes and parameters follow the first's), eight sums;
        /// false (nothing done) where the kernel has no two-group form for this layout.</summary>
        bool TwoGroups(byte* d, float* s, float* z, float* sums);
    }

    /// <summary>The loop both GEMVs share: widens the scales of a chunk of groups at a time (float16 to float, kept in
    /// L1), runs <paramref name="kernel"/> per group and writes the real columns with the bias.</summary>
    internal static void RunGroups<TKernel>(in Int4Pointers w, float* bias, float* y, int g0, int g1, TKernel kernel)
        where TKernel : struct, IGroupKernel
    {
        var layout = w.Layout;
        int per = layout.Blocks * Int4Layout.ColumnGroup;
        int chunk = Math.Max(1, ParameterFloats / per);
        int size = Math.Min(chunk, g1 - g0) * per;
        // One group's parameters exceed the stack budget only for K beyond 32K; those rent from the pool.
        float[]? rented = size > ParameterFloats ? System.Buffers.ArrayPool<float>.Shared.Rent(2 * size) : null;
        Span<float> scales = rented is null ? stackalloc float[size] : rented.AsSpan(0, size);
        Span<float> zeroPoints = w.ZeroPoints is null ? default : rented is null ? stackalloc float[size] : rented.AsSpan(size, size);
        Span<float> sums = stackalloc float[2 * Int4Layout.ColumnGroup];
        for (int c0 = g0; c0 < g1; c0 += chunk)
        {
            int count = Math.Min(chunk, g1 - c0);
            w.WidenParameters(c0, count, scales, zeroPoints);
            fixed (float* s = scales)
            fixed (float* z = zeroPoints)
            fixed (float* sum = sums)
            {
                for (int g = 0; g < count;)
                {
                    byte* d = w.Data + (long)(c0 + g) * per * layout.BlockBytes;
                    float* zg = z is null ? null : z + g * per;
                    // Two groups at a time where the kernel can: two sequential streams keep more of memory's
                    // bandwidth busy than one (docs/performance.md, "Decode with int4 weights").
                    int done = g + 1 < count && kernel.TwoGroups(d, s + g * per, zg, sum) ? 2 : 1;
                    if (done == 1) kernel.Group(d, s + g * per, zg, sum);
                    int n0 = (c0 + g) * Int4Layout.ColumnGroup;
                    int real = Math.Min(done * Int4Layout.ColumnGroup, layout.N - n0);
                    for (int c = 0; c < real; c++) y[n0 + c] = sum[c] + (bias is null ? 0f : bias[n0 + c]);
                    g += done;
                }
            }
        }
        if (rented is not null) System.Buffers.ArrayPool<float>.Shared.Return(rented);
    }

    private readonly struct FloatGroups(Int4Isa isa, float* x, Int4Layout layout) : IGroupKernel
    {
        // Inlined into the group loop, which is compiled optimized at its first call: called once per group of four
        // columns (80,000 times per decode step), this method otherwise ran unoptimized code for the first second or two.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Group(byte* d, float* s, float* z, float* sums)
        {
            switch (isa)
            {
                case Int4Isa.Avx512: Group512(d, s, z, x, layout.Blocks, layout.BlockSize, sums); break;
                case Int4Isa.Avx2: Group256(d, s, z, x, layout.Blocks, layout.BlockSize, sums); break;
                case Int4Isa.Vector128: Group128(d, s, z, x, layout.Blocks, layout.BlockSize, sums); break;
                default: GroupScalar(d, s, z, x, layout.Blocks, layout.BlockSize, sums); break;
            }
        }

        // The fp32 GEMV is bound by its table lookups, not by memory: one stream is enough.
        public bool TwoGroups(byte* d, float* s, float* z, float* sums) => false;
    }

    /// <summary>The best instruction set this machine runs.</summary>
    public static Int4Isa Best =>
        Avx512F.IsSupported ? Int4Isa.Avx512
        : Avx2.IsSupported && Fma.IsSupported ? Int4Isa.Avx2
        : Vector128.IsHardwareAccelerated ? Int4Isa.Vector128
        : Int4Isa.Scalar;

    /// <summary>True when <paramref name="isa"/> runs on this machine.</summary>
    public static bool IsSupported(Int4Isa isa) => isa switch
    {
        Int4Isa.Avx512 => Avx512F.IsSupported,
        Int4Isa.Avx2 => Avx2.IsSupported && Fma.IsSupported,
        Int4Isa.Vector128 => Vector128.IsHardwareAccelerated,
        _ => true,
    };

    /// <summary>How a block's 16-entry weight table is formed: zero point 8 everywhere, or one per block.</summary>
    private interface IZeroPoints
    {
        /// <summary>scale * (i - zero point) for i = 0..15; <paramref name="codes"/> is 0..15, or 0..15 - 8 when symmetric.</summary>
        static abstract Vector512<float> Table(Vector512<float> codes, float* s, float* z, int c);
    }

    private readonly struct Symmetric : IZeroPoints
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Table(Vector512<float> codes, float* s, float* z, int c) => codes * Vector512.Create(s[c]);
    }

    private readonly struct Asymmetric : IZeroPoints
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Table(Vector512<float> codes, float* s, float* z, int c) =>
            (codes - Vector512.Create(z[c])) * Vector512.Create(s[c]);
    }

    private static void Group512(byte* d, float* s, float* z, float* x, int blocks, int blockSize, float* sums)
    {
        if (z is null) Group512<Symmetric>(d, s, null, x, blocks, blockSize, sums);
        else Group512<Asymmetric>(d, s, z, x, blocks, blockSize, sums);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Group512<TZero>(byte* d, float* s, float* z, float* x, int blocks, int blockSize, float* sums)
        where TZero : struct, IZeroPoints
    {
        int half = blockSize / 2;
        // (i - zp) is an exact small integer, so each table entry is the dequantized weight rounded once, as a
        // dequantize-then-multiply reference computes it.
        var codes = Vector512.Create(0f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        if (typeof(TZero) == typeof(Symmetric)) codes -= Vector512.Create((float)Int4Layout.SymmetricZeroPoint);
        var t0 = Vector512<float>.Zero;
        var t1 = Vector512<float>.Zero;
        var t2 = Vector512<float>.Zero;
        var t3 = Vector512<float>.Zero;
        for (int b = 0; b < blocks; b++)
        {
            var tab0 = TZero.Table(codes, s, z, 0);
            var tab1 = TZero.Table(codes, s, z, 1);
            var tab2 = TZero.Table(codes, s, z, 2);
            var tab3 = TZero.Table(codes, s, z, 3);
            float* xb = x + b * blockSize;
            for (int j = 0; j < half; j += 16)
            {
                // Byte j of a block holds element j (low nibble) and element j + half (high nibble).
                var xl = Vector512.Load(xb + j);
                var xh = Vector512.Load(xb + half + j);
                var q = Avx512F.ConvertToVector512Int32(Vector128.Load(d + j));
                t0 = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(tab0, q), xl, t0);
                t0 = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(tab0, Avx512F.ShiftRightLogical(q, 4)), xh, t0);
                q = Avx512F.ConvertToVector512Int32(Vector128.Load(d + half + j));
                t1 = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(tab1, q), xl, t1);
                t1 = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(tab1, Avx512F.ShiftRightLogical(q, 4)), xh, t1);
                q = Avx512F.ConvertToVector512Int32(Vector128.Load(d + 2 * half + j));
                t2 = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(tab2, q), xl, t2);
                t2 = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(tab2, Avx512F.ShiftRightLogical(q, 4)), xh, t2);
                q = Avx512F.ConvertToVector512Int32(Vector128.Load(d + 3 * half + j));
                t3 = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(tab3, q), xl, t3);
                t3 = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(tab3, Avx512F.ShiftRightLogical(q, 4)), xh, t3);
            }
            d += 4 * half;
            s += 4;
            if (typeof(TZero) == typeof(Asymmetric)) z += 4;
        }
        sums[0] = Vector512.Sum(t0);
        sums[1] = Vector512.Sum(t1);
        sums[2] = Vector512.Sum(t2);
        sums[3] = Vector512.Sum(t3);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Group256(byte* d, float* s, float* z, float* x, int blocks, int blockSize, float* sums)
    {
        int half = blockSize / 2;
        var mask = Vector256.Create(0xF);
        var t0 = Vector256<float>.Zero;
        var t1 = Vector256<float>.Zero;
        var t2 = Vector256<float>.Zero;
        var t3 = Vector256<float>.Zero;
        for (int b = 0; b < blocks; b++)
        {
            // Each block sums (q - zp) * x, then scales once: exact integers times x, then one multiply by the scale.
            var z0 = Vector256.Create(z is null ? Int4Layout.SymmetricZeroPoint : (int)z[0]);
            var z1 = Vector256.Create(z is null ? Int4Layout.SymmetricZeroPoint : (int)z[1]);
            var z2 = Vector256.Create(z is null ? Int4Layout.SymmetricZeroPoint : (int)z[2]);
            var z3 = Vector256.Create(z is null ? Int4Layout.SymmetricZeroPoint : (int)z[3]);
            var a0 = Vector256<float>.Zero;
            var a1 = Vector256<float>.Zero;
            var a2 = Vector256<float>.Zero;
            var a3 = Vector256<float>.Zero;
            float* xb = x + b * blockSize;
            for (int j = 0; j < half; j += 8)
            {
                var xl = Vector256.Load(xb + j);
                var xh = Vector256.Load(xb + half + j);
                a0 = Step256(d + j, z0, mask, xl, xh, a0);
                a1 = Step256(d + half + j, z1, mask, xl, xh, a1);
                a2 = Step256(d + 2 * half + j, z2, mask, xl, xh, a2);
                a3 = Step256(d + 3 * half + j, z3, mask, xl, xh, a3);
            }
            t0 = Fma.MultiplyAdd(a0, Vector256.Create(s[0]), t0);
            t1 = Fma.MultiplyAdd(a1, Vector256.Create(s[1]), t1);
            t2 = Fma.MultiplyAdd(a2, Vector256.Create(s[2]), t2);
            t3 = Fma.MultiplyAdd(a3, Vector256.Create(s[3]), t3);
            d += 4 * half;
            s += 4;
            if (z is not null) z += 4;
        }
        sums[0] = Vector256.Sum(t0);
        sums[1] = Vector256.Sum(t1);
        sums[2] = Vector256.Sum(t2);
        sums[3] = Vector256.Sum(t3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Step256(byte* d, Vector256<int> zero, Vector256<int> mask, Vector256<float> xl, Vector256<float> xh, Vector256<float> acc)
    {
        var q = Avx2.ConvertToVector256Int32(d);
        var low = Avx.ConvertToVector256Single((q & mask) - zero);
        var high = Avx.ConvertToVector256Single(Avx2.ShiftRightLogical(q, 4) - zero);
        acc = Fma.MultiplyAdd(low, xl, acc);
        return Fma.MultiplyAdd(high, xh, acc);
    }

    private static void Group128(byte* d, float* s, float* z, float* x, int blocks, int blockSize, float* sums)
    {
        int half = blockSize / 2;
        for (int c = 0; c < Int4Layout.ColumnGroup; c++)
        {
            byte* dc = d + c * half;
            var total = Vector128<float>.Zero;
            for (int b = 0; b < blocks; b++, dc += 4 * half)
            {
                int at = b * Int4Layout.ColumnGroup + c;
                var zero = Vector128.Create(z is null ? (float)Int4Layout.SymmetricZeroPoint : z[at]);
                var acc = Vector128<float>.Zero;
                float* xb = x + b * blockSize;
                for (int j = 0; j < half; j += 16)
                {
                    var v = Vector128.Load(dc + j);
                    acc = Nibbles128(v & Vector128.Create((byte)0xF), xb + j, zero, acc);
                    acc = Nibbles128(Vector128.ShiftRightLogical(v, 4), xb + half + j, zero, acc);
                }
                total = Vector128.MultiplyAddEstimate(acc, Vector128.Create(s[at]), total);
            }
            sums[c] = Vector128.Sum(total);
        }
    }

    /// <summary>acc + sum of (q - zero) * x over 16 codes (one per byte) and 16 values of x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Nibbles128(Vector128<byte> codes, float* x, Vector128<float> zero, Vector128<float> acc)
    {
        var (lo, hi) = Vector128.Widen(codes);
        var (q0, q1) = Vector128.Widen(lo);
        var (q2, q3) = Vector128.Widen(hi);
        acc = Vector128.MultiplyAddEstimate(Vector128.ConvertToSingle(q0.AsInt32()) - zero, Vector128.Load(x), acc);
        acc = Vector128.MultiplyAddEstimate(Vector128.ConvertToSingle(q1.AsInt32()) - zero, Vector128.Load(x + 4), acc);
        acc = Vector128.MultiplyAddEstimate(Vector128.ConvertToSingle(q2.AsInt32()) - zero, Vector128.Load(x + 8), acc);
        return Vector128.MultiplyAddEstimate(Vector128.ConvertToSingle(q3.AsInt32()) - zero, Vector128.Load(x + 12), acc);
    }

    private static void GroupScalar(byte* d, float* s, float* z, float* x, int blocks, int blockSize, float* sums)
    {
        int half = blockSize / 2;
        for (int c = 0; c < Int4Layout.ColumnGroup; c++)
        {
            float total = 0;
            for (int b = 0; b < blocks; b++)
            {
                int at = b * Int4Layout.ColumnGroup + c;
                float zero = z is null ? Int4Layout.SymmetricZeroPoint : z[at];
                byte* dc = d + (long)at * half;
                float* xb = x + b * blockSize;
                float acc = 0;
                for (int j = 0; j < half; j++)
                {
                    acc += ((dc[j] & 0xF) - zero) * xb[j];
                    acc += ((dc[j] >> 4) - zero) * xb[half + j];
                }
                total += acc * s[at];
            }
            sums[c] = total;
        }
    }
}
