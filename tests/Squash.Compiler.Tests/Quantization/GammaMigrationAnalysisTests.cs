using Squash.Compiler.Onnx;
using Squash.Compiler.Passes;
using Squash.Compiler.Quantization;
using Squash.Compiler.Tests.Models;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;
using Xunit.Abstractions;

namespace Squash.Compiler.Tests.Quantization;

/// <summary>
/// The measurements behind docs/quantization.md, "Gamma migration on PP-OCR rec": the calibrated ranges of the layer
/// norm outputs that feed linear layers, before and after <see cref="LayerNormGammaMigration"/>, and what quantizing
/// those tensors (and the weights of the layers they feed) to the int8 kernels' formats costs, with and without it.
/// Each test prints its table and checks the claims the page makes from it.
/// </summary>
public sealed class GammaMigrationAnalysisTests(ITestOutputHelper output)
{
    private static readonly int[] s_recShape = [1, 3, 48, 320];
    private static readonly QuantizationRange s_gemmWeights = new(-64, 64);

    /// <summary>PP-OCR rec pinned to the data's shape and optimized, with or without gamma migration.</summary>
    internal static Graph PrepareRec(bool migrate)
    {
        var model = OnnxLoader.Load(PpOcr.ModelPath(PpOcr.Rec));
        ModelPreparation.PinInputShapes(model, new Dictionary<string, int[]> { [model.Graph.Inputs[0].Name] = s_recShape });
        ModelPreparation.Optimize(model);
        var context = new PassContext { DisabledPasses = migrate ? new HashSet<string>() : ["LayerNormGammaMigration"] };
        Pipeline.QuantizationPrep().Run(model.Graph, context);
        return model.Graph;
    }

    /// <summary>The LayerNormalization nodes, in order, each with the MatMul nodes that read its output.</summary>
    private static List<(Node Norm, Node[] Linear)> Norms(Graph graph)
    {
        var consumers = graph.Consumers();
        return [.. graph.Nodes.Where(n => n.OpType == "LayerNormalization").Select(n =>
            (n, consumers[n.Outputs[0]].Where(u => u.Node.OpType == "MatMul" && u.Index == 0).Select(u => u.Node).ToArray()))];
    }

    private static readonly Dictionary<(bool, CalibrationMethod), CalibrationResult> s_calibrations = [];

    /// <summary>rec, migrated or not, calibrated on calib/rec (computed once per test run; value names are the same
    /// in every graph <see cref="PrepareRec"/> makes).</summary>
    private static CalibrationResult Calibrate(bool migrate, CalibrationMethod method)
    {
        lock (s_calibrations)
        {
            if (s_calibrations.TryGetValue((migrate, method), out var cached)) return cached;
            var graph = PrepareRec(migrate);
            var result = new Calibrator(new CalibrationSettings { Method = method }).Calibrate(ExecutionPlan.Create(graph),
                CalibrationDataSet.Open(TestPaths.Asset("data", "ppocr", "calib", "rec"), graph.Inputs), new KernelContext(2));
            return s_calibrations[(migrate, method)] = result;
        }
    }

