using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Squash.Runtime.Kernels;

/// <summary>
/// One row of activations quantized to int8 for <see cref="Int4Int8Gemv"/>: per block of the weight's block size,
/// symmetric, scale = max|x| / 127, codes x * (127 / max|x|) rounded half to even (ONNX Runtime's MatMulNBits accuracy_level 4 and
/// llama.cpp's Q8_0 quantize the same way), with each block's sum of codes for the zero-point correction.
/// </summary>
internal readonly unsafe struct Int8ActivationRow(sbyte* values, float* scales, int* sums)
{
    /// <summary>PaddedK codes; zeros past K.</summary>
    public readonly sbyte* Values = values;

    /// <summary>One scale per block; NaN where the block holds a NaN or an infinity, so that the outputs it feeds are NaN.</summary>
    public readonly float* Scales = scales;

    /// <summary>Sum of each block's codes.</summary>
    public readonly int* Sums = sums;

    /// <summary>Bytes of scratch a row of <paramref name="layout"/> needs: codes, then scales and sums (4-byte aligned).</summary>
    public static int ScratchBytes(Int4Layout layout) => layout.PaddedK + 8 * layout.Blocks;

    /// <summary>Quantizes K values of <paramref name="x"/> into <paramref name="scratch"/> (<see cref="ScratchBytes"/> bytes).</summary>
    /// <remarks>Its own vector loops rather than TensorPrimitives: called per block of 32 values, TensorPrimitives' entry
    /// points (no loops of their own) ran unoptimized for the first second of a process and cost more than the GEMV.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static Int8ActivationRow Quantize(Int4Layout layout, float* x, byte* scratch)
    {
        int bs = layout.BlockSize;
        var row = new Int8ActivationRow((sbyte*)scratch, (float*)(scratch + layout.PaddedK), (int*)(scratch + layout.PaddedK + 4 * layout.Blocks));
        for (int b = 0; b < layout.Blocks; b++)
        {
            int start = b * bs, count = Math.Min(bs, layout.K - start);
            float* xb = x + start;
            sbyte* q = row.Values + start;
            var (amax, finite) = MaxMagnitude(xb, count);
            if (!finite)
            {
                // A NaN or infinity poisons the block's outputs, as fp32 would.
                new Span<sbyte>(q, bs).Clear();
                row.Scales[b] = float.NaN;
                row.Sums[b] = 0;
                continue;
            }
            // 127 / max, not 1 / scale: ONNX Runtime's formula, so that both round every value to the same code.
            float scale = amax / 127f, inverse = amax == 0 ? 0 : 127f / amax;
            int sum = 0, i = 0;
            if (Vector256.IsHardwareAccelerated)
            {
                var factor = Vector256.Create(inverse);
                var limit = Vector256.Create(127f);
                var sums = Vector256<int>.Zero;
                for (; i + 8 <= count; i += 8)
                {
                    // Round half to even, then clamp (|x * inverse| can exceed 127 by one rounding of the product).
                    var v = Vector256.ConvertToInt32(Vector256.Min(Vector256.Max(Vector256.Round(Vector256.Load(xb + i) * factor), -limit), limit));
                    sums += v;
                    for (int l = 0; l < 8; l++) q[i + l] = (sbyte)v.GetElement(l);
                }
                sum = Vector256.Sum(sums);
            }
            for (; i < count; i++)
            {
                int v = Math.Clamp((int)MathF.Round(xb[i] * inverse, MidpointRounding.ToEven), -127, 127);
                q[i] = (sbyte)v;
                sum += v;
            }
            new Span<sbyte>(q + count, bs - count).Clear();
            row.Scales[b] = scale;
            row.Sums[b] = sum;
        }
        return row;
    }

    /// <summary>max |x| over <paramref name="count"/> values, and whether every value is finite.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (float Max, bool Finite) MaxMagnitude(float* x, int count)
    {
        float max = 0;
        bool finite = true;
        int i = 0;
        if (Vector256.IsHardwareAccelerated && count >= 8)
        {
            var m = Vector256<float>.Zero;
            var ok = Vector256<float>.AllBitsSet;
            var infinity = Vector256.Create(float.PositiveInfinity);
            for (; i + 8 <= count; i += 8)
            {
                var a = Vector256.Abs(Vector256.Load(x + i));
                m = Vector256.Max(m, a);
                ok &= Vector256.LessThan(a, infinity); // false for NaN and infinity
            }
            finite = ok.AsInt32() == Vector256<int>.AllBitsSet; // compared as integers: all-ones is a NaN as a float
            for (int l = 0; l < 8; l++) max = MathF.Max(max, m.GetElement(l));
        }
        for (; i < count; i++)
        {
            float a = MathF.Abs(x[i]);
            finite &= a < float.PositiveInfinity;
            max = MathF.Max(max, a);
        }
        return (max, finite);
    }
}

