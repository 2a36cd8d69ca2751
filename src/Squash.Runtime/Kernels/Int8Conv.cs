using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Squash.Runtime.Kernels;

/// <summary>
/// The shape of a 2-D convolution over NCHW with resolved padding: input row <c>ih = oh * StrideH - PadTop + kh * DilationH</c>
/// feeds output row <c>oh</c> through kernel row <c>kh</c>, and likewise along the width. A 1-D convolution is the 2-D one
/// with height 1.
/// </summary>
public sealed class Int8ConvGeometry
{
    /// <summary>Creates a geometry; the output size follows from the padding at both ends.</summary>
    public Int8ConvGeometry(int batch, int inChannels, int height, int width, int outChannels, int groups, int kernelH, int kernelW,
        int strideH = 1, int strideW = 1, int padTop = 0, int padLeft = 0, int padBottom = 0, int padRight = 0,
        int dilationH = 1, int dilationW = 1)
    {
        if (batch < 0 || inChannels <= 0 || height <= 0 || width <= 0 || outChannels <= 0)
            throw new ArgumentException("Batch must not be negative; channels and spatial sizes must be positive.");
        if (groups <= 0 || inChannels % groups != 0 || outChannels % groups != 0)
            throw new ArgumentException($"{groups} groups do not divide {inChannels} input and {outChannels} output channels.", nameof(groups));
        if (kernelH <= 0 || kernelW <= 0 || strideH <= 0 || strideW <= 0 || dilationH <= 0 || dilationW <= 0)
            throw new ArgumentException("Kernel sizes, strides and dilations must be positive.");
        if (padTop < 0 || padLeft < 0 || padBottom < 0 || padRight < 0)
            throw new ArgumentException("Pads must not be negative.");
        Batch = batch;
        InChannels = inChannels;
        Height = height;
        Width = width;
        OutChannels = outChannels;
        Groups = groups;
        KernelH = kernelH;
        KernelW = kernelW;
        StrideH = strideH;
        StrideW = strideW;
        PadTop = padTop;
        PadLeft = padLeft;
        DilationH = dilationH;
        DilationW = dilationW;
        long spanH = (long)height + padTop + padBottom - ((long)(kernelH - 1) * dilationH + 1);
        long spanW = (long)width + padLeft + padRight - ((long)(kernelW - 1) * dilationW + 1);
        if (spanH < 0 || spanW < 0) throw new ArgumentException("The kernel is larger than the padded input.");
        OutHeight = (int)(spanH / strideH + 1);
        OutWidth = (int)(spanW / strideW + 1);
    }

    /// <summary>Images in the batch (N).</summary>
    public int Batch { get; }

    /// <summary>Input channels (C).</summary>
    public int InChannels { get; }

    /// <summary>Input height (H).</summary>
    public int Height { get; }

    /// <summary>Input width (W).</summary>
    public int Width { get; }

    /// <summary>Output channels (M).</summary>
    public int OutChannels { get; }

    /// <summary>Groups the channels are split into.</summary>
    public int Groups { get; }

    /// <summary>Kernel height.</summary>
    public int KernelH { get; }

    /// <summary>Kernel width.</summary>
    public int KernelW { get; }

    /// <summary>Vertical stride.</summary>
    public int StrideH { get; }

    /// <summary>Horizontal stride.</summary>
    public int StrideW { get; }

    /// <summary>Rows of padding above the input.</summary>
    public int PadTop { get; }

    /// <summary>Columns of padding left of the input.</summary>
    public int PadLeft { get; }

    /// <summary>Vertical dilation.</summary>
    public int DilationH { get; }

    /// <summary>Horizontal dilation.</summary>
    public int DilationW { get; }

    /// <summary>Output height.</summary>
    public int OutHeight { get; }

    /// <summary>Output width.</summary>
    public int OutWidth { get; }

    /// <summary>Input channels per group.</summary>
    public int GroupInChannels => InChannels / Groups;

    /// <summary>Output channels per group.</summary>
    public int GroupOutChannels => OutChannels / Groups;

    /// <summary>Taps of the kernel.</summary>
    public int Taps => KernelH * KernelW;

    /// <summary>The depth of the GEMM per group: input channels of a group times taps.</summary>
    public int GemmDepth => GroupInChannels * Taps;

    /// <summary>Elements of one input channel.</summary>
    public int InputSize => Height * Width;

    /// <summary>Elements of one output channel.</summary>
    public int OutputSize => OutHeight * OutWidth;

