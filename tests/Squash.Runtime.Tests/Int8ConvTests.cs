using System.Runtime.Intrinsics;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Tests;

/// <summary>Int8 convolutions (pointwise, im2col, grouped, depthwise) against a naive direct int8 convolution: the
/// int32 sums must match bit for bit, and requantized outputs must match the scalar requantization of those sums.</summary>
public sealed class Int8ConvTests
{
    /// <summary>(batch, C, H, W, M, groups, KH, KW, SH, SW, PT, PL, PB, PR, DH, DW): pointwise, padded 3x3, asymmetric
    /// stride-2 padding (rows long enough for the vector gather), dilation with groups, strided 1x1, 1-D, stride-2 rows
    /// whose gather ends with an overlapping vector.</summary>
    public static TheoryData<int[]> GemmShapes() => new()
    {
        new[] { 1, 20, 7, 9, 24, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1 },
        new[] { 2, 5, 10, 13, 11, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1 },
        new[] { 1, 8, 17, 40, 16, 1, 3, 3, 2, 2, 1, 1, 0, 2, 1, 1 },
        new[] { 1, 6, 12, 11, 4, 2, 5, 3, 1, 2, 2, 1, 2, 0, 2, 1 },
        new[] { 1, 7, 9, 9, 9, 1, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1 },
        new[] { 1, 3, 1, 50, 5, 1, 1, 7, 1, 3, 0, 3, 0, 3, 1, 2 },
        new[] { 1, 4, 6, 6, 8, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1 },
        new[] { 1, 3, 48, 192, 8, 1, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1 }, // cls's stem: stride-2 rows of 96, the gather's last 16 overlapping
        new[] { 1, 3, 9, 75, 4, 1, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1 },   // an odd width: rows of 38
    };

    /// <summary>Depthwise shapes: 3x3 stride 1 (the register-blocked case, with 3, 2 and 1 rows left after groups of
    /// four), stride 2 and 3 (the pair kernel takes horizontal strides 1 and 2; 3 runs the direct kernel), a dilated 5x5 with asymmetric padding, a channel multiplier of 2 (which runs as a grouped
    /// GEMM), rows shorter and longer than a vector, padding taller than the kernel.</summary>
    public static TheoryData<int[]> DepthwiseShapes() => new()
    {
        new[] { 1, 13, 19, 37, 13, 13, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1 },
        new[] { 1, 3, 6, 70, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1 },
        new[] { 1, 3, 5, 33, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1 },
        new[] { 2, 6, 20, 41, 6, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1 },
        new[] { 1, 5, 14, 9, 5, 5, 5, 5, 1, 1, 3, 4, 1, 0, 2, 2 },
        new[] { 1, 3, 5, 70, 3, 3, 3, 3, 1, 2, 0, 1, 2, 1, 1, 1 },
        new[] { 1, 2, 11, 23, 2, 2, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1 },
        new[] { 1, 4, 8, 8, 8, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1 },
        new[] { 1, 5, 2, 96, 5, 5, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1 },
        new[] { 1, 3, 6, 45, 3, 3, 5, 5, 2, 2, 2, 2, 2, 2, 1, 1 },
        new[] { 1, 2, 7, 30, 2, 2, 5, 3, 1, 3, 2, 1, 2, 1, 2, 1 },
        new[] { 1, 4, 1, 20, 4, 4, 3, 3, 1, 1, 8, 1, 1, 1, 1, 1 },  // padding taller than the kernel: a block of four output rows reads none of the image
        new[] { 1, 3, 4, 16, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1 },  // rows of exactly one and two copy vectors
        new[] { 1, 3, 4, 32, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1 },
        new[] { 1, 4, 1, 40, 4, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1 },  // one row: the kernel's first and last rows read only padding
        new[] { 1, 3, 2, 50, 3, 3, 5, 5, 2, 1, 2, 2, 2, 2, 1, 1 },  // stride 2 on two rows: one output row, kernel rows 2 and 3 read the image
        new[] { 1, 3, 2, 33, 3, 3, 3, 3, 1, 1, 3, 1, 1, 1, 2, 1 },  // dilated rows on two rows, padding above only
        new[] { 1, 3, 6, 40, 3, 3, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1 },  // det's 5x5 on rows of 40: a block of 32 columns, then 8 on half-width lanes
        new[] { 1, 3, 7, 64, 3, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1 },  // stride 2 to rows of exactly one block of 32
        new[] { 1, 3, 3, 96, 3, 3, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1 },  // cls's 5x5 on three rows: each output row alone, two kernel rows of padding skipped
        new[] { 1, 3, 3, 44, 3, 3, 5, 5, 2, 1, 2, 2, 2, 2, 1, 1 },  // vertical stride 2 to two rows, each with its own kernel rows; a tail
        new[] { 2, 3, 4, 37, 3, 3, 3, 3, 1, 2, 1, 1, 1, 1, 1, 1 },  // four rows alone, horizontal stride 2, two images
    };

