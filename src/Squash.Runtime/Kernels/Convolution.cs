namespace Squash.Runtime.Kernels;

/// <summary>
/// Convolution of any rank as GEMMs, one per batch image and group: <c>Y_g[M/G, outputSize] = W_g[M/G, C/G * taps] x
/// im2col(X_g)</c>, with the bias and activation fused into the GEMM's store. The im2col operand is the input itself
/// for pointwise (1x1) convolutions, is read in place from padded copies of input rows for 2-D ones
/// (<see cref="ShiftedConvolution"/>), is packed straight from the image for 2-D ones whose padded rows would waste
/// too much (<see cref="Im2ColPanels"/>), and is expanded into scratch for other ranks. Depthwise 2-D convolutions run a direct kernel (<see cref="DepthwiseConv"/>),
/// and 3x3 stride-1 ones with enough channels Winograd's F(4x4, 3x3) (<see cref="WinogradConv"/>).
/// </summary>
internal static unsafe class Convolution
{
    /// <summary>The packed weights of a convolution: one left operand [M/G, C/G * taps] per group.</summary>
    public static PackedMatrix[] PackWeights(ConvGeometry g, ReadOnlySpan<float> w)
    {
        int mg = g.GroupOutChannels, kg = g.GemmDepth;
        var packed = new PackedMatrix[g.Groups];
        for (int group = 0; group < g.Groups; group++)
            packed[group] = PackedMatrix.PackLeft(w.Slice(group * mg * kg, mg * kg), kg, false, mg, kg);
        return packed;
    }

    /// <summary>
    /// <c>y = activation(conv(x, w) + bias)</c>. <paramref name="w"/> is [M, C/G, kernel...]; <paramref name="packed"/>
    /// packs it once when it is constant (null: packed per call); <paramref name="bias"/> is [M] or empty.
    /// </summary>
    public static void Run(KernelContext context, ConvGeometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> w,
        PackedConvWeights? packed, ReadOnlySpan<float> bias, Span<float> y, GemmActivation activation) =>
        Run(context, g, x, w, packed, y, new GemmEpilogue { RowBias = bias, Activation = activation });

    /// <summary>
    /// <c>y = epilogue(conv(x, w))</c>, the epilogue's rows being output channels: its row bias is the convolution's
    /// bias [M], its row scale and shift are [M], and its residual is shaped like <paramref name="y"/>. Alpha is 1,
    /// beta 0, and the column members are empty.
    /// </summary>
    public static void Run(KernelContext context, ConvGeometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> w,
        PackedConvWeights? packed, Span<float> y, in GemmEpilogue epilogue)
    {
        if (!epilogue.Residual.IsEmpty && epilogue.Residual.Length != y.Length)
            throw new ArgumentException("The residual must be shaped like the output.", nameof(epilogue));
        fixed (float* px = x)
        fixed (float* pw = w)
        fixed (float* py = y)
            epilogue.Pin(py, new Call(context, g, px, pw, packed, py));
    }

