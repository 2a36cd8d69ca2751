namespace Squash.Runtime.Kernels;

/// <summary>
/// Convolution of any rank as GEMMs, one per batch image and group: <c>Y_g[M/G, outputSize] = W_g[M/G, C/G * taps] x
/// im2col(X_g)</c>, with the bias and activation fused into the GEMM's store. The im2col operand is the input itself
/// for pointwise (1x1) convolutions, is read in place from a padded copy of the image for stride-1 2-D ones
/// (<see cref="ShiftedConvolution"/>), is packed straight from the image for other 2-D ones (<see cref="Im2ColPanels"/>),
/// and is expanded into scratch otherwise. Depthwise 2-D convolutions run a direct kernel (<see cref="DepthwiseConv"/>).
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

    /// <summary>True when a convolution multiplies by the weights as GEMM operands (so packing them pays off).</summary>
    public static bool UsesGemm(ConvGeometry g) => !(g.As2D().Rank == 2 && g.IsDepthwise);

    /// <summary>
    /// <c>y = activation(conv(x, w) + bias)</c>. <paramref name="w"/> is [M, C/G, kernel...]; <paramref name="packed"/>
    /// is its <see cref="PackWeights"/> or null; <paramref name="bias"/> is [M] or empty.
    /// </summary>
    public static void Run(KernelContext context, ConvGeometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> w,
        PackedMatrix[]? packed, ReadOnlySpan<float> bias, Span<float> y, GemmActivation activation) =>
        Run(context, g, x, w, packed, y, new GemmEpilogue { RowBias = bias, Activation = activation });

    /// <summary>
    /// <c>y = epilogue(conv(x, w))</c>, the epilogue's rows being output channels: its row bias is the convolution's
    /// bias [M], its row scale and shift are [M], and its residual is shaped like <paramref name="y"/>. Alpha is 1,
    /// beta 0, and the column members are empty.
    /// </summary>
    public static void Run(KernelContext context, ConvGeometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> w,
        PackedMatrix[]? packed, Span<float> y, in GemmEpilogue epilogue)
    {
        if (!epilogue.Residual.IsEmpty && epilogue.Residual.Length != y.Length)
            throw new ArgumentException("The residual must be shaped like the output.", nameof(epilogue));
        fixed (float* px = x)
        fixed (float* pw = w)
        fixed (float* py = y)
            epilogue.Pin(py, new Call(context, g, px, pw, packed, py));
    }

    private readonly struct Call(KernelContext context, ConvGeometry g, float* x, float* w, PackedMatrix[]? packed, float* y) : IEpilogueUser
    {
        public void Run(in TileEpilogue epilogue)
        {
            var plane = g.As2D();
            if (plane.Rank == 2 && plane.IsDepthwise)
            {
                DepthwiseConv.Run(context, plane, x, w, y, epilogue);
                return;
            }
            long scratchFloats = !plane.IsPointwise && plane.Rank != 2 ? (long)g.GemmDepth * g.OutputSize : 0;
            byte[] scratch = scratchFloats == 0 ? [] : context.Scratch(checked((int)(scratchFloats * sizeof(float))));
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
                        if (packed is not null)
                            Multiply(context, packed[group].Kernel, plane, packed[group].Source, xg, yg, groupEpilogue, (float*)columns);
                        else
                            Multiply(context, GemmKernel.Best, plane, StridedPanels.Left(w + (nint)group * mg * g.GemmDepth, g.GemmDepth, false),
                                xg, yg, groupEpilogue, (float*)columns);
                    }
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