    [Theory]
    [MemberData(nameof(GemmShapes))]
    public void GemmConvolutionMatchesDirectReference(int[] shape)
    {
        foreach (var kind in Enum.GetValues<Int8KernelKind>())
        {
            if (!Int8Kernel.IsSupported(kind)) continue;
            var g = Geometry(shape);
            var rng = new Random(shape.Sum() + (int)kind);
            var (x, w, bias, zx) = Operands(rng, g, 64);
            var weights = Int8ConvWeights.Pack(g, w, Int8Kernel.Create(kind));
            Assert.NotNull(weights.Groups);
            CheckIntegerAndRequantized(g, weights, x, w, bias, zx, (e, y) => Int8Conv.RunGemm(new KernelContext(1), weights, x, e, y),
                (e, y) => Int8Conv.RunGemm(new KernelContext(1), weights, x, e, y), (e, y) => Int8Conv.RunGemm(new KernelContext(1), weights, x, e, y),
                $"{kind}");
        }
    }

    /// <summary>Convolutions of few input and output channels (a small network's stem) on the pair products: cls's stem
    /// (stride 2, rows of 96, whole blocks requantized from the registers), an odd stride-2 width, stride 1 with a
    /// half-width tail (rows of 40), a 5x5 of four channels with rows of a few columns, a batch of two, and one, two and
    /// three threads.</summary>
    public static TheoryData<int[], int> FewChannelShapes() => new()
    {
        { new[] { 1, 3, 48, 192, 8, 1, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1 }, 1 },
        { new[] { 1, 3, 9, 75, 4, 1, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1 }, 3 },
        { new[] { 2, 2, 7, 40, 5, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1 }, 2 },
        { new[] { 1, 4, 6, 9, 3, 1, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1 }, 1 },
        { new[] { 1, 3, 64, 64, 8, 1, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1 }, 2 },
    };

    [Theory]
    [MemberData(nameof(FewChannelShapes))]
    public void FewChannelConvolutionMatchesDirectReferenceAtEveryWidth(int[] shape, int threads)
    {
        var g = Geometry(shape);
        Assert.True(Int8DepthwisePairs.AppliesToFewChannels(g) || !Int8DepthwisePairs.IsSupported);
        var rng = new Random(shape.Sum());
        var (x, w, bias, zx) = Operands(rng, g, 64);
        var weights = Int8ConvWeights.Pack(g, w);
        var context = new KernelContext(threads);
        CheckIntegerAndRequantized(g, weights, x, w, bias, zx, (e, y) => Int8Conv.Run(context, weights, x, e, y),
            (e, y) => Int8Conv.Run(context, weights, x, e, y), (e, y) => Int8Conv.Run(context, weights, x, e, y), "best");
        if (Int8DepthwisePairs.IsSupported) CheckPairsAtEveryWidth(g, weights, x, w, bias, zx, context);
    }

