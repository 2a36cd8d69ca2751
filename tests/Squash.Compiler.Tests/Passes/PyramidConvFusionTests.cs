using Squash.Compiler.Passes;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Compiler.Tests.Passes;

/// <summary>
/// <see cref="PyramidConvFusion"/>: a 3x3 convolution of a concatenation of nearest-upsampled maps becomes one
/// FusedPyramidConv whose outputs match a direct convolution of the upsampled concatenation computed in double
/// (and the unfused graph) within 1e-5 of the sum of |w x| over each output's terms: both measured within 1e-6 of it
/// (the unfused graph's Winograd, with ten times the direct rounding error, fails first at 2e-7), so the bound leaves
/// a margin of ten. With one and three threads, after the ONNX writer and loader; scales 2, 3, 4 and 8, rows
/// narrower than a vector (the portable expansion), a last vector overlapping the one before, a batch of two, no
/// full-resolution input. It must not fire when the pattern is broken.
/// </summary>
public sealed class PyramidConvFusionTests
{
    private const double Tolerance = 1e-5;

    private static Tensor Random(Random rng, params int[] shape) => TestTensors.Uniform(rng, 1, shape);

    private static void Fuse(Graph g) =>
        new PassManager([new ShapeInference(), new ActivationFusion(), new GlobalPoolBeforePointwiseConv(), new PyramidConvFusion(), new DeadNodeElimination(), new EpilogueFusion()])
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
        Assert.Equal(["FusedPyramidConv"], graph.Nodes.Select(n => n.OpType));
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
        var kernelParts = new List<PyramidConvolution.Part>();
        int first = 0;
        foreach (var p in parts)
        {
            kernelParts.Add(new PyramidConvolution.Part(w.AsSpan<float>(), 6, 14, first, p.Channels, p.Scale));
            first += p.Channels;
        }
        var y = new Tensor(DataType.Float, 1, 6, 16, 40);
        PyramidConvolution.Run(new KernelContext(1), kernelParts, [.. inputs.Values], new Tensor?[parts.Length], bias.AsSpan<float>(), GemmActivation.Relu, y, vector: false);
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
        "strided", "unpadded", "5x5", "grouped", "linear", "asymmetric rounding to nearest", "two at full resolution", "none upsampled",
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
        var (graph, _, _, _) = Pyramid(parts, 8, 8, rounding: how == "asymmetric rounding to nearest" ? "round_prefer_floor" : "floor",
            kernel: how == "5x5" ? 5 : 3);
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
        Assert.DoesNotContain("FusedPyramidConv", graph.Nodes.Select(n => n.OpType));
    }

    /// <summary>A Resize or Concat read elsewhere, or one Resize read twice by the Concat, still fuses: the maps are
    /// convolved at their own resolutions, and the nodes stay for their other readers, whose outputs do not change.</summary>
    [Theory]
    [InlineData("resize read elsewhere")]
    [InlineData("concat read elsewhere")]
    [InlineData("one resize read twice")]
    public void FusesWhenMapsAreReadElsewhere(string how)
    {
        PartSpec[] parts = [new(2, 2), new(3, 1)];
        Action<GraphBuilder, Value[]>? extra = how switch
        {
            "resize read elsewhere" => (b, values) => b.Output(values[0]),
            "concat read elsewhere" => (b, values) => b.Output(values[^1]),
            _ => null,
        };
        var (graph, inputs, w, bias) = Pyramid(parts, 8, 8, extra: extra);
        if (how == "one resize read twice")
        {
            // Concat(up(x), up(x), y): channels 0-1 and 2-3 of W both read up(x).
            var concatNode = graph.Nodes.First(n => n.OpType == "Concat");
            var resized = concatNode.Inputs[0]!;
            var full = concatNode.Inputs[1]!;
            concatNode.TruncateInputs(0);
            concatNode.AddInput(resized).AddInput(resized).AddInput(full);
            w = Random(new Random(2), 6, 7, 3, 3);
            var w2 = new Value("w_twice", w);
            graph.Initializers.Add(w2);
            graph.Nodes.First(n => n.OpType == "Conv").SetInput(1, w2);
        }
        var before = FusionAssert.Copy(graph);
        Fuse(graph);
        Assert.Contains("FusedPyramidConv", graph.Nodes.Select(n => n.OpType));
        // The direct convolution's parts: up(x0), up(x0) again, x1 (as x0, x1, x2).
        var (expected, bound) = how == "one resize read twice"
            ? Direct([new(2, 2), new(2, 2), new(3, 1)], new() { ["x0"] = inputs["x0"], ["x1"] = inputs["x0"], ["x2"] = inputs["x1"] }, w, bias, 1, 8, 8)
            : Direct(parts, inputs, w, bias, 1, 8, 8);
        var fused = new GraphExecutor(graph).Run(inputs);
        AssertClose(expected, bound, fused["y"], "fused");
        var unfused = new GraphExecutor(before).Run(inputs);
        foreach (var (name, value) in unfused)
            if (name != "y") Assert.True(value.Bytes.SequenceEqual(fused[name].Bytes), $"{name} changed");
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
        Assert.Contains("FusedPyramidConv node", e.Message);
        Assert.Contains("does not match the other parts", e.Message);
        node.Attributes["scales"] = AttributeValue.IntList(1, 1);
        e = Assert.Throws<SquashException>(() => new GraphExecutor(graph));
        Assert.Contains("at most one part", e.Message);
        node.Attributes["scales"] = AttributeValue.IntList(2);
        e = Assert.Throws<SquashException>(() => new GraphExecutor(graph));
        Assert.Contains("'scales' has 1 values for 6 inputs", e.Message);
        node.Attributes["scales"] = AttributeValue.IntList(2, 1);
        node.Attributes["offsets"] = AttributeValue.IntList(0, 4);
        e = Assert.Throws<SquashException>(() => new GraphExecutor(graph).Run(inputs));
        Assert.Contains("part 1 reads channels 4 to 5 of W", e.Message);
        Assert.Contains("which has 5", e.Message);
    }

    /// <summary>
    /// RSE-FPN's top-down pyramid (DBNet's neck, three levels here): at each level a bias-free 1x1 convolution widening
    /// to C channels, gated at run time as y + y g, plus the level above upsampled 2x, then a 3x3 convolution; a
    /// squeeze-and-excitation pooling reads each projection. Both convolutions fuse, each projection and gate composes
    /// into their weights per image, and no Resize, projection or 4-D Mul or Add is left. Outputs match the unfused
    /// graph within 1e-5 of the sum of |terms| (the same graph run on the inputs' and weights' absolute values), as
    /// above; the poolings, now averaged before the projection, likewise.
    /// </summary>
    [Theory]
    [InlineData(16, 40, 1)]  // rows of 40 and 20: vector expansion with an overlapping last vector
    [InlineData(8, 12, 2)]   // rows narrower than a vector; two images with their own gates
    public void FusesAGatedProjectedPyramid(int height, int width, int batch)
    {
        var (graph, inputs) = RsePyramid(height, width, batch, absolute: false);
        var (absGraph, absInputs) = RsePyramid(height, width, batch, absolute: true);
        var magnitude = new GraphExecutor(absGraph).Run(absInputs);
        var before = FusionAssert.Copy(graph);
        Fuse(graph);
        Assert.Equal(2, graph.Nodes.Count(n => n.OpType == "FusedPyramidConv"));
        Assert.DoesNotContain(graph.Nodes, n => n.OpType is "Resize" or "Conv" or "Add" or "Mul" && n.Outputs[0].Shape![2] > 1);
        foreach (int threads in new[] { 1, 3 })
        {
            var expected = new GraphExecutor(before).Run(inputs, new KernelContext(threads));
            foreach (var g in new[] { graph, FusionAssert.Copy(graph) })
            {
                var actual = new GraphExecutor(g).Run(inputs, new KernelContext(threads));
                foreach (var (name, e) in expected)
                    AssertWithinMagnitude(e.AsSpan<float>(), actual[name].AsSpan<float>(), magnitude[name].AsSpan<float>(), $"{name} ({threads} threads)");
            }
        }
    }

    /// <summary>Two levels under a top map t: p_1 = y_1 (1 + g_1) + up(t (1 + g_2)), p_0 = y_0 (1 + g_0) + up(p_1),
    /// y_l = conv1x1(x_l) from 3 or 5 channels to 8; outputs conv3x3(p_l) and the pooling of each y_l.</summary>
    private static (Graph Graph, Dictionary<string, Tensor> Inputs) RsePyramid(int height, int width, int batch, bool absolute)
    {
        const int channels = 8, m = 6;
        var twin = new TwinBuilder(11, absolute);
        var b = twin.Builder;
        Tensor Draw(params int[] shape) => twin.Draw(shape);
        Value Input(string name, params int[] shape) => twin.Input(name, shape);
        Value Gated(Value y, string gate) => b.Node("Add", y, b.Node("Mul", y, Input(gate, batch, channels, 1, 1)));
        int[] inChannels = [3, 5];
        var above = Gated(Input("t", batch, channels, height / 4, width / 4), "g2");
        for (int level = 1; level >= 0; level--)
        {
            int s = 1 << level;
            var x = Input($"x{level}", batch, inChannels[level], height / s, width / s);
            var y = b.NodeWith("Conv", [], [x, b.Constant(Draw(channels, inChannels[level], 1, 1))])[0];
            var pooled = b.Node("GlobalAveragePool", y);
            pooled.Name = $"pool{level}";
            b.Output(pooled);
            var p = b.Node("Add", Gated(y, $"g{level}"), b.Resize(above, 2));
            var conv = b.NodeWith("Conv", [("pads", AttributeValue.IntList(1, 1, 1, 1))], [p, b.Constant(Draw(m, channels, 3, 3)), b.Constant(Draw(m))])[0];
            conv.Name = $"out{level}";
            b.Output(conv);
            above = p;
        }
        return (b.Graph, twin.Inputs);
    }

    /// <summary>
    /// The other term forms: a projection without a gate (weights composed once, when the node is prepared) at full
    /// resolution and upsampled, a plain per-channel Mul as a gate, and a gated map without a projection, upsampled.
    /// Each fuses into one node and matches the unfused graph within 1e-5 of sum |terms|, as above.
    /// </summary>
    [Theory]
    [InlineData("projected")]
    [InlineData("multiplied")]
    [InlineData("projected upsampled")]
    public void FusesEveryTermForm(string form)
    {
        (Graph Graph, Dictionary<string, Tensor> Inputs) Build(bool absolute)
        {
            var twin = new TwinBuilder(19, absolute);
            var b = twin.Builder;
            Tensor Draw(params int[] shape) => twin.Draw(shape);
            Value Input(string name, params int[] shape) => twin.Input(name, shape);
            Value Project(Value x, int from) => b.NodeWith("Conv", [], [x, b.Constant(Draw(8, from, 1, 1))])[0];
            Value full, low;
            switch (form)
            {
                case "projected":
                    full = Project(Input("x0", 1, 3, 16, 20), 3);
                    low = Input("x1", 1, 8, 8, 10);
                    break;
                case "multiplied":
                    full = b.Node("Mul", Project(Input("x0", 1, 3, 16, 20), 3), Input("g0", 1, 8, 1, 1));
                    low = b.Node("Mul", Input("g1", 1, 8, 1, 1), Input("x1", 1, 8, 8, 10));
                    break;
                default:
                    full = Input("x0", 1, 8, 16, 20);
                    low = Project(Input("x1", 1, 5, 8, 10), 5);
                    break;
            }
            var sum = b.Node("Add", full, b.Resize(low, 2));
            var y = b.NodeWith("Conv", [("pads", AttributeValue.IntList(1, 1, 1, 1))], [sum, b.Constant(Draw(6, 8, 3, 3)), b.Constant(Draw(6))])[0];
            y.Name = "y";
            b.Output(y);
            return (b.Graph, twin.Inputs);
        }
        var (graph, inputs) = Build(absolute: false);
        var (absGraph, absInputs) = Build(absolute: true);
        var magnitude = new GraphExecutor(absGraph).Run(absInputs)["y"].AsSpan<float>();
        var expected = new GraphExecutor(FusionAssert.Copy(graph)).Run(inputs)["y"].AsSpan<float>().ToArray();
        Fuse(graph);
        Assert.Equal(["FusedPyramidConv"], graph.Nodes.Select(n => n.OpType));
        foreach (var g in new[] { graph, FusionAssert.Copy(graph) })
            AssertWithinMagnitude(expected, new GraphExecutor(g).Run(inputs)["y"].AsSpan<float>(), magnitude, form);
    }

    /// <summary>Each element within <see cref="Tolerance"/> of its sum of |terms| (<paramref name="magnitude"/>).</summary>
    private static void AssertWithinMagnitude(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, ReadOnlySpan<float> magnitude, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= Tolerance * magnitude[i],
                $"{what}: element {i} is {actual[i]}, expected {expected[i]} within {Tolerance * magnitude[i]:G3}");
    }

    /// <summary>A graph whose random constants and inputs are drawn in a fixed order, or their absolute values: run on
    /// those, the same graph gives each output's sum of |terms|, the scale of its rounding error.</summary>
    private sealed class TwinBuilder(int seed, bool absolute)
    {
        private readonly Random _rng = new(seed);

        public GraphBuilder Builder { get; } = new(13);

        public Dictionary<string, Tensor> Inputs { get; } = [];

        public Tensor Draw(params int[] shape)
        {
            var t = Random(_rng, shape);
            if (absolute) foreach (ref float v in t.AsSpan<float>()) v = Math.Abs(v);
            return t;
        }

        public Value Input(string name, params int[] shape)
        {
            Inputs[name] = Draw(shape);
            return Builder.Input(name, DataType.Float, shape);
        }
    }
}
