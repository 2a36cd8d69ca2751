using Squash.Compiler.Quantization;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Tests.Quantization;

/// <summary>
/// Bias correction: the input means calibration measures for each product, against a brute-force mean over output
/// positions and taps; the corrected bias against the closed form (by linearity the corrected product's mean over the
/// calibration samples equals the fp32 product's); and the int8 rewrite's int32 bias.
/// </summary>
public sealed class BiasCorrectionTests
{
    // x [1, 4, 7, 9] -> Conv (group 2, strides [2, 1], dilations [1, 2], pads [1, 2, 0, 1]);
    // y [1, 3, 10] -> Conv 1-D (pads [2, 1], stride 3); z [2, 5, 4] -> MatMul [4, 3].
    private static (Model Model, string Conv2d, string Conv1d, string MatMul) Build()
    {
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 1, 4, 7, 9);
        var y = b.Input("y", DataType.Float, 1, 3, 10);
        var z = b.Input("z", DataType.Float, 2, 5, 4);
        var rng = new Random(5);
        Tensor Random(params int[] shape) => Tensor.From<float>([.. Enumerable.Range(0, (int)Shapes.ElementCount(shape)).Select(_ => (float)(rng.NextDouble() * 2 - 1))], shape);
        var conv2d = b.NodeWith("Conv", [("group", AttributeValue.Int(2)), ("strides", AttributeValue.IntList(2, 1)),
            ("dilations", AttributeValue.IntList(1, 2)), ("pads", AttributeValue.IntList(1, 2, 0, 1))],
            [x, b.Constant(Random(6, 2, 3, 3)), b.Constant(Random(6))])[0];
        var conv1d = b.NodeWith("Conv", [("strides", AttributeValue.IntList(3)), ("pads", AttributeValue.IntList(2, 1))],
            [y, b.Constant(Random(5, 3, 4))])[0];
        var matmul = b.Node("MatMul", z, b.Constant(Random(4, 3)));
        b.Output(conv2d);
        b.Output(conv1d);
        b.Output(matmul);
        var model = b.Build();
        ModelPreparation.Optimize(model);
        string Producer(Value v) => model.Graph.Nodes.Single(n => n.Outputs.Contains(v)).Name;
        return (model, Producer(model.Graph.Outputs[0]), Producer(model.Graph.Outputs[1]), Producer(model.Graph.Outputs[2]));
    }

    private static List<Dictionary<string, Tensor>> Samples(Graph graph, int count, int seed)
    {
        var rng = new Random(seed);
        // Positive-leaning inputs (as after ReLU or hard-swish) so that the means are far from zero.
        return [.. Enumerable.Range(0, count).Select(_ => graph.Inputs.ToDictionary(v => v.Name,
            v => Tensor.From<float>([.. Enumerable.Range(0, (int)Shapes.ElementCount(v.Shape!)).Select(_ => (float)(rng.NextDouble() * 3 - 0.5))], v.Shape!)))];
    }

    [Fact]
    public void InputMeansAreTheMeansOfWhatEachTapReads()
    {
        var (model, conv2d, conv1d, matmul) = Build();
        var samples = Samples(model.Graph, 3, 11);
        var result = new Calibrator().Calibrate(ExecutionPlan.Create(model.Graph), samples);
        Assert.Equal(new[] { conv1d, conv2d, matmul }.Order(StringComparer.Ordinal), result.InputMeans.Keys);
        // Tolerance: sums in double, one rounding to float: 1e-6 relative to the largest input.
        AssertClose(ConvTapMeans(samples.Select(s => s["x"]), 3, 3, [2, 1], [1, 2], [1, 2, 0, 1]), result.InputMeans[conv2d], 3e-6);
        AssertClose(ConvTapMeans(samples.Select(s => s["y"]), 1, 4, [1, 3], [1, 1], [0, 2, 0, 1]), result.InputMeans[conv1d], 3e-6);
        var rows = samples.SelectMany(s => s["z"].AsSpan<float>().ToArray().Chunk(4)).ToArray();
        AssertClose([.. Enumerable.Range(0, 4).Select(k => rows.Average(r => (double)r[k]))], result.InputMeans[matmul], 3e-6);
        Assert.Empty(new Calibrator(new CalibrationSettings { BiasCorrection = false }).Calibrate(ExecutionPlan.Create(model.Graph), samples).InputMeans);
    }

    [Fact]
    public void TheCorrectedProductHasTheFp32ProductsMeanOnTheCalibrationSamples()
    {
        var (model, conv2d, _, matmul) = Build();
        var samples = Samples(model.Graph, 3, 12);
        var means = new Calibrator().Calibrate(ExecutionPlan.Create(model.Graph), samples).InputMeans;
        var graph = model.Graph;

        var convNode = graph.Nodes.Single(n => n.Name == conv2d);
        var w = convNode.Input(1)!.Constant!;
        var (q, scales) = Int8Quantization.QuantizeWeights(w, 0, 64);
        var shift = BiasCorrection.ForConv(w, q, scales, 2, means[conv2d]);
        var rounded = Dequantize(q, scales, 0);
        // The mean of conv(x, w) - conv(x, s*q) per output channel over every sample and position (no bias: it cancels).
        var fp32 = ConvOutputMeans(samples.Select(s => s["x"]), w.AsSpan<float>().ToArray(), w.Shape);
        var quantized = ConvOutputMeans(samples.Select(s => s["x"]), rounded, w.Shape);
        AssertShiftRestoresMeans(fp32, quantized, shift);

        var mm = graph.Nodes.Single(n => n.Name == matmul);
        var bw = mm.Input(1)!.Constant!;
        var (bq, bScales) = Int8Quantization.QuantizeWeights(bw, 1, 64);
        var mmShift = BiasCorrection.ForMatMul(bw, bq, bScales, means[matmul]);
        var rows = samples.SelectMany(s => s["z"].AsSpan<float>().ToArray().Chunk(4)).ToArray();
        var bRounded = Dequantize(bq, bScales, 1);
        double[] MatMulMeans(float[] weights) => [.. Enumerable.Range(0, 3).Select(n => rows.Average(r => Enumerable.Range(0, 4).Sum(k => (double)r[k] * weights[k * 3 + n])))];
        AssertShiftRestoresMeans(MatMulMeans(bw.AsSpan<float>().ToArray()), MatMulMeans(bRounded), mmShift);
    }

    [Fact]
    public void TheInt8RewriteAddsTheShiftToTheInt32Bias()
    {
        foreach (bool on in new[] { true, false })
        {
            var (model, conv2d, conv1d, _) = Build();
            var samples = Samples(model.Graph, 3, 13);
            var calibration = new Calibrator(new CalibrationSettings { BiasCorrection = on }).Calibrate(ExecutionPlan.Create(model.Graph), samples);
            var graph = model.Graph;
            var fp32 = graph.Nodes.Single(n => n.Name == conv2d);
            var (w, b) = (fp32.Input(1)!.Constant!, fp32.Input(2)!.Constant!.AsSpan<float>().ToArray());
            bool hadBias1d = graph.Nodes.Single(n => n.Name == conv1d).Input(2) is not null;
            // Small products stay fp32 by default: plan these two int8.
            var plan = QuantizationPlan.Create(graph).With(conv2d, NodePrecision.Int8).With(conv1d, NodePrecision.Int8);
            Int8Quantization.Apply(graph, calibration, plan);
            var qconv = graph.Nodes.Single(n => n.OpType == "QConv" && n.Name == conv2d);
            var (q, scales) = Int8Quantization.QuantizeWeights(w, 0, 64);
            float xScale = qconv.Input(1)!.Constant!.AsSpan<float>()[0];
            var expected = on ? BiasCorrection.Apply(b, BiasCorrection.ForConv(w, q, scales, 2, calibration.InputMeans[conv2d])) : b;
            Assert.Equal(Int8Quantization.QuantizeBias(expected, xScale, scales, 2 * 9).AsSpan<int>().ToArray(), qconv.Input(8)!.Constant!.AsSpan<int>().ToArray());
            // A convolution without a bias gets one when corrected.
            Assert.False(hadBias1d);
            Assert.Equal(on, graph.Nodes.Single(n => n.Name == conv1d).Input(8) is not null);
        }
    }

    [Theory]
    [InlineData(null, true)]
    [InlineData("on", true)]
    [InlineData(" OFF ", false)]
    [InlineData("false", false)]
    public void TheOptionTurnsItOnOrOff(string? text, bool on)
    {
        string folder = TestPaths.Asset("data", "ppocr", "calib", "cls");
        Assert.Equal(on, QuantizationOptions.FromText("int8", folder, biasCorrection: text).Calibration.BiasCorrection);
        var e = Assert.Throws<SquashException>(() => QuantizationOptions.FromText("int8", folder, biasCorrection: "maybe"));
        Assert.Equal(ErrorCodes.InvalidOption, e.Code);
    }

    private static void AssertShiftRestoresMeans(double[] fp32, double[] quantized, double[] shift)
    {
        double largest = fp32.Max(Math.Abs);
        for (int c = 0; c < fp32.Length; c++)
        {
            // Linear in the inputs, so exact up to float rounding of the means (1e-6 relative) times the weights.
            Assert.InRange(quantized[c] + shift[c] - fp32[c], -1e-5 * largest, 1e-5 * largest);
        }
        // The correction is not vacuous: rounding to 64 levels moved some channel's mean by far more than that.
        Assert.Contains(fp32.Zip(quantized), p => Math.Abs(p.First - p.Second) > 1e-3 * largest);
    }

    private static float[] Dequantize(Tensor q, float[] scales, int axis)
    {
        var v = q.AsSpan<sbyte>();
        int channels = q.Shape[axis], inner = Shapes.Product(q.Shape, axis + 1, q.Rank);
        var r = new float[v.Length];
        for (int i = 0; i < v.Length; i++) r[i] = scales[i / inner % channels] * v[i];
        return r;
    }

    /// <summary>Brute force: for every output position and tap, what the tap reads (zero in the padding), averaged.
    /// Pads as [top, left, bottom, right]; a 1-D input is a 2-D one of height 1.</summary>
    private static double[] ConvTapMeans(IEnumerable<Tensor> inputs, int kh, int kw, int[] strides, int[] dilations, int[] pads)
    {
        double[]? sums = null;
        long count = 0;
        foreach (var x in inputs)
        {
            int c = x.Shape[1], h = x.Rank == 4 ? x.Shape[2] : 1, width = x.Shape[^1];
            int oh = (h + pads[0] + pads[2] - (kh - 1) * dilations[0] - 1) / strides[0] + 1;
            int ow = (width + pads[1] + pads[3] - (kw - 1) * dilations[1] - 1) / strides[1] + 1;
            sums ??= new double[c * kh * kw];
            var v = x.AsSpan<float>();
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++)
                    for (int ch = 0; ch < c; ch++)
                        for (int i = 0; i < kh; i++)
                            for (int j = 0; j < kw; j++)
                            {
                                int iy = oy * strides[0] + i * dilations[0] - pads[0], ix = ox * strides[1] + j * dilations[1] - pads[1];
                                if (iy >= 0 && iy < h && ix >= 0 && ix < width) sums[(ch * kh + i) * kw + j] += v[(ch * h + iy) * width + ix];
                            }
            count += (long)oh * ow;
        }
        return [.. sums!.Select(s => s / count)];
    }

    /// <summary>Per output channel, the mean over samples and positions of the 2-D Conv of <see cref="Build"/> without bias.</summary>
    private static double[] ConvOutputMeans(IEnumerable<Tensor> inputs, float[] w, int[] shape)
    {
        int co = shape[0], cig = shape[1], groups = 2;
        var sums = new double[co];
        long count = 0;
        foreach (var x in inputs)
        {
            int h = x.Shape[2], width = x.Shape[3];
            int oh = (h + 1 + 0 - 3) / 2 + 1, ow = (width + 2 + 1 - 5) / 1 + 1;
            var v = x.AsSpan<float>();
            for (int c = 0; c < co; c++)
                for (int oy = 0; oy < oh; oy++)
                    for (int ox = 0; ox < ow; ox++)
                    {
                        double s = 0;
                        for (int ci = 0; ci < cig; ci++)
                            for (int i = 0; i < 3; i++)
                                for (int j = 0; j < 3; j++)
                                {
                                    int iy = oy * 2 + i - 1, ix = ox + j * 2 - 2, channel = c / (co / groups) * cig + ci;
                                    if (iy >= 0 && iy < h && ix >= 0 && ix < width) s += w[((c * cig + ci) * 3 + i) * 3 + j] * v[(channel * h + iy) * width + ix];
                                }
                        sums[c] += s;
                    }
            count += (long)oh * ow;
        }
        return [.. sums.Select(s => s / count)];
    }

    private static void AssertClose(double[] expected, float[] actual, double relative)
    {
        Assert.Equal(expected.Length, actual.Length);
        double tolerance = relative * Math.Max(1, expected.Max(Math.Abs));
        for (int i = 0; i < expected.Length; i++) Assert.InRange(actual[i] - expected[i], -tolerance, tolerance);
    }
}
