using Squash.Compiler.Onnx;
using Squash.Compiler.Quantization;
using Squash.Compiler.Tests.Models;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.IO;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Tests.Quantization;

/// <summary>Calibrating models built in code and the real PP-OCR classifier; the cache.</summary>
public sealed class CalibratorTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("squash-calib-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void MinMaxRangesOfReluAddMulAreThoseOfTheValues()
    {
        // m = (relu(x) + 1) * 2
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 2, 3);
        var r = b.Node("Relu", x);
        var a = b.Node("Add", r, b.Constant(Tensor.From<float>([1f], 1)));
        var m = b.Node("Mul", a, b.Constant(Tensor.From<float>([2f], 1)));
        b.Output(m);
        var plan = Plan(b.Build());
        float[][] samples = [[-3f, 1f, 2f, 0.5f, -1f, 4f], [5f, -7f, 0f, 1f, 1f, 1f]];
        var result = new Calibrator().Calibrate(plan, samples.Select(Input));
        Assert.Equal(2, result.SampleCount);
        Assert.Equal([a.Name, m.Name, r.Name, "x"], result.Tensors.Keys); // ordinal order; constants are not observed
        Assert.Equal(new TensorCalibration(-7f, 5f, -7f, 5f, 12, 0), result.Tensors["x"]);
        Assert.Equal(new TensorCalibration(0f, 5f, 0f, 5f, 12, 0), result.Tensors[r.Name]);
        Assert.Equal(new TensorCalibration(1f, 6f, 1f, 6f, 12, 0), result.Tensors[a.Name]);
        Assert.Equal(new TensorCalibration(2f, 12f, 2f, 12f, 12, 0), result.Tensors[m.Name]);
    }

    [Theory]
    [InlineData(CalibrationMethod.Percentile)]
    [InlineData(CalibrationMethod.Entropy)]
    [InlineData(CalibrationMethod.Mse)]
    public void EachSampleIsObservedInOrderAsByAnObserverFedDirectly(CalibrationMethod method)
    {
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 1, 4, 32, 32);
        var r = b.Node("Relu", x);
        b.Output(r);
        var plan = Plan(b.Build());
        var settings = new CalibrationSettings { Method = method };
        var samples = Enumerable.Range(0, 5).Select(s => ObserverTests.Gaussian(4096, seed: 40 + s, sigma: 1 + s)).ToArray();
        var result = new Calibrator(settings).Calibrate(plan, samples.Select(s => Input(s, 1, 4, 32, 32)));
        var onInput = ActivationObserver.Create(settings);
        var onRelu = ActivationObserver.Create(settings);
        foreach (var s in samples)
        {
            onInput.Observe(s);
            onRelu.Observe(s.Select(v => Math.Max(v, 0f)).ToArray());
        }
        Assert.Equal(onInput.Result(), result.Tensors["x"]);
        Assert.Equal(onRelu.Result(), result.Tensors[r.Name]);
    }

    [Fact]
    public void ResultsDoNotDependOnTheThreadCount()
    {
        // Operators that split their work across threads: broadcasting arithmetic, pooling, softmax.
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 1, 16, 24, 24);
        var scale = Tensor.From<float>([.. Enumerable.Range(0, 16).Select(c => 0.5f + c / 8f)], 1, 16, 1, 1);
        var y = b.Node("Relu", b.Node("Mul", x, b.Constant(scale)));
        var pooled = b.NodeWith("MaxPool", [("kernel_shape", AttributeValue.IntList(3, 3)), ("strides", AttributeValue.IntList(2, 2))], [y])[0];
        var soft = b.NodeWith("Softmax", [("axis", AttributeValue.Int(1))], [pooled])[0];
        var mean = b.Node("GlobalAveragePool", b.Node("Add", soft, pooled));
        b.Output(mean);
        var model = b.Build();
        var samples = Enumerable.Range(0, 3).Select(s => ObserverTests.Gaussian(16 * 24 * 24, seed: 60 + s)).ToArray();
        foreach (var method in Enum.GetValues<CalibrationMethod>())
        {
            var calibrator = new Calibrator(new CalibrationSettings { Method = method });
            var one = calibrator.Calibrate(Plan(model), samples.Select(s => Input(s, 1, 16, 24, 24)), new KernelContext(1));
            var two = calibrator.Calibrate(Plan(model), samples.Select(s => Input(s, 1, 16, 24, 24)), new KernelContext(2));
            Assert.Equal(one.ToJson(), two.ToJson());
            Assert.Equal(7, one.Tensors.Count);
        }
    }

    [Fact]
    public void ASampleThatDoesNotFitThePlanIsNamed()
    {
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 1, -1);
        b.Output(b.Node("Relu", x));
        var model = b.Build();
        Directory.CreateDirectory(Path.Combine(_dir, "data"));
        Npy.Write(Path.Combine(_dir, "data", "a.npy"), new Tensor(DataType.Float, 1, 4));
        Npy.Write(Path.Combine(_dir, "data", "b.npy"), new Tensor(DataType.Float, 1, 5));
        var data = CalibrationDataSet.Open(Path.Combine(_dir, "data"), model.Graph.Inputs); // any width
        ModelPreparation.PinInputShapes(model, new Dictionary<string, int[]> { ["x"] = [1, 4] });
        var plan = Plan(model);
        Action<Node, ReadOnlySpan<Tensor>> mine = (_, _) => { };
        plan.NodeCompleted = mine;
        var e = Assert.Throws<SquashException>(() => new Calibrator().Calibrate(plan, data));
        Assert.Equal(ErrorCodes.CalibrationData, e.Code);
        Assert.Contains(Path.Combine(_dir, "data", "b.npy"), e.Message);
        Assert.Contains("[1,4]", e.Message);
        Assert.Same(mine, plan.NodeCompleted); // the caller's hook is put back
        Assert.Equal(ErrorCodes.CalibrationData,
            Assert.Throws<SquashException>(() => new Calibrator().Calibrate(plan, Array.Empty<IReadOnlyDictionary<string, Tensor>>())).Code);

        // A data set made for another model: the sample is named, and the input it lacks.
        var two = new GraphBuilder();
        two.Output(two.Node("Add", two.Input("x", DataType.Float, 1, 4), two.Input("y", DataType.Float, 1, 4)));
        var missing = Assert.Throws<SquashException>(() => new Calibrator().Calibrate(Plan(two.Build()), data));
        Assert.Equal(ErrorCodes.CalibrationData, missing.Code);
        Assert.Contains($"Calibration sample '{Path.Combine(_dir, "data", "a.npy")}' lacks model input 'y'", missing.Message);
    }

    [Fact]
    public void NonFiniteActivationsAreCountedAndLeftOut()
    {
        // log(x) of x = 0 is -infinity: such a tensor is reported, not given an infinite range.
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 4);
        var log = b.Node("Log", x);
        b.Output(log);
        var result = new Calibrator().Calibrate(Plan(b.Build()), [Input([0f, 1f, MathF.E, 0f], 4)]);
        var t = result.Tensors[log.Name];
        Assert.Equal((2L, 2L, 0f, 1f), (t.NonFiniteCount, t.Count, t.Min, t.Max));
    }

    [Fact]
    public void JsonRoundTripsEveryFloatExactly()
    {
        float[] tricky = [0.1f, 1f / 3, float.Epsilon, float.MaxValue, -float.MaxValue, 1e-30f, 16777217f, -0f];
        var tensors = tricky.Select((v, i) => KeyValuePair.Create($"t{i}", new TensorCalibration(v, v, -v, v, i, 1)));
        var settings = new CalibrationSettings { Method = CalibrationMethod.Percentile, Percentile = 99.999, BiasCorrection = false };
        var result = new CalibrationResult(settings, 3, tensors, [KeyValuePair.Create("conv", tricky), KeyValuePair.Create("empty", Array.Empty<float>())]);
        var json = result.ToJson("abc");
        var back = CalibrationResult.FromJson(json, out string? key);
        Assert.Equal("abc", key);
        Assert.Equal(settings, back.Settings);
        Assert.Equal(3, back.SampleCount);
        Assert.Equal(result.Tensors, back.Tensors);
        Assert.Equal(["conv", "empty"], back.InputMeans.Keys);
        Assert.Equal(tricky.Select(BitConverter.SingleToInt32Bits), back.InputMeans["conv"].Select(BitConverter.SingleToInt32Bits));
        Assert.Equal(json, back.ToJson("abc"));
        Assert.True(float.IsNegative(back.Tensors["t7"].Min));
        Assert.Throws<FormatException>(() => CalibrationResult.FromJson("{\"format\": \"other\"}"u8, out _));
    }

    [Fact]
    public void TheCacheIsHitOnTheSecondRunAndMissedWhenAnInputOfTheKeyChanges()
    {
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 1, 8);
        b.Output(b.Node("Relu", b.Node("Mul", x, b.Constant(Tensor.From<float>([3f], 1)))));
        string modelPath = Path.Combine(_dir, "model.onnx");
        OnnxWriter.Save(b.Build(), modelPath);
        string dataDir = Path.Combine(_dir, "data");
        Directory.CreateDirectory(dataDir);
        for (int s = 0; s < 4; s++) Npy.Write(Path.Combine(dataDir, $"{s}.npy"), Input(ObserverTests.Gaussian(8, seed: s), 1, 8)["x"]);
        string cachePath = Path.Combine(_dir, "obj", "model.calibration.json");
        int plans = 0;
        ExecutionPlan CreatePlan()
        {
            plans++;
            return Plan(OnnxLoader.Load(modelPath));
        }
        var graphInputs = OnnxLoader.Load(modelPath).Graph.Inputs;
        var calibrator = new Calibrator(new CalibrationSettings { Method = CalibrationMethod.Percentile });
        (CalibrationResult Result, bool FromCache) Run(Calibrator c, CalibrationSplit split = default) =>
            c.CalibrateCached(modelPath, CreatePlan, CalibrationDataSet.Open(dataDir, graphInputs, split), cachePath);

        var first = Run(calibrator);
        Assert.False(first.FromCache);
        Assert.Equal(1, plans);
        Assert.True(File.Exists(cachePath));
        var second = Run(calibrator);
        Assert.True(second.FromCache);
        Assert.Equal(1, plans); // the model did not run
        Assert.Equal(first.Result.ToJson(), second.Result.ToJson());

        // Another calibration file's content.
        Npy.Write(Path.Combine(dataDir, "2.npy"), Input(ObserverTests.Gaussian(8, seed: 99), 1, 8)["x"]);
        Assert.False(Run(calibrator).FromCache);
        Assert.True(Run(calibrator).FromCache);
        // Other settings, another split, a damaged cache file.
        Assert.False(Run(new Calibrator(new CalibrationSettings { Method = CalibrationMethod.Percentile, Percentile = 99.9 })).FromCache);
        Assert.False(Run(new Calibrator(new CalibrationSettings { Method = CalibrationMethod.Percentile, Percentile = 99.9 }), new CalibrationSplit(2)).FromCache);
        File.WriteAllText(cachePath, "{ truncated");
        Assert.False(Run(calibrator).FromCache);
        Assert.True(Run(calibrator).FromCache);
        Assert.Equal(5, plans);
        // The model's bytes.
        b.Graph.Name = "renamed";
        OnnxWriter.Save(b.Build(), modelPath);
        Assert.False(Run(calibrator).FromCache);
        Assert.Equal(6, plans);
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(cachePath)!, "*.tmp"));
    }

    [Fact]
    public void CalibratesThePpOcrClassifierOnItsCalibrationSet()
    {
        var model = OnnxLoader.Load(PpOcr.ModelPath(PpOcr.Cls));
        var data = CalibrationDataSet.Open(TestPaths.Asset("data", "ppocr", "calib", "cls"), model.Graph.Inputs, new CalibrationSplit(2));
        ModelPreparation.PinInputShapes(model, new Dictionary<string, int[]> { ["x"] = [1, 3, 48, 192] });
        var plan = Plan(model);
        var result = new Calibrator(new CalibrationSettings { Method = CalibrationMethod.Entropy }).Calibrate(plan, data, new KernelContext(2));

        var samples = data.CalibrationSamples.ToArray();
        Assert.Equal(samples.Length, result.SampleCount);
        Assert.Equal(data.Samples.Count - data.Samples.Count / 2, samples.Length);
        var floatOutputs = model.Graph.Nodes.SelectMany(n => n.Outputs).Where(v => v.Type == DataType.Float).Select(v => v.Name);
        Assert.Equal(floatOutputs.Append("x").Order(StringComparer.Ordinal), result.Tensors.Keys);
        var inputs = samples.Select(s => s.Load()["x"].AsSpan<float>().ToArray()).ToArray();
        var x = result.Tensors["x"];
        Assert.Equal((inputs.Min(v => v.Min()), inputs.Max(v => v.Max())), (x.ObservedMin, x.ObservedMax));
        Assert.Equal((long)inputs.Sum(v => v.Length), x.Count);
        foreach (var (name, t) in result.Tensors)
        {
            Assert.Equal(0, t.NonFiniteCount);
            Assert.True(t.ObservedMin <= t.Min && t.Min <= t.Max && t.Max <= t.ObservedMax, $"{name}: {t}");
        }
        var softmax = result.Tensors[model.Graph.Outputs[0].Name];
        Assert.InRange(softmax.ObservedMin, 0f, 1f);
        Assert.InRange(softmax.ObservedMax, 0.5f, 1f);
        // Relu outputs are non-negative, and the entropy threshold clips some of them below their maximum.
        var relus = model.Graph.Nodes.Where(n => n.OpType == "Relu").Select(n => result.Tensors[n.Outputs[0].Name]).ToArray();
        Assert.NotEmpty(relus);
        Assert.All(relus, t => Assert.True(t.ObservedMin >= 0 && t.Min >= 0));
        Assert.Contains(relus, t => t.Max < t.ObservedMax);
    }

    // As the compiler prepares the graph it generates code for: what is calibrated is what runs.
    private static ExecutionPlan Plan(Model model)
    {
        ModelPreparation.Optimize(model);
        return ExecutionPlan.Create(model.Graph);
    }

    private static Dictionary<string, Tensor> Input(float[] values) => Input(values, 2, 3);

    private static Dictionary<string, Tensor> Input(float[] values, params int[] shape) =>
        new() { ["x"] = Tensor.From<float>(values, shape) };
}