    [Fact]
    public void LayerNormRangesBeforeAndAfterMigration()
    {
        var graphs = new[] { PrepareRec(migrate: false), PrepareRec(migrate: true) };
        var minMax = new[] { Calibrate(false, CalibrationMethod.MinMax), Calibrate(true, CalibrationMethod.MinMax) };
        var percentile = new[] { Calibrate(false, CalibrationMethod.Percentile), Calibrate(true, CalibrationMethod.Percentile) };
        var norms = graphs.Select(Norms).ToArray();
        Assert.Equal(5, norms[0].Count);
        output.WriteLine("| layer norm | gamma max/median abs | feeds | | min | max | p0.005 | p99.995 | max abs / percentile | uint8 step |");
        output.WriteLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        for (int i = 0; i < norms[0].Count; i++)
        {
            var gamma = norms[0][i].Norm.Input(1)!.Constant!.AsSpan<float>().ToArray().Select(Math.Abs).Order().ToArray();
            bool migrated = norms[1][i].Norm.Input(2) is null;
            Assert.Equal(norms[0][i].Linear.Length > 0, migrated);
            for (int m = 0; m < 2; m++)
            {
                string name = norms[m][i].Norm.Outputs[0].Name;
                var mm = minMax[m].Tensors[name];
                var p = percentile[m].Tensors[name];
                double maxAbs = Math.Max(-mm.ObservedMin, mm.ObservedMax), pAbs = Math.Max(-p.Min, p.Max);
                double step = QuantizationParameters.Asymmetric(mm.Min, mm.Max, QuantizationRange.UInt8).Scale;
                string feeds = norms[m][i].Linear.Length > 0 ? string.Join(", ", norms[m][i].Linear.Select(l => $"MatMul {l.Input(1)!.Shape![1]}")) : "Reshape, Conv";
                output.WriteLine($"| {(m == 0 ? $"{i + 1} `{norms[0][i].Norm.Name}`" : "")} | {(m == 0 ? $"{gamma[^1]:F2} / {gamma[gamma.Length / 2]:F2}" : "")} | {(m == 0 ? feeds : "")} | "
                    + $"{(m == 0 ? "before" : migrated ? "after" : "(not migrated)")} | {mm.ObservedMin:F2} | {mm.ObservedMax:F2} | {p.Min:F2} | {p.Max:F2} | {maxAbs / pAbs:F2} | {step:F4} |");
                if (m == 1 && migrated)
                {
                    // Zero mean and unit variance over K channels bound every value by sqrt(K - 1).
                    int k = norms[1][i].Norm.Inputs[0]!.Shape![^1];
                    Assert.True(maxAbs <= Math.Sqrt(k - 1), $"{name}: {maxAbs} is not a normalized value");
                }
                // No layer norm output of rec has outliers to suppress, with or without gamma.
                Assert.True(maxAbs / pAbs < 1.25, $"{name}: max |x| is {maxAbs / pAbs:F2} x the percentile range");
            }
        }
    }

    /// <summary>Signal-to-noise ratio in dB of each migrated layer's linear outputs when its input, its weights or
    /// both are quantized to the int8 kernels' formats (uint8 activations over the MinMax range, 7-bit per-column
    /// weights), on evaluation inputs.</summary>
    [Fact]
    public void LinearLayerNoiseBeforeAndAfterMigration()
    {
        var graphs = new[] { PrepareRec(migrate: false), PrepareRec(migrate: true) };
        var ranges = new[] { Calibrate(false, CalibrationMethod.MinMax), Calibrate(true, CalibrationMethod.MinMax) };
        var norms = graphs.Select(g => Norms(g).Where(n => n.Linear.Length > 0).ToList()).ToArray();
        Assert.Equal(4, norms[0].Count);
        var samples = PpOcr.Samples("eval", "rec").Take(16).ToArray();
        // db[m][layer][kind]: kind 0 input quantized, 1 weights quantized, 2 both.
        var signal = new double[2, 4];
        var noise = new double[2, 4, 3];
        for (int m = 0; m < 2; m++)
        {
            var plan = ExecutionPlan.Create(graphs[m]);
            var captured = new Dictionary<Node, Tensor>();
            var wanted = norms[m].Select(n => n.Norm).ToHashSet();
            plan.NodeCompleted = (node, outputs) => { if (wanted.Contains(node)) captured[node] = outputs[0].Clone(); };
            foreach (var sample in samples)
            {
                plan.Run(new Dictionary<string, Tensor> { [graphs[m].Inputs[0].Name] = PpOcr.Load(sample) }, new KernelContext(2));
                for (int l = 0; l < 4; l++)
                {
                    var (norm, linear) = norms[m][l];
                    var x = captured[norm].AsSpan<float>().ToArray();
                    var t = ranges[m].Tensors[norm.Outputs[0].Name];
                    var q = QuantizationParameters.Asymmetric(t.Min, t.Max, QuantizationRange.UInt8);
                    var xq = x.Select(v => q.Dequantize(q.Quantize(v))).ToArray();
                    foreach (var mm in linear)
                    {
                        var w = mm.Input(1)!.Constant!;
                        var wq = FakeQuantizeColumns(w);
                        var exact = Product(x, w.AsSpan<float>().ToArray(), w.Shape[0], w.Shape[1]);
                        var outputs = new[] { Product(xq, w.AsSpan<float>().ToArray(), w.Shape[0], w.Shape[1]),
                            Product(x, wq, w.Shape[0], w.Shape[1]), Product(xq, wq, w.Shape[0], w.Shape[1]) };
                        var bias = Bias(graphs[m], mm, w.Shape[1]);
                        for (int i = 0; i < exact.Length; i++)
                        {
                            double z = exact[i] + bias[i % w.Shape[1]];
                            signal[m, l] += z * z;
                            for (int kind = 0; kind < 3; kind++) noise[m, l, kind] += (outputs[kind][i] - exact[i]) * (outputs[kind][i] - exact[i]);
                        }
                    }
                }
            }
        }
        output.WriteLine("| layer norm | input quantized, before / after | weights quantized | both |");
        output.WriteLine("| --- | --- | --- | --- |");
        for (int l = 0; l < 4; l++)
        {
            string Db(int m, int kind) => $"{10 * Math.Log10(signal[m, l] / noise[m, l, kind]):F1}";
            output.WriteLine($"| {l + 1} `{norms[0][l].Norm.Name}` | {Db(0, 0)} / {Db(1, 0)} dB | {Db(0, 1)} / {Db(1, 1)} dB | {Db(0, 2)} / {Db(1, 2)} dB |");
            // The linear outputs are the same tensors before and after (fp32 equal within 1e-6).
            Assert.Equal(signal[0, l], signal[1, l], signal[0, l] * 1e-4);
        }
    }

