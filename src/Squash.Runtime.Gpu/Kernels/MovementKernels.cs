using ILGPU;

namespace Squash.Runtime.Gpu.Kernels;

/// <summary>Reads an index tensor of either integer type.</summary>
internal interface IIndices
{
    long Get(int j);
}

internal struct Int64Indices : IIndices
{
    public ArrayView<long> Values;
    public readonly long Get(int j) => Values[j];
}

internal struct Int32Indices : IIndices
{
    public ArrayView<int> Values;
    public readonly long Get(int j) => Values[j];
}

/// <summary>Strides of Where's three inputs over the output's dimensions.</summary>
internal struct WhereStrides
{
    public Strides6 Condition, X, Y;
}

/// <summary>Pad: the output's dimensions, the input's strides, and where each axis's source map starts in the table.</summary>
internal struct PadParams
{
    public Dims6 Output;
    public Strides6 Input;
    public Strides6 MapStart;
}

/// <summary>Sizes of a 2-D resize over the last two axes of (planes, H, W).</summary>
internal struct ResizeParams
{
    public int H, W, OutH, OutW;
}

/// <summary>Data movement, typed only by element size (T is byte, ushort, uint or ulong): every kernel is one thread
/// per output (or per input, for scatters) element.</summary>
internal static class MovementKernels
{
    /// <summary>y[i] = x[offset + strided(i)]: Transpose, Slice (strides times steps, offset at the starts), Expand
    /// (strides 0 along broadcast dimensions).</summary>
    public static void Gather<T>(Index1D index, Range1D r, ArrayView<T> x, ArrayView<T> y, Dims6 d, Strides6 s, int offset) where T : unmanaged
    {
        for (int i = index; i < r.Count; i += r.Stride)
            y[i] = x[offset + NdIndex.Offset(i, d, s)];
    }

    /// <summary>y[offset + strided(i)] = x[i]: one input of a Concat into its place in the output.</summary>
    public static void Scatter<T>(Index1D index, Range1D r, ArrayView<T> x, ArrayView<T> y, Dims6 d, Strides6 s, int offset) where T : unmanaged
    {
        for (int i = index; i < r.Count; i += r.Stride)
            y[offset + NdIndex.Offset(i, d, s)] = x[i];
    }

    /// <summary>out = condition ? x : y, all three broadcast to the output.</summary>
    public static void Where<T>(Index1D index, Range1D r, ArrayView<byte> condition, ArrayView<T> x, ArrayView<T> y, ArrayView<T> output, Dims6 d, WhereStrides s)
        where T : unmanaged
    {
        for (int i = index; i < r.Count; i += r.Stride)
            output[i] = condition[NdIndex.Offset(i, d, s.Condition)] != 0 ? x[NdIndex.Offset(i, d, s.X)] : y[NdIndex.Offset(i, d, s.Y)];
    }

    /// <summary>Pad: each output coordinate maps to an input coordinate through its axis's host-computed table (the
    /// mode: edge clamps, reflect mirrors, wrap repeats), or to -1 in constant mode's border, which gets the value.</summary>
    public static void Pad<T>(Index1D index, Range1D r, ArrayView<T> x, ArrayView<T> y, ArrayView<int> map, PadParams p, T value) where T : unmanaged
    {
        for (int i = index; i < r.Count; i += r.Stride)
        {
            int rest = i;
            int c5 = rest % p.Output.D5; rest /= p.Output.D5;
            int c4 = rest % p.Output.D4; rest /= p.Output.D4;
            int c3 = rest % p.Output.D3; rest /= p.Output.D3;
            int c2 = rest % p.Output.D2; rest /= p.Output.D2;
            int c1 = rest % p.Output.D1; rest /= p.Output.D1;
            int m0 = map[p.MapStart.S0 + rest], m1 = map[p.MapStart.S1 + c1], m2 = map[p.MapStart.S2 + c2];
            int m3 = map[p.MapStart.S3 + c3], m4 = map[p.MapStart.S4 + c4], m5 = map[p.MapStart.S5 + c5];
            bool inside = (m0 | m1 | m2 | m3 | m4 | m5) >= 0;
            y[i] = inside ? x[m0 * p.Input.S0 + m1 * p.Input.S1 + m2 * p.Input.S2 + m3 * p.Input.S3 + m4 * p.Input.S4 + m5 * p.Input.S5] : value;
        }
    }

    /// <summary>Gather along an axis: output (outer, j, inner) = x(outer, indices[j], inner); negative indices count
    /// from the end, out-of-range ones are clamped (the device cannot throw; the CPU operator reports them).</summary>
    public static void GatherAxis<T, TIndex>(Index1D index, Range1D r, ArrayView<T> x, ArrayView<T> y, TIndex indices, Dims6 p)
        where T : unmanaged
        where TIndex : struct, IIndices
    {
        for (int i = index; i < r.Count; i += r.Stride)
        {
            // p.D3 = axis length, p.D4 = number of indices, p.D5 = inner size.
            int inner = i % p.D5;
            int t = i / p.D5;
            int j = t % p.D4;
            int outer = t / p.D4;
            long idx = indices.Get(j);
            if (idx < 0) idx += p.D3;
            int k = (int)(idx < 0 ? 0 : idx >= p.D3 ? p.D3 - 1 : idx);
            y[i] = x[(outer * p.D3 + k) * p.D5 + inner];
        }
    }

    /// <summary>Nearest resize of the last two axes through per-axis source tables (rows, then columns).</summary>
    public static void ResizeNearest<T>(Index1D index, Range1D r, ArrayView<T> x, ArrayView<T> y, ArrayView<int> map, ResizeParams p) where T : unmanaged
    {
        for (int i = index; i < r.Count; i += r.Stride)
        {
            int ox = i % p.OutW;
            int t = i / p.OutW;
            int oy = t % p.OutH;
            int plane = t / p.OutH;
            y[i] = x[(plane * p.H + map[oy]) * p.W + map[p.OutH + ox]];
        }
    }

    /// <summary>Bilinear resize of the last two axes: two taps per axis from host-computed tables (indices
    /// h0, h1, w0, w1 and their weights).</summary>
    public static void ResizeLinear(Index1D index, Range1D r, ArrayView<float> x, ArrayView<float> y, ArrayView<int> taps, ArrayView<float> weight, ResizeParams p)
    {
        for (int i = index; i < r.Count; i += r.Stride)
        {
            int ox = i % p.OutW;
            int t = i / p.OutW;
            int oy = t % p.OutH;
            int plane = t / p.OutH;
            int rowA = (plane * p.H + taps[oy]) * p.W, rowB = (plane * p.H + taps[p.OutH + oy]) * p.W;
            int colA = taps[2 * p.OutH + ox], colB = taps[2 * p.OutH + p.OutW + ox];
            float wy0 = weight[oy], wy1 = weight[p.OutH + oy];
            float wx0 = weight[2 * p.OutH + ox], wx1 = weight[2 * p.OutH + p.OutW + ox];
            float top = x[rowA + colA] * wx0 + x[rowA + colB] * wx1;
            float bottom = x[rowB + colA] * wx0 + x[rowB + colB] * wx1;
            y[i] = top * wy0 + bottom * wy1;
        }
    }
}