    private readonly struct Call(KernelContext context, ConvGeometry g, float* x, float* w, PackedConvWeights? packed, float* y) : IEpilogueUser
    {
        public void Run(in TileEpilogue epilogue)
        {
            var plane = g.As2D();
            if (plane.Rank == 2 && plane.IsDepthwise)
            {
                DepthwiseConv.Run(context, plane, x, w, y, epilogue);
                return;
            }
            if (WinogradConv.Applies(plane))
            {
                RunWinograd(plane, epilogue);
                return;
            }
            long scratchFloats = !plane.IsPointwise && plane.Rank != 2 ? (long)g.GemmDepth * g.OutputSize : 0;
            byte[] scratch = scratchFloats == 0 ? [] : context.Scratch(checked((int)(scratchFloats * sizeof(float))));
            var gemmWeights = packed?.Gemm(g);
            fixed (byte* columns = scratch)
            {
                int mg = g.GroupOutChannels, cg = g.GroupInChannels;
                for (int image = 0; image < g.Batch; image++)
                    for (int group = 0; group < g.Groups; group++)
                    {
                        float* xg = x + ((nint)image * g.InChannels + group * cg) * g.InputSize;
                        float* yg = y + ((nint)image * g.OutChannels + group * mg) * g.OutputSize;
                        // The residual sits at the same distance from every output element, so only the rows move.
                        var groupEpilogue = epilogue.OffsetRows(group * mg);
                        if (gemmWeights is not null)
                            Multiply(context, gemmWeights[group].Kernel, plane, gemmWeights[group].Source, xg, yg, groupEpilogue, (float*)columns);
                        else
                            Multiply(context, GemmKernel.Best, plane, StridedPanels.Left(w + (nint)group * mg * g.GemmDepth, g.GemmDepth, false),
                                xg, yg, groupEpilogue, (float*)columns);
                    }
            }
        }

        /// <summary>
        /// Winograd's output transform adds the bias and activates; what follows the activation (residual, scale,
        /// shift) is one more pass over Y, cheaper than the GEMM path Winograd beats.
        /// </summary>
        private void RunWinograd(ConvGeometry plane, in TileEpilogue epilogue)
        {
            var transformed = packed?.Winograd(plane) ?? WinogradConv.TransformWeights(plane, new ReadOnlySpan<float>(w, checked((int)((long)g.OutChannels * g.GemmDepth))));
            // A residual comes before the activation, so with one the transform stores the raw biased sums; so it does
            // with a sigmoid, which the transform's registers do not hold (GemmActivation.InRegisters).
            bool activated = !epilogue.HasResidual && epilogue.Activation.InRegisters;
            var activation = activated ? epilogue.Activation : default;
            bool tail = epilogue.HasTail || !activated && epilogue.Activation.Kind != GemmActivationKind.None;
            int mg = g.GroupOutChannels;
            for (int image = 0; image < g.Batch; image++)
                for (int group = 0; group < g.Groups; group++)
                    WinogradConv.Run(context, plane, x + ((nint)image * g.InChannels + group * g.GroupInChannels) * g.InputSize,
                        transformed, group * 36, epilogue.RowBias == null ? null : epilogue.RowBias + group * mg,
                        y + ((nint)image * g.OutChannels + group * mg) * g.OutputSize, activation);
            if (!tail) return;
            var rest = activated ? epilogue.Tail.WithoutActivation : epilogue.Tail;
            int n = g.OutputSize;
            for (int image = 0; image < g.Batch; image++)
                for (int channel = 0; channel < g.OutChannels; channel++)
                {
                    float* row = y + ((nint)image * g.OutChannels + channel) * n;
                    rest.ApplyRow(row, row, n, channel, 0);
                }
        }
    }

    /// <summary>One group of one image, with the im2col operand chosen by the geometry.</summary>
    private static void Multiply<TA>(KernelContext context, GemmKernel kernel, ConvGeometry g, TA weights, float* x, float* y,
        in TileEpilogue epilogue, float* columns)
        where TA : struct, IPanelSource
    {
        int m = g.GroupOutChannels, n = g.OutputSize, k = g.GemmDepth;
        if (ShiftedConvolution.Applies(g))
        {
            ShiftedConvolution.Run(context, kernel, g, weights, x, y, epilogue);
        }
        else if (g.IsPointwise && n == 1 && k > 0)
        {
            // One pixel (a squeeze-and-excitation branch): a matrix times a vector.
            Gemv.Run(kernel, m, k, weights, x, y, n, epilogue);
        }
        else if (g.IsPointwise)
        {
            Gemm.Run(context, kernel, m, n, k, weights, StridedPanels.Right(x, g.InputSize, false), y, n, epilogue);
        }
        else if (g.Rank == 2)
        {
            Gemm.Run(context, kernel, m, n, k, weights, new Im2ColPanels(x, g), y, n, epilogue);
        }
        else
        {
            Im2Col.Expand(g, x, g.GroupInChannels, columns);
            Gemm.Run(context, kernel, m, n, k, weights, StridedPanels.Right(columns, n, false), y, n, epilogue);
        }
    }
}
