using Squash.Compiler.CodeGen;
using Squash.Compiler.Compilation;
using Squash.Compiler.Onnx;
using Squash.Compiler.Tests.Conformance;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Tests.CodeGen;

/// <summary>
/// The generated class, compiled with Roslyn (warnings as errors), gives the same outputs as the planned executor
/// (bit for bit: same operators, same memory layout) and as the conformance references (conformance tolerances).
/// </summary>
public sealed class GeneratedCodeTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("squash-gen-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private (string Source, byte[] Weights, string Resource) Generate(string modelPath, string className, IReadOnlyDictionary<string, int[]> shapes)
    {
        string resource = $"Tests.{className}.sqw";
        var result = ModelCompiler.Compile(new CompileRequest
        {
            ModelPath = modelPath,
            OutputDirectory = _dir,
            OutputName = className,
            InputShapes = shapes,
            Class = new ModelClassOptions { ClassName = className, Namespace = "Tests", WeightsName = resource, SourceFileName = "", SourceSha256 = "" },
        });
        return (File.ReadAllText(result.SourcePath), File.ReadAllBytes(result.WeightsPath!), resource);
    }

    [Fact]
    public void ConformanceCasesRunThroughGeneratedClasses()
    {
        // Every passing conformance case whose shapes are static once its inputs are pinned, in one compilation.
        var excluded = ConformanceLists.Exclusions();
        var tolerances = ConformanceLists.Tolerances();
        var cases = new List<(string Name, string Class, Dictionary<string, Tensor> Inputs, Tensor[] Expected)>();
        var sources = new List<string>();
        var resources = new List<(string, byte[])>();
        foreach (var dir in Directory.GetDirectories(TestPaths.Asset("onnx-node")).Order(StringComparer.Ordinal))
        {
            string name = Path.GetFileName(dir);
            if (excluded.ContainsKey(name)) continue;
            var (inputs, expected) = ReadDataSet(dir);
            string className = "Case" + cases.Count;
            string source;
            byte[] weights;
            string resource;
            try
            {
                (source, weights, resource) = Generate(Path.Combine(dir, "model.onnx"), className, inputs.ToDictionary(p => p.Key, p => p.Value.Shape));
            }
            catch (SquashException e) when (e.Code is ErrorCodes.UnsupportedOperator or ErrorCodes.UnresolvedShape)
            {
                continue; // the conformance test reports unsupported operators; data-dependent shapes need the interpreter
            }
            sources.Add(source);
            resources.Add((resource, weights));
            cases.Add((name, className, inputs, expected));
        }
        Assert.NotEmpty(cases);
        var assembly = InMemoryCompiler.Compile(sources, resources);
        foreach (var (name, className, inputs, expected) in cases)
        {
            var model = (ISquashModel)Activator.CreateInstance(assembly.GetType("Tests." + className)!, [1])!;
            var outputs = model.Run(inputs);
            var (rtol, atol) = tolerances.GetValueOrDefault(name, (1e-3, 1e-5));
            for (int i = 0; i < expected.Length; i++)
                TensorAssert.Close(expected[i], outputs[model.Outputs[i].Name], rtol, atol, $"{name} output {i} (generated code)");
        }
    }

    [Fact]
    public void GeneratedClsIsBitIdenticalToThePlanAndHasATypedApi()
    {
        string path = Models.PpOcr.ModelPath(Models.PpOcr.Cls);
        int[] shape = [1, 3, 48, 192];
        var (source, weights, resource) = Generate(path, "Cls", new Dictionary<string, int[]> { ["x"] = shape });
        Assert.Contains("public const int XLength = 27648;", source);
        Assert.Contains("public void Run(global::System.ReadOnlySpan<float> x, global::System.Span<float> softmax0Tmp0)", source);
        var assembly = InMemoryCompiler.Compile([source], [(resource, weights)]);
        var type = assembly.GetType("Tests.Cls")!;
        var model = (ISquashModel)Activator.CreateInstance(type, [1])!;
        Assert.Equal("x", model.Inputs[0].Name);
        Assert.Equal([1, 2], model.Outputs[0].Shape);

        var loaded = OnnxLoader.Load(path);
        ModelPreparation.PinInputShapes(loaded, new Dictionary<string, int[]> { ["x"] = shape });
        ModelPreparation.OptimizeForCpu(loaded);
        var plan = ExecutionPlan.Create(loaded.Graph);
        foreach (var sample in Models.PpOcr.Samples("eval", "cls").Take(3))
        {
            var input = Models.PpOcr.Load(sample);
            var expected = plan.Run(new Dictionary<string, Tensor> { ["x"] = input })["softmax_0.tmp_0"];
            var viaInterface = model.Run(new Dictionary<string, Tensor> { ["x"] = input })["softmax_0.tmp_0"];
            // The typed array API: float[] Run(float[] x).
            var run = type.GetMethod("Run", [typeof(float[])])!;
            var viaArray = (float[])run.Invoke(model, [input.AsSpan<float>().ToArray()])!;
            Assert.True(expected.Bytes.SequenceEqual(viaInterface.Bytes));
            Assert.Equal(expected.AsSpan<float>().ToArray(), viaArray);
        }
    }

    [Fact]
    public void ModelWithDynamicDimensionsRunsAtEveryShape()
    {
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, -1, 4);
        var y = b.Node("Relu", x);
        y.Name = "y";
        b.Output(y);
        string path = Path.Combine(_dir, "dyn.onnx");
        OnnxWriter.Save(b.Build(), path);
        var (source, weights, resource) = Generate(path, "Dyn", new Dictionary<string, int[]>());
        Assert.Contains("public static global::System.ReadOnlySpan<int> XShape => [-1, 4];", source);
        Assert.Contains("public global::Squash.Runtime.Tensor Run(global::Squash.Runtime.Tensor x)", source);
        var assembly = InMemoryCompiler.Compile([source], [(resource, weights)]);
        var model = (ISquashModel)Activator.CreateInstance(assembly.GetType("Tests.Dyn")!, [1])!;
        foreach (int rows in new[] { 1, 3, 7 })
        {
            var input = new Tensor(DataType.Float, rows, 4);
            var span = input.AsSpan<float>();
            for (int i = 0; i < span.Length; i++) span[i] = i - 5;
            var output = model.Run(new Dictionary<string, Tensor> { ["x"] = input })["y"];
            Assert.Equal([rows, 4], output.Shape);
            for (int i = 0; i < span.Length; i++) Assert.Equal(Math.Max(0, i - 5), output.AsSpan<float>()[i]);
        }
    }

    [Fact]
    public void GenerationIsDeterministic()
    {
        string path = Models.PpOcr.ModelPath(Models.PpOcr.Cls);
        var shapes = new Dictionary<string, int[]> { ["x"] = [1, 3, 48, 192] };
        var a = Generate(path, "Cls", shapes);
        File.Delete(Path.Combine(_dir, "Cls.g.cs"));
        File.Delete(Path.Combine(_dir, "Cls.sqw"));
        var b = Generate(path, "Cls", shapes);
        Assert.Equal(a.Source, b.Source);
        Assert.Equal(a.Weights, b.Weights);
    }

    private static (Dictionary<string, Tensor> Inputs, Tensor[] Expected) ReadDataSet(string dir)
    {
        var model = OnnxLoader.Load(Path.Combine(dir, "model.onnx"));
        string set = Path.Combine(dir, "test_data_set_0");
        var inputs = new Dictionary<string, Tensor>();
        var files = Directory.GetFiles(set, "input_*.pb").OrderBy(f => int.Parse(Path.GetFileNameWithoutExtension(f)[6..], System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        for (int i = 0; i < files.Length; i++) inputs[model.Graph.Inputs[i].Name] = OnnxTensorFile.Read(files[i]).Tensor;
        var expected = Directory.GetFiles(set, "output_*.pb").OrderBy(f => int.Parse(Path.GetFileNameWithoutExtension(f)[7..], System.Globalization.CultureInfo.InvariantCulture))
            .Select(f => OnnxTensorFile.Read(f).Tensor).ToArray();
        return (inputs, expected);
    }
}
