using ILGPU;

namespace Squash.Runtime.Gpu.Kernels;

/// <summary>The geometry of a packed int4 weight (<c>Squash.Runtime.Kernels.Int4Layout</c>) as a kernel argument.</summary>
/// <param name="K">Input features (the reduction axis).</param>
/// <param name="N">Output features.</param>
/// <param name="Blocks">Blocks per column along K.</param>
/// <param name="BlockBytes">Bytes per (column, block): half the block size.</param>
/// <param name="HasBias">Whether the bias view holds N values.</param>
internal readonly record struct Int4Dims(int K, int N, int Blocks, int BlockBytes, int HasBias);

/// <summary>The arguments of <see cref="Int4Kernels.MatMulNBitsRows"/>.</summary>
/// <param name="Dims">The weight's geometry.</param>
/// <param name="Threads">Threads per group: a power of two, at least 4.</param>
/// <param name="Rows">Groups of work: rows of A times groups of four columns.</param>
internal readonly record struct Int4RowParams(Int4Dims Dims, int Threads, int Rows);

/// <summary>int4 weights with the dequantization fused into the product: the packed bytes are read as they are stored
/// and each code becomes (q - zero point) inside the dot product, so no fp32 copy of the weight exists on the device.</summary>
internal static class Int4Kernels
{
    /// <summary>Y[m, n] = sum over K of A[m, k] W[k, n] + bias[n], one thread per output. Per block, the codes minus
    /// the zero point are summed against A in fp32 and the sum is scaled once (the scale is common to the block).
    /// Columns are interleaved in groups of four, so threads n..n+3 read four adjacent blocks.</summary>
    /// <param name="index">The thread.</param>
    /// <param name="r">Outputs (M x N) and the grid stride.</param>
    /// <param name="a">A, [M, K].</param>
    /// <param name="data">Packed codes: [groups, blocks, 4, block_size / 2], element j low, j + block_size / 2 high, read
    /// as little-endian words (a block's 16 to 128 bytes are whole words).</param>
    /// <param name="scaleZero">Per (padded column, block), in the packed order: the scale, then the zero point, as
    /// floats (converted once on the host from float16 and nibbles).</param>
    /// <param name="bias">N values when <see cref="Int4Dims.HasBias"/> is 1.</param>
    /// <param name="y">Y, [M, N].</param>
    /// <param name="d">The geometry.</param>
    public static void MatMulNBits(Index1D index, Range1D r, ArrayView<float> a, ArrayView<uint> data, ArrayView<float> scaleZero,
        ArrayView<float> bias, ArrayView<float> y, Int4Dims d)
    {
        for (int i = index; i < r.Count; i += r.Stride)
        {
            int m = i / d.N, n = i - m * d.N;
            int row = m * d.K;
            float acc = 0f;
            for (int b = 0; b < d.Blocks; b++)
            {
                int s = ((n >> 2) * d.Blocks + b) * 4 + (n & 3);
                acc += BlockDot(a, row, data, s, b, d, scaleZero[2 * s + 1]) * scaleZero[2 * s];
            }
            y[i] = d.HasBias != 0 ? acc + bias[n] : acc;
        }
    }

    /// <summary>
    /// Y = A W + bias for a few rows of A (a decode step: M is 1), one group per (row m, group of four columns): thread
    /// t takes the (block b, column c) pairs j = t, t + T, ... with b = j / 4 and c = j % 4 (T a multiple of four, so a
    /// thread keeps one column). The four columns' blocks are adjacent in the packed layout, so a warp reads eight
    /// blocks' bytes, 512 contiguous bytes, where the one-thread-per-output kernel had each thread walk its own column
    /// (5,632 threads for a decode step's 2048 x 5632: a GPU mostly idle, at 14 GB/s). The partial sums meet in shared
    /// memory by a tree over T / 4 steps that keeps each column apart (pairs t, t + s with s a multiple of four).
    /// </summary>
    public static void MatMulNBitsRows(ArrayView<float> a, ArrayView<uint> data, ArrayView<float> scaleZero, ArrayView<float> bias,
        ArrayView<float> y, Int4RowParams p)
    {
        var shared = SharedMemory.GetDynamic<float>();
        var d = p.Dims;
        int groups = (d.N + 3) / 4;
        int t = Group.IdxX, c = t & 3;
        for (int row = Grid.IdxX; row < p.Rows; row += Grid.DimX)
        {
            int m = row / groups, g = row - m * groups;
            int arow = m * d.K;
            float acc = 0f;
            for (int j = t; j < d.Blocks * 4; j += p.Threads)
            {
                int b = j >> 2;
                int s = (g * d.Blocks + b) * 4 + c;
                acc += BlockDot(a, arow, data, s, b, d, scaleZero[2 * s + 1]) * scaleZero[2 * s];
            }
            shared[t] = acc;
            Group.Barrier();
            for (int step = p.Threads / 2; step >= 4; step >>= 1)
            {
                if (t < step) shared[t] += shared[t + step];
                Group.Barrier();
            }
            int n = 4 * g + t;
            if (t < 4 && n < d.N) y[m * d.N + n] = d.HasBias != 0 ? shared[t] + bias[n] : shared[t];
            Group.Barrier();
        }
    }