    /// <summary>
    /// The hook for the accuracy of rec in int8 with and without gamma migration: <paramref name="build"/> turns the
    /// prepared fp32 graph (optimized, and migrated or not) into a function from an input to the output probabilities.
    /// Returns, over the evaluation set, the share of inputs read as fp32 reads them and the character error rate
    /// against the ground truth.
    /// </summary>
    internal static (double Agreement, double Cer) RecAccuracy(Func<Graph, Func<Tensor, Tensor>> build, bool migrate)
    {
        var referenceGraph = PrepareRec(migrate: false);
        var reference = new GraphExecutor(referenceGraph);
        string input = referenceGraph.Inputs[0].Name, output = referenceGraph.Outputs[0].Name;
        var run = build(PrepareRec(migrate));
        var labels = PpOcr.Labels("eval", "rec");
        int agree = 0, count = 0, edits = 0, chars = 0;
        var context = new KernelContext(2);
        foreach (var sample in PpOcr.Samples("eval", "rec"))
        {
            var x = PpOcr.Load(sample);
            string want = PpOcr.DecodeCtc(reference.Run(new Dictionary<string, Tensor> { [input] = x }, context)[output]);
            string got = PpOcr.DecodeCtc(run(x));
            string truth = labels[Path.GetFileNameWithoutExtension(sample)];
            agree += want == got ? 1 : 0;
            count++;
            edits += EditDistance(got, truth);
            chars += truth.Length;
        }
        return ((double)agree / count, (double)edits / chars);
    }

