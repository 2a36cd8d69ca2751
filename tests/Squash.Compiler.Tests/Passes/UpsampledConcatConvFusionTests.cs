using Squash.Compiler.Passes;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Compiler.Tests.Passes;

/// <summary>
/// <see cref="UpsampledConcatConvFusion"/>: a 3x3 convolution of a concatenation of nearest-upsampled maps becomes one
/// FusedUpsampledConcatConv whose outputs match a direct convolution of the upsampled concatenation computed in double
/// (and the unfused graph) within 1e-5 of the sum of |w x| over each output's terms: both measured within 1e-6 of it
/// (the unfused graph's Winograd, with ten times the direct rounding error, fails first at 2e-7), so the bound leaves
/// a margin of ten. With one and three threads, after the ONNX writer and loader; scales 2, 3, 4 and 8, rows
/// narrower than a vector (the portable expansion), a last vector overlapping the one before, a batch of two, no
/// full-resolution input. It must not fire when the pattern is broken.
/// </summary>
public sealed class UpsampledConcatConvFusionTests
{
    private const double Tolerance = 1e-5;

    private static Tensor Random(Random rng, params int[] shape) => TestTensors.Uniform(rng, 1, shape);

    private static void Fuse(Graph g) =>
        new PassManager([new ShapeInference(), new ActivationFusion(), new EpilogueFusion(), new UpsampledConcatConvFusion(), new DeadNodeElimination()])
            .Run(g, new PassContext());

    /// <summary>One part of the concatenation: channels, upsampling factor (1: full resolution).</summary>
    private readonly record struct PartSpec(int Channels, int Scale);

    /// <summary>x_i ─ Resize(nearest, s_i) ─┐ (s_i = 1: x_i itself) ─ Concat ─ Conv(3x3, pads 1, bias) ─ Relu ─ y.</summary>
    private static (Graph Graph, Dictionary<string, Tensor> Inputs, Tensor W, Tensor B) Pyramid(PartSpec[] parts, int height, int width,
        int batch = 1, int m = 6, string rounding = "floor", Action<GraphBuilder, Value[]>? extra = null, int kernel = 3)
    {
        var rng = new Random(7 + height + parts.Length);
        var b = new GraphBuilder(13);
        var inputs = new Dictionary<string, Tensor>();
        var concatInputs = new List<Value>();
        var resized = new List<Value>();
        for (int p = 0; p < parts.Length; p++)
        {
            var (c, s) = parts[p];
            var x = b.Input($"x{p}", DataType.Float, batch, c, height / s, width / s);
            inputs[x.Name] = Random(rng, batch, c, height / s, width / s);
            if (s == 1)
            {
                concatInputs.Add(x);
                continue;
            }
            var r = b.Resize(x, s, rounding: rounding);
            concatInputs.Add(r);
            resized.Add(r);
        }
        var concat = b.NodeWith("Concat", [("axis", AttributeValue.Int(1))], [.. concatInputs])[0];
        int channels = parts.Sum(p => p.Channels);
        var w = Random(rng, m, channels, kernel, kernel);
        var bias = Random(rng, m);
        var conv = b.NodeWith("Conv", [("pads", AttributeValue.IntList(kernel / 2, kernel / 2, kernel / 2, kernel / 2))], [concat, b.Constant(w), b.Constant(bias)])[0];
        var y = b.Node("Relu", conv);
        y.Name = "y";
        b.Output(y);
        extra?.Invoke(b, [.. resized, concat]);
        return (b.Graph, inputs, w, bias);
    }

