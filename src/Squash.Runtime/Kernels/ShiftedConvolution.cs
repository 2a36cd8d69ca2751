namespace Squash.Runtime.Kernels;

/// <summary>
/// A stride-1 2-D convolution as a GEMM whose right operand is read in place from a zero-padded copy of the image
/// (<see cref="ShiftedImage"/>), so that nothing is packed: for a 3x3 kernel, im2col packing touches nine floats
/// per input float and costs a third as much as the multiply itself when the layer has few output channels.
/// </summary>
/// <remarks>
/// Outputs are computed on the padded grid, WP = OW + (KW - 1) * DW columns per row, where tap (kh, kw) of channel c
/// is a constant offset from the output position. The image is processed in bands of output rows: each band pads
/// only the input rows it reads into a per-thread buffer that stays in L2, multiplies, and copies its valid columns
/// into Y. Neither a padded copy of the whole image nor a padded output ever goes through main memory, which for
/// large images would cost as much as a third of the multiply.
/// </remarks>
internal static unsafe class ShiftedConvolution
{
    private static readonly KernelContext s_singleThread = new(1);

    [ThreadStatic] private static float[]? t_band;
    [ThreadStatic] private static float[]? t_grid;

    /// <summary>True when this method applies and wastes at most a fifth of its work on the padded grid's extra columns.</summary>
    public static bool Applies(ConvGeometry g) =>
        g.Rank == 2 && g.Strides[0] == 1 && g.Strides[1] == 1 && !g.IsPointwise
        && 5 * PaddedWidth(g) <= 6 * g.Output[1];

    private static int PaddedWidth(ConvGeometry g) => g.Output[1] + (g.Kernel[1] - 1) * g.Dilations[1];

    /// <summary>
    /// One group of one image: <c>y[M/G, OH*OW] = epilogue(weights x im2col(x))</c>, x being the group's
    /// [C/G, H, W] channels.
    /// </summary>
    public static void Run<TA>(KernelContext context, GemmKernel kernel, ConvGeometry g, TA weights, float* x, float* y,
        in TileEpilogue epilogue)
        where TA : struct, IPanelSource
    {
        int paddedWidth = PaddedWidth(g), outHeight = g.Output[0];
        // About 512 grid columns per band: a GEMM column slab; fewer rows when threads need more bands.
        int bandRows = Math.Clamp((512 + paddedWidth - 1) / paddedWidth, 1, outHeight);
        if (context.ThreadCount > 1)
            bandRows = Math.Max(1, Math.Min(bandRows, outHeight / (2 * context.ThreadCount)));
        int bands = (outHeight + bandRows - 1) / bandRows;
        int planeRows = bandRows + (g.Kernel[0] - 1) * g.Dilations[0];
        var offsets = new int[g.GemmDepth];
        int p = 0;
        for (int c = 0; c < g.GroupInChannels; c++)
            for (int kh = 0; kh < g.Kernel[0]; kh++)
                for (int kw = 0; kw < g.Kernel[1]; kw++)
                    offsets[p++] = checked((c * planeRows + kh * g.Dilations[0]) * paddedWidth + kw * g.Dilations[1]);
        fixed (int* pOffsets = offsets)
        {
            var body = new Band<TA>(kernel, g, weights, x, y, epilogue, pOffsets, bandRows, planeRows, paddedWidth);
            if (context.ThreadCount == 1) body.Invoke(0, bands);
            else context.For(bands, body);
        }
    }

    private readonly struct Band<TA>(GemmKernel kernel, ConvGeometry g, TA weights, float* x, float* y, TileEpilogue epilogue,
        int* offsets, int bandRows, int planeRows, int paddedWidth) : IRangeBody
        where TA : struct, IPanelSource
    {
        public void Invoke(int start, int end)
        {
            int channels = g.GroupInChannels, outHeight = g.Output[0], outWidth = g.Output[1], m = g.GroupOutChannels;
            long plane = (long)planeRows * paddedWidth;
            // The last tile of a band reads up to NR - 1 + (KW - 1) * DW floats past the last plane, into columns
            // that are discarded; the slack keeps those reads inside the buffer.
            int slack = 64 + (g.Kernel[1] - 1) * g.Dilations[1];
            float* band = GemmScratch.Get(ref t_band, checked((int)(channels * plane + slack)));
            float* grid = GemmScratch.Get(ref t_grid, checked(m * bandRows * paddedWidth));
            for (int index = start; index < end; index++)
            {
                int row0 = index * bandRows, rows = Math.Min(bandRows, outHeight - row0);
                Pad(band, row0, rows + (g.Kernel[0] - 1) * g.Dilations[0], plane);
                int n = rows * paddedWidth;
                Gemm.Run<TA, ShiftedImage, ShiftedRows>(s_singleThread, kernel, m, n, g.GemmDepth, weights,
                    new ShiftedImage(band, offsets), grid, n, epilogue);
                for (int channel = 0; channel < m; channel++)
                    for (int r = 0; r < rows; r++)
                        PanelCopy.Copy(y + ((long)channel * outHeight + row0 + r) * outWidth, grid + (long)channel * n + r * paddedWidth, outWidth);
            }
        }

        /// <summary>Padded rows [row0, row0 + count) of every channel: column q of padded row r holds
        /// x[r - PT, q - PL], or zero outside the image.</summary>
        private void Pad(float* band, int row0, int count, long plane)
        {
            int height = g.Input[0], width = g.Input[1], padTop = g.PadsBegin[0], padLeft = g.PadsBegin[1];
            int lo = Math.Clamp(padLeft, 0, paddedWidth), hi = Math.Clamp(padLeft + width, lo, paddedWidth);
            for (int c = 0; c < g.GroupInChannels; c++)
                for (int r = 0; r < count; r++)
                {
                    float* dst = band + c * plane + (long)r * paddedWidth;
                    int ih = row0 + r - padTop;
                    if ((uint)ih >= (uint)height)
                    {
                        new Span<float>(dst, paddedWidth).Clear();
                        continue;
                    }
                    new Span<float>(dst, lo).Clear();
                    PanelCopy.Copy(dst + lo, x + ((long)c * height + ih) * width + (lo - padLeft), hi - lo);
                    new Span<float>(dst + hi, paddedWidth - hi).Clear();
                }
        }
    }
}
