using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Squash.Runtime.Kernels;

/// <summary>
/// A product with a single output column, <c>y[i * ldy] = epilogue(sum_p A[i, p] x[p])</c>, read through the GEMM's
/// left-operand panels (pre-packed weights included). The GEMM would pad the one column to a whole micro-tile (32
/// columns on AVX-512: 32 times the multiply-adds) and pack it: a squeeze-and-excitation convolution of one pixel, 200
/// channels to 50, took 9 us for 10,000 multiply-adds that way.
/// </summary>
/// <remarks>Every row's sum runs over K in the order the GEMM micro-kernels use (one fused multiply-add per depth, K
/// blocks of <see cref="GemmKernel.BlockDepth"/> added onto what the earlier blocks stored), so the result is the
/// GEMM's to the bit.</remarks>
internal static unsafe class Gemv
{
    /// <summary>Panels accumulated at once: independent chains that hide the multiply-add latency.</summary>
    private const int Chains = 4;

    /// <summary>Computes the product for <paramref name="m"/> rows of depth <paramref name="k"/> &gt; 0; y[i] is at
    /// <c>y + i * ldy</c> (the epilogue's residual and beta read relative to it).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run<TA>(GemmKernel kernel, int m, int k, TA a, float* x, float* y, nint ldy, in TileEpilogue epilogue)
        where TA : struct, IPanelSource
    {
        if (m <= 0) return;
        if (k <= 0) throw new ArgumentOutOfRangeException(nameof(k), "The product needs a depth of at least 1.");
        int mr = kernel.Mr, mc = kernel.Mc;
        int blockDepth = GemmKernel.BlockDepth(k);
        float* scratch = GemmScratch.A(mc * blockDepth);
        float* sums = stackalloc float[Chains * mr];
        for (int p0 = 0; p0 < k; p0 += blockDepth)
        {
            int kc = Math.Min(blockDepth, k - p0);
            var block = epilogue.ForBlock(p0, kc, k);
            bool acrossRows = ldy == 1 && Vector256.IsHardwareAccelerated && block.AppliesAcrossRows;
            for (int i0 = 0; i0 < m; i0 += mc)
            {
                int rows = Math.Min(mc, m - i0);
                float* panels = a.Panels(i0, rows, p0, kc, mr, scratch);
                int panelCount = (rows + mr - 1) / mr;
                for (int q = 0; q < panelCount; q += Chains)
                {
                    int count = Math.Min(Chains, panelCount - q);
                    Accumulate(panels + (nint)q * mr * kc, kc, mr, count, x + p0, sums);
                    int first = q * mr, last = Math.Min(rows, (q + count) * mr), r = first;
                    if (acrossRows)
                        for (; r + 8 <= last; r += 8) block.ApplyAcrossRows(sums + (r - first), y + i0 + r, i0 + r);
                    for (; r < last; r++)
                    {
                        int row = i0 + r;
                        float* c = y + row * ldy;
                        *c = block.Apply(sums[r - first], c, row, 0);
                    }
                }
            }
        }
    }

    /// <summary>The sums of <paramref name="count"/> consecutive panels (each <paramref name="kc"/> x <paramref name="mr"/>)
    /// times x, into <paramref name="sums"/> (panel j's rows at j * mr).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Accumulate(float* panels, int kc, int mr, int count, float* x, float* sums)
    {
        if (mr == 8 && Vector256.IsHardwareAccelerated)
        {
            nint stride = (nint)kc * 8;
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int p = 0; p < kc; p++)
            {
                var xp = Vector256.Create(x[p]);
                float* at = panels + p * 8;
                a0 = Vector256.FusedMultiplyAdd(Vector256.Load(at), xp, a0);
                if (count > 1) a1 = Vector256.FusedMultiplyAdd(Vector256.Load(at + stride), xp, a1);
                if (count > 2) a2 = Vector256.FusedMultiplyAdd(Vector256.Load(at + 2 * stride), xp, a2);
                if (count > 3) a3 = Vector256.FusedMultiplyAdd(Vector256.Load(at + 3 * stride), xp, a3);
            }
            a0.Store(sums);
            a1.Store(sums + 8);
            a2.Store(sums + 16);
            a3.Store(sums + 24);
            return;
        }
        for (int j = 0; j < count; j++)
        {
            float* panel = panels + (nint)j * kc * mr;
            float* s = sums + j * mr;
            for (int r = 0; r < mr; r++) s[r] = 0;
            for (int p = 0; p < kc; p++)
                for (int r = 0; r < mr; r++) s[r] = MathF.FusedMultiplyAdd(panel[p * mr + r], x[p], s[r]);
        }
    }
}
