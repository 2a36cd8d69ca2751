using System.Numerics.Tensors;

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
    /// channels, output = X's). <paramref name="w"/> is [C, M/G, kernel...]; <paramref name="bias"/> is [M] or empty.
    /// </summary>
    public static void Run(KernelContext context, ConvGeometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> w,
        PackedMatrix[]? packed, ReadOnlySpan<float> bias, Span<float> y)
    {
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
                    if (!direct)
                    {
                        new Span<float>(yg, mg * g.InputSize).Clear();
                        Im2Col.Accumulate(g, columns, mg, yg);
                    }
                }
        }
        if (!bias.IsEmpty)
            for (int image = 0; image < g.Batch; image++)
                for (int channel = 0; channel < g.InChannels; channel++)
                {
                    var plane = y.Slice((image * g.InChannels + channel) * g.InputSize, g.InputSize);
                    TensorPrimitives.Add(plane, bias[channel], plane);
                }
    }
}