    /// <summary>A 1x1 kernel with unit strides and no padding: the input channels are the GEMM operand as they are.</summary>
    public bool IsPointwise => KernelH == 1 && KernelW == 1 && StrideH == 1 && StrideW == 1 && OutHeight == Height && OutWidth == Width;

    /// <summary>One input and one output channel per group.</summary>
    public bool IsDepthwise => Groups == InChannels && OutChannels == InChannels;
}

/// <summary>
/// The weights of an int8 convolution, prepared once: packed GEMM panels per group, or the raw taps for the direct
/// depthwise kernel, and the per-output-channel weight sums for <see cref="Int8Epilogue"/>.
/// </summary>
/// <remarks>
/// Weights are symmetric int8, [M, C/G, KH, KW]. Convolutions that run as GEMMs need them in
/// [-<see cref="Int8PackedWeights.MaxMagnitude"/>, <see cref="Int8PackedWeights.MaxMagnitude"/>]; depthwise ones accept
/// the full int8 range (<see cref="Int8Depthwise"/> multiplies exactly in fp32).
/// </remarks>
public sealed class Int8ConvWeights
{
    private readonly int[] _sums;

    private Int8ConvWeights(Int8ConvGeometry geometry, Int8PackedWeights[]? groups, sbyte[]? depthwise, int[] sums, int[]? pairs)
    {
        Geometry = geometry;
        Groups = groups;
        Depthwise = depthwise;
        _sums = sums;
        Pairs = pairs;
    }

    /// <summary>The geometry the weights were prepared for.</summary>
    public Int8ConvGeometry Geometry { get; }

    /// <summary>Per output channel, the sum of its weights.</summary>
    public ReadOnlySpan<int> WeightSums => _sums;

    /// <summary>The left GEMM operand [M/G, C/G * taps] of each group, or null for the direct depthwise kernel.</summary>
    internal Int8PackedWeights[]? Groups { get; }

    /// <summary>The taps [C, KH * KW] for the direct depthwise kernel, or null.</summary>
    internal sbyte[]? Depthwise { get; }

    /// <summary>The taps paired for <see cref="Int8DepthwisePairs"/> ([M, products]) when that kernel runs them here
    /// (depthwise, or few input channels), or null.</summary>
    internal int[]? Pairs { get; }

    /// <summary>Prepares <paramref name="w"/> [M, C/G, KH, KW] for <paramref name="geometry"/>.</summary>
    public static Int8ConvWeights Pack(Int8ConvGeometry geometry, ReadOnlySpan<sbyte> w) => Pack(geometry, w, Int8Kernel.Best);

    /// <summary>
    /// The depthwise geometry and taps without the kernel rows that read padding for every output row (a 5x5 kernel on
    /// a two-row map with two rows of padding: rows 0 and 4). Such a row multiplies only the input zero point, and its
    /// products cancel exactly against its share of the zero-point correction (zero point times the weight sum), so
    /// dropping the row with its weights leaves every output as it was; the geometry keeps its input and output, with
    /// fewer kernel rows and less padding. cls's 200x2x96 layers do 9 pair products per output instead of 15.
    /// </summary>
    internal static (Int8ConvGeometry Geometry, sbyte[] Taps) WithoutPaddingRows(Int8ConvGeometry g, ReadOnlySpan<sbyte> w)
    {
        bool Reads(int kh)
        {
            for (int oh = 0; oh < g.OutHeight; oh++)
                if ((uint)(oh * g.StrideH - g.PadTop + kh * g.DilationH) < (uint)g.Height) return true;
            return false;
        }
        int lo = 0, hi = g.KernelH;
        while (lo < hi && !Reads(lo)) lo++;
        while (hi > lo && !Reads(hi - 1)) hi--;
        if (lo == 0 && hi == g.KernelH || lo == hi) return (g, w.ToArray());
        // The least bottom padding that yields the output height, then less by the rows dropped below.
        int padTop = g.PadTop - lo * g.DilationH;
        int padBottom = (g.OutHeight - 1) * g.StrideH + (hi - lo - 1) * g.DilationH + 1 - g.Height - padTop;
        int spanW = (g.OutWidth - 1) * g.StrideW + (g.KernelW - 1) * g.DilationW + 1;
        if (padTop < 0 || padBottom < 0) return (g, w.ToArray());
        var trimmed = new Int8ConvGeometry(g.Batch, g.InChannels, g.Height, g.Width, g.OutChannels, g.Groups, hi - lo, g.KernelW,
            g.StrideH, g.StrideW, padTop, g.PadLeft, padBottom, Math.Max(0, spanW - g.Width - g.PadLeft), g.DilationH, g.DilationW);
        if (trimmed.OutHeight != g.OutHeight || trimmed.OutWidth != g.OutWidth) return (g, w.ToArray());
        var taps = new sbyte[g.OutChannels * trimmed.Taps];
        for (int c = 0; c < g.OutChannels; c++)
            w.Slice(c * g.Taps + lo * g.KernelW, trimmed.Taps).CopyTo(taps.AsSpan(c * trimmed.Taps));
        return (trimmed, taps);
    }

