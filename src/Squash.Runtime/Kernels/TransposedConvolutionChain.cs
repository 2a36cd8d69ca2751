using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Squash.Runtime.Kernels;

/// <summary>
/// Two tiling transposed convolutions in a row (each kernel equal to its stride, no padding, dilation or groups; the
/// learned 4x upsampling that ends a segmentation head: DBNet's 2x2 stride-2 pair), with each one's bias and activation,
/// computed block by block of X's rows so that the first one's output never goes to memory:
/// <code>
///   Y1 = act1(convTranspose(X, W1) + B1)        [M1, H k1h, W k1w]
///   Y  = act2(convTranspose(Y1, W2) + B2)       [M2, H k1h k2h, W k1w k2w]
/// </code>
/// Every element of Y1 comes from one pixel of X and one tap, and every element of Y from one element of Y1, so a block
/// of X's rows yields whole rows of Y: the first GEMM gives the block's Y1 as rows (m1, tap1) [M1 T1, P]; for each tap1,
/// the second GEMM reads that tap's M1 rows (a stride of T1 rows) and gives rows (m2, tap2); both apply bias and
/// activation as they store. Y's row <c>(h k1h + th1) k2h + th2</c> of channel m2 then interleaves, per X column, the
/// k1w k2w values of the taps (tw1, tw2).
/// </summary>
/// <remarks>det at 640x640: the pair read and wrote Y1 (24 x 320 x 320 floats, 9.8 MB) through memory, 4.6 ms in two
/// nodes; here Y1 stays in L2.</remarks>
internal static unsafe class TransposedConvolutionChain
{
    /// <summary>Floats of GEMM results per block (both GEMMs' rows), half of a 1 MiB L2.</summary>
    private const int BlockFloats = 1 << 17;

    /// <summary>The packed weights of one step: the left operand W^T [M taps, C], and its bias per GEMM row.</summary>
    public sealed class Step
    {
        /// <summary>Packs <paramref name="w"/> [C, M, kh, kw] and expands <paramref name="bias"/> [M] (or empty) to its rows.</summary>
        public Step(ReadOnlySpan<float> w, ReadOnlySpan<float> bias, int inChannels, int outChannels, int kernelH, int kernelW,
            GemmActivation activation)
        {
            InChannels = inChannels;
            OutChannels = outChannels;
            KernelH = kernelH;
            KernelW = kernelW;
            Activation = activation;
            int taps = kernelH * kernelW, rows = outChannels * taps;
            Weights = PackedMatrix.PackLeft(w, rows, true, rows, inChannels);
            Raw = w.ToArray();
            RowBias = new float[rows];
            if (!bias.IsEmpty)
                for (int r = 0; r < rows; r++) RowBias[r] = bias[r / taps];
        }

        /// <summary>C: channels read.</summary>
        public int InChannels { get; }

        /// <summary>M: channels written.</summary>
        public int OutChannels { get; }

        /// <summary>Kernel height (= stride).</summary>
        public int KernelH { get; }

        /// <summary>Kernel width (= stride).</summary>
        public int KernelW { get; }

        /// <summary>The activation after the bias.</summary>
        public GemmActivation Activation { get; }

        /// <summary>W^T packed: rows (m, tap), columns c.</summary>
        public PackedMatrix Weights { get; }

        /// <summary>W as given, [C, M taps]: row c holds what channel c adds to each GEMM row.</summary>
        public float[] Raw { get; }

        /// <summary>The bias of each GEMM row (its channel's).</summary>
        public float[] RowBias { get; }

        /// <summary>Taps per channel.</summary>
        public int Taps => KernelH * KernelW;

        /// <summary>GEMM rows: channels times taps.</summary>
        public int Rows => OutChannels * Taps;
    }

