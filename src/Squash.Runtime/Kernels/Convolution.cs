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
        PackedConvWeights? packed, ReadOnlySpan<float> bias, Span<float> y, GemmActivation activation)
    {
        var plane = g.As2D();
        fixed (float* px = x)
        fixed (float* pw = w)
        fixed (float* pb = bias)
        fixed (float* py = y)
        {
            float* biasPointer = bias.IsEmpty ? null : pb;
            if (plane.Rank == 2 && plane.IsDepthwise)
            {
                DepthwiseConv.Run(context, plane, px, pw, biasPointer, py, activation);
                return;
            }
            if (WinogradConv.Applies(plane))
            {
                var transformed = packed?.Winograd(plane) ?? WinogradConv.TransformWeights(plane, w);
                for (int image = 0; image < g.Batch; image++)
                    for (int group = 0; group < g.Groups; group++)
                        WinogradConv.Run(context, plane, px + ((nint)image * g.InChannels + group * g.GroupInChannels) * g.InputSize,
                            transformed, group * 36, biasPointer == null ? null : biasPointer + group * g.GroupOutChannels,
                            py + ((nint)image * g.OutChannels + group * g.GroupOutChannels) * g.OutputSize, activation);
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
                        float* xg = px + ((nint)image * g.InChannels + group * cg) * g.InputSize;
                        float* yg = py + ((nint)image * g.OutChannels + group * mg) * g.OutputSize;
                        var epilogue = new TileEpilogue(1, 0, biasPointer == null ? null : biasPointer + group * mg, null, activation);
                        if (gemmWeights is not null)
                            Multiply(context, gemmWeights[group].Kernel, plane, gemmWeights[group].Source, xg, yg, epilogue, (float*)columns);
                        else
                            Multiply(context, GemmKernel.Best, plane, StridedPanels.Left(pw + (nint)group * mg * g.GemmDepth, g.GemmDepth, false),
                                xg, yg, epilogue, (float*)columns);
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
