namespace Squash.Runtime.Kernels;

/// <summary>
/// The explicit im2col matrix of a convolution of any rank, and its adjoint col2im. Rows are (channel, kernel tap),
/// columns output positions: <c>col[c * taps + k, o] = x[c, o * stride - pad + k * dilation]</c>. 2-D convolutions
/// pack this matrix implicitly (<see cref="Im2ColPanels"/>); these loops serve other ranks and the transposed
/// convolution, which scatters a GEMM result back onto the image.
/// </summary>
internal static unsafe class Im2Col
{
    /// <summary>Fills <paramref name="col"/> [channels * taps, outputSize] from <paramref name="x"/> [channels, inputSize].</summary>
    public static void Expand(ConvGeometry g, float* x, int channels, float* col) =>
        Walk<ExpandRow>(g, x, channels, col);

    /// <summary>Adds <paramref name="col"/> [channels * taps, outputSize] onto <paramref name="x"/> [channels, inputSize]
    /// (the adjoint of <see cref="Expand"/>: every column entry goes back to the input element it was read from).</summary>
    public static void Accumulate(ConvGeometry g, float* col, int channels, float* x) =>
        Walk<AccumulateRow>(g, x, channels, col);

    private interface IRowAction
    {
        /// <summary>Moves one output row (the last spatial axis) between the image row and the column row;
        /// <paramref name="image"/> is null where the row lies in the padding.</summary>
        static abstract void Row(float* image, float* col, int count, int start, int stride, int limit);
    }

    private struct ExpandRow : IRowAction
    {
        public static void Row(float* image, float* col, int count, int start, int stride, int limit)
        {
            for (int t = 0, i = start; t < count; t++, i += stride)
                col[t] = image != null && (uint)i < (uint)limit ? image[i] : 0;
        }
    }

    private struct AccumulateRow : IRowAction
    {
        public static void Row(float* image, float* col, int count, int start, int stride, int limit)
        {
            if (image == null) return;
            for (int t = 0, i = start; t < count; t++, i += stride)
                if ((uint)i < (uint)limit) image[i] += col[t];
        }
    }

    private static void Walk<TAction>(ConvGeometry g, float* x, int channels, float* col) where TAction : struct, IRowAction
    {
        int rank = g.Rank, last = rank - 1;
        int rowLength = g.Output[last], rows = g.OutputSize / Math.Max(1, rowLength);
        Span<int> tap = stackalloc int[rank];
        Span<int> position = stackalloc int[rank];
        Span<int> inputStride = stackalloc int[rank];
        for (int d = rank - 1, s = 1; d >= 0; d--)
        {
            inputStride[d] = s;
            s *= g.Input[d];
        }
        float* colRow = col;
        for (int c = 0; c < channels; c++)
        {
            float* plane = x + (nint)c * g.InputSize;
            for (int k = 0; k < g.KernelSize; k++)
            {
                Decompose(k, g.Kernel, tap);
                int offset = tap[last] * g.Dilations[last] - g.PadsBegin[last];
                for (int r = 0; r < rows; r++, colRow += rowLength)
                {
                    // The output row's position on the outer axes decides which input row it reads, if any.
                    Decompose(r, g.Output.AsSpan(0, last), position);
                    float* imageRow = plane;
                    for (int d = 0; d < last && imageRow != null; d++)
                    {
                        int i = position[d] * g.Strides[d] - g.PadsBegin[d] + tap[d] * g.Dilations[d];
                        imageRow = (uint)i < (uint)g.Input[d] ? imageRow + (nint)i * inputStride[d] : null;
                    }
                    TAction.Row(imageRow, colRow, rowLength, offset, g.Strides[last], g.Input[last]);
                }
            }
        }
    }

    /// <summary>Row-major multi-index of <paramref name="index"/> in <paramref name="dims"/>.</summary>
    private static void Decompose(int index, ReadOnlySpan<int> dims, Span<int> result)
    {
        for (int d = dims.Length - 1; d >= 0; d--)
        {
            result[d] = index % dims[d];
            index /= dims[d];
        }
    }
}