    /// <summary>Sum over block <paramref name="b"/> of A's row (from <paramref name="arow"/>) times (code - zero point) for
    /// the packed (column, block) <paramref name="s"/>, unscaled. A whole block reads a word (four bytes: elements e..e+3
    /// low, e+h..e+h+3 high) at a time; in the last, partial block the codes past K equal the zero point, but A has no
    /// element there.</summary>
    private static float BlockDot(ArrayView<float> a, int arow, ArrayView<uint> data, int s, int b, Int4Dims d, float zero)
    {
        int k0 = b * 2 * d.BlockBytes;
        int words = s * (d.BlockBytes >> 2);
        float sum = 0f;
        if (k0 + 2 * d.BlockBytes <= d.K)
        {
            for (int w = 0; w < d.BlockBytes >> 2; w++)
            {
                uint q = data[words + w];
                int lo = arow + k0 + 4 * w, hi = lo + d.BlockBytes;
                sum += a[lo] * ((int)(q & 15) - zero) + a[hi] * ((int)((q >> 4) & 15) - zero)
                    + a[lo + 1] * ((int)((q >> 8) & 15) - zero) + a[hi + 1] * ((int)((q >> 12) & 15) - zero)
                    + a[lo + 2] * ((int)((q >> 16) & 15) - zero) + a[hi + 2] * ((int)((q >> 20) & 15) - zero)
                    + a[lo + 3] * ((int)((q >> 24) & 15) - zero) + a[hi + 3] * ((int)(q >> 28) - zero);
            }
            return sum;
        }
        for (int e = 0; e < d.BlockBytes; e++)
        {
            int q = (int)((data[words + (e >> 2)] >> (8 * (e & 3))) & 255);
            int lo = k0 + e, hi = lo + d.BlockBytes;
            if (lo < d.K) sum += a[arow + lo] * ((q & 15) - zero);
            if (hi < d.K) sum += a[arow + hi] * ((q >> 4) - zero);
        }
        return sum;
    }

    /// <summary>Embedding lookup in a packed table: Y[j, k] = W[k, indices[j]] = (q - zero point) * scale, one thread
    /// per output element (the CPU's formula, rounded once in fp32, so the results are equal). Negative indices count
    /// from the end; out-of-range ones are clamped (the device cannot throw; the CPU operator reports them).</summary>
    public static void GatherNBits<TIndex>(Index1D index, Range1D r, ArrayView<byte> data, ArrayView<float> scaleZero, ArrayView<float> y,
        TIndex indices, Int4Dims d) where TIndex : struct, IIndices
    {
        int blockSize = 2 * d.BlockBytes;
        for (int i = index; i < r.Count; i += r.Stride)
        {
            int j = i / d.K, k = i - j * d.K;
            long idx = indices.Get(j);
            if (idx < 0) idx += d.N;
            int n = (int)(idx < 0 ? 0 : idx >= d.N ? d.N - 1 : idx);
            int b = k / blockSize, e = k - b * blockSize;
            int s = ((n >> 2) * d.Blocks + b) * 4 + (n & 3);
            int q = data[s * d.BlockBytes + (e < d.BlockBytes ? e : e - d.BlockBytes)];
            q = e < d.BlockBytes ? q & 15 : q >> 4;
            y[i] = (q - scaleZero[2 * s + 1]) * scaleZero[2 * s];
        }
    }
}