    internal static Int8ConvWeights Pack(Int8ConvGeometry geometry, ReadOnlySpan<sbyte> w, Int8Kernel kernel)
    {
        ArgumentNullException.ThrowIfNull(geometry);
        int m = geometry.OutChannels, mg = geometry.GroupOutChannels, kg = geometry.GemmDepth;
        if (w.Length != (long)m * kg)
            throw new ArgumentException($"The weights have {w.Length} values for [{m}, {geometry.GroupInChannels}, {geometry.KernelH}, {geometry.KernelW}].", nameof(w));
        if (Int8Depthwise.Applies(geometry))
        {
            var (g, taps) = WithoutPaddingRows(geometry, w);
            int kept = g.Taps;
            var sums = new int[m];
            for (int c = 0; c < m; c++)
                for (int t = 0; t < kept; t++) sums[c] += taps[c * kept + t];
            return new Int8ConvWeights(g, null, taps, sums, Int8DepthwisePairs.Applies(g) ? Int8DepthwisePairs.PairWeights(g, taps) : null);
        }
        var groups = new Int8PackedWeights[geometry.Groups];
        var all = new int[m];
        for (int g = 0; g < geometry.Groups; g++)
        {
            groups[g] = Int8PackedWeights.PackLeft(w.Slice(g * mg * kg, mg * kg), kg, mg, kg, kernel);
            groups[g].WeightSums.CopyTo(all.AsSpan(g * mg));
        }
        // A stem's few input channels run the pair products directly; the GEMM panels stay for machines without them
        // and for the tests of every GEMM kernel (Int8Conv.RunGemm).
        return new Int8ConvWeights(geometry, groups, null, all,
            Int8DepthwisePairs.AppliesToFewChannels(geometry) ? Int8DepthwisePairs.PairWeights(geometry, w) : null);
    }
}

