using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Squash.Runtime.Kernels;

/// <summary>
/// Where a GEMM gets one operand in packed form. The packed form of op(A) is panels of MR rows, of op(B) panels of
/// NR columns; within a panel the depth (K) is outermost, so the micro-kernel reads both operands sequentially.
/// A source packs on demand (from a strided matrix, or straight from an image for a convolution) or hands out
/// panels packed once in advance (<see cref="PackedMatrix"/>).
/// </summary>
/// <remarks>"Index" is the row of op(A) or the column of op(B); "depth" is the shared dimension K.</remarks>
internal unsafe interface IPanelSource
{
    /// <summary>
    /// The panels of indices [<paramref name="start"/>, start + <paramref name="count"/>) over depths
    /// [<paramref name="p0"/>, p0 + <paramref name="kc"/>): ceil(count / width) panels of kc x width floats, panel
    /// q at q * width * kc, indices past the end zero. Fills and returns <paramref name="scratch"/>, or returns
    /// pre-packed storage. <paramref name="start"/> is a multiple of <paramref name="width"/>.
    /// </summary>
    float* Panels(int start, int count, int p0, int kc, int width, float* scratch);
}

/// <summary>A dense matrix addressed by strides: element (index, depth) is at <c>Data[index * IndexStride + depth * DepthStride]</c>.
/// Covers A and B, transposed or not.</summary>
internal readonly unsafe struct StridedPanels(float* data, nint indexStride, nint depthStride) : IPanelSource
{
    /// <summary>op(A) for A [m,k] (or [k,m] when transposed) with row stride <paramref name="lda"/>.</summary>
    public static StridedPanels Left(float* a, int lda, bool transA) => transA ? new(a, 1, lda) : new(a, lda, 1);

    /// <summary>op(B) for B [k,n] (or [n,k] when transposed) with row stride <paramref name="ldb"/>.</summary>
    public static StridedPanels Right(float* b, int ldb, bool transB) => transB ? new(b, ldb, 1) : new(b, 1, ldb);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public float* Panels(int start, int count, int p0, int kc, int width, float* scratch)
    {
        if (indexStride == 1)
        {
            // Indices are contiguous (B as stored, or A transposed). Walk depth rows outermost so that each source row
            // is read sequentially; reading panel by panel instead jumps between kc rows every few floats, which
            // defeats the prefetchers and the TLB when rows are far apart (an image of 100k pixels per channel).
            float* src = data + start + p0 * depthStride;
            for (int p = 0; p < kc; p += PanelCopy.RowGroup)
            {
                int rows = Math.Min(PanelCopy.RowGroup, kc - p);
                PanelCopy.Scatter(src + p * depthStride, depthStride, rows, count, scratch + p * width, width, kc);
            }
            return scratch;
        }
        for (int q = 0; q * width < count; q++)
        {
            // Depth is contiguous (A as stored, or B transposed): transpose width rows into the panel.
            int first = start + q * width;
            int n = Math.Min(width, count - q * width);
            float* dst = scratch + (nint)q * width * kc;
            for (int r = 0; r < width; r++)
            {
                float* d = dst + r;
                if (r >= n)
                {
                    for (int p = 0; p < kc; p++) d[p * width] = 0;
                    continue;
                }
                float* src = data + (first + r) * indexStride + p0 * depthStride;
                for (int p = 0; p < kc; p++, src += depthStride) d[p * width] = *src;
            }
        }
        return scratch;
    }
}

/// <summary>Small copies for packing.</summary>
internal static unsafe class PanelCopy
{
    /// <summary>Depth rows packed together: 8 rows of 32 floats are 1 KB written contiguously per panel.</summary>
    public const int RowGroup = 8;

    /// <summary>
    /// Distributes <paramref name="rows"/> consecutive depth rows of <paramref name="count"/> floats (row r at
    /// <c>src + r * srcStride</c>) over the panels: floats [q * width, (q + 1) * width) of row r go to
    /// <c>dst + q * width * kc + r * width</c>, where <paramref name="dst"/> is the first row's place in panel 0; the
    /// last panel's missing indices are zeroed. Several rows at a time make each panel's writes one contiguous run:
    /// panels lie width * kc floats apart, often a multiple of 4 KB, so writing one row across all panels would
    /// send every store to the same L1 set.
    /// </summary>
    public static void Scatter(float* src, nint srcStride, int rows, int count, float* dst, int width, int kc)
    {
        nint panelStride = (nint)width * kc;
        int j = 0;
        for (; j + width <= count; j += width, dst += panelStride)
        {
            float* d = dst;
            float* s = src + j;
            if (width == 32 && Vector512.IsHardwareAccelerated)
            {
                for (int r = 0; r < rows; r++, d += 32, s += srcStride)
                {
                    Vector512.Store(Vector512.Load(s), d);
                    Vector512.Store(Vector512.Load(s + 16), d + 16);
                }
            }
            else
            {
                for (int r = 0; r < rows; r++, d += width, s += srcStride) Copy(d, s, width);
            }
        }
        if (j < count)
        {
            int n = count - j;
            for (int r = 0; r < rows; r++)
            {
                Copy(dst + r * width, src + r * srcStride + j, n);
                for (int t = n; t < width; t++) dst[r * width + t] = 0;
            }
        }
    }

    /// <summary>Zeroes <paramref name="n"/> floats. Inlined: the padding runs it clears are often one or two floats,
    /// where a call to a general memset costs more than the stores.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Zero(float* dst, int n)
    {
        int j = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; j + 16 <= n; j += 16) Vector512<float>.Zero.Store(dst + j);
        for (; j < n; j++) dst[j] = 0;
    }

    /// <summary>Copies <paramref name="n"/> floats with the widest vectors available.</summary>
    public static void Copy(float* dst, float* src, int n)
    {
        int j = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; j <= n - 16; j += 16) Vector512.Store(Vector512.Load(src + j), dst + j);
        if (Vector256.IsHardwareAccelerated)
            for (; j <= n - 8; j += 8) Vector256.Store(Vector256.Load(src + j), dst + j);
        for (; j <= n - 4; j += 4) Vector128.Store(Vector128.Load(src + j), dst + j);
        for (; j < n; j++) dst[j] = src[j];
    }

    /// <summary><c>dst[t] = src[t * stride]</c> for t &lt; <paramref name="n"/>; src[(n - 1) * stride] is the last float read.</summary>
    public static void Strided(float* dst, float* src, int n, int stride)
    {
        if (stride == 1)
        {
            Copy(dst, src, n);
            return;
        }
        int t = 0;
        if (stride == 2 && Avx512F.IsSupported && Vector512.IsHardwareAccelerated)
        {
            // Stride 2 (downsampling) is common: pick the even lanes of 32 loaded floats. The load reaches float
            // 2t + 31, inside the range only while t + 16 < n.
            var even = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            for (; t + 16 < n; t += 16)
                Avx512F.PermuteVar16x32x2(Vector512.Load(src + 2 * t), even, Vector512.Load(src + 2 * t + 16)).Store(dst + t);
        }
        for (; t < n; t++) dst[t] = src[t * stride];
    }
}

/// <summary>Panels packed in advance for the whole matrix: K block by K block, each block panel after panel.</summary>
internal readonly unsafe struct PrepackedPanels(float* data, int paddedCount) : IPanelSource
{
    public float* Panels(int start, int count, int p0, int kc, int width, float* scratch) =>
        data + (nint)p0 * paddedCount + (nint)start * kc;
}
