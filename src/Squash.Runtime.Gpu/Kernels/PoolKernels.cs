using ILGPU;

namespace Squash.Runtime.Gpu.Kernels;

/// <summary>Geometry of a 2-D pooling window over NCHW planes.</summary>
internal struct PoolParams
{
    public int H, W, OutH, OutW, KH, KW, StrideH, StrideW, PadH, PadW, DilationH, DilationW, PadEndH, PadEndW, CountIncludePad;
}

/// <summary>MaxPool and AveragePool: one thread per output, looping over its window.</summary>
internal static class PoolKernels
{
    public static void Max(Index1D index, Range1D r, ArrayView<float> x, ArrayView<float> y, PoolParams p)
    {
        for (int i = index; i < r.Count; i += r.Stride)
        {
            int ox = i % p.OutW;
            int t = i / p.OutW;
            int oy = t % p.OutH;
            int plane = t / p.OutH;
            int xBase = plane * p.H * p.W;
            float m = float.NegativeInfinity;
            for (int ky = 0; ky < p.KH; ky++)
            {
                int iy = oy * p.StrideH - p.PadH + ky * p.DilationH;
                if ((uint)iy >= (uint)p.H) continue;
                for (int kx = 0; kx < p.KW; kx++)
                {
                    int ix = ox * p.StrideW - p.PadW + kx * p.DilationW;
                    if ((uint)ix >= (uint)p.W) continue;
                    float v = x[xBase + iy * p.W + ix];
                    // NaN propagates, as on the CPU.
                    m = v > m || float.IsNaN(v) ? v : m;
                }
            }
            y[i] = m;
        }
    }

    /// <summary>MaxPool of uint8 or int8 (<paramref name="signed"/> 1) bytes, as in an int8 model (max commutes with
    /// the monotonic quantization, so it needs no parameters): the type's lowest value where no tap is inside.</summary>
    public static void MaxBytes(Index1D index, Range1D r, ArrayView<byte> x, ArrayView<byte> y, PoolParams p, int signed)
    {
        // Flipping the sign bit maps int8 order onto uint8 order; the maximum is taken there and flipped back.
        int flip = signed != 0 ? 0x80 : 0;
        for (int i = index; i < r.Count; i += r.Stride)
        {
            int ox = i % p.OutW;
            int t = i / p.OutW;
            int oy = t % p.OutH;
            int plane = t / p.OutH;
            int xBase = plane * p.H * p.W;
            int m = 0;
            for (int ky = 0; ky < p.KH; ky++)
            {
                int iy = oy * p.StrideH - p.PadH + ky * p.DilationH;
                if ((uint)iy >= (uint)p.H) continue;
                for (int kx = 0; kx < p.KW; kx++)
                {
                    int ix = ox * p.StrideW - p.PadW + kx * p.DilationW;
                    if ((uint)ix < (uint)p.W) m = Math.Max(m, x[xBase + iy * p.W + ix] ^ flip);
                }
            }
            y[i] = (byte)(m ^ flip);
        }
    }

    /// <summary>Average over the taps inside the input, divided by their number, or with count_include_pad by the
    /// taps inside the padded input (not the overhang ceil_mode adds), as the CPU kernel and ONNX Runtime do.</summary>
    public static void Average(Index1D index, Range1D r, ArrayView<float> x, ArrayView<float> y, PoolParams p)
    {
        for (int i = index; i < r.Count; i += r.Stride)
        {
            int ox = i % p.OutW;
            int t = i / p.OutW;
            int oy = t % p.OutH;
            int plane = t / p.OutH;
            int xBase = plane * p.H * p.W;
            float sum = 0;
            int rows = 0, cols = 0, padRows = 0, padCols = 0;
            for (int ky = 0; ky < p.KH; ky++)
            {
                int iy = oy * p.StrideH - p.PadH + ky * p.DilationH;
                if (iy < p.H + p.PadEndH) padRows++;
                if ((uint)iy >= (uint)p.H) continue;
                rows++;
                for (int kx = 0; kx < p.KW; kx++)
                {
                    int ix = ox * p.StrideW - p.PadW + kx * p.DilationW;
                    if ((uint)ix < (uint)p.W) sum += x[xBase + iy * p.W + ix];
                }
            }
            for (int kx = 0; kx < p.KW; kx++)
            {
                int ix = ox * p.StrideW - p.PadW + kx * p.DilationW;
                if (ix < p.W + p.PadEndW) padCols++;
                if ((uint)ix < (uint)p.W) cols++;
            }
            int divisor = p.CountIncludePad != 0 ? padRows * padCols : rows * cols;
            y[i] = sum / divisor;
        }
    }
}