    /// <summary>The pair-product kernel ("best" on machines with AVX-512BW) at each width the machine has.</summary>
    private static void CheckPairsAtEveryWidth(Int8ConvGeometry g, Int8ConvWeights weights, byte[] x, sbyte[] w, int[] bias, byte zx,
        KernelContext context)
    {
        if (Pairs512.IsAccelerated)
            CheckIntegerAndRequantized(g, weights, x, w, bias, zx,
                (e, y) => Int8DepthwisePairs.Run<Vector512<int>, Pairs512, int>(context, weights, x, e, y),
                (e, y) => Int8DepthwisePairs.Run<Vector512<int>, Pairs512, byte>(context, weights, x, e, y),
                (e, y) => Int8DepthwisePairs.Run<Vector512<int>, Pairs512, float>(context, weights, x, e, y), "pairs 512");
        CheckIntegerAndRequantized(g, weights, x, w, bias, zx,
            (e, y) => Int8DepthwisePairs.Run<Vector256<int>, Pairs256, int>(context, weights, x, e, y),
            (e, y) => Int8DepthwisePairs.Run<Vector256<int>, Pairs256, byte>(context, weights, x, e, y),
            (e, y) => Int8DepthwisePairs.Run<Vector256<int>, Pairs256, float>(context, weights, x, e, y), "pairs 256");
    }

    [Theory]
    [MemberData(nameof(DepthwiseShapes))]
    public void DepthwiseMatchesDirectReferenceAtEveryWidth(int[] shape)
    {
        var g = Geometry(shape);
        var rng = new Random(shape.Sum());
        // Depthwise weights use the full int8 range; the multiplier-2 case runs as a GEMM and needs 7 bits.
        bool direct = Int8Depthwise.Applies(g);
        var (x, w, bias, zx) = Operands(rng, g, direct ? 128 : 64);
        var weights = Int8ConvWeights.Pack(g, w);
        Assert.Equal(direct, weights.Depthwise is not null);
        var context = new KernelContext(1);
        CheckIntegerAndRequantized(g, weights, x, w, bias, zx, (e, y) => Int8Conv.Run(context, weights, x, e, y),
            (e, y) => Int8Conv.Run(context, weights, x, e, y), (e, y) => Int8Conv.Run(context, weights, x, e, y), "best");
        if (!direct) return;
        if (Int8DepthwisePairs.Applies(g)) CheckPairsAtEveryWidth(g, weights, x, w, bias, zx, context);
        CheckIntegerAndRequantized(g, weights, x, w, bias, zx,
            (e, y) => Int8Depthwise.Run<Vector256<int>, Vector256<float>, Quantize256, int>(context, weights, x, e, y),
            (e, y) => Int8Depthwise.Run<Vector256<int>, Vector256<float>, Quantize256, byte>(context, weights, x, e, y),
            (e, y) => Int8Depthwise.Run<Vector256<int>, Vector256<float>, Quantize256, float>(context, weights, x, e, y), "256");
        CheckIntegerAndRequantized(g, weights, x, w, bias, zx,
            (e, y) => Int8Depthwise.Run<Vector128<int>, Vector128<float>, Quantize128, int>(context, weights, x, e, y),
            (e, y) => Int8Depthwise.Run<Vector128<int>, Vector128<float>, Quantize128, byte>(context, weights, x, e, y),
            (e, y) => Int8Depthwise.Run<Vector128<int>, Vector128<float>, Quantize128, float>(context, weights, x, e, y), "128");
    }

    /// <summary>Kernel rows that read only padding for every output row are dropped when the weights are packed (their
    /// products cancel against the zero-point correction); the geometry keeps its input and output. The outputs of these
    /// shapes are checked against the full reference in <see cref="DepthwiseMatchesDirectReferenceAtEveryWidth"/>.</summary>
    [Theory]
    [InlineData(new[] { 1, 5, 2, 96, 5, 5, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1 }, 3, 1)] // cls: 5x5 on two rows keeps rows 1-3
    [InlineData(new[] { 1, 4, 1, 40, 4, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1 }, 1, 0)] // one row keeps the middle row
    [InlineData(new[] { 1, 3, 2, 50, 3, 3, 5, 5, 2, 1, 2, 2, 2, 2, 1, 1 }, 2, 0)] // stride 2, one output row: rows 2-3
    [InlineData(new[] { 1, 3, 2, 33, 3, 3, 3, 3, 1, 1, 3, 1, 1, 1, 2, 1 }, 2, 1)] // dilated: rows 1-2, padding 3 -> 1
    [InlineData(new[] { 1, 13, 19, 37, 13, 13, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1 }, 3, 1)] // every row reads the image: unchanged
    public void DepthwiseDropsKernelRowsThatReadOnlyPadding(int[] shape, int kernelRows, int padTop)
    {
        var g = Geometry(shape);
        var (_, w, _, _) = Operands(new Random(3), g, 128);
        var weights = Int8ConvWeights.Pack(g, w);
        Assert.Equal(kernelRows, weights.Geometry.KernelH);
        Assert.Equal(padTop, weights.Geometry.PadTop);
        Assert.Equal((g.Height, g.Width, g.OutHeight, g.OutWidth), (weights.Geometry.Height, weights.Geometry.Width, weights.Geometry.OutHeight, weights.Geometry.OutWidth));
        Assert.Equal(g.OutChannels * kernelRows * g.KernelW, weights.Depthwise!.Length);
    }