/// <summary>
/// Int8 convolution over NCHW uint8 activations as GEMMs, one per image and group:
/// <c>Y_g[M/G, OH*OW] = W_g[M/G, C/G * taps] x im2col(X_g)</c>, with the epilogue (requantize, dequantize or int32)
/// fused into the store. The im2col operand is the input itself for pointwise convolutions and is otherwise built a
/// slab of columns at a time into a reused per-thread buffer, four depth rows at a time, and interleaved straight
/// into the GEMM's panels; padding reads as the input zero point, so it contributes a real zero. Depthwise
/// convolutions run the direct <see cref="Int8Depthwise"/> kernel.
/// </summary>
public static unsafe class Int8Conv
{
    /// <summary>
    /// <c>y = epilogue(conv(x - zx, w))</c>: <paramref name="x"/> is uint8 [N, C, H, W] with zero point
    /// <see cref="Int8Epilogue.InputZeroPoint"/>, <paramref name="y"/> is [N, M, OH, OW] of <typeparamref name="T"/> (byte,
    /// float or int as <see cref="Int8Epilogue.Kind"/> says); the epilogue's channels are the M output channels.
    /// </summary>
    public static void Run<T>(KernelContext context, Int8ConvWeights weights, ReadOnlySpan<byte> x, Int8Epilogue epilogue, Span<T> y)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(context);
        Check<T>(weights, x.Length, epilogue, y.Length);
        var g = weights.Geometry;
        fixed (byte* px = x)
        fixed (T* py = y)
        {
            if (weights.Pairs is { } pairs)
            {
                fixed (int* pp = pairs) Int8DepthwisePairs.Run(context, g, px, pp, epilogue, py);
                return;
            }
            if (weights.Depthwise is not null)
            {
                fixed (sbyte* pw = weights.Depthwise) Int8Depthwise.Run(context, g, px, pw, epilogue, py);
                return;
            }
            RunGemm(context, weights, px, epilogue, py);
        }
    }

    /// <summary><see cref="Run"/> through the GEMM panels, whatever other kernel the weights have (tests of every GEMM
    /// kernel).</summary>
    internal static void RunGemm<T>(KernelContext context, Int8ConvWeights weights, ReadOnlySpan<byte> x, Int8Epilogue epilogue, Span<T> y)
        where T : unmanaged
    {
        Check<T>(weights, x.Length, epilogue, y.Length);
        if (weights.Groups is null) throw new ArgumentException("The weights have no GEMM panels.", nameof(weights));
        fixed (byte* px = x)
        fixed (T* py = y) RunGemm(context, weights, px, epilogue, py);
    }

    private static void RunGemm<T>(KernelContext context, Int8ConvWeights weights, byte* px, Int8Epilogue epilogue, T* py)
        where T : unmanaged
    {
        var g = weights.Geometry;
        int mg = g.GroupOutChannels, cg = g.GroupInChannels;
        for (int image = 0; image < g.Batch; image++)
            for (int group = 0; group < g.Groups; group++)
            {
                byte* xg = px + ((nint)image * g.InChannels + group * cg) * g.InputSize;
                void* yg = (byte*)py + ((nint)image * g.OutChannels + group * mg) * g.OutputSize * sizeof(T);
                var packed = weights.Groups![group];
                var store = new Int8Store(epilogue, yg, g.OutputSize, group * mg, channelsOnRows: true);
                if (g.IsPointwise)
                    Int8Gemm.Run<WeightsLeft, PrepackedInt8Panels, Int8RightRows>(context, packed.Kernel, mg, g.OutputSize, g.GemmDepth,
                        packed.Source, new Int8RightRows(xg, g.InputSize, g.GemmDepth), store);
                else
                    Int8Gemm.Run<WeightsLeft, PrepackedInt8Panels, Int8Im2ColPanels>(context, packed.Kernel, mg, g.OutputSize, g.GemmDepth,
                        packed.Source, new Int8Im2ColPanels(xg, g, epilogue.InputZeroPoint), store);
            }
    }

    /// <summary>Throws unless the operands fit the weights' geometry and the epilogue writes <typeparamref name="T"/>.</summary>
    internal static void Check<T>(Int8ConvWeights weights, int inputLength, Int8Epilogue epilogue, int outputLength) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(weights);
        var g = weights.Geometry;
        Int8Gemm.CheckEpilogue<T>(epilogue, g.OutChannels, g.GemmDepth);
        if (inputLength < (long)g.Batch * g.InChannels * g.InputSize)
            throw new ArgumentException($"The input has {inputLength} values for [{g.Batch}, {g.InChannels}, {g.Height}, {g.Width}].", "x");
        if (outputLength < (long)g.Batch * g.OutChannels * g.OutputSize)
            throw new ArgumentException($"The output has {outputLength} values for [{g.Batch}, {g.OutChannels}, {g.OutHeight}, {g.OutWidth}].", "y");
    }
}

