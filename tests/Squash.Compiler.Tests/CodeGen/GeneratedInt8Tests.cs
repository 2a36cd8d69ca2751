using Squash.Compiler.CodeGen;
using Squash.Compiler.Compilation;
using Squash.Compiler.Quantization;
using Squash.Compiler.Tests.Models;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Execution;

namespace Squash.Compiler.Tests.CodeGen;

/// <summary>
/// An int8 model through the whole compiler: <see cref="ModelCompiler"/> with precision int8 writes a class whose
/// weights hold the quantized tensors and whose graph holds the com.squash operators (QLookup's body graph included);
/// compiled and run, it gives bit for bit what the int8 graph gives in the executor (same operators, same kernels), and
/// a second compilation reads the calibration from its cache and writes nothing new.
/// </summary>
public sealed class GeneratedInt8Tests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("squash-genint8-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Int8ClassRunsAsTheInt8Graph()
    {
        string calibration = TestPaths.Asset("data", "ppocr", "calib", "cls");
        var shapes = new Dictionary<string, int[]> { ["x"] = [1, 3, 48, 192] };
        var log = new List<string>();
        CompileResult Compile() => ModelCompiler.Compile(new CompileRequest
        {
            ModelPath = PpOcr.ModelPath(PpOcr.Cls),
            OutputDirectory = _dir,
            OutputName = "Cls",
            InputShapes = shapes,
            CalibrationFolder = calibration,
            CalibrationCache = Path.Combine(_dir, "cls.calibration.json"),
            Class = new ModelClassOptions { ClassName = "Cls", Namespace = "Tests", WeightsName = "Tests.Cls.sqw", SourceFileName = "", SourceSha256 = "", Precision = "int8" },
        }, log.Add);
        var result = Compile();
        string source = File.ReadAllText(result.SourcePath);
        Assert.Contains("\"QConv\"", source);
        Assert.Contains("\"QLookup\"", source);
        var assembly = InMemoryCompiler.Compile([source], [("Tests.Cls.sqw", File.ReadAllBytes(result.WeightsPath!))]);
        var generated = (ISquashModel)Activator.CreateInstance(assembly.GetType("Tests.Cls")!, [1])!;

        // The same graph in the executor: prepared and quantized as the compiler does, from the same cache.
        var model = Squash.Compiler.Onnx.OnnxLoader.Load(PpOcr.ModelPath(PpOcr.Cls));
        ModelPreparation.PinInputShapes(model, shapes);
        ModelPreparation.Optimize(model);
        ModelPreparation.ApplyPrecision(model, "int8", calibrationFolder: calibration, log: log.Add,
            int8: QuantizationOptions.FromText("int8", calibration, calibrationCache: Path.Combine(_dir, "cls.calibration.json")) with
            {
                CacheContext = Int8Preparation.CacheContext(shapes, new Dictionary<string, string>()),
            }, modelPath: PpOcr.ModelPath(PpOcr.Cls));
        Assert.Contains(log, l => l.Contains("calibration from", StringComparison.Ordinal));
        var plan = ExecutionPlan.Create(model.Graph);
        foreach (var sample in PpOcr.Samples("eval", "cls").Take(3))
        {
            var inputs = new Dictionary<string, Tensor> { ["x"] = PpOcr.Load(sample) };
            var want = plan.Run(inputs)["softmax_0.tmp_0"].AsSpan<float>().ToArray();
            var got = generated.Run(inputs)["softmax_0.tmp_0"].AsSpan<float>().ToArray();
            Assert.Equal(want, got);
        }
        if (generated is IDisposable d) d.Dispose();

        Assert.False(Compile().Changed);
    }
}