    /// <summary>Extreme depthwise values: 255 with weights -128 over 25 taps stays exact (sums of -816000).</summary>
    [Fact]
    public void DepthwiseExtremeValuesAreExact()
    {
        var g = new Int8ConvGeometry(1, 2, 9, 9, 2, 2, 5, 5, padTop: 2, padLeft: 2, padBottom: 2, padRight: 2);
        var x = Enumerable.Repeat((byte)255, 2 * 81).ToArray();
        var w = Enumerable.Repeat((sbyte)-128, 2 * 25).ToArray();
        var weights = Int8ConvWeights.Pack(g, w);
        var y = new int[2 * 81];
        Int8Conv.Run(new KernelContext(1), weights, x, Int8Epilogue.Integer(weights.WeightSums, 0, []), y);
        // The centre sees all 25 taps inside the image; padding reads the zero point 0.
        Assert.Equal(25 * 255 * -128, y[4 * 9 + 4]);
        Assert.Equal(9 * 255 * -128, y[0]);
    }

    [Fact]
    public void ThreadsGiveTheSameResult()
    {
        int[][] shapes = [[1, 32, 20, 20, 64, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1], [2, 6, 20, 41, 6, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1]];
        foreach (var shape in shapes)
        {
            var g = Geometry(shape);
            var rng = new Random(9);
            var (x, w, bias, zx) = Operands(rng, g, 64);
            var weights = Int8ConvWeights.Pack(g, w);
            var epilogue = Int8Epilogue.Integer(weights.WeightSums, zx, bias);
            var single = new int[g.Batch * g.OutChannels * g.OutputSize];
            var several = new int[single.Length];
            Int8Conv.Run(new KernelContext(1), weights, x, epilogue, single);
            Int8Conv.Run(new KernelContext(3), weights, x, epilogue, several);
            Assert.Equal(single, several);
        }
    }

    [Fact]
    public void BadOperandsAreRejected()
    {
        var g = new Int8ConvGeometry(1, 2, 4, 4, 3, 1, 3, 3);
        Assert.Equal(2, g.OutHeight);
        var weights = Int8ConvWeights.Pack(g, new sbyte[3 * 2 * 9]);
        var epilogue = Int8Epilogue.Integer(weights.WeightSums, 0, []);
        Assert.Throws<ArgumentException>(() => Int8Conv.Run(new KernelContext(1), weights, new byte[31], epilogue, new int[12]));
        Assert.Throws<ArgumentException>(() => Int8Conv.Run(new KernelContext(1), weights, new byte[32], epilogue, new int[11]));
        Assert.Throws<ArgumentException>(() => Int8Conv.Run(new KernelContext(1), weights, new byte[32], epilogue, new byte[12]));
        Assert.Throws<ArgumentException>(() => Int8ConvWeights.Pack(g, new sbyte[3 * 2 * 9 - 1]));
        Assert.Throws<ArgumentException>(() => new Int8ConvGeometry(1, 3, 4, 4, 4, 2, 1, 1));
        Assert.Throws<ArgumentException>(() => new Int8ConvGeometry(1, 2, 2, 2, 3, 1, 3, 3));
    }

