using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Squash.Runtime.Kernels;

/// <summary>
/// The AVX-512 micro-kernel: 8 rows x 32 columns. Sixteen zmm accumulators, two loads of B and one broadcast of A
/// per row make 19 of the 32 registers. Sixteen independent FMAs per step of K cover the FMA latency (4 cycles) on
/// cores that issue one (Zen 4) or two (Intel) 512-bit FMAs per cycle, and the 10 loads per 16 FMAs stay under
/// the load ports' limit. Eight rows divide the channel counts of common networks (16, 24, 32, 40, 48...).
/// </summary>
internal static unsafe class GemmKernel512
{
    /// <summary>Rows of a tile.</summary>
    public const int Mr = 8;

    /// <summary>Columns of a tile.</summary>
    public const int Nr = 32;

    /// <summary>See <see cref="GemmKernel.Run"/>; <paramref name="rows"/> is 1 to <see cref="Mr"/>.</summary>
    public static void Run<TPanel>(int rows, int kc, float* a, TPanel b, float* c, nint ldc, in TileEpilogue epilogue, int row, int col)
        where TPanel : struct, IPanelRows<TPanel>
    {
        switch (rows)
        {
            case 8: Tile<Rows8, TPanel>(kc, a, b, c, ldc, epilogue, row, col); break;
            case 7: Tile<Rows7, TPanel>(kc, a, b, c, ldc, epilogue, row, col); break;
            case 6: Tile<Rows6, TPanel>(kc, a, b, c, ldc, epilogue, row, col); break;
            case 5: Tile<Rows5, TPanel>(kc, a, b, c, ldc, epilogue, row, col); break;
            case 4: Tile<Rows4, TPanel>(kc, a, b, c, ldc, epilogue, row, col); break;
            case 3: Tile<Rows3, TPanel>(kc, a, b, c, ldc, epilogue, row, col); break;
            case 2: Tile<Rows2, TPanel>(kc, a, b, c, ldc, epilogue, row, col); break;
            case 1: Tile<Rows1, TPanel>(kc, a, b, c, ldc, epilogue, row, col); break;
            default: throw new ArgumentOutOfRangeException(nameof(rows));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile<TRows, TPanel>(int kc, float* a, TPanel b, float* c, nint ldc, in TileEpilogue epilogue, int row, int col)
        where TRows : struct, IRowCount
        where TPanel : struct, IPanelRows<TPanel>
    {
        int rows = TRows.Value;
        // The accumulators of row r are c{r}0 and c{r}1; rows the tile lacks are never touched.
        Vector512<float> c00 = default, c01 = default;
        Vector512<float> c10 = default, c11 = default;
        Vector512<float> c20 = default, c21 = default;
        Vector512<float> c30 = default, c31 = default;
        Vector512<float> c40 = default, c41 = default;
        Vector512<float> c50 = default, c51 = default;
        Vector512<float> c60 = default, c61 = default;
        Vector512<float> c70 = default, c71 = default;
        for (int p = 0; p < kc; p++)
        {
            float* bp = b.Row(p, Nr);
            Vector512<float> b0 = Vector512.Load(bp), b1 = Vector512.Load(bp + 16);
            Vector512<float> ai = Vector512.Create(a[0]);
            c00 = Vector512.FusedMultiplyAdd(ai, b0, c00);
            c01 = Vector512.FusedMultiplyAdd(ai, b1, c01);
            if (rows > 1)
            {
                ai = Vector512.Create(a[1]);
                c10 = Vector512.FusedMultiplyAdd(ai, b0, c10);
                c11 = Vector512.FusedMultiplyAdd(ai, b1, c11);
            }
            if (rows > 2)
            {
                ai = Vector512.Create(a[2]);
                c20 = Vector512.FusedMultiplyAdd(ai, b0, c20);
                c21 = Vector512.FusedMultiplyAdd(ai, b1, c21);
            }
            if (rows > 3)
            {
                ai = Vector512.Create(a[3]);
                c30 = Vector512.FusedMultiplyAdd(ai, b0, c30);
                c31 = Vector512.FusedMultiplyAdd(ai, b1, c31);
            }
            if (rows > 4)
            {
                ai = Vector512.Create(a[4]);
                c40 = Vector512.FusedMultiplyAdd(ai, b0, c40);
                c41 = Vector512.FusedMultiplyAdd(ai, b1, c41);
            }
            if (rows > 5)
            {
                ai = Vector512.Create(a[5]);
                c50 = Vector512.FusedMultiplyAdd(ai, b0, c50);
                c51 = Vector512.FusedMultiplyAdd(ai, b1, c51);
            }
            if (rows > 6)
            {
                ai = Vector512.Create(a[6]);
                c60 = Vector512.FusedMultiplyAdd(ai, b0, c60);
                c61 = Vector512.FusedMultiplyAdd(ai, b1, c61);
            }
            if (rows > 7)
            {
                ai = Vector512.Create(a[7]);
                c70 = Vector512.FusedMultiplyAdd(ai, b0, c70);
                c71 = Vector512.FusedMultiplyAdd(ai, b1, c71);
            }
            a += Mr;
        }
        epilogue.Store(c, c00, c01, row, col);
        if (rows > 1) epilogue.Store(c + 1 * ldc, c10, c11, row + 1, col);
        if (rows > 2) epilogue.Store(c + 2 * ldc, c20, c21, row + 2, col);
        if (rows > 3) epilogue.Store(c + 3 * ldc, c30, c31, row + 3, col);
        if (rows > 4) epilogue.Store(c + 4 * ldc, c40, c41, row + 4, col);
        if (rows > 5) epilogue.Store(c + 5 * ldc, c50, c51, row + 5, col);
        if (rows > 6) epilogue.Store(c + 6 * ldc, c60, c61, row + 6, col);
        if (rows > 7) epilogue.Store(c + 7 * ldc, c70, c71, row + 7, col);
    }
}
