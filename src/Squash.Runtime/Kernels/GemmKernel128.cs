using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Squash.Runtime.Kernels;

/// <summary>
/// The portable micro-kernel: 4 rows x 8 columns of Vector128 (SSE, NEON, or software vectors). Eight accumulators
/// fit every 128-bit register file; MultiplyAddEstimate uses FMA where the hardware has it and multiply-add otherwise.
/// </summary>
internal static unsafe class GemmKernel128
{
    /// <summary>Rows of a tile.</summary>
    public const int Mr = 4;

    /// <summary>Columns of a tile.</summary>
    public const int Nr = 8;

    /// <summary>See <see cref="GemmKernel.Run"/>; <paramref name="rows"/> is 1 to <see cref="Mr"/>.</summary>
    public static void Run<TPanel>(int rows, int kc, float* a, TPanel b, float* c, nint ldc, in TileEpilogue epilogue, int row, int col)
        where TPanel : struct, IPanelRows<TPanel>
    {
        switch (rows)
        {
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
        Vector128<float> c00 = default, c01 = default;
        Vector128<float> c10 = default, c11 = default;
        Vector128<float> c20 = default, c21 = default;
        Vector128<float> c30 = default, c31 = default;
        for (int p = 0; p < kc; p++)
        {
            float* bp = b.Row(p, Nr);
            Vector128<float> b0 = Vector128.Load(bp), b1 = Vector128.Load(bp + 4);
            Vector128<float> ai = Vector128.Create(a[0]);
            c00 = Vector128.MultiplyAddEstimate(ai, b0, c00);
            c01 = Vector128.MultiplyAddEstimate(ai, b1, c01);
            if (rows > 1)
            {
                ai = Vector128.Create(a[1]);
                c10 = Vector128.MultiplyAddEstimate(ai, b0, c10);
                c11 = Vector128.MultiplyAddEstimate(ai, b1, c11);
            }
            if (rows > 2)
            {
                ai = Vector128.Create(a[2]);
                c20 = Vector128.MultiplyAddEstimate(ai, b0, c20);
                c21 = Vector128.MultiplyAddEstimate(ai, b1, c21);
            }
            if (rows > 3)
            {
                ai = Vector128.Create(a[3]);
                c30 = Vector128.MultiplyAddEstimate(ai, b0, c30);
                c31 = Vector128.MultiplyAddEstimate(ai, b1, c31);
            }
            a += Mr;
        }
        epilogue.Store(c, c00, c01, row, col);
        if (rows > 1) epilogue.Store(c + 1 * ldc, c10, c11, row + 1, col);
        if (rows > 2) epilogue.Store(c + 2 * ldc, c20, c21, row + 2, col);
        if (rows > 3) epilogue.Store(c + 3 * ldc, c30, c31, row + 3, col);
    }
}