    /// <summary>A stand-in for the int8 pipeline until it lands: every layer norm output that feeds MatMuls goes
    /// through uint8 (MinMax range from the calibration set) and those MatMuls' weights through 7-bit per-column
    /// quantization; everything else stays fp32. It isolates what migration changes.</summary>
    private static Func<Tensor, Tensor> SimulateInt8LayerNormInputs(Graph graph)
    {
        bool migrated = Norms(graph).Any(n => n.Norm.Input(2) is null);
        var ranges = Calibrate(migrated, CalibrationMethod.MinMax);
        var quantized = new Dictionary<Node, AffineQuantization>();
        foreach (var (norm, linear) in Norms(graph).Where(n => n.Linear.Length > 0))
        {
            var t = ranges.Tensors[norm.Outputs[0].Name];
            quantized[norm] = QuantizationParameters.Asymmetric(t.Min, t.Max, QuantizationRange.UInt8);
            foreach (var mm in linear)
            {
                var w = mm.Input(1)!.Constant!;
                mm.SetInput(1, new Value(mm.Input(1)!.Name + "_fake_quantized", Tensor.From<float>(FakeQuantizeColumns(w), w.Shape)));
            }
        }
        var plan = ExecutionPlan.Create(graph);
        plan.NodeCompleted = (node, outputs) =>
        {
            if (!quantized.TryGetValue(node, out var q)) return;
            foreach (ref float v in outputs[0].AsSpan<float>()) v = q.Dequantize(q.Quantize(v));
        };
        var context = new KernelContext(2);
        return x => plan.Run(new Dictionary<string, Tensor> { [graph.Inputs[0].Name] = x }, context)[graph.Outputs[0].Name];
    }

    [Fact]
    public void SimulatedInt8AccuracyWithAndWithoutMigration()
    {
        var without = RecAccuracy(SimulateInt8LayerNormInputs, migrate: false);
        var with = RecAccuracy(SimulateInt8LayerNormInputs, migrate: true);
        var fp32 = RecAccuracy(g => { var e = new GraphExecutor(g); return x => e.Run(new Dictionary<string, Tensor> { [g.Inputs[0].Name] = x })[g.Outputs[0].Name]; }, migrate: true);
        output.WriteLine($"fp32: agreement {fp32.Agreement:P1}, CER {fp32.Cer:P2}");
        output.WriteLine($"simulated int8 layer norm outputs, without migration: agreement {without.Agreement:P1}, CER {without.Cer:P2}");
        output.WriteLine($"simulated int8 layer norm outputs, with migration: agreement {with.Agreement:P1}, CER {with.Cer:P2}");
        Assert.Equal(1.0, fp32.Agreement);
    }

    /// <summary>Weights [K, N] quantized symmetrically per column to [-64, 64] and back (the GEMM kernels' format).</summary>
    private static float[] FakeQuantizeColumns(Tensor w)
    {
        var scales = QuantizationParameters.SymmetricPerChannel(w, 1, s_gemmWeights);
        var v = w.AsSpan<float>();
        var result = new float[v.Length];
        int n = w.Shape[1];
        for (int i = 0; i < v.Length; i++)
            result[i] = Math.Clamp(MathF.Round(v[i] / scales[i % n], MidpointRounding.ToEven), -64, 64) * scales[i % n];
        return result;
    }

    /// <summary>x [rows, K] times w [K, N], in double.</summary>
    private static double[] Product(float[] x, float[] w, int k, int n)
    {
        int rows = x.Length / k;
        var z = new double[rows * n];
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < k; i++)
            {
                double xi = x[r * k + i];
                for (int j = 0; j < n; j++) z[r * n + j] += xi * w[i * n + j];
            }
        return z;
    }

    /// <summary>The constant of the Add after a MatMul (its bias), or zeros.</summary>
    private static double[] Bias(Graph graph, Node matMul, int n)
    {
        var add = graph.Nodes.FirstOrDefault(a => a.OpType == "Add" && a.Inputs.Contains(matMul.Outputs[0]));
        var c = add?.Inputs.FirstOrDefault(v => v?.Constant is not null)?.Constant;
        return c is { } t && t.ElementCount == n ? [.. Enumerable.Range(0, n).Select(t.GetAsDouble)] : new double[n];
    }

    private static int EditDistance(string a, string b)
    {
        var row = Enumerable.Range(0, b.Length + 1).ToArray();
        for (int i = 1; i <= a.Length; i++)
        {
            int diagonal = row[0];
            row[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int next = Math.Min(Math.Min(row[j] + 1, row[j - 1] + 1), diagonal + (a[i - 1] == b[j - 1] ? 0 : 1));
                diagonal = row[j];
                row[j] = next;
            }
        }
        return row[b.Length];
    }
}
