using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Squash.Runtime.Kernels;

/// <summary>
/// Rows woven into one: <c>dst[c * n + j] = source_j[c]</c> for n rows, the store of kernels whose results come out
/// one row per tap or per tile column (tiling transposed convolutions, Winograd's output transform). Two and four rows
/// go through AVX-512 two-source permutes; other counts, and machines without AVX-512, element by element.
/// </summary>
internal static unsafe class RowInterleave
{
    /// <summary><c>dst[c * count + j] = sources[j][c]</c> for c below <paramref name="width"/>.</summary>
    public static void Rows(float** sources, int count, int width, float* dst)
    {
        int c = 0;
        if (Avx512F.IsSupported && Vector512.IsHardwareAccelerated)
        {
            if (count == 2)
            {
                float* a = sources[0], b = sources[1];
                for (; c + 16 <= width; c += 16) Two(Vector512.Load(a + c), Vector512.Load(b + c), dst + 2 * c);
            }
            else if (count == 4)
            {
                float* a = sources[0], b = sources[1], s2 = sources[2], d = sources[3];
                for (; c + 16 <= width; c += 16)
                    Four(Vector512.Load(a + c), Vector512.Load(b + c), Vector512.Load(s2 + c), Vector512.Load(d + c), dst + 4 * c);
            }
        }
        for (; c < width; c++)
            for (int j = 0; j < count; j++)
                dst[c * count + j] = sources[j][c];
    }

    /// <summary>Writes 32 floats: a0 b0 a1 b1 ... a15 b15 (AVX-512).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Two(Vector512<float> a, Vector512<float> b, float* dst)
    {
        Avx512F.PermuteVar16x32x2(a, Vector512.Create(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23), b).Store(dst);
        Avx512F.PermuteVar16x32x2(a, Vector512.Create(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31), b).Store(dst + 16);
    }

    /// <summary>Writes 64 floats: y0[t], y1[t], y2[t], y3[t] at 4t (AVX-512): pairs (y0, y1) and (y2, y3) first, then
    /// pairs of pairs as 64-bit elements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Four(Vector512<float> y0, Vector512<float> y1, Vector512<float> y2, Vector512<float> y3, float* dst)
    {
        var pairLow = Vector512.Create(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        var pairHigh = Vector512.Create(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        var a = Avx512F.PermuteVar16x32x2(y0, pairLow, y1).AsDouble();
        var b = Avx512F.PermuteVar16x32x2(y0, pairHigh, y1).AsDouble();
        var c = Avx512F.PermuteVar16x32x2(y2, pairLow, y3).AsDouble();
        var d = Avx512F.PermuteVar16x32x2(y2, pairHigh, y3).AsDouble();
        var quadLow = Vector512.Create(0L, 8, 1, 9, 2, 10, 3, 11);
        var quadHigh = Vector512.Create(4L, 12, 5, 13, 6, 14, 7, 15);
        Avx512F.PermuteVar8x64x2(a, quadLow, c).AsSingle().Store(dst);
        Avx512F.PermuteVar8x64x2(a, quadHigh, c).AsSingle().Store(dst + 16);
        Avx512F.PermuteVar8x64x2(b, quadLow, d).AsSingle().Store(dst + 32);
        Avx512F.PermuteVar8x64x2(b, quadHigh, d).AsSingle().Store(dst + 48);
    }
}