    public static TheoryData<int[], int, int, int> Shapes() => new()
    {
        // (channels, scale) pairs, output height and width, batch.
        { [3, 8, 4, 4, 2, 2, 5, 1], 40, 40, 1 },   // DBNet's pyramid at 40x40: 8x, 4x, 2x and full resolution
        { [4, 2, 3, 1], 12, 20, 2 },              // rows of 20: a last vector overlapping the first; a batch of two
        { [2, 3, 3, 2], 6, 12, 1 },                // scale 3 and no full-resolution input; rows narrower than a vector
        { [5, 4, 2, 1], 8, 48, 1 },               // three whole vectors a row
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void FusesAndMatchesTheDirectConvolution(int[] spec, int height, int width, int batch)
    {
        var parts = Enumerable.Range(0, spec.Length / 2).Select(i => new PartSpec(spec[2 * i], spec[2 * i + 1])).ToArray();
        var (graph, inputs, w, bias) = Pyramid(parts, height, width, batch);
        var before = FusionAssert.Copy(graph);
        Fuse(graph);
        Assert.Equal(["FusedUpsampledConcatConv"], graph.Nodes.Select(n => n.OpType));
        Assert.Equal(parts.Select(p => (long)p.Scale), graph.Nodes[0].Attributes["scales"].Ints);
        var (expected, bound) = Direct(parts, inputs, w, bias, batch, height, width);
        foreach (int threads in new[] { 1, 3 })
        {
            var unfused = new GraphExecutor(before).Run(inputs, new KernelContext(threads))["y"];
            AssertClose(expected, bound, unfused, $"unfused, {threads} threads");
            foreach (var g in new[] { graph, FusionAssert.Copy(graph) })
                AssertClose(expected, bound, new GraphExecutor(g).Run(inputs, new KernelContext(threads))["y"], $"fused, {threads} threads");
        }
    }

    /// <summary>The portable expansion (machines without AVX-512) on rows wide enough for the vector one.</summary>
    [Fact]
    public void PortableExpansionMatchesTheDirectConvolution()
    {
        PartSpec[] parts = [new(3, 8), new(4, 4), new(2, 2), new(5, 1)];
        var (_, inputs, w, bias) = Pyramid(parts, 16, 40);
        var kernelParts = new List<UpsampledConcatConvolution.Part>();
        int first = 0;
        foreach (var p in parts)
        {
            kernelParts.Add(new UpsampledConcatConvolution.Part(w.AsSpan<float>(), 6, 14, first, p.Channels, p.Scale));
            first += p.Channels;
        }
        var y = new Tensor(DataType.Float, 1, 6, 16, 40);
        UpsampledConcatConvolution.Run(new KernelContext(1), kernelParts, [.. inputs.Values], bias.AsSpan<float>(), GemmActivation.Relu, y, vector: false);
        var (expected, bound) = Direct(parts, inputs, w, bias, 1, 16, 40);
        AssertClose(expected, bound, y, "portable");
    }

    /// <summary>The upsampled concatenation's convolution in double, with ReLU, and per output the sum of |w x|.</summary>
    private static (double[] Expected, double[] Bound) Direct(PartSpec[] parts, Dictionary<string, Tensor> inputs, Tensor w, Tensor bias,
        int batch, int height, int width)
    {
        int m = w.Shape[0], channels = w.Shape[1];
        var x = new double[batch * channels * height * width];
        for (int n = 0, c0 = 0; n < batch; n++, c0 = 0)
            for (int p = 0; p < parts.Length; c0 += parts[p].Channels, p++)
            {
                var source = inputs[$"x{p}"].AsSpan<float>();
                int s = parts[p].Scale, h = height / s, wd = width / s;
                for (int c = 0; c < parts[p].Channels; c++)
                    for (int yy = 0; yy < height; yy++)
                        for (int xx = 0; xx < width; xx++)
                            x[((n * channels + c0 + c) * height + yy) * width + xx] = source[((n * parts[p].Channels + c) * h + yy / s) * wd + xx / s];
            }
        var wv = w.AsSpan<float>();
        var bv = bias.AsSpan<float>();
        var expected = new double[batch * m * height * width];
        var bound = new double[expected.Length];
        for (int n = 0; n < batch; n++)
            for (int o = 0; o < m; o++)
                for (int yy = 0; yy < height; yy++)
                    for (int xx = 0; xx < width; xx++)
                    {
                        double sum = bv[o], abs = Math.Abs(bv[o]);
                        for (int c = 0; c < channels; c++)
                            for (int dy = 0; dy < 3; dy++)
                                for (int dx = 0; dx < 3; dx++)
                                {
                                    int iy = yy + dy - 1, ix = xx + dx - 1;
                                    if ((uint)iy >= (uint)height || (uint)ix >= (uint)width) continue;
                                    double term = wv[((o * channels + c) * 3 + dy) * 3 + dx] * x[((n * channels + c) * height + iy) * width + ix];
                                    sum += term;
                                    abs += Math.Abs(term);
                                }
                        int at = ((n * m + o) * height + yy) * width + xx;
                        expected[at] = Math.Max(0, sum);
                        bound[at] = Tolerance * abs;
                    }
        return (expected, bound);
    }

    private static void AssertClose(double[] expected, double[] bound, Tensor actual, string what)
    {
        var a = actual.AsSpan<float>();
        Assert.Equal(expected.Length, a.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(a[i] - expected[i]) <= bound[i], $"{what}: element {i} is {a[i]}, expected {expected[i]} within {bound[i]:G3}");
    }

    public static TheoryData<string> Broken() =>
    [
        "resize read elsewhere", "concat read elsewhere", "strided", "unpadded", "5x5", "grouped", "linear",
        "asymmetric rounding to nearest", "two at full resolution", "none upsampled", "one resize read twice",
    ];

    [Theory]
    [MemberData(nameof(Broken))]
    public void DoesNotFireWhenThePatternIsBroken(string how)
    {
        PartSpec[] parts = how switch
        {
            "two at full resolution" => [new(2, 2), new(3, 1), new(2, 1)],
            "none upsampled" => [new(3, 1)],
            "grouped" => [new(2, 2), new(2, 1)],
            _ => [new(2, 2), new(3, 1)],
        };
        Action<GraphBuilder, Value[]>? extra = how switch
        {
            "resize read elsewhere" => (b, values) => b.Output(values[0]),
            "concat read elsewhere" => (b, values) => b.Output(values[^1]),
            _ => null,
        };
        if (how == "one resize read twice")
        {
            // Concat(up(x), up(x), y): the Resize has two consumers, so it would be a second full-resolution part.
            var (twice, _, _, _) = Pyramid([new(2, 2), new(3, 1)], 8, 8);
            var concatNode = twice.Nodes.First(n => n.OpType == "Concat");
            var resized = concatNode.Inputs[0]!;
            var inputsList = concatNode.Inputs.ToList();
            concatNode.TruncateInputs(0);
            concatNode.AddInput(resized).AddInput(resized).AddInput(inputsList[1]);
            var w2 = new Value("w_twice", Random(new Random(2), 6, 7, 3, 3));
            twice.Initializers.Add(w2);
            twice.Nodes.First(n => n.OpType == "Conv").SetInput(1, w2);
            Fuse(twice);
            Assert.DoesNotContain("FusedUpsampledConcatConv", twice.Nodes.Select(n => n.OpType));
            return;
        }
        var (graph, _, _, _) = Pyramid(parts, 8, 8, rounding: how == "asymmetric rounding to nearest" ? "round_prefer_floor" : "floor",
            extra: extra, kernel: how == "5x5" ? 5 : 3);
        var conv = graph.Nodes.First(n => n.OpType == "Conv");
        switch (how)
        {
            case "strided": conv.Attributes["strides"] = AttributeValue.IntList(2, 2); break;
            case "unpadded": conv.Attributes["pads"] = AttributeValue.IntList(0, 0, 0, 0); break;
            case "linear": graph.Nodes.First(n => n.OpType == "Resize").Attributes["mode"] = AttributeValue.String("linear"); break;
            case "grouped":
                // Two groups of two input channels: W [6, 2, 3, 3].
                conv.Attributes["group"] = AttributeValue.Int(2);
                var w = new Value("w_grouped", Random(new Random(1), 6, 2, 3, 3));
                graph.Initializers.Add(w);
                conv.SetInput(1, w);
                break;
        }
        Fuse(graph);
        Assert.DoesNotContain("FusedUpsampledConcatConv", graph.Nodes.Select(n => n.OpType));
    }

    /// <summary>A hand-made node that does not fit together fails with the node and what is wrong, not a crash.</summary>
    [Fact]
    public void OperatorRejectsInputsThatDoNotFit()
    {
        var (graph, inputs, _, _) = Pyramid([new(3, 2), new(2, 1)], 8, 8);
        Fuse(graph);
        var node = graph.Nodes.Single();
        node.Attributes["scales"] = AttributeValue.IntList(4, 1);
        var e = Assert.Throws<SquashException>(() => new GraphExecutor(graph).Run(inputs));
        Assert.Contains("FusedUpsampledConcatConv node", e.Message);
        Assert.Contains("does not match the other inputs", e.Message);
        node.Attributes["scales"] = AttributeValue.IntList(1, 1);
        e = Assert.Throws<SquashException>(() => new GraphExecutor(graph));
        Assert.Contains("at most one input", e.Message);
        node.Attributes["scales"] = AttributeValue.IntList(2);
        e = Assert.Throws<SquashException>(() => new GraphExecutor(graph));
        Assert.Contains("'scales' has 1 values for 2 inputs", e.Message);
    }
}
