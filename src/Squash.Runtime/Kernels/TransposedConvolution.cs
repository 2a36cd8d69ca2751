using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Squash.Runtime.Kernels;

/// <summary>
/// Transposed convolution (ConvTranspose) as the adjoint of a convolution: with a geometry whose input is the
/// transposed convolution's output (Y) and whose output is its input (X), ConvTranspose's weights [C, M/G, taps]
/// are exactly that convolution's weights, and <c>Y_g = col2im(W_g^T x X_g)</c>: one GEMM per image and group into a
/// column buffer [M/G * taps, |X|], whose entries are then added onto the image positions they come from.
/// </summary>
internal static unsafe class TransposedConvolution
{
    /// <summary>The packed weights: one left operand W_g^T [M/G * taps, C/G] per group.</summary>
    public static PackedMatrix[] PackWeights(ConvGeometry g, ReadOnlySpan<float> w)
    {
        int rows = g.GemmDepth, cg = g.GroupOutChannels;
        var packed = new PackedMatrix[g.Groups];
        for (int group = 0; group < g.Groups; group++)
            packed[group] = PackedMatrix.PackLeft(w.Slice(group * cg * rows, cg * rows), rows, true, rows, cg);
        return packed;
    }

    /// <summary>
    /// <c>y = convTranspose(x, w) + bias</c> for the adjoint geometry <paramref name="g"/> (input = Y's spatial shape and
    /// channels, output = X's). <paramref name="w"/> is [C, M/G, kernel...], packed once in <paramref name="weights"/>
    /// when constant (null: per call); <paramref name="bias"/> is [M] or empty.
    /// </summary>
    public static void Run(KernelContext context, ConvGeometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> w,
        PackedConvWeights? weights, ReadOnlySpan<float> bias, Span<float> y) =>
        Run(context, g, x, w, weights, y, new GemmEpilogue { RowBias = bias });

    /// <summary>
    /// <c>y = epilogue(convTranspose(x, w))</c>, the epilogue's rows being Y's channels (as in
    /// <see cref="Convolution.Run(KernelContext, ConvGeometry, ReadOnlySpan{float}, ReadOnlySpan{float}, PackedConvWeights, Span{float}, in GemmEpilogue)"/>).
    /// Each output element is complete only after col2im, so the epilogue is one pass over Y at the end.
    /// </summary>
    public static void Run(KernelContext context, ConvGeometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> w,
        PackedConvWeights? weights, Span<float> y, in GemmEpilogue epilogue)
    {
        var packed = weights?.Transposed(g);
        if (!epilogue.Residual.IsEmpty && epilogue.Residual.Length != y.Length)
            throw new ArgumentException("The residual must be shaped like the output.", nameof(epilogue));
        int mg = g.GroupInChannels, cg = g.GroupOutChannels, rows = g.GemmDepth, n = g.OutputSize;
        // With a 1x1 kernel, unit strides and no padding, col2im is the identity: the GEMM writes Y directly.
        bool direct = g.IsPointwise;
        byte[] scratch = direct ? [] : context.Scratch(checked(rows * n * sizeof(float)));
        fixed (float* px = x)
        fixed (float* pw = w)
        fixed (float* py = y)
        fixed (byte* columnBytes = scratch)
        {
            float* columns = (float*)columnBytes;
            for (int image = 0; image < g.Batch; image++)
                for (int group = 0; group < g.Groups; group++)
                {
                    float* xg = px + ((nint)image * g.OutChannels + group * cg) * n;
                    float* yg = py + ((nint)image * g.InChannels + group * mg) * g.InputSize;
                    float* target = direct ? yg : columns;
                    var b = StridedPanels.Right(xg, n, false);
                    if (packed is not null)
                        Gemm.Run(context, packed[group].Kernel, rows, n, cg, packed[group].Source, b, target, n, TileEpilogue.Raw);
                    else
                        Gemm.Run(context, GemmKernel.Best, rows, n, cg, StridedPanels.Left(pw + (nint)group * cg * rows, rows, true), b,
                            target, n, TileEpilogue.Raw);
                    if (direct) continue;
                    if (IsTiling(g.As2D()))
                    {
                        Interleave(g.As2D(), columns, mg, yg);
                    }
                    else
                    {
                        new Span<float>(yg, mg * g.InputSize).Clear();
                        Im2Col.Accumulate(g, columns, mg, yg);
                    }
                }
        }
        if (!epilogue.IsPlain)
            fixed (float* py = y)
                epilogue.Pin(py, new Finish(g, py));
    }

    /// <summary>The epilogue over every plane of Y, in place.</summary>
    private readonly struct Finish(ConvGeometry g, float* y) : IEpilogueUser
    {
        public void Run(in TileEpilogue epilogue)
        {
            for (int image = 0; image < g.Batch; image++)
                for (int channel = 0; channel < g.InChannels; channel++)
                {
                    float* plane = y + ((nint)image * g.InChannels + channel) * g.InputSize;
                    epilogue.ApplyRow(plane, plane, g.InputSize, channel, 0);
                }
        }
    }

    /// <summary>True when the kernel tiles the output exactly (kernel = stride, no dilation or padding, Y = X x stride):
    /// the usual learned 2x upsampling. Then every output element comes from exactly one GEMM entry.</summary>
    private static bool IsTiling(ConvGeometry g)
    {
        if (g.Rank != 2) return false;
        for (int d = 0; d < 2; d++)
            if (g.Kernel[d] != g.Strides[d] || g.Dilations[d] != 1 || g.PadsBegin[d] != 0 || g.Input[d] != g.Output[d] * g.Strides[d])
                return false;
        return true;
    }

    /// <summary>
    /// col2im for a tiling kernel: output row <c>ih * KH + kh</c> of channel c interleaves the KW column rows (c, kh, kw),
    /// element iw of row kw going to column <c>iw * KW + kw</c>; nothing overlaps, so nothing is accumulated.
    /// </summary>
    private static void Interleave(ConvGeometry g, float* columns, int channels, float* y)
    {
        int height = g.Output[0], width = g.Output[1], kernelH = g.Kernel[0], kernelW = g.Kernel[1];
        int outWidth = g.Input[1];
        long columnRow = (long)height * width;
        var low = Vector512.Create(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        var high = Vector512.Create(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        for (int c = 0; c < channels; c++)
            for (int kh = 0; kh < kernelH; kh++)
            {
                float* rows = columns + (c * kernelH + kh) * kernelW * columnRow;
                for (int ih = 0; ih < height; ih++)
                {
                    float* dst = y + ((long)c * g.InputSize) + (long)(ih * kernelH + kh) * outWidth;
                    float* src = rows + (long)ih * width;
                    int iw = 0;
                    if (kernelW == 2 && Avx512F.IsSupported && Vector512.IsHardwareAccelerated)
                    {
                        // Two rows woven together: a0 b0 a1 b1 ... sixteen pairs per two stores.
                        for (; iw + 16 <= width; iw += 16)
                        {
                            var a = Vector512.Load(src + iw);
                            var b = Vector512.Load(src + columnRow + iw);
                            Avx512F.PermuteVar16x32x2(a, low, b).Store(dst + 2 * iw);
                            Avx512F.PermuteVar16x32x2(a, high, b).Store(dst + 2 * iw + 16);
                        }
                    }
                    for (; iw < width; iw++)
                        for (int kw = 0; kw < kernelW; kw++)
                            dst[iw * kernelW + kw] = src[kw * columnRow + iw];
                }
            }
    }
}
