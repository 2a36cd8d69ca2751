using Squash.Runtime.Kernels;

namespace Squash.Runtime.Tests;

/// <summary>
/// The convolution kernels against direct double-precision loops over random geometries. Tolerance: 1e-5 relative to
/// the sum of |w * x| terms (an fp32 rounding bound for the depths used here, in any summation order) plus 1e-6.
/// </summary>
public sealed class ConvTests
{
    public static TheoryData<int> Seeds()
    {
        var data = new TheoryData<int>();
        for (int seed = 0; seed < 40; seed++) data.Add(seed);
        return data;
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void ConvolutionMatchesDirectReference(int seed)
    {
        var rng = new Random(seed);
        var g = RandomGeometry(rng, transposed: false);
        var x = RandomArray(rng, g.Batch * g.InChannels * g.InputSize);
        var w = RandomArray(rng, g.OutChannels * g.GroupInChannels * g.KernelSize);
        var bias = rng.Next(2) == 0 ? [] : RandomArray(rng, g.OutChannels);
        var activation = rng.Next(3) switch { 0 => GemmActivation.None, 1 => GemmActivation.Relu, _ => GemmActivation.HardSwish };
        var (expected, bound) = DirectConvolution(g, x, w, bias, activation);
        var packed = rng.Next(2) == 0 ? Packed(w) : null;
        var y = new float[expected.Length];
        y.AsSpan().Fill(float.NaN);
        Convolution.Run(new KernelContext(1 + seed % 3), g, x, w, packed, bias, y, activation);
        AssertClose(expected, bound, y, Describe(g) + (packed is null ? "" : " packed"));
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void TransposedConvolutionMatchesDirectReference(int seed)
    {
        var rng = new Random(1000 + seed);
        // The adjoint geometry: its input is Y (M channels), its output X (C channels).
        var g = RandomGeometry(rng, transposed: true);
        var x = RandomArray(rng, g.Batch * g.OutChannels * g.OutputSize);
        var w = RandomArray(rng, g.OutChannels * g.GroupInChannels * g.KernelSize);
        var bias = rng.Next(2) == 0 ? [] : RandomArray(rng, g.InChannels);
        var (expected, bound) = DirectTransposedConvolution(g, x, w, bias);
        var packed = rng.Next(2) == 0 ? Packed(w) : null;
        var y = new float[expected.Length];
        y.AsSpan().Fill(float.NaN);
        TransposedConvolution.Run(new KernelContext(1 + seed % 3), g, x, w, packed, bias, y);
        AssertClose(expected, bound, y, Describe(g) + (packed is null ? "" : " packed"));
    }

    /// <summary>Geometries random draws rarely hit: pointwise (the input is the GEMM operand as it is) in 2-D and
    /// 3-D, 1-D depthwise, a depthwise channel multiplier, and output widths around the GEMM's tile width.</summary>
    [Theory]
    [InlineData(new[] { 6, 7 }, new[] { 1, 1 }, new[] { 1, 1 }, new[] { 0, 0 }, 1, 3, 5)]
    [InlineData(new[] { 3, 4, 5 }, new[] { 1, 1, 1 }, new[] { 1, 1, 1 }, new[] { 0, 0, 0 }, 2, 4, 6)]
    [InlineData(new[] { 37 }, new[] { 3 }, new[] { 2 }, new[] { 1 }, 4, 4, 4)]
    [InlineData(new[] { 5, 9 }, new[] { 3, 3 }, new[] { 1, 1 }, new[] { 1, 1 }, 3, 3, 6)]
    [InlineData(new[] { 3, 33 }, new[] { 1, 3 }, new[] { 1, 1 }, new[] { 0, 1 }, 1, 2, 17)]
    [InlineData(new[] { 2, 31 }, new[] { 2, 2 }, new[] { 2, 1 }, new[] { 0, 0 }, 1, 20, 9)]
    public void ConvolutionSpecialCasesMatchDirectReference(int[] input, int[] kernel, int[] strides, int[] pads, int groups, int inChannels, int outChannels)
    {
        var rng = new Random(input.Sum() + inChannels);
        var output = new int[input.Length];
        for (int d = 0; d < input.Length; d++) output[d] = (input[d] + 2 * pads[d] - kernel[d]) / strides[d] + 1;
        var g = new ConvGeometry(2, inChannels, outChannels, groups, input, kernel, output, strides, Enumerable.Repeat(1, input.Length).ToArray(), pads);
        var x = RandomArray(rng, g.Batch * g.InChannels * g.InputSize);
        var w = RandomArray(rng, g.OutChannels * g.GroupInChannels * g.KernelSize);
        var bias = RandomArray(rng, g.OutChannels);
        var (expected, bound) = DirectConvolution(g, x, w, bias, GemmActivation.None);
        foreach (bool pack in new[] { false, true })
        {
            var y = new float[expected.Length];
            var packed = pack ? Packed(w) : null;
            Convolution.Run(new KernelContext(2), g, x, w, packed, bias, y, GemmActivation.None);
            AssertClose(expected, bound, y, Describe(g));
        }
    }

    /// <summary>Stride-1 convolutions read in place from the padded image, with dilations, asymmetric pads,
    /// groups, and grids whose width is not a multiple of the tile width.</summary>
    [Theory]
    [InlineData(3, 3, 1, 1, 1, 1, 1, 13, 37)]
    [InlineData(3, 3, 1, 0, 2, 1, 1, 9, 34)]
    [InlineData(5, 5, 2, 2, 4, 1, 1, 11, 60)]
    [InlineData(3, 1, 1, 1, 0, 1, 2, 7, 33)]
    [InlineData(3, 3, 2, 2, 1, 3, 2, 6, 70)]
    public void ShiftedConvolutionMatchesDirectReference(int kernelH, int kernelW, int dilation, int padTop, int padLeft,
        int padEnd, int groups, int height, int width)
    {
        var rng = new Random(kernelH * 7 + width);
        int inChannels = 3 * groups, outChannels = 10 * groups;
        int outH = height + padTop + padEnd - (kernelH - 1) * dilation, outW = width + padLeft + padEnd - (kernelW - 1) * dilation;
        var g = new ConvGeometry(2, inChannels, outChannels, groups, [height, width], [kernelH, kernelW], [outH, outW],
            [1, 1], [dilation, dilation], [padTop, padLeft]);
        Assert.True(ShiftedConvolution.Applies(g));
        var x = RandomArray(rng, g.Batch * g.InChannels * g.InputSize);
        var w = RandomArray(rng, g.OutChannels * g.GroupInChannels * g.KernelSize);
        var bias = RandomArray(rng, g.OutChannels);
        var (expected, bound) = DirectConvolution(g, x, w, bias, GemmActivation.Relu);
        foreach (bool pack in new[] { false, true })
        {
            var y = new float[expected.Length];
            Convolution.Run(new KernelContext(pack ? 3 : 1), g, x, w, pack ? Packed(w) : null, bias, y, GemmActivation.Relu);
            AssertClose(expected, bound, y, Describe(g));
        }
    }

    /// <summary>Transposed convolutions whose kernel tiles the output (kernel = stride, the usual 2x upsampling),
    /// whose col2im is an interleave; widths cover the 16-wide vector loop and its tail; 40 x 300 (12 GEMM rows of 300)
    /// takes two blocks of X's rows (36 and 4), with and without a bias (the epilogue woven in, or none), packed or not,
    /// on one and three threads.</summary>
    [Theory]
    [InlineData(new[] { 5, 37 }, new[] { 2, 2 }, 1)]
    [InlineData(new[] { 4, 16 }, new[] { 2, 2 }, 2)]
    [InlineData(new[] { 3, 5 }, new[] { 3, 2 }, 1)]
    [InlineData(new[] { 21 }, new[] { 2 }, 1)]
    [InlineData(new[] { 40, 300 }, new[] { 2, 2 }, 1)]
    public void TransposedTilingMatchesDirectReference(int[] input, int[] kernel, int groups)
    {
        foreach (bool withBias in new[] { true, false })
            foreach (bool pack in new[] { false, true })
                TransposedTiling(input, kernel, groups, withBias, pack, pack ? 3 : 1);
    }

    /// <summary>A fused epilogue after the tiling path's weave (each activation, with a per-channel affine map after it)
    /// against the reference with the same steps in double: the activations are 1-Lipschitz, so the error bound is the
    /// product's times |scale|, plus one rounding of the result.</summary>
    [Fact]
    public void TransposedTilingAppliesEachActivationAndAffineMap()
    {
        GemmActivation[] activations = [GemmActivation.None, GemmActivation.Relu, GemmActivation.Clip(-0.2f, 0.3f), GemmActivation.LeakyRelu(0.1f),
            GemmActivation.HardSigmoid(0.2f, 0.5f), GemmActivation.HardSwish, GemmActivation.Sigmoid];
        int[] input = [6, 37], kernel = [2, 2];
        var rng = new Random(77);
        var g = new ConvGeometry(1, 3, 4, 1, [12, 74], kernel, input, kernel, [1, 1], [0, 0]);
        var x = RandomArray(rng, g.OutChannels * g.OutputSize);
        var w = RandomArray(rng, g.OutChannels * g.GroupInChannels * g.KernelSize);
        var bias = RandomArray(rng, g.InChannels);
        var scale = RandomArray(rng, g.InChannels);
        var shift = RandomArray(rng, g.InChannels);
        var (expected, bound) = DirectTransposedConvolution(g, x, w, bias);
        foreach (var activation in activations)
            foreach (bool affine in new[] { false, true })
            {
                var y = new float[expected.Length];
                var epilogue = new GemmEpilogue { RowBias = bias, Activation = activation, RowScale = affine ? scale : [], RowShift = affine ? shift : [] };
                TransposedConvolution.Run(new KernelContext(1), g, x, w, null, y, epilogue);
                int plane = g.InputSize;
                for (int i = 0; i < y.Length; i++)
                {
                    int c = i / plane;
                    double s = affine ? scale[c] : 1, want = activation.Apply((float)expected[i]) * s + (affine ? shift[c] : 0);
                    double tolerance = bound[i] * Math.Abs(s) + 1e-6 * (Math.Abs(want) + 1);
                    Assert.True(Math.Abs(y[i] - want) <= tolerance, $"{activation.Kind} affine {affine}: y[{i}] = {y[i]}, expected {want}");
                }
            }
    }

    private static void TransposedTiling(int[] input, int[] kernel, int groups, bool withBias, bool pack, int threads)
    {
        var rng = new Random(input.Sum() + kernel.Sum());
        int rank = input.Length;
        var output = input.Select((d, i) => d * kernel[i]).ToArray();
        // The adjoint geometry: its input is Y (M channels), its output X (C channels).
        var g = new ConvGeometry(2, 3 * groups, 4 * groups, groups, output, kernel, input, kernel, Enumerable.Repeat(1, rank).ToArray(), new int[rank]);
        var x = RandomArray(rng, g.Batch * g.OutChannels * g.OutputSize);
        var w = RandomArray(rng, g.OutChannels * g.GroupInChannels * g.KernelSize);
        var bias = withBias ? RandomArray(rng, g.InChannels) : [];
        var (expected, bound) = DirectTransposedConvolution(g, x, w, bias);
        var y = new float[expected.Length];
        y.AsSpan().Fill(float.NaN);
        TransposedConvolution.Run(new KernelContext(threads), g, x, w, pack ? Packed(w) : null, bias, y);
        AssertClose(expected, bound, y, $"{Describe(g)} bias {withBias} packed {pack}");
    }

    /// <summary>3x3 stride-1 convolutions by Winograd F(4x4, 3x3): partial tiles at both edges, tile blocks, pads,
    /// groups, threads, rows whose last segment is shared with the next row's. Tolerance ten times the direct one: the transforms scale values by up to 8 (and the
    /// weights by 1/24) before rounding.</summary>
    [Theory]
    [InlineData(16, 8, 9, 37, 1, 1, 1, 1)]
    [InlineData(8, 24, 4, 33, 1, 1, 1, 1)]
    [InlineData(32, 16, 22, 70, 0, 0, 1, 3)]
    [InlineData(16, 16, 5, 130, 2, 0, 1, 2)]
    [InlineData(16, 16, 7, 40, 1, 1, 2, 1)]
    [InlineData(64, 24, 6, 130, 1, 1, 1, 1)]
    [InlineData(24, 8, 10, 160, 1, 1, 1, 1)] // det's width: rows of 16 + 16 + 8 tiles, the 8s of two rows sharing a segment, one left alone
    [InlineData(16, 8, 9, 30, 1, 1, 1, 3)]   // rows of 8 tiles: every segment shared by two rows but the last
    public void WinogradMatchesDirectReference(int inChannels, int outChannels, int height, int width, int padTop, int padLeft,
        int groups, int threads)
    {
        var rng = new Random(inChannels * 100 + width);
        int outH = height + padTop + 1 - 2, outW = width + padLeft + 1 - 2;
        var g = new ConvGeometry(2, inChannels, outChannels, groups, [height, width], [3, 3], [outH, outW], [1, 1], [1, 1], [padTop, padLeft]);
        // Without AVX-512 the convolution that runs instead meets the same (looser) bound on these shapes.
        Assert.Equal(WinogradConv.IsSupported, WinogradConv.Applies(g));
        var x = RandomArray(rng, g.Batch * g.InChannels * g.InputSize);
        var w = RandomArray(rng, g.OutChannels * g.GroupInChannels * g.KernelSize);
        var bias = RandomArray(rng, g.OutChannels);
        var (expected, bound) = DirectConvolution(g, x, w, bias, GemmActivation.Relu);
        for (int i = 0; i < bound.Length; i++) bound[i] *= 10;
        foreach (bool pack in new[] { false, true })
        {
            var y = new float[expected.Length];
            y.AsSpan().Fill(float.NaN);
            Convolution.Run(new KernelContext(threads), g, x, w, pack ? Packed(w) : null, bias, y, GemmActivation.Relu);
            AssertClose(expected, bound, y, Describe(g));
        }
    }

    /// <summary>Depthwise rows long enough for the four-vector loop and its tail, at strides 1 to 3.</summary>
    [Theory]
    [InlineData(1, 3, 1, 1)]
    [InlineData(2, 3, 1, 1)]
    [InlineData(2, 5, 2, 2)]
    [InlineData(3, 3, 1, 0)]
    [InlineData(1, 5, 2, 4)]
    public void DepthwiseMatchesDirectReferenceOnWideRows(int stride, int kernel, int dilation, int pad)
    {
        var rng = new Random(stride * 100 + kernel * 10 + dilation);
        int channels = 5, height = 9, width = 157;
        int extent = (kernel - 1) * dilation + 1;
        int outH = (height + 2 * pad - extent) / stride + 1, outW = (width + 2 * pad - extent) / stride + 1;
        var g = new ConvGeometry(2, channels, channels, channels, [height, width], [kernel, kernel], [outH, outW],
            [stride, stride], [dilation, dilation], [pad, pad]);
        var x = RandomArray(rng, 2 * channels * height * width);
        var w = RandomArray(rng, channels * kernel * kernel);
        var bias = RandomArray(rng, channels);
        var (expected, bound) = DirectConvolution(g, x, w, bias, GemmActivation.Clip(-0.5f, 0.5f));
        var y = new float[expected.Length];
        Convolution.Run(new KernelContext(1), g, x, w, null, bias, y, GemmActivation.Clip(-0.5f, 0.5f));
        AssertClose(expected, bound, y, Describe(g));
    }

    /// <summary>
    /// The written-out depthwise row kernels (3x3 and 5x5 windows, vertical stride 1 or 2, on 16 lanes): PP-OCR's
    /// shapes, row counts that leave blocks of one to three rows, widths with a partial last vector, and horizontal
    /// strides and dilations (which only move the column offsets). Tolerance: 1e-5 of the sum of |terms| (fp32
    /// accumulation of at most 25 terms in another order than the double reference), as for the other cases.
    /// </summary>
    [Theory]
    [InlineData(5, 1, 1, 1, 12, 80)]
    [InlineData(5, 1, 1, 1, 6, 80)]
    [InlineData(5, 2, 1, 1, 12, 80)]
    [InlineData(5, 2, 1, 1, 6, 37)]
    [InlineData(5, 1, 2, 2, 9, 33)]
    [InlineData(3, 1, 1, 1, 5, 37)]
    [InlineData(3, 2, 1, 1, 24, 160)]
    [InlineData(3, 1, 2, 1, 12, 160)]
    [InlineData(3, 2, 2, 2, 7, 45)]
    public void DepthwiseWrittenOutKernelsMatchDirectReference(int kernel, int strideH, int strideW, int dilationW, int height, int width)
    {
        var rng = new Random(kernel * 1000 + strideH * 100 + strideW * 10 + height + width);
        int channels = 3, padH = (kernel - 1) / 2, padW = (kernel - 1) * dilationW / 2;
        int outH = (height + 2 * padH - kernel) / strideH + 1;
        int outW = (width + 2 * padW - (kernel - 1) * dilationW - 1) / strideW + 1;
        var g = new ConvGeometry(2, channels, channels, channels, [height, width], [kernel, kernel], [outH, outW],
            [strideH, strideW], [1, dilationW], [padH, padW]);
        var x = RandomArray(rng, 2 * channels * height * width);
        var w = RandomArray(rng, channels * kernel * kernel);
        var bias = RandomArray(rng, channels);
        var activation = GemmActivation.Clip(-0.5f, 0.5f);
        var (expected, bound) = DirectConvolution(g, x, w, bias, activation);
        var y = new float[expected.Length];
        y.AsSpan().Fill(float.NaN);
        Convolution.Run(new KernelContext(1), g, x, w, null, bias, y, activation);
        AssertClose(expected, bound, y, Describe(g));
    }

    /// <summary>
    /// The per-channel scale and shift after the activation (PP-LCNet's affine step), which the depthwise kernel
    /// applies as it stores when the activation fits in registers and in a pass otherwise: the written-out 5x5 kernel,
    /// the general loop (7x7) and the pass (sigmoid). Expected: the same convolution with only bias and activation,
    /// then <c>y * scale + shift</c> in fp32, the order the unfused operators use; bit-identical (tolerance 0).
    /// </summary>
    [Theory]
    [InlineData(5, "HardSwish")]
    [InlineData(7, "HardSwish")]
    [InlineData(5, "Sigmoid")]
    public void DepthwiseRowAffineEpilogueMatchesUnfusedSteps(int kernel, string activationName)
    {
        var rng = new Random(kernel * 7 + activationName.Length);
        int channels = 4, height = 6, width = 37, pad = kernel / 2;
        var activation = activationName == "Sigmoid" ? GemmActivation.Sigmoid : GemmActivation.HardSwish;
        var g = new ConvGeometry(1, channels, channels, channels, [height, width], [kernel, kernel], [height, width],
            [1, 1], [1, 1], [pad, pad]);
        var x = RandomArray(rng, channels * height * width);
        var w = RandomArray(rng, channels * kernel * kernel);
        var bias = RandomArray(rng, channels);
        var scale = RandomArray(rng, channels);
        var shift = RandomArray(rng, channels);
        var expected = new float[channels * height * width];
        Convolution.Run(new KernelContext(1), g, x, w, null, bias, expected, activation);
        for (int i = 0; i < expected.Length; i++)
            expected[i] = expected[i] * scale[i / (height * width)] + shift[i / (height * width)];
        var y = new float[expected.Length];
        Convolution.Run(new KernelContext(1), g, x, w, null, y,
            new GemmEpilogue { RowBias = bias, Activation = activation, RowScale = scale, RowShift = shift });
        Assert.Equal(expected, y);
    }

    /// <summary>A random geometry: rank 1 to 3, grouped (including depthwise and depthwise with a multiplier),
    /// strided, dilated and asymmetrically padded, with widths that leave vector tails.</summary>
    private static ConvGeometry RandomGeometry(Random rng, bool transposed)
    {
        int rank = rng.Next(10) switch { < 2 => 1, < 8 => 2, _ => 3 };
        int groups = rng.Next(4) switch { 0 => 1, 1 => 2, _ => 3 };
        int inPerGroup = rng.Next(4) == 0 ? 1 : rng.Next(1, 5);
        int outPerGroup = rng.Next(4) == 0 ? 1 : rng.Next(1, 12);
        int batch = rng.Next(1, 3);
        var input = new int[rank];
        var kernel = new int[rank];
        var output = new int[rank];
        var strides = new int[rank];
        var dilations = new int[rank];
        var pads = new int[rank];
        for (int d = 0; d < rank; d++)
        {
            kernel[d] = rng.Next(1, 5);
            strides[d] = rng.Next(1, 4);
            dilations[d] = rng.Next(1, 3);
            pads[d] = rng.Next(0, 3);
            int padEnd = rng.Next(0, 3);
            int extent = (kernel[d] - 1) * dilations[d] + 1;
            int size = d == rank - 1 ? rng.Next(1, 40) : rng.Next(1, 9);
            input[d] = Math.Max(size, extent - pads[d] - padEnd);
            output[d] = (input[d] + pads[d] + padEnd - extent) / strides[d] + 1;
        }
        int inChannels = groups * inPerGroup, outChannels = groups * outPerGroup;
        return transposed
            ? new ConvGeometry(batch, outChannels, inChannels, groups, input, kernel, output, strides, dilations, pads)
            : new ConvGeometry(batch, inChannels, outChannels, groups, input, kernel, output, strides, dilations, pads);
    }

    /// <summary>y[n, m, o] = activation(bias[m] + sum over c in m's group and taps k of w[m, c, k] * x[n, c, o * s - pad + k * d]).</summary>
    private static (double[] Expected, double[] Bound) DirectConvolution(ConvGeometry g, float[] x, float[] w, float[] bias, GemmActivation activation)
    {
        var expected = new double[g.Batch * g.OutChannels * g.OutputSize];
        var bound = new double[expected.Length];
        int cg = g.GroupInChannels, mg = g.GroupOutChannels;
        for (int n = 0; n < g.Batch; n++)
            for (int m = 0; m < g.OutChannels; m++)
                for (int o = 0; o < g.OutputSize; o++)
                {
                    double sum = bias.Length > 0 ? bias[m] : 0, abs = Math.Abs(sum);
                    int group = m / mg;
                    for (int c = 0; c < cg; c++)
                        for (int k = 0; k < g.KernelSize; k++)
                        {
                            int i = InputIndex(g, o, k);
                            if (i < 0) continue;
                            double term = (double)w[(m * cg + c) * g.KernelSize + k] * x[(n * g.InChannels + group * cg + c) * g.InputSize + i];
                            sum += term;
                            abs += Math.Abs(term);
                        }
                    int at = (n * g.OutChannels + m) * g.OutputSize + o;
                    expected[at] = activation.Apply((float)sum);
                    bound[at] = 1e-5 * abs + 1e-6;
                }
        return (expected, bound);
    }

    /// <summary>The adjoint: every x[n, c, o] * w[c, m, k] is added to y[n, m, o * s - pad + k * d].</summary>
    private static (double[] Expected, double[] Bound) DirectTransposedConvolution(ConvGeometry g, float[] x, float[] w, float[] bias)
    {
        var expected = new double[g.Batch * g.InChannels * g.InputSize];
        var abs = new double[expected.Length];
        int cg = g.GroupOutChannels, mg = g.GroupInChannels;
        for (int n = 0; n < g.Batch; n++)
            for (int c = 0; c < g.OutChannels; c++)
                for (int o = 0; o < g.OutputSize; o++)
                    for (int m = 0; m < mg; m++)
                        for (int k = 0; k < g.KernelSize; k++)
                        {
                            int i = InputIndex(g, o, k);
                            if (i < 0) continue;
                            int group = c / cg;
                            double term = (double)x[(n * g.OutChannels + c) * g.OutputSize + o] * w[(c * mg + m) * g.KernelSize + k];
                            int at = (n * g.InChannels + group * mg + m) * g.InputSize + i;
                            expected[at] += term;
                            abs[at] += Math.Abs(term);
                        }
        var bound = new double[expected.Length];
        for (int at = 0; at < expected.Length; at++)
        {
            if (bias.Length > 0) expected[at] += bias[at / g.InputSize % g.InChannels];
            bound[at] = 1e-5 * (abs[at] + Math.Abs(expected[at])) + 1e-6;
        }
        return (expected, bound);
    }

    /// <summary>The flat input index that output position <paramref name="o"/> reads through tap <paramref name="k"/>, or -1 in the padding.</summary>
    private static int InputIndex(ConvGeometry g, int o, int k)
    {
        int index = 0;
        for (int d = 0, outStride = g.OutputSize, tapStride = g.KernelSize; d < g.Rank; d++)
        {
            outStride /= g.Output[d];
            tapStride /= g.Kernel[d];
            int od = o / outStride % g.Output[d], kd = k / tapStride % g.Kernel[d];
            int i = od * g.Strides[d] - g.PadsBegin[d] + kd * g.Dilations[d];
            if (i < 0 || i >= g.Input[d]) return -1;
            index = index * g.Input[d] + i;
        }
        return index;
    }

    private static string Describe(ConvGeometry g) =>
        $"N={g.Batch} C={g.InChannels} M={g.OutChannels} G={g.Groups} in=[{string.Join(",", g.Input)}] k=[{string.Join(",", g.Kernel)}] " +
        $"out=[{string.Join(",", g.Output)}] s=[{string.Join(",", g.Strides)}] d=[{string.Join(",", g.Dilations)}] p=[{string.Join(",", g.PadsBegin)}]";

    private static void AssertClose(double[] expected, double[] bound, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= bound[i], $"{what}: y[{i}] = {actual[i]}, expected {expected[i]}");
    }

    /// <summary>The operators compute float16 and bfloat16 in fp32 and round the result to nearest-even.</summary>
    [Theory]
    [InlineData("Conv", DataType.Float16)]
    [InlineData("Conv", DataType.BFloat16)]
    [InlineData("ConvTranspose", DataType.Float16)]
    public void HalfPrecisionRunsThroughFloat(string opType, DataType type)
    {
        var rng = new Random(5);
        var x = RandomArray(rng, 2 * 4 * 6 * 7);
        var w = RandomArray(rng, 4 * 2 * 3 * 3);
        var b = RandomArray(rng, 4);
        Tensor Round(float[] values, params int[] shape)
        {
            var single = Tensor.From<float>(values, shape);
            var half = new Tensor(type, shape);
            HalfPrecision.FromSingle(single.AsSpan<float>(), half);
            return half;
        }
        var inputs = new[] { Round(x, 2, 4, 6, 7), Round(w, 4, 2, 3, 3), Round(b, 4) };
        // The expected result: the same operator on the rounded inputs widened to float, then rounded once.
        var widened = inputs.Select(t => Tensor.From<float>(HalfPrecision.ToSingle(t), t.Shape)).ToArray();
        var expected = RunOperator(opType, widened);
        var actual = RunOperator(opType, inputs);
        Assert.Equal(type, actual.DataType);
        var rounded = new Tensor(type, expected.Shape);
        HalfPrecision.FromSingle(expected.AsSpan<float>(), rounded);
        Assert.Equal(rounded.Bytes.ToArray(), actual.Bytes.ToArray());
    }

    private static Tensor RunOperator(string opType, Tensor[] inputs)
    {
        var node = new Squash.Runtime.Ir.Node(opType, "n", "", 22);
        for (int i = 0; i < inputs.Length; i++) node.AddInput(new Squash.Runtime.Ir.Value("in" + i));
        node.AddOutput(new Squash.Runtime.Ir.Value("y"));
        node.Attributes["group"] = Squash.Runtime.Ir.AttributeValue.Int(2);
        node.Attributes["pads"] = Squash.Runtime.Ir.AttributeValue.IntList(1, 0, 1, 2);
        var op = Squash.Runtime.Operators.OperatorRegistry.Create(node);
        var inference = new Squash.Runtime.Operators.InferenceContext(node, inputs.Length, 1);
        for (int i = 0; i < inputs.Length; i++) inference.SetInput(i, inputs[i].DataType, inputs[i].Shape, inputs[i]);
        op.InferOutputs(inference);
        var y = new Tensor(inference.OutputTypes[0], inference.OutputShapes[0]!);
        op.Run(new KernelContext(1), inputs, [y]);
        return y;
    }

    /// <summary>Constant weights, packed by the kernels on first use.</summary>
    private static PackedConvWeights Packed(float[] w) => new(Tensor.From<float>(w, w.Length));

    private static float[] RandomArray(Random rng, int n)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        return x;
    }
}