/// <summary>
/// One row times an int4 weight with the row quantized to int8 (<see cref="Int8ActivationRow"/>): integer dot products
/// per (column, block), scaled once per block. The fp32 GEMV (<see cref="Int4Gemv"/>) spends about 8 instructions per
/// 32 weights of a column looking up and multiplying floats; here 64 bytes (one block of four columns) take one load,
/// two masks, a shift, two <c>vpmaddubsw</c> (u8 codes times s8 activations), one <c>vpmaddwd</c>, and the block's
/// scaling, so the kernel runs at the speed memory delivers the weights. Same weights, same layout: ONNX Runtime's
/// MatMulNBits with accuracy_level 4 computes the same way.
/// </summary>
/// <remarks>
/// Exactness: each (column, block) sum of codes times activation codes is exact in int32 (|sum| &lt;= 256 * 15 * 127);
/// <c>vpmaddubsw</c> cannot saturate (two products of at most 15 * 127, and the low and high nibble sums together at
/// most 7,620). The zero point enters as sum((q - z) x) = sum(q x) - z sum(x): for symmetric blocks (z = 8) the
/// correction is subtracted in int32 (8 sum(x) from a (column, block) total when blocks of 32 are reduced four at a
/// time, 2 sum(x) from each of a column's four lanes otherwise); asymmetric ones subtract z sum(x) (or z sum(x) / 4 per
/// lane) in fp32, exact because both are small integers (over 4). Only the fp32 scaling and the order of
/// the final sums differ between instruction sets.
/// </remarks>
internal static unsafe class Int4Int8Gemv
{
    /// <summary>Bytes ahead of the current block that the AVX-512 and AVX2 loops prefetch (16 blocks of 32 of four columns).</summary>
    private const int PrefetchDistance = 4096;

    /// <summary>y[n] = x W[:, n] + bias[n] for the columns of groups [g0, g1), x given quantized.</summary>
    public static void Run(Int4Isa isa, in Int4Pointers w, in Int8ActivationRow x, float* bias, float* y, int g0, int g1) =>
        Int4Gemv.RunGroups(w, bias, y, g0, g1, new Int8Groups(isa, x, w.Layout));