    /// <summary>
    /// <c>y = second(first(x))</c> for <paramref name="batch"/> images of <paramref name="height"/> x
    /// <paramref name="width"/> pixels with <paramref name="first"/>.InChannels channels; <paramref name="y"/> is
    /// [batch, second.OutChannels, height k1h k2h, width k1w k2w].
    /// </summary>
    public static void Run(KernelContext context, Step first, Step second, int batch, int height, int width,
        ReadOnlySpan<float> x, Span<float> y)
    {
        if (second.InChannels != first.OutChannels) throw new ArgumentException("The second step must read the first one's channels.");
        long plane = (long)height * width;
        int outHeight = height * first.KernelH * second.KernelH, outWidth = width * first.KernelW * second.KernelW;
        if (x.Length != batch * first.InChannels * plane || y.Length != (long)batch * second.OutChannels * outHeight * outWidth)
            throw new ArgumentException("X or Y does not have the chain's shape.");
        int rowsPerPixel = first.Rows + first.Taps * second.Rows;
        int blockRows = Math.Clamp(BlockFloats / Math.Max(1, rowsPerPixel * width), 1, height);
        int blocks = (height + blockRows - 1) / blockRows;
        fixed (float* px = x)
        fixed (float* py = y)
        fixed (float* bias1 = first.RowBias)
        fixed (float* bias2 = second.RowBias)
        fixed (float* w2 = second.Raw)
        {
            // Blocks are independent: threads take whole blocks (each GEMM on one thread), so that the second step and
            // the weave run in parallel too (with the GEMMs alone threaded, det's chain went from 2.0 to only 1.6 ms on
            // two threads).
            var body = new Blocks(first, second, px, py, bias1, bias2, w2, height, width, blockRows, blocks);
            if (context.ThreadCount == 1) body.Invoke(0, batch * blocks);
            else context.For(batch * blocks, body);
        }
    }

    [ThreadStatic] private static float[]? t_scratch;

    private static readonly KernelContext s_singleThread = new(1);

    /// <summary>Block <c>task % blocks</c> of image <c>task / blocks</c> per task.</summary>
    private readonly struct Blocks(Step first, Step second, float* x, float* y, float* bias1, float* bias2, float* w2,
        int height, int width, int blockRows, int blocks) : IRangeBody
    {
        public void Invoke(int start, int end)
        {
            long plane = (long)height * width;
            int outHeight = height * first.KernelH * second.KernelH, outWidth = width * first.KernelW * second.KernelW;
            int rowsPerPixel = first.Rows + first.Taps * second.Rows;
            float* inner = GemmScratch.Get(ref t_scratch, rowsPerPixel * blockRows * width);
            float* outer = inner + (nint)first.Rows * blockRows * width;
            var epilogue1 = new TileEpilogue(1, 0, bias1, null, first.Activation);
            var epilogue2 = new TileEpilogue(1, 0, bias2, null, second.Activation);
            for (int task = start; task < end; task++)
            {
                int image = task / blocks, h = task % blocks * blockRows;
                float* xi = x + image * first.InChannels * plane;
                float* yi = y + (nint)image * second.OutChannels * outHeight * outWidth;
                int count = Math.Min(blockRows, height - h), block = count * width;
                // Y1 of the block: rows (m1, tap1), block columns.
                Gemm.Run(s_singleThread, first.Weights.Kernel, first.Rows, block, first.InChannels, first.Weights.Source,
                    StridedPanels.Right(xi + (nint)h * width, (int)plane, false), inner, block, epilogue1);
                // Per tap1: its M1 rows are T1 rows apart; Y's values for that tap as rows (m2, tap2).
                for (int tap = 0; tap < first.Taps; tap++)
                    if (second.Rows == FewRows && Avx512F.IsSupported && Vector512.IsHardwareAccelerated)
                        FourRows(second, w2, inner + (nint)tap * block, first.Taps * block, block, outer + (nint)tap * second.Rows * block, epilogue2);
                    else
                        Gemm.Run(s_singleThread, second.Weights.Kernel, second.Rows, block, second.InChannels, second.Weights.Source,
                            StridedPanels.Right(inner + (nint)tap * block, first.Taps * block, false),
                            outer + (nint)tap * second.Rows * block, block, epilogue2);
                Interleave(first, second, outer, block, width, h, count, outWidth, yi, outHeight);
            }
        }
    }

