namespace Squash.Runtime.Kernels;

/// <summary>
/// A stride-1 2-D convolution as a GEMM whose right operand is read in place from a zero-padded copy of the image
/// (<see cref="ShiftedImage"/>), so that nothing is packed: for a 3x3 kernel, im2col packing touches nine floats
/// per input float and costs a third as much as the multiply itself when the layer has few output channels.
/// Outputs are computed on the padded grid (OH x WP) into scratch, then the WP - OW extra columns per row are
/// dropped while copying into Y.
/// </summary>
internal static unsafe class ShiftedConvolution
{
    /// <summary>True when this method applies and wastes at most a fifth of its work on the padded grid's extra columns.</summary>
    public static bool Applies(ConvGeometry g) =>
        g.Rank == 2 && g.Strides[0] == 1 && g.Strides[1] == 1 && !g.IsPointwise
        && 5 * PaddedWidth(g) <= 6 * g.Output[1];

    /// <summary>Scratch floats per image and group: the padded image and its tail slack, the padded-grid output, and
    /// the offset of each depth row (an int each).</summary>
    public static long ScratchFloats(ConvGeometry g) =>
        (long)g.GroupInChannels * PaddedHeight(g) * PaddedWidth(g) + Slack(g)
        + (long)g.GroupOutChannels * g.Output[0] * PaddedWidth(g) + g.GemmDepth;

    /// <summary>The last tile of the grid reads up to NR - 1 + (KW - 1) * DW floats past the last padded plane
    /// (into columns that are discarded).</summary>
    private static int Slack(ConvGeometry g) => 64 + (g.Kernel[1] - 1) * g.Dilations[1];

    private static int PaddedWidth(ConvGeometry g) => g.Output[1] + (g.Kernel[1] - 1) * g.Dilations[1];

    private static int PaddedHeight(ConvGeometry g) => g.Output[0] + (g.Kernel[0] - 1) * g.Dilations[0];

    /// <summary>
    /// One group of one image: <c>y[M/G, OH*OW] = epilogue(weights x im2col(x))</c>, x being the group's
    /// [C/G, H, W] channels; <paramref name="scratch"/> holds <see cref="ScratchFloats"/> floats.
    /// </summary>
    public static void Run<TA>(KernelContext context, GemmKernel kernel, ConvGeometry g, TA weights, float* x, float* y,
        in TileEpilogue epilogue, float* scratch)
        where TA : struct, IPanelSource
    {
        int channels = g.GroupInChannels, height = g.Input[0], width = g.Input[1];
        int outHeight = g.Output[0], outWidth = g.Output[1];
        int paddedHeight = PaddedHeight(g), paddedWidth = PaddedWidth(g);
        int padTop = g.PadsBegin[0], padLeft = g.PadsBegin[1];
        long plane = (long)paddedHeight * paddedWidth;
        float* image = scratch;
        float* grid = image + channels * plane + Slack(g);
        int* offsets = (int*)(grid + (long)g.GroupOutChannels * outHeight * paddedWidth);

        // The padded image: row r, column q of a plane hold x[r - PT, q - PL], or zero outside the image.
        for (int c = 0; c < channels; c++)
            for (int r = 0; r < paddedHeight; r++)
            {
                float* dst = image + c * plane + (long)r * paddedWidth;
                int ih = r - padTop;
                if ((uint)ih >= (uint)height)
                {
                    new Span<float>(dst, paddedWidth).Clear();
                    continue;
                }
                int lo = Math.Clamp(padLeft, 0, paddedWidth), hi = Math.Clamp(padLeft + width, lo, paddedWidth);
                new Span<float>(dst, lo).Clear();
                PanelCopy.Copy(dst + lo, x + ((long)c * height + ih) * width + (lo - padLeft), hi - lo);
                new Span<float>(dst + hi, paddedWidth - hi).Clear();
            }
        new Span<float>(image + channels * plane, Slack(g)).Clear();

        int p = 0;
        for (int c = 0; c < channels; c++)
            for (int kh = 0; kh < g.Kernel[0]; kh++)
                for (int kw = 0; kw < g.Kernel[1]; kw++)
                    offsets[p++] = checked((int)(c * plane + (long)kh * g.Dilations[0] * paddedWidth + kw * g.Dilations[1]));

        int m = g.GroupOutChannels, n = outHeight * paddedWidth;
        Gemm.Run<TA, ShiftedImage, ShiftedRows>(context, kernel, m, n, g.GemmDepth, weights, new ShiftedImage(image, offsets), grid, n, epilogue);

        for (int row = 0; row < m * outHeight; row++)
            PanelCopy.Copy(y + (long)row * outWidth, grid + (long)row * paddedWidth, outWidth);
    }
}
