using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Squash.Runtime.Kernels;

/// <summary>
/// Byte kernels of an int8 region besides the products: a 256-entry table lookup, which applies any element-wise
/// function of one uint8 tensor (an activation, or a chain of them, with its input and output quantization folded into
/// the table), and the sums of uint8 planes (a global average pool).
/// </summary>
public static unsafe class Int8Lookup
{
    /// <summary>Entries of a table: one per uint8 value.</summary>
    public const int TableSize = 256;

    /// <summary><c>y[i] = table[x[i]]</c>. With AVX-512 VBMI, 64 bytes take two two-table permutes (VPERMI2B, 128
    /// entries each) and a select on the index's top bit; elsewhere the loop is scalar.</summary>
    /// <exception cref="ArgumentException">The table has fewer than 256 entries or <paramref name="y"/> is shorter than
    /// <paramref name="x"/>.</exception>
    public static void Apply(ReadOnlySpan<byte> table, ReadOnlySpan<byte> x, Span<byte> y)
    {
        if (table.Length < TableSize) throw new ArgumentException($"A lookup table needs {TableSize} entries, not {table.Length}.", nameof(table));
        Int8Quantize.CheckLengths(x.Length, y.Length);
        fixed (byte* pt = table)
        fixed (byte* px = x)
        fixed (byte* py = y)
        {
            Apply(pt, px, py, x.Length, Avx512Vbmi.IsSupported);
        }
    }

    /// <summary>The lookup with or without the vector path (tests compare both).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Apply(byte* table, byte* x, byte* y, int length, bool vector)
    {
        int i = 0;
        if (vector && Avx512Vbmi.IsSupported)
        {
            var t0 = Vector512.Load(table);
            var t1 = Vector512.Load(table + 64);
            var t2 = Vector512.Load(table + 128);
            var t3 = Vector512.Load(table + 192);
            for (; i + 64 <= length; i += 64)
            {
                var index = Vector512.Load(x + i);
                // VPERMI2B reads the low 7 bits of each index: entries 0-127 from (t0, t1), 128-255 from (t2, t3).
                var low = Avx512Vbmi.PermuteVar64x8x2(t0, index, t1);
                var high = Avx512Vbmi.PermuteVar64x8x2(t2, index, t3);
                var upper = Vector512.LessThan(index.AsSByte(), Vector512<sbyte>.Zero).AsByte();
                Vector512.ConditionalSelect(upper, high, low).Store(y + i);
            }
        }
        for (; i + 4 <= length; i += 4)
        {
            byte a = table[x[i]], b = table[x[i + 1]], c = table[x[i + 2]], d = table[x[i + 3]];
            y[i] = a;
            y[i + 1] = b;
            y[i + 2] = c;
            y[i + 3] = d;
        }
        for (; i < length; i++) y[i] = table[x[i]];
    }

    /// <summary>The sum of <paramref name="x"/>'s bytes (exact: at most 255 x 2^31 fits a long).</summary>
    public static long Sum(ReadOnlySpan<byte> x)
    {
        fixed (byte* px = x) return SumBytes(px, x.Length);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static long SumBytes(byte* x, int length)
    {
        long sum = 0;
        int i = 0;
        if (Avx2.IsSupported)
        {
            // VPSADBW against zero adds each 8 bytes into a 64-bit lane.
            var total = Vector256<ulong>.Zero;
            for (; i + 32 <= length; i += 32)
                total += Avx2.SumAbsoluteDifferences(Vector256.Load(x + i), Vector256<byte>.Zero).AsUInt64();
            sum = (long)Vector256.Sum(total);
            // Rows of 48 (cls's last squeeze-and-excitation) left 16 bytes to the scalar loop: 16 and 8 at a time.
            if (i + 16 <= length)
            {
                sum += (long)Vector128.Sum(Sse2.SumAbsoluteDifferences(Vector128.Load(x + i), Vector128<byte>.Zero).AsUInt64());
                i += 16;
            }
            if (i + 8 <= length)
            {
                sum += (long)Sse2.SumAbsoluteDifferences(Vector128.CreateScalar(*(ulong*)(x + i)).AsByte(), Vector128<byte>.Zero).AsUInt64().ToScalar();
                i += 8;
            }
        }
        for (; i < length; i++) sum += x[i];
        return sum;
    }
}
