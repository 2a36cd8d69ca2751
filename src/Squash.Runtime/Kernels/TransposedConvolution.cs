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
    /// Each output element is complete only after col2im, so the epilogue is one pass over Y at the end (for a tiling
    /// kernel, over each output row as it is woven).
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
        if (!direct && IsTiling(g.As2D()))
        {
            RunTiling(context, g.As2D(), x, w, packed, y, epilogue);
            return;
        }
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
                    new Span<float>(yg, mg * g.InputSize).Clear();
                    Im2Col.Accumulate(g, columns, mg, yg);
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

    /// <summary>Input rows per block of a tiling transposed convolution: the block's GEMM result (taps x channels rows)
    /// stays within this many floats, half of a 1 MiB L2, so that weaving it into Y reads it from L2, not memory.</summary>
    private const int BlockFloats = 1 << 17;

    /// <summary>
    /// A tiling transposed convolution (<see cref="IsTiling"/>) block by block of X's rows: the GEMM of a block into a
    /// buffer that stays in L2, then its rows woven into Y with the epilogue applied as each output row is written,
    /// so Y is written once and the scratch is 0.5 MB, not the whole GEMM result (5.5 MB for det's 2x upsampling of 24
    /// channels at 120x120; measured no faster: the GEMM and the weave themselves dominate).
    /// </summary>
    private static void RunTiling(KernelContext context, ConvGeometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> w,
        PackedMatrix[]? packed, Span<float> y, in GemmEpilogue epilogue)
    {
        int rows = g.GemmDepth, height = g.Output[0], width = g.Output[1];
        int blockRows = Math.Clamp(BlockFloats / Math.Max(1, rows * width), 1, height);
        byte[] scratch = context.Scratch(checked(rows * blockRows * width * sizeof(float)));
        fixed (float* px = x)
        fixed (float* pw = w)
        fixed (float* py = y)
        fixed (byte* columnBytes = scratch)
        {
            var tiling = new Tiling(context, g, px, pw, packed, py, (float*)columnBytes, blockRows, !epilogue.IsPlain);
            if (epilogue.IsPlain) tiling.Run(TileEpilogue.Raw);
            else epilogue.Pin(py, tiling);
        }
    }

    /// <summary>The blocks of <see cref="RunTiling"/>, with the epilogue pinned.</summary>
    private readonly struct Tiling(KernelContext context, ConvGeometry g, float* x, float* w, PackedMatrix[]? packed, float* y,
        float* columns, int blockRows, bool finish) : IEpilogueUser
    {
        public void Run(in TileEpilogue epilogue)
        {
            int mg = g.GroupInChannels, cg = g.GroupOutChannels, rows = g.GemmDepth, n = g.OutputSize;
            int height = g.Output[0], width = g.Output[1];
            for (int image = 0; image < g.Batch; image++)
                for (int group = 0; group < g.Groups; group++)
                {
                    float* xg = x + ((nint)image * g.OutChannels + group * cg) * n;
                    float* yg = y + ((nint)image * g.InChannels + group * mg) * g.InputSize;
                    for (int ih = 0; ih < height; ih += blockRows)
                    {
                        int count = Math.Min(blockRows, height - ih), block = count * width;
                        var b = StridedPanels.Right(xg + (nint)ih * width, n, false);
                        if (packed is not null)
                            Gemm.Run(context, packed[group].Kernel, rows, block, cg, packed[group].Source, b, columns, block, TileEpilogue.Raw);
                        else
                            Gemm.Run(context, GemmKernel.Best, rows, block, cg, StridedPanels.Left(w + (nint)group * cg * rows, rows, true), b,
                                columns, block, TileEpilogue.Raw);
                        Interleave(g, columns, block, ih, count, mg, yg, group * mg, finish, epilogue);
                    }
                }
        }
    }

    /// <summary>
    /// col2im for a tiling kernel, X rows [<paramref name="firstRow"/>, + <paramref name="rowCount"/>) of a block whose
    /// GEMM rows (c, kh, kw) are <paramref name="ld"/> apart: output row <c>ih * KH + kh</c> of channel c interleaves the
    /// KW column rows (c, kh, kw), element iw of row kw going to column <c>iw * KW + kw</c>; nothing overlaps, so nothing
    /// is accumulated, and each output row is final once written: the epilogue (when <paramref name="finish"/>)
    /// applies to it then, while it is in L1.
    /// </summary>
    private static void Interleave(ConvGeometry g, float* columns, int ld, int firstRow, int rowCount, int channels, float* y,
        int firstChannel, bool finish, in TileEpilogue epilogue)
    {
        int width = g.Output[1], kernelH = g.Kernel[0], kernelW = g.Kernel[1];
        int outWidth = g.Input[1];
        float** sources = stackalloc float*[kernelW];
        for (int c = 0; c < channels; c++)
            for (int kh = 0; kh < kernelH; kh++)
            {
                float* rows = columns + (nint)(c * kernelH + kh) * kernelW * ld;
                for (int r = 0; r < rowCount; r++)
                {
                    int outRow = (firstRow + r) * kernelH + kh;
                    float* dst = y + (nint)c * g.InputSize + (nint)outRow * outWidth;
                    for (int kw = 0; kw < kernelW; kw++) sources[kw] = rows + (nint)kw * ld + (nint)r * width;
                    RowInterleave.Rows(sources, kernelW, width, dst);
                    if (finish) epilogue.ApplyRow(dst, dst, outWidth, firstChannel + c, outRow * outWidth);
                }
            }
    }
}