    private readonly struct Int8Groups(Int4Isa isa, Int8ActivationRow x, Int4Layout layout) : Int4Gemv.IGroupKernel
    {
        // Inlined into the group loop, which is compiled optimized at its first call: called once per group of four
        // columns (80,000 times per decode step), this method otherwise ran unoptimized code for the first second or two.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Group(byte* d, float* s, float* z, float* sums)
        {
            switch (isa)
            {
                case Int4Isa.Avx512:
                    if (z is null) Group512<Symmetric>(d, s, null, x, layout.Blocks, layout.BlockBytes, sums);
                    else Group512<Asymmetric>(d, s, z, x, layout.Blocks, layout.BlockBytes, sums);
                    break;
                case Int4Isa.Avx2:
                    if (z is null) Group256<Symmetric>(d, s, null, x, layout.Blocks, layout.BlockBytes, sums);
                    else Group256<Asymmetric>(d, s, z, x, layout.Blocks, layout.BlockBytes, sums);
                    break;
                case Int4Isa.Vector128: Group128(d, s, z, x, layout.Blocks, layout.BlockBytes, sums); break;
                default: GroupScalar(d, s, z, x, layout.Blocks, layout.BlockBytes, sums); break;
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public bool TwoGroups(byte* d, float* s, float* z, float* sums)
        {
            // AVX-512 with blocks of 32 in whole fours (every K that is a multiple of 128), the decode-size matrices.
            if (isa != Int4Isa.Avx512 || layout.BlockBytes != 16 || layout.Blocks % 4 != 0) return false;
            if (z is null) TwoGroups512<Symmetric>(d, s, null, x, layout.Blocks, sums);
            else TwoGroups512<Asymmetric>(d, s, z, x, layout.Blocks, sums);
            return true;
        }
    }

    /// <summary>Marks symmetric weights (zero point 8, corrected in int32) or asymmetric ones (a zero point per block).</summary>
    private interface IZeroPointKind;

    private readonly struct Symmetric : IZeroPointKind;

    private readonly struct Asymmetric : IZeroPointKind;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Group512<TZero>(byte* d, float* s, float* z, Int8ActivationRow x, int blocks, int half, float* sums)
        where TZero : struct, IZeroPointKind
    {
        var mask = Vector512.Create((byte)0xF);
        var ones = Vector512.Create((short)1);
        // Lanes 4c..4c+3 hold column c's partial sums; this index spreads a block's four per-column values over them.
        var spread = Vector512.Create(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
        var acc = Vector512<float>.Zero;
        int b = 0;
        if (half == 16)
        {
            // Blocks of 32, four at a time: the four blocks' lane sums are reduced together, so that one conversion and
            // one multiply-add scale 16 (column, block) sums instead of four per block (about a quarter fewer instructions).
            var transpose = Vector512.Create(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
            for (; b + 4 <= blocks; b += 4, d += 256)
            {
                sbyte* xb = x.Values + b * 32;
                // The stream is sequential, but the hardware prefetcher alone leaves it short of memory's rate (median
                // 14.0 -> 16 GB/s from memory with these four, docs/performance.md).
                for (int line = 0; line < 256; line += 64) Sse.Prefetch0(d + PrefetchDistance + line);
                var q = Reduce4(Dot512(d, xb, mask, ones), Dot512(d + 64, xb + 32, mask, ones),
                    Dot512(d + 128, xb + 64, mask, ones), Dot512(d + 192, xb + 96, mask, ones));
                acc = ScaleFourBlocks<TZero>(q, x, b, s + 4 * b, z + 4 * b, transpose, acc);
            }
        }
        for (; b < blocks; b++)
        {
            sbyte* xb = x.Values + b * 2 * half;
            var dot = Vector512<int>.Zero;
            for (int j = 0; j < half; j += 16)
            {
                // Byte j of a column's block holds element j (low nibble) and element j + half (high nibble).
                var v = half == 16 ? Vector512.Load(d)
                    : Vector512.Create(Vector256.Create(Vector128.Load(d + j), Vector128.Load(d + half + j)),
                        Vector256.Create(Vector128.Load(d + 2 * half + j), Vector128.Load(d + 3 * half + j)));
                var low = v & mask;
                var high = Avx512BW.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & mask;
                var xl = Avx512F.BroadcastVector128ToVector512((int*)(xb + j)).AsSByte();
                var xh = Avx512F.BroadcastVector128ToVector512((int*)(xb + half + j)).AsSByte();
                var pairs = Avx512BW.MultiplyAddAdjacent(low, xl) + Avx512BW.MultiplyAddAdjacent(high, xh);
                dot += Avx512BW.MultiplyAddAdjacent(pairs, ones);
            }
            d += 4 * half;
            Vector512<float> f;
            if (typeof(TZero) == typeof(Symmetric))
            {
                f = Avx512F.ConvertToVector512Single(dot - Vector512.Create(2 * x.Sums[b]));
            }
            else
            {
                var zeros = Avx512F.PermuteVar16x32(Avx512F.BroadcastVector128ToVector512(z + 4 * b), spread);
                f = Avx512F.FusedMultiplyAddNegated(zeros, Vector512.Create(0.25f * x.Sums[b]), Avx512F.ConvertToVector512Single(dot));
            }
            var scale = Avx512F.PermuteVar16x32(Avx512F.BroadcastVector128ToVector512(s + 4 * b), spread) * Vector512.Create(x.Scales[b]);
            acc = Avx512F.FusedMultiplyAdd(f, scale, acc);
        }
        StoreColumnSums(acc, sums);
    }

    /// <summary>
    /// <see cref="Group512{TZero}"/>'s blocks-of-32 loop over two consecutive groups at once (eight columns, sums 0-7):
    /// two sequential streams, and each block's activation codes loaded once for both. The streams are 4 KB apart (K =
    /// 2048) and jump when the pair is done, which the hardware prefetcher does not follow: each prefetches its lines of
    /// the next pair into L2 (into L1 they evicted the lines in use). From memory: median 16.5-17.2 GB/s against 14.4-15.2
    /// for one group at a time (docs/performance.md, "Two groups at a time").
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TwoGroups512<TZero>(byte* d, float* s, float* z, Int8ActivationRow x, int blocks, float* sums)
        where TZero : struct, IZeroPointKind
    {
        var mask = Vector512.Create((byte)0xF);
        var ones = Vector512.Create((short)1);
        var transpose = Vector512.Create(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        var acc0 = Vector512<float>.Zero;
        var acc1 = Vector512<float>.Zero;
        // The second group's bytes and parameters follow the first's.
        long next = (long)blocks * 4 * 16;
        int parameters = blocks * 4;
        for (int b = 0; b < blocks; b += 4, d += 256)
        {
            sbyte* xb = x.Values + b * 32;
            for (int line = 0; line < 256; line += 64)
            {
                Sse.Prefetch1(d + 2 * next + line);
                Sse.Prefetch1(d + 3 * next + line);
            }
            Dot512Pair(d, next, xb, mask, ones, out var p0, out var r0);
            Dot512Pair(d + 64, next, xb + 32, mask, ones, out var p1, out var r1);
            Dot512Pair(d + 128, next, xb + 64, mask, ones, out var p2, out var r2);
            Dot512Pair(d + 192, next, xb + 96, mask, ones, out var p3, out var r3);
            acc0 = ScaleFourBlocks<TZero>(Reduce4(p0, p1, p2, p3), x, b, s + 4 * b, z + 4 * b, transpose, acc0);
            acc1 = ScaleFourBlocks<TZero>(Reduce4(r0, r1, r2, r3), x, b, s + parameters + 4 * b, z + parameters + 4 * b, transpose, acc1);
        }
        StoreColumnSums(acc0, sums);
        StoreColumnSums(acc1, sums + 4);
    }

    /// <summary>
    /// acc + the four blocks' sums scaled: <paramref name="q"/> lane 4c + j holds column c's integer sum over block
    /// b + j; the zero-point correction comes off and weight scale times activation scale multiplies. The parameters at
    /// <paramref name="s"/> and <paramref name="z"/> (z unused when symmetric), stored [block][column], are transposed
    /// to match.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> ScaleFourBlocks<TZero>(Vector512<int> q, in Int8ActivationRow x, int b, float* s, float* z, Vector512<int> transpose, Vector512<float> acc)
        where TZero : struct, IZeroPointKind
    {
        var blockSums = Avx512F.BroadcastVector128ToVector512(x.Sums + b);
        var f = typeof(TZero) == typeof(Symmetric)
            ? Avx512F.ConvertToVector512Single(q - Avx512F.ShiftLeftLogical(blockSums, 3))
            : Avx512F.FusedMultiplyAddNegated(Avx512F.PermuteVar16x32(Vector512.Load(z), transpose), Avx512F.ConvertToVector512Single(blockSums), Avx512F.ConvertToVector512Single(q));
        var scale = Avx512F.PermuteVar16x32(Vector512.Load(s), transpose) * Avx512F.BroadcastVector128ToVector512(x.Scales + b);
        return Avx512F.FusedMultiplyAdd(f, scale, acc);
    }

    /// <summary>One block of 32 of four columns in each of two groups (64 bytes at <paramref name="d"/> and at
    /// <paramref name="d"/> + <paramref name="next"/>) times the same 32 activation codes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Dot512Pair(byte* d, long next, sbyte* x, Vector512<byte> mask, Vector512<short> ones, out Vector512<int> first, out Vector512<int> second)
    {
        var xl = Avx512F.BroadcastVector128ToVector512((int*)x).AsSByte();
        var xh = Avx512F.BroadcastVector128ToVector512((int*)(x + 16)).AsSByte();
        first = Dot512(Vector512.Load(d), xl, xh, mask, ones);
        second = Dot512(Vector512.Load(d + next), xl, xh, mask, ones);
    }

    /// <summary>Lanes 4c..4c+3 summed into column c's total.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreColumnSums(Vector512<float> acc, float* sums)
    {
        var lower = acc.GetLower();
        var upper = acc.GetUpper();
        sums[0] = Vector128.Sum(lower.GetLower());
        sums[1] = Vector128.Sum(lower.GetUpper());
        sums[2] = Vector128.Sum(upper.GetLower());
        sums[3] = Vector128.Sum(upper.GetUpper());
    }

    /// <summary>One block of 32 of four columns (64 bytes at <paramref name="d"/>) times 32 activation codes: four int32
    /// partial sums per column.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Dot512(byte* d, sbyte* x, Vector512<byte> mask, Vector512<short> ones) =>
        Dot512(Vector512.Load(d), Avx512F.BroadcastVector128ToVector512((int*)x).AsSByte(),
            Avx512F.BroadcastVector128ToVector512((int*)(x + 16)).AsSByte(), mask, ones);

    /// <summary>64 bytes of codes <paramref name="v"/> (four columns' blocks of 32) times the block's low-half and
    /// high-half activation codes, each broadcast to the four columns.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Dot512(Vector512<byte> v, Vector512<sbyte> xl, Vector512<sbyte> xh, Vector512<byte> mask, Vector512<short> ones)
    {
        var low = v & mask;
        var high = Avx512BW.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & mask;
        return Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(low, xl) + Avx512BW.MultiplyAddAdjacent(high, xh), ones);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Group256<TZero>(byte* d, float* s, float* z, Int8ActivationRow x, int blocks, int half, float* sums)
        where TZero : struct, IZeroPointKind
    {
        var mask = Vector256.Create((byte)0xF);
        var ones = Vector256.Create((short)1);
        var spread01 = Vector256.Create(0, 0, 0, 0, 1, 1, 1, 1);
        var spread23 = Vector256.Create(2, 2, 2, 2, 3, 3, 3, 3);
        var acc01 = Vector256<float>.Zero;
        var acc23 = Vector256<float>.Zero;
        int b = 0;
        if (half == 16)
        {
            // Blocks of 32 four at a time, as Group512: columns 0-1 and 2-3 each reduced to lanes 4c + j (block b + j).
            // The parameters, stored [block][column], are gathered to match: lanes of blocks 0-1 from the first eight
            // floats, of blocks 2-3 from the next eight.
            var gather01 = Vector256.Create(0, 4, 0, 4, 1, 5, 1, 5);
            var gather23 = Vector256.Create(2, 6, 2, 6, 3, 7, 3, 7);
            for (; b + 4 <= blocks; b += 4, d += 256)
            {
                for (int line = 0; line < 256; line += 64) Sse.Prefetch0(d + PrefetchDistance + line);
                sbyte* xb = x.Values + b * 32;
                var q01 = Reduce4(Dot32(d, xb, 0, mask, ones), Dot32(d + 64, xb + 32, 0, mask, ones),
                    Dot32(d + 128, xb + 64, 0, mask, ones), Dot32(d + 192, xb + 96, 0, mask, ones));
                var q23 = Reduce4(Dot32(d, xb, 32, mask, ones), Dot32(d + 64, xb + 32, 32, mask, ones),
                    Dot32(d + 128, xb + 64, 32, mask, ones), Dot32(d + 192, xb + 96, 32, mask, ones));
                var blockSums = Avx2.BroadcastVector128ToVector256(x.Sums + b);
                Vector256<float> f01, f23;
                if (typeof(TZero) == typeof(Symmetric))
                {
                    var correction = Avx2.ShiftLeftLogical(blockSums, 3);
                    f01 = Avx.ConvertToVector256Single(q01 - correction);
                    f23 = Avx.ConvertToVector256Single(q23 - correction);
                }
                else
                {
                    var sumsF = Avx.ConvertToVector256Single(blockSums);
                    f01 = Fma.MultiplyAddNegated(Gather(z + 4 * b, gather01), sumsF, Avx.ConvertToVector256Single(q01));
                    f23 = Fma.MultiplyAddNegated(Gather(z + 4 * b, gather23), sumsF, Avx.ConvertToVector256Single(q23));
                }
                var xs = Avx.BroadcastVector128ToVector256(x.Scales + b);
                acc01 = Fma.MultiplyAdd(f01, Gather(s + 4 * b, gather01) * xs, acc01);
                acc23 = Fma.MultiplyAdd(f23, Gather(s + 4 * b, gather23) * xs, acc23);
            }
        }
        for (; b < blocks; b++)
        {
            sbyte* xb = x.Values + b * 2 * half;
            var dot01 = Vector256<int>.Zero;
            var dot23 = Vector256<int>.Zero;
            for (int line = 0; line < 4 * half; line += 64) Sse.Prefetch0(d + PrefetchDistance + line);
            for (int j = 0; j < half; j += 16)
            {
                var xl = Avx2.BroadcastVector128ToVector256(xb + j);
                var xh = Avx2.BroadcastVector128ToVector256(xb + half + j);
                var v01 = Vector256.Create(Vector128.Load(d + j), Vector128.Load(d + half + j));
                var v23 = Vector256.Create(Vector128.Load(d + 2 * half + j), Vector128.Load(d + 3 * half + j));
                dot01 += Dot256(v01, xl, xh, mask, ones);
                dot23 += Dot256(v23, xl, xh, mask, ones);
            }
            d += 4 * half;
            Vector256<float> f01, f23;
            if (typeof(TZero) == typeof(Symmetric))
            {
                var correction = Vector256.Create(2 * x.Sums[b]);
                f01 = Avx.ConvertToVector256Single(dot01 - correction);
                f23 = Avx.ConvertToVector256Single(dot23 - correction);
            }
            else
            {
                var zb = Vector128.Load(z + 4 * b).ToVector256Unsafe();
                var quarter = Vector256.Create(0.25f * x.Sums[b]);
                f01 = Fma.MultiplyAddNegated(Avx2.PermuteVar8x32(zb, spread01), quarter, Avx.ConvertToVector256Single(dot01));
                f23 = Fma.MultiplyAddNegated(Avx2.PermuteVar8x32(zb, spread23), quarter, Avx.ConvertToVector256Single(dot23));
            }
            var sb = Vector128.Load(s + 4 * b).ToVector256Unsafe();
            var xs = Vector256.Create(x.Scales[b]);
            acc01 = Fma.MultiplyAdd(f01, Avx2.PermuteVar8x32(sb, spread01) * xs, acc01);
            acc23 = Fma.MultiplyAdd(f23, Avx2.PermuteVar8x32(sb, spread23) * xs, acc23);
        }
        sums[0] = Vector128.Sum(acc01.GetLower());
        sums[1] = Vector128.Sum(acc01.GetUpper());
        sums[2] = Vector128.Sum(acc23.GetLower());
        sums[3] = Vector128.Sum(acc23.GetUpper());
    }

    /// <summary>Four blocks' partial sums (four lanes per column) to one total per lane 4c + j (column c, block j).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Reduce4(Vector512<int> v0, Vector512<int> v1, Vector512<int> v2, Vector512<int> v3)
    {
        var p01 = Avx512F.UnpackLow(v0, v1) + Avx512F.UnpackHigh(v0, v1);
        var p23 = Avx512F.UnpackLow(v2, v3) + Avx512F.UnpackHigh(v2, v3);
        // Added as int32: a 64-bit add would carry between the lanes.
        return Avx512F.UnpackLow(p01.AsInt64(), p23.AsInt64()).AsInt32() + Avx512F.UnpackHigh(p01.AsInt64(), p23.AsInt64()).AsInt32();
    }

    /// <summary>One block of 32 of two columns (the 32 bytes at <paramref name="d"/> + <paramref name="column"/>) times 32
    /// activation codes: four int32 partial sums per column.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Dot32(byte* d, sbyte* x, int column, Vector256<byte> mask, Vector256<short> ones) =>
        Dot256(Vector256.Load(d + column), Avx2.BroadcastVector128ToVector256(x), Avx2.BroadcastVector128ToVector256(x + 16), mask, ones);

    /// <summary>Four blocks' partial sums (four lanes per column) to one total per lane 4c + j (column c, block j).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Reduce4(Vector256<int> v0, Vector256<int> v1, Vector256<int> v2, Vector256<int> v3)
    {
        var p01 = Avx2.UnpackLow(v0, v1) + Avx2.UnpackHigh(v0, v1);
        var p23 = Avx2.UnpackLow(v2, v3) + Avx2.UnpackHigh(v2, v3);
        // Added as int32: a 64-bit add would carry between the lanes.
        return Avx2.UnpackLow(p01.AsInt64(), p23.AsInt64()).AsInt32() + Avx2.UnpackHigh(p01.AsInt64(), p23.AsInt64()).AsInt32();
    }

    /// <summary>Lanes 4c + j of 16 parameters stored [block j][column]: blocks 0-1 from the first eight, 2-3 from the next.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Gather(float* p, Vector256<int> index) =>
        Avx.Blend(Avx2.PermuteVar8x32(Vector256.Load(p), index), Avx2.PermuteVar8x32(Vector256.Load(p + 8), index), 0b1100_1100);

    /// <summary>Sums of code times activation for two columns' 16 bytes each (32 elements per column), four int32 lanes per column.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Dot256(Vector256<byte> v, Vector256<sbyte> xl, Vector256<sbyte> xh, Vector256<byte> mask, Vector256<short> ones)
    {
        var low = v & mask;
        var high = Avx2.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & mask;
        var pairs = Avx2.MultiplyAddAdjacent(low, xl) + Avx2.MultiplyAddAdjacent(high, xh);
        return Avx2.MultiplyAddAdjacent(pairs, ones);
    }

    /// <summary>Portable 128-bit vectors (SSE, NEON): 16-bit products, widened and summed exactly in int32.</summary>
    private static void Group128(byte* d, float* s, float* z, Int8ActivationRow x, int blocks, int half, float* sums)
    {
        for (int c = 0; c < Int4Layout.ColumnGroup; c++)
        {
            byte* dc = d + c * half;
            float total = 0;
            for (int b = 0; b < blocks; b++, dc += 4 * half)
            {
                sbyte* xb = x.Values + b * 2 * half;
                var dot = Vector128<int>.Zero;
                for (int j = 0; j < half; j += 16)
                {
                    var v = Vector128.Load(dc + j);
                    dot += Products128(v & Vector128.Create((byte)0xF), Vector128.Load(xb + j));
                    dot += Products128(Vector128.ShiftRightLogical(v, 4), Vector128.Load(xb + half + j));
                }
                int at = b * Int4Layout.ColumnGroup + c;
                int zero = z is null ? Int4Layout.SymmetricZeroPoint : (int)z[at];
                total += (Vector128.Sum(dot) - zero * x.Sums[b]) * (s[at] * x.Scales[b]);
            }
            sums[c] = total;
        }
    }

    /// <summary>Sum of 16 codes (0..15) times 16 activations, as four int32 partial sums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> Products128(Vector128<byte> codes, Vector128<sbyte> x)
    {
        var (c0, c1) = Vector128.Widen(codes);
        var (x0, x1) = Vector128.Widen(x);
        // |code * x| <= 15 * 127 fits int16.
        var (p0, p1) = Vector128.Widen(c0.AsInt16() * x0);
        var (p2, p3) = Vector128.Widen(c1.AsInt16() * x1);
        return p0 + p1 + p2 + p3;
    }

    /// <summary>The reference: exact integer dot per (column, block), then scale * (dot - zero point * sum).</summary>
    private static void GroupScalar(byte* d, float* s, float* z, Int8ActivationRow x, int blocks, int half, float* sums)
    {
        for (int c = 0; c < Int4Layout.ColumnGroup; c++)
        {
            float total = 0;
            for (int b = 0; b < blocks; b++)
            {
                int at = b * Int4Layout.ColumnGroup + c;
                byte* dc = d + (long)at * half;
                sbyte* xb = x.Values + b * 2 * half;
                int dot = 0;
                for (int j = 0; j < half; j++) dot += (dc[j] & 0xF) * xb[j] + (dc[j] >> 4) * xb[half + j];
                int zero = z is null ? Int4Layout.SymmetricZeroPoint : (int)z[at];
                total += (dot - zero * x.Sums[b]) * (s[at] * x.Scales[b]);
            }
            sums[c] = total;
        }
    }
}
