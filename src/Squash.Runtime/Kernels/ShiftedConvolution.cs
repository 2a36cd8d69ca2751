namespace Squash.Runtime.Kernels;

/// <summary>
/// A 2-D convolution as a GEMM whose right operand is read in place from zero-padded copies of input rows
/// (<see cref="ShiftedImage"/>), so that nothing is packed: im2col packing touches KH x KW / (SH x SW) floats per
/// input float and costs a third as much as the multiply itself when the layer has few output channels.
/// </summary>
/// <remarks>
/// <para>Outputs are numbered on a grid of WQ = OW + (KW - 1) * DW / SW columns per row. Input rows are copied into
/// planes split by column phase (even and odd columns for stride 2), so that tap (kh, kw) of channel c reads the
/// plane of phase (kw * DW) % SW at a constant offset from the output position: each depth row of B is a contiguous
/// run. With a row stride of 1 one plane per channel and phase serves every kernel row (a row further down for each
/// kh); otherwise each kernel row gets its own plane of the input rows it reads.</para>
/// <para>The image is processed in bands of output rows: each band fills only the planes it reads, in a per-thread
/// buffer that stays in L2, multiplies, and copies its valid columns into Y. Neither a padded copy of the whole
/// image nor a padded output goes through main memory.</para>
/// </remarks>
internal static unsafe class ShiftedConvolution
{
    private static readonly KernelContext s_singleThread = new(1);

    [ThreadStatic] private static float[]? t_band;
    [ThreadStatic] private static float[]? t_grid;
    [ThreadStatic] private static int[]? t_offsets;

    /// <summary>True for 2-D convolutions other than pointwise ones whose grid wastes at most a fifth of the work.</summary>
    public static bool Applies(ConvGeometry g) =>
        g.Rank == 2 && !g.IsPointwise && 5 * GridWidth(g) <= 6 * g.Output[1];

    private static int GridWidth(ConvGeometry g) => g.Output[1] + (g.Kernel[1] - 1) * g.Dilations[1] / g.Strides[1];

    /// <summary>
    /// One group of one image: <c>y[M/G, OH*OW] = epilogue(weights x im2col(x))</c>, x being the group's
    /// [C/G, H, W] channels.
    /// </summary>
    public static void Run<TA>(KernelContext context, GemmKernel kernel, ConvGeometry g, TA weights, float* x, float* y,
        in TileEpilogue epilogue)
        where TA : struct, IPanelSource
    {
        int gridWidth = GridWidth(g), outHeight = g.Output[0];
        int strideH = g.Strides[0], phases = g.Strides[1], kernelH = g.Kernel[0], kernelW = g.Kernel[1];
        int dilationH = g.Dilations[0], dilationW = g.Dilations[1];
        // About 512 grid columns per band (a GEMM column slab); fewer rows when threads need more bands.
        int bandRows = Math.Clamp((512 + gridWidth - 1) / gridWidth, 1, outHeight);
        if (context.ThreadCount > 1)
            bandRows = Math.Max(1, Math.Min(bandRows, outHeight / (2 * context.ThreadCount)));
        int bands = (outHeight + bandRows - 1) / bandRows;
        bool sharedRows = strideH == 1;
        var layout = new Layout(bandRows, sharedRows ? bandRows + (kernelH - 1) * dilationH : bandRows, gridWidth,
            sharedRows ? phases : kernelH * phases);
        // Reused per calling thread (workers read it through a pointer while this call waits): no allocation per run.
        var offsets = t_offsets is { } reused && reused.Length >= g.GemmDepth ? reused : t_offsets = new int[g.GemmDepth];
        int p = 0;
        for (int c = 0; c < g.GroupInChannels; c++)
            for (int kh = 0; kh < kernelH; kh++)
                for (int kw = 0; kw < kernelW; kw++)
                {
                    int phase = kw * dilationW % phases, shift = kw * dilationW / phases;
                    long plane = sharedRows ? (long)c * phases + phase : ((long)c * kernelH + kh) * phases + phase;
                    long row = sharedRows ? (long)kh * dilationH : 0;
                    offsets[p++] = checked((int)(plane * layout.PlaneFloats + row * gridWidth + shift));
                }
        fixed (int* pOffsets = offsets)
        {
            var body = new Band<TA>(kernel, g, weights, x, y, epilogue, pOffsets, layout);
            if (context.ThreadCount == 1) body.Invoke(0, bands);
            else context.For(bands, body);
        }
    }

