using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Squash.Runtime.Kernels;

/// <summary>
/// The AVX2 micro-kernel: 6 rows x 16 columns, the classic Haswell tile. Twelve ymm accumulators, two loads of B and
/// one broadcast use 15 of the 16 registers; twelve independent FMAs cover the latency of two FMA pipes.
/// </summary>
internal static unsafe class GemmKernel256
{
    /// <summary>Rows of a tile.</summary>
    public const int Mr = 6;

    /// <summary>Columns of a tile.</summary>
    public const int Nr = 16;

    /// <summary>See <see cref="GemmKernel.Run"/>; <paramref name="rows"/> is 1 to <see cref="Mr"/>.</summary>
    public static void Run<TPanel>(int rows, int kc, float* a, TPanel b, float* c, nint ldc, in TileEpilogue epilogue, int row, int col)
        where TPanel : struct, IPanelRows<TPanel>
    {
        switch (rows)
        {
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
        Vector256<float> c00 = default, c01 = default;
        Vector256<float> c10 = default, c11 = default;
        Vector256<float> c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default;
        Vector256<float> c40 = default, c41 = default;
        Vector256<float> c50 = default, c51 = default;
        for (int p = 0; p < kc; p++)
        {
            float* bp = b.Row(p, Nr);
            Vector256<float> b0 = Vector256.Load(bp), b1 = Vector256.Load(bp + 8);
            Vector256<float> ai = Vector256.Create(a[0]);
            c00 = Vector256.FusedMultiplyAdd(ai, b0, c00);
            c01 = Vector256.FusedMultiplyAdd(ai, b1, c01);
            if (rows > 1)
            {
                ai = Vector256.Create(a[1]);
                c10 = Vector256.FusedMultiplyAdd(ai, b0, c10);
                c11 = Vector256.FusedMultiplyAdd(ai, b1, c11);
            }
            if (rows > 2)
            {
                ai = Vector256.Create(a[2]);
                c20 = Vector256.FusedMultiplyAdd(ai, b0, c20);
                c21 = Vector256.FusedMultiplyAdd(ai, b1, c21);
            }
            if (rows > 3)
            {
                ai = Vector256.Create(a[3]);
                c30 = Vector256.FusedMultiplyAdd(ai, b0, c30);
                c31 = Vector256.FusedMultiplyAdd(ai, b1, c31);
            }
            if (rows > 4)
            {
                ai = Vector256.Create(a[4]);
                c40 = Vector256.FusedMultiplyAdd(ai, b0, c40);
                c41 = Vector256.FusedMultiplyAdd(ai, b1, c41);
            }
            if (rows > 5)
            {
                ai = Vector256.Create(a[5]);
                c50 = Vector256.FusedMultiplyAdd(ai, b0, c50);
                c51 = Vector256.FusedMultiplyAdd(ai, b1, c51);
            }
            a += Mr;
        }
        epilogue.Store(c, c00, c01, row, col);
        if (rows > 1) epilogue.Store(c + 1 * ldc, c10, c11, row + 1, col);
        if (rows > 2) epilogue.Store(c + 2 * ldc, c20, c21, row + 2, col);
        if (rows > 3) epilogue.Store(c + 3 * ldc, c30, c31, row + 3, col);
        if (rows > 4) epilogue.Store(c + 4 * ldc, c40, c41, row + 4, col);
        if (rows > 5) epilogue.Store(c + 5 * ldc, c50, c51, row + 5, col);
    }
}