/// <summary>
/// The im2col matrix of one image group as the right GEMM operand, packed on demand: depth row k = (c, kh, kw) holds,
/// for output pixel p = (oh, ow), the input at (c, oh * SH - PT + kh * DH, ow * SW - PL + kw * DW), or the zero point
/// outside the image. Four rows of a column slab are gathered into scratch, then interleaved into the panels.
/// </summary>
internal readonly unsafe struct Int8Im2ColPanels(byte* x, Int8ConvGeometry g, byte zeroPoint) : IInt8PanelSource
{
    public int ExtraScratch(int count) => 4 * (count + 64);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public byte* Panels(int start, int count, int width, byte* scratch)
    {
        int depth = g.GemmDepth, quads = (depth + 3) / 4;
        int rowBytes = count + 64;
        byte* rows = scratch + (nint)((count + width - 1) / width) * width * 4 * quads;
        for (int q = 0; q < quads; q++)
        {
            for (int j = 0; j < 4; j++)
                if (4 * q + j < depth) Row(4 * q + j, start, count, rows + j * rowBytes);
            Int8Interleave.Quad(rows, 4 * q + 1 < depth ? rows + rowBytes : null, 4 * q + 2 < depth ? rows + 2 * rowBytes : null,
                4 * q + 3 < depth ? rows + 3 * rowBytes : null, count, scratch + q * width * 4, width, quads);
        }
        return scratch;
    }

    /// <summary>Depth row <paramref name="k"/> of the im2col matrix for output pixels [start, start + count).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Row(int k, int start, int count, byte* dst)
    {
        int taps = g.Taps;
        int c = k / taps, tap = k % taps, kh = tap / g.KernelW, kw = tap % g.KernelW;
        byte* plane = x + (nint)c * g.InputSize;
        int outWidth = g.OutWidth, width = g.Width, stride = g.StrideW;
        // Output column ow reads input column first + ow * stride; those in [validLo, validHi) are inside the image.
        // The same for every output row, so the divisions happen once per depth row.
        int first = kw * g.DilationW - g.PadLeft;
        int validLo = first >= 0 ? 0 : Math.Min(outWidth, (-first + stride - 1) / stride);
        int validHi = first >= width ? validLo : Math.Clamp((width - first + stride - 1) / stride, validLo, outWidth);
        int oh = start / outWidth, ow = start % outWidth;
        for (int done = 0; done < count; oh++, ow = 0)
        {
            int length = Math.Min(outWidth - ow, count - done);
            int ih = oh * g.StrideH - g.PadTop + kh * g.DilationH;
            if ((uint)ih >= (uint)g.Height)
            {
                Int8Im2Col.Fill(dst, length, zeroPoint);
            }
            else
            {
                int lo = Math.Clamp(validLo - ow, 0, length), hi = Math.Clamp(validHi - ow, lo, length);
                Int8Im2Col.Fill(dst, lo, zeroPoint);
                Int8Im2Col.Strided(dst + lo, plane + (nint)ih * width + first + (ow + lo) * stride, hi - lo, stride);
                Int8Im2Col.Fill(dst + hi, length - hi, zeroPoint);
            }
            dst += length;
            done += length;
        }
    }
}

/// <summary>Small byte copies and fills for im2col.</summary>
internal static unsafe class Int8Im2Col
{
    /// <summary><c>dst[t] = src[t * stride]</c> for t &lt; <paramref name="n"/>; src[(n - 1) * stride] is the last byte read.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Strided(byte* dst, byte* src, int n, int stride)
    {
        if (n <= 0) return;
        if (stride == 1)
        {
            Copy(dst, src, n);
            return;
        }
        int t = 0;
        if (stride == 2 && Sse2.IsSupported)
        {
            // Stride 2 (downsampling) is common: the even bytes of 32, packed from words with the odd bytes masked off.
            // The loads reach byte 2t + 31, inside the range only while t + 16 < n.
            var even = Vector128.Create((short)0xFF);
            for (; t + 16 < n; t += 16)
            {
                var lo = Vector128.Load((short*)(src + 2 * t)) & even;
                var hi = Vector128.Load((short*)(src + 2 * t + 16)) & even;
                Sse2.PackUnsignedSaturate(lo, hi).Store(dst + t);
            }
            if (t < n && n > 16)
            {
                // The last 16 as the odd bytes of the 32 that end at the last one read, so nothing past it is loaded
                // (a byte loop here was a sixth of cls's stem convolution: rows of 96).
                int last = n - 16;
                var lo = Vector128.ShiftRightLogical(Vector128.Load((short*)(src + 2 * last - 1)), 8);
                var hi = Vector128.ShiftRightLogical(Vector128.Load((short*)(src + 2 * last + 15)), 8);
                Sse2.PackUnsignedSaturate(lo, hi).Store(dst + last);
                return;
            }
        }
        for (; t < n; t++) dst[t] = src[t * stride];
    }

    /// <summary>Copies <paramref name="n"/> bytes; short runs (an image row) inline, without a call.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Copy(byte* dst, byte* src, int n)
    {
        if (n >= 16)
        {
            // Whole vectors, then one last vector overlapping the previous (the ranges do not overlap each other).
            int i = 0;
            for (; i + 16 < n; i += 16) Vector128.Store(Vector128.Load(src + i), dst + i);
            Vector128.Store(Vector128.Load(src + n - 16), dst + n - 16);
            return;
        }
        for (int i = 0; i < n; i++) dst[i] = src[i];
    }

    /// <summary>Sets <paramref name="n"/> bytes to <paramref name="value"/>; short runs (padding) inline.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Fill(byte* dst, int n, byte value)
    {
        if (n >= 16)
        {
            var v = Vector128.Create(value);
            int i = 0;
            for (; i + 16 < n; i += 16) v.Store(dst + i);
            v.Store(dst + n - 16);
            return;
        }
        for (int i = 0; i < n; i++) dst[i] = value;
    }
}