    /// <summary>The band buffer: <paramref name="PlanesPerChannel"/> planes per input channel, each
    /// <paramref name="PlaneRows"/> rows of <paramref name="GridWidth"/> floats; <paramref name="BandRows"/> output rows per band.</summary>
    private readonly record struct Layout(int BandRows, int PlaneRows, int GridWidth, int PlanesPerChannel)
    {
        public long PlaneFloats => (long)PlaneRows * GridWidth;
    }

    private readonly struct Band<TA>(GemmKernel kernel, ConvGeometry g, TA weights, float* x, float* y, TileEpilogue epilogue,
        int* offsets, Layout layout) : IRangeBody
        where TA : struct, IPanelSource
    {
        public void Invoke(int start, int end)
        {
            int outHeight = g.Output[0], outWidth = g.Output[1], m = g.GroupOutChannels, gridWidth = layout.GridWidth;
            // The last tile of a band reads up to NR - 1 + (KW - 1) * DW / SW floats past the last plane, into columns
            // that are discarded; the slack keeps those reads inside the buffer.
            int slack = 64 + gridWidth;
            long bandFloats = g.GroupInChannels * layout.PlanesPerChannel * layout.PlaneFloats + slack;
            float* band = GemmScratch.Get(ref t_band, checked((int)bandFloats));
            float* grid = GemmScratch.Get(ref t_grid, checked(m * layout.BandRows * gridWidth));
            for (int index = start; index < end; index++)
            {
                int row0 = index * layout.BandRows, rows = Math.Min(layout.BandRows, outHeight - row0);
                Fill(band, row0, rows);
                int n = rows * gridWidth;
                // A residual lies in Y's layout, not the grid's: then the grid gets the sums and biases, and the rest
                // of the epilogue is applied on the way to Y.
                bool finishInY = epilogue.HasResidual;
                Gemm.Run<TA, ShiftedImage, ShiftedRows>(s_singleThread, kernel, m, n, g.GemmDepth, weights,
                    new ShiftedImage(band, offsets), grid, n, finishInY ? epilogue.Head : epilogue);
                var tail = epilogue.Tail;
                for (int channel = 0; channel < m; channel++)
                    for (int r = 0; r < rows; r++)
                    {
                        float* dst = y + ((long)channel * outHeight + row0 + r) * outWidth, src = grid + (long)channel * n + r * gridWidth;
                        if (finishInY) tail.ApplyRow(src, dst, outWidth, channel, 0);
                        else PanelCopy.Copy(dst, src, outWidth);
                    }
            }
        }

        /// <summary>The planes for output rows [row0, row0 + rows): element u of row t of the plane for (channel,
        /// kernel row, phase) is x[c, ih, phase + u * SW - PL], ih being the input row that output row row0 + t reads
        /// through that kernel row, or zero outside the image.</summary>
        private void Fill(float* band, int row0, int rows)
        {
            int height = g.Input[0], width = g.Input[1], padTop = g.PadsBegin[0], padLeft = g.PadsBegin[1];
            int strideH = g.Strides[0], strideW = g.Strides[1], gridWidth = layout.GridWidth;
            bool sharedRows = strideH == 1;
            int kernelRows = sharedRows ? 1 : g.Kernel[0];
            int planeRows = sharedRows ? rows + (g.Kernel[0] - 1) * g.Dilations[0] : rows;
            float* plane = band;
            for (int c = 0; c < g.GroupInChannels; c++)
                for (int kh = 0; kh < kernelRows; kh++)
                    for (int phase = 0; phase < strideW; phase++, plane += layout.PlaneFloats)
                    {
                        // Output columns u read input column phase + u * SW - PL: inside the row for u in [lo, hi).
                        int first = phase - padLeft;
                        int lo = first >= 0 ? 0 : Math.Min(gridWidth, (-first + strideW - 1) / strideW);
                        int hi = Math.Max(lo, Math.Min(gridWidth, (width - first + strideW - 1) / strideW));
                        for (int t = 0; t < planeRows; t++)
                        {
                            float* dst = plane + (long)t * gridWidth;
                            int ih = sharedRows ? row0 + t - padTop : (row0 + t) * strideH - padTop + kh * g.Dilations[0];
                            if ((uint)ih >= (uint)height)
                            {
                                PanelCopy.Zero(dst, gridWidth);
                                continue;
                            }
                            PanelCopy.Zero(dst, lo);
                            PanelCopy.Strided(dst + lo, x + ((long)c * height + ih) * width + first + lo * strideW, hi - lo, strideW);
                            PanelCopy.Zero(dst + hi, gridWidth - hi);
                        }
                    }
        }
    }
}