    /// <summary>The three epilogues against the direct reference: exact int32 sums, their scalar requantization (with a
    /// ReLU range), and their fp32 dequantization with an fp32 bias.</summary>
    private static void CheckIntegerAndRequantized(Int8ConvGeometry g, Int8ConvWeights weights, byte[] x, sbyte[] w, int[] bias, byte zx,
        Action<Int8Epilogue, int[]> runInteger, Action<Int8Epilogue, byte[]> runRequantized, Action<Int8Epilogue, float[]> runDequantized,
        string what)
    {
        var expected = Reference(g, x, w, bias, zx);
        var y = new int[expected.Length];
        Array.Fill(y, 0x5A5A5A5A);
        runInteger(Int8Epilogue.Integer(weights.WeightSums, zx, bias), y);
        for (int i = 0; i < y.Length; i++)
            Assert.True(expected[i] == y[i], $"{what}: y[{i}] = {y[i]}, expected {expected[i]}");
        var multipliers = new float[g.OutChannels];
        for (int m = 0; m < multipliers.Length; m++) multipliers[m] = 0.0005f * (m + 1);
        const byte zy = 70;
        var q = new byte[expected.Length];
        runRequantized(Int8Epilogue.Requantize(weights.WeightSums, zx, bias, multipliers, zy, zy, 255), q);
        for (int i = 0; i < q.Length; i++)
        {
            int channel = i / g.OutputSize % g.OutChannels;
            double rounded = Math.Round((double)((float)expected[i] * multipliers[channel]), MidpointRounding.ToEven);
            Assert.True((byte)Math.Clamp(rounded + zy, zy, 255) == q[i], $"{what}: requantized y[{i}] = {q[i]}, sum {expected[i]}");
        }
        var unbiased = Reference(g, x, w, [], zx);
        var floatBias = new float[g.OutChannels];
        for (int m = 0; m < floatBias.Length; m++) floatBias[m] = 0.25f * m - 1;
        var f = new float[expected.Length];
        runDequantized(Int8Epilogue.Dequantize(weights.WeightSums, zx, multipliers, floatBias), f);
        for (int i = 0; i < f.Length; i++)
        {
            int channel = i / g.OutputSize % g.OutChannels;
            Assert.Equal(MathF.FusedMultiplyAdd(unbiased[i], multipliers[channel], floatBias[channel]), f[i]);
        }
    }

    /// <summary>The direct convolution: sum over the group's channels and taps of (x - zx) * w, padding reading zx.</summary>
    private static int[] Reference(Int8ConvGeometry g, byte[] x, sbyte[] w, int[] bias, byte zx)
    {
        var y = new int[g.Batch * g.OutChannels * g.OutputSize];
        int cg = g.GroupInChannels, mg = g.GroupOutChannels;
        for (int n = 0; n < g.Batch; n++)
            for (int m = 0; m < g.OutChannels; m++)
                for (int oh = 0; oh < g.OutHeight; oh++)
                    for (int ow = 0; ow < g.OutWidth; ow++)
                    {
                        long sum = bias.Length == 0 ? 0 : bias[m];
                        int group = m / mg;
                        for (int c = 0; c < cg; c++)
                            for (int kh = 0; kh < g.KernelH; kh++)
                                for (int kw = 0; kw < g.KernelW; kw++)
                                {
                                    int ih = oh * g.StrideH - g.PadTop + kh * g.DilationH;
                                    int iw = ow * g.StrideW - g.PadLeft + kw * g.DilationW;
                                    int channel = group * cg + c;
                                    int xv = ih >= 0 && ih < g.Height && iw >= 0 && iw < g.Width
                                        ? x[((n * g.InChannels + channel) * g.Height + ih) * g.Width + iw] : zx;
                                    sum += (xv - zx) * w[((m * cg + c) * g.KernelH + kh) * g.KernelW + kw];
                                }
                        y[((n * g.OutChannels + m) * g.OutHeight + oh) * g.OutWidth + ow] = checked((int)sum);
                    }
        return y;
    }

    private static (byte[] X, sbyte[] W, int[] Bias, byte Zx) Operands(Random rng, Int8ConvGeometry g, int magnitude)
    {
        var x = new byte[g.Batch * g.InChannels * g.InputSize];
        rng.NextBytes(x);
        var w = new sbyte[g.OutChannels * g.GemmDepth];
        for (int i = 0; i < w.Length; i++) w[i] = (sbyte)rng.Next(-magnitude, magnitude + (magnitude == 128 ? 0 : 1));
        return (x, w, Int8GemmTests.RandomInts(rng, g.OutChannels), (byte)rng.Next(1, 256));
    }

    private static Int8ConvGeometry Geometry(int[] s) =>
        new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9], s[10], s[11], s[12], s[13], s[14], s[15]);
}