    /// <summary>The GEMM rows <see cref="FourRows"/> computes.</summary>
    private const int FewRows = 4;

    /// <summary>
    /// The second step when it has four GEMM rows (one channel of 2x2 taps: a segmentation head's last layer), as the
    /// GEMM would compute it but without its panels: a micro-kernel is 14 or more rows tall, so the GEMM ran these four
    /// at a fraction of its rate (1.25 ms of det's 2.4). Sums over K in the same order with FMAs, then the epilogue
    /// pass over each row, as the GEMM does for an activation it cannot apply in registers: the same bits.
    /// </summary>
    private static void FourRows(Step second, float* w, float* source, int ld, int count, float* target, in TileEpilogue epilogue)
    {
        int depth = second.InChannels, rows = second.Rows;
        int p = 0;
        for (; p + 16 <= count; p += 16)
        {
            var a0 = Vector512<float>.Zero;
            var a1 = Vector512<float>.Zero;
            var a2 = Vector512<float>.Zero;
            var a3 = Vector512<float>.Zero;
            for (int k = 0; k < depth; k++)
            {
                var x = Vector512.Load(source + (nint)k * ld + p);
                float* wk = w + k * rows;
                a0 = Avx512F.FusedMultiplyAdd(x, Vector512.Create(wk[0]), a0);
                a1 = Avx512F.FusedMultiplyAdd(x, Vector512.Create(wk[1]), a1);
                a2 = Avx512F.FusedMultiplyAdd(x, Vector512.Create(wk[2]), a2);
                a3 = Avx512F.FusedMultiplyAdd(x, Vector512.Create(wk[3]), a3);
            }
            a0.Store(target + p);
            a1.Store(target + count + p);
            a2.Store(target + 2 * count + p);
            a3.Store(target + 3 * count + p);
        }
        for (; p < count; p++)
            for (int r = 0; r < rows; r++)
            {
                float sum = 0;
                for (int k = 0; k < depth; k++) sum = MathF.FusedMultiplyAdd(source[(nint)k * ld + p], w[k * rows + r], sum);
                target[(nint)r * count + p] = sum;
            }
        for (int r = 0; r < rows; r++) epilogue.ApplyRow(target + (nint)r * count, target + (nint)r * count, count, r, 0);
    }

    /// <summary>Writes the block's rows of Y: row <c>(h k1h + th1) k2h + th2</c> of channel m2 takes, for X column c,
    /// the values of taps (th1, tw1), (th2, tw2) at columns <c>(c k1w + tw1) k2w + tw2</c>.</summary>
    private static void Interleave(Step first, Step second, float* outer, int block, int width, int firstRow, int rowCount,
        int outWidth, float* y, int outHeight)
    {
        int k1h = first.KernelH, k1w = first.KernelW, k2h = second.KernelH, k2w = second.KernelW, across = k1w * k2w;
        float** sources = stackalloc float*[across];
        for (int m = 0; m < second.OutChannels; m++)
            for (int r = 0; r < rowCount; r++)
                for (int th1 = 0; th1 < k1h; th1++)
                    for (int th2 = 0; th2 < k2h; th2++)
                    {
                        int outRow = ((firstRow + r) * k1h + th1) * k2h + th2;
                        float* dst = y + ((nint)m * outHeight + outRow) * outWidth;
                        for (int tw1 = 0; tw1 < k1w; tw1++)
                            for (int tw2 = 0; tw2 < k2w; tw2++)
                            {
                                int tap1 = th1 * k1w + tw1, row2 = m * second.Taps + th2 * k2w + tw2;
                                sources[tw1 * k2w + tw2] = outer + ((nint)tap1 * second.Rows + row2) * block + (nint)r * width;
                            }
                        RowInterleave.Rows(sources, across, width, dst);
                    }
    }
}
