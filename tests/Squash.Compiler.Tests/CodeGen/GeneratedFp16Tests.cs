using System.Diagnostics;
using Squash.Compiler.CodeGen;
using Squash.Compiler.Compilation;
using Squash.Compiler.Tests.Models;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Weights;
using Xunit.Abstractions;

namespace Squash.Compiler.Tests.CodeGen;

/// <summary>
/// An fp16 model through the whole compiler: <see cref="ModelCompiler"/> with precision fp16 writes a class whose
/// weights file stores the product weights as float16; compiled and run, the class (which widens them when it loads)
/// gives bit for bit what the fp16 graph gives in the executor, since both compute in fp32 from the same values.
/// </summary>
public sealed class GeneratedFp16Tests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("squash-genfp16-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Fp16ClassRunsAsTheFp16Graph()
    {
        var shapes = new Dictionary<string, int[]> { ["x"] = [1, 3, 48, 192] };
        var log = new List<string>();
        var result = ModelCompiler.Compile(new CompileRequest
        {
            ModelPath = PpOcr.ModelPath(PpOcr.Cls),
            OutputDirectory = _dir,
            OutputName = "Cls",
            InputShapes = shapes,
            Class = new ModelClassOptions { ClassName = "Cls", Namespace = "Tests", WeightsName = "Tests.Cls.sqw", SourceFileName = "", SourceSha256 = "", Precision = "fp16" },
        }, log.Add);
        Assert.Contains(log, l => l.StartsWith("fp16: 54 of 54 weights rounded to float16", StringComparison.Ordinal));
        byte[] weights = File.ReadAllBytes(result.WeightsPath!);
        var file = WeightsFile.Read(new MemoryStream(weights));
        Assert.Equal(54, file.Names.Count(n => file.StorageType(n) == DataType.Float16));
        var assembly = InMemoryCompiler.Compile([File.ReadAllText(result.SourcePath)], [("Tests.Cls.sqw", weights)]);
        var generated = (ISquashModel)Activator.CreateInstance(assembly.GetType("Tests.Cls")!, [1])!;

        var model = PpOcrFp16Tests.Prepare(PpOcr.Cls, shapes["x"], "fp16");
        var plan = ExecutionPlan.Create(model.Graph);
        foreach (var sample in PpOcr.Samples("eval", "cls").Take(3))
        {
            var inputs = new Dictionary<string, Tensor> { ["x"] = PpOcr.Load(sample) };
            var want = plan.Run(inputs)["softmax_0.tmp_0"].AsSpan<float>().ToArray();
            var got = generated.Run(inputs)["softmax_0.tmp_0"].AsSpan<float>().ToArray();
            Assert.Equal(want, got);
        }
        if (generated is IDisposable d) d.Dispose();
    }

    /// <summary>Int8 with <c>Int8Fallback="fp16"</c> through the compiler: the fallback products' weights are stored as
    /// float16 in the weights file, and the class runs as the quantized graph.</summary>
    [Fact]
    public void Int8ClassWithFp16FallbackStoresFallbackWeightsAsFloat16()
    {
        string calibration = TestPaths.Asset("data", "ppocr", "calib", "cls");
        var shapes = new Dictionary<string, int[]> { ["x"] = [1, 3, 48, 192] };
        var result = ModelCompiler.Compile(new CompileRequest
        {
            ModelPath = PpOcr.ModelPath(PpOcr.Cls),
            OutputDirectory = _dir,
            OutputName = "Cls",
            InputShapes = shapes,
            CalibrationFolder = calibration,
            Int8Fallback = "fp16",
            Class = new ModelClassOptions { ClassName = "Cls", Namespace = "Tests", WeightsName = "Tests.Cls.sqw", SourceFileName = "", SourceSha256 = "", Precision = "int8" },
        });
        byte[] weights = File.ReadAllBytes(result.WeightsPath!);
        var file = WeightsFile.Read(new MemoryStream(weights));

        var model = Squash.Compiler.Onnx.OnnxLoader.Load(PpOcr.ModelPath(PpOcr.Cls));
        ModelPreparation.PinInputShapes(model, shapes);
        ModelPreparation.Optimize(model);
        var outcome = ModelPreparation.ApplyPrecision(model, "int8", calibrationFolder: calibration,
            int8: Squash.Compiler.Quantization.QuantizationOptions.FromText("int8", calibration, fallback: "fp16") with
            {
                CacheContext = Squash.Compiler.Quantization.Int8Preparation.CacheContext(shapes, new Dictionary<string, string>()),
            }, modelPath: PpOcr.ModelPath(PpOcr.Cls))!;
        ModelPreparation.Fuse(model);
        var fallbackWeights = outcome.Rewrite.Fp16Weights.Where(w => w.Fp16).Select(w => w.Node).ToHashSet();
        Assert.NotEmpty(fallbackWeights);
        int stored = 0;
        foreach (var node in model.Graph.Nodes.Where(n => fallbackWeights.Contains(n.Name)))
        {
            Assert.Equal(DataType.Float16, file.StorageType(node.Inputs[1]!.Name));
            stored++;
        }
        Assert.Equal(fallbackWeights.Count, stored);
        // The int8 weights stay int8 in the file.
        Assert.Contains(file.Names, n => file.StorageType(n) == DataType.Int8);

        var assembly = InMemoryCompiler.Compile([File.ReadAllText(result.SourcePath)], [("Tests.Cls.sqw", weights)]);
        var generated = (ISquashModel)Activator.CreateInstance(assembly.GetType("Tests.Cls")!, [1])!;
        var plan = ExecutionPlan.Create(model.Graph);
        var inputs = new Dictionary<string, Tensor> { ["x"] = PpOcr.Load(PpOcr.Samples("eval", "cls")[0]) };
        Assert.Equal(plan.Run(inputs)["softmax_0.tmp_0"].AsSpan<float>().ToArray(), generated.Run(inputs)["softmax_0.tmp_0"].AsSpan<float>().ToArray());
        if (generated is IDisposable d) d.Dispose();
    }

    /// <summary>Loading rec's weights (what the class does once): fp16 reads half the bytes and widens them. Reported,
    /// not asserted (timings on a shared machine); the values are asserted equal to the compiled graph's.</summary>
    [Fact]
    public void RecFp16WeightsLoadAsTheCompiledValues()
    {
        var shapes = new Dictionary<string, int[]> { ["x"] = [1, 3, 48, 320] };
        var files = new Dictionary<string, byte[]>();
        foreach (var precision in new[] { "fp32", "fp16" })
        {
            var result = ModelCompiler.Compile(new CompileRequest
            {
                ModelPath = PpOcr.ModelPath(PpOcr.Rec),
                OutputDirectory = Path.Combine(_dir, precision),
                OutputName = "Rec",
                InputShapes = shapes,
                Class = new ModelClassOptions { ClassName = "Rec", Namespace = "", WeightsName = "Rec.sqw", SourceFileName = "", SourceSha256 = "", Precision = precision },
            });
            files[precision] = File.ReadAllBytes(result.WeightsPath!);
        }
        var model = PpOcrFp16Tests.Prepare(PpOcr.Rec, shapes["x"], "fp16");
        var loaded = WeightsFile.Read(new MemoryStream(files["fp16"]));
        var constants = model.Graph.Nodes.SelectMany(n => n.Inputs).Where(v => v?.Constant is not null).Select(v => v!).DistinctBy(v => v.Name)
            .ToDictionary(v => v.Name, v => v.Constant!);
        int compared = 0;
        foreach (var name in loaded.Names.Where(n => loaded.StorageType(n) == DataType.Float16))
        {
            Assert.True(constants[name].Bytes.SequenceEqual(loaded[name].Bytes), name);
            compared++;
        }
        Assert.True(compared > 40, $"{compared} float16 tensors");
        foreach (var precision in new[] { "fp32", "fp16" })
        {
            WeightsFile.Read(new MemoryStream(files[precision]));
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < 5; i++) WeightsFile.Read(new MemoryStream(files[precision]));
            output.WriteLine($"rec {precision}: {files[precision].Length:N0} bytes, load {clock.Elapsed.TotalMilliseconds / 5:F2} ms");
        }
    }
}
