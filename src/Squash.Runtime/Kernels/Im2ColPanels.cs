using System.Runtime.CompilerServices;

namespace Squash.Runtime.Kernels;

/// <summary>
/// The im2col matrix of a 2-D convolution as a GEMM right operand, packed straight from the image: depth
/// <c>p = (c * KH + kh) * KW + kw</c>, column <c>j = oh * OW + ow</c>, value <c>X[c, oh*SH - PT + kh*DH, ow*SW - PL + kw*DW]</c>
/// or 0 in the padding. Nothing of size K x N is ever materialized (for a 3x3 convolution that would be nine copies
/// of the image); only one KC x NC slab at a time, which stays in cache for the micro-kernel.
/// </summary>
internal readonly unsafe struct Im2ColPanels : IPanelSource
{
    private readonly float* _image;
    private readonly int _height, _width, _outWidth;
    private readonly int _kernelH, _kernelW, _strideH, _strideW, _dilationH, _dilationW, _padTop, _padLeft;

    /// <summary>The operand for the channels starting at <paramref name="image"/> (one group of one batch image).</summary>
    public Im2ColPanels(float* image, ConvGeometry g)
    {
        _image = image;
        _height = g.Input[0];
        _width = g.Input[1];
        _outWidth = g.Output[1];
        _kernelH = g.Kernel[0];
        _kernelW = g.Kernel[1];
        _strideH = g.Strides[0];
        _strideW = g.Strides[1];
        _dilationH = g.Dilations[0];
        _dilationW = g.Dilations[1];
        _padTop = g.PadsBegin[0];
        _padLeft = g.PadsBegin[1];
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public float* Panels(int start, int count, int p0, int kc, int width, float* scratch)
    {
        // Depth rows are gathered contiguously (walking image rows in order, which the prefetchers follow), a group
        // at a time into an L1-resident buffer, then distributed over the panels. Wide slabs go in pieces.
        const int Piece = 512;
        float* rows = stackalloc float[PanelCopy.RowGroup * Piece];
        int taps = _kernelH * _kernelW;
        for (int c0 = 0; c0 < count; c0 += Piece)
        {
            int n = Math.Min(Piece, count - c0);
            float* panels = scratch + (nint)(c0 / width) * width * kc;
            int oh = (start + c0) / _outWidth, ow = (start + c0) - oh * _outWidth;
            int channel = p0 / taps, kh = p0 % taps / _kernelW, kw = p0 % _kernelW;
            for (int p = 0; p < kc; p += PanelCopy.RowGroup)
            {
                int group = Math.Min(PanelCopy.RowGroup, kc - p);
                for (int r = 0; r < group; r++)
                {
                    GatherRow(rows + r * Piece, oh, ow, n, channel, kh, kw);
                    if (++kw == _kernelW)
                    {
                        kw = 0;
                        if (++kh == _kernelH)
                        {
                            kh = 0;
                            channel++;
                        }
                    }
                }
                PanelCopy.Scatter(rows, Piece, group, n, panels + p * width, width, kc);
            }
        }
        return scratch;
    }

    /// <summary>The depth row for tap (kh, kw) of a channel over <paramref name="n"/> columns from output position
    /// (<paramref name="oh"/>, <paramref name="ow"/>). The columns run along output rows, so the row is cut into
    /// segments of one output row each; padding reads as zero. No divisions for strides 1 and 2: this runs once per
    /// packed row segment, and an integer division costs as much as copying a cache line.</summary>
    private void GatherRow(float* dst, int oh, int ow, int n, int channel, int kh, int kw)
    {
        float* plane = _image + (nint)channel * _height * _width;
        int stride = _strideW;
        for (int col = 0; col < n;)
        {
            int length = Math.Min(n - col, _outWidth - ow);
            int ih = oh * _strideH - _padTop + kh * _dilationH;
            if ((uint)ih >= (uint)_height)
            {
                PanelCopy.Zero(dst + col, length);
            }
            else
            {
                float* src = plane + (nint)ih * _width;
                int iw0 = ow * stride - _padLeft + kw * _dilationW;
                // Output columns [lo, hi) of the segment read inside the row; the rest is padding.
                int lo = iw0 >= 0 ? 0 : Math.Min(length, CeilDiv(-iw0, stride));
                int hi = Math.Max(lo, Math.Min(length, CeilDiv(_width - iw0, stride)));
                for (int t = 0; t < lo; t++) dst[col + t] = 0;
                PanelCopy.Strided(dst + col + lo, src + iw0 + lo * stride, hi - lo, stride);
                for (int t = hi; t < length; t++) dst[col + t] = 0;
            }
            col += length;
            ow = 0;
            oh++;
        }
    }

    /// <summary>ceil(a / b) for b &gt; 0 (a may be negative, then the result is at most 0).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int CeilDiv(int a, int b) => b switch
    {
        1 => a,
        2 => (a + 1) >> 1,
        _ => a <= 0 ? -(-a / b) : (a + b - 1) / b,
    };
}
