using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using Microsoft.ML.OnnxRuntime;
using Squash.Compiler.Onnx;
using Squash.Compiler.Passes;
using Squash.Compiler.Quantization;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;
using Tensor = Squash.Runtime.Tensor;

namespace Squash.Benchmarks;

/// <summary>
/// One decode step (one token with a 128-token KV cache), and the 128-token prompt before it, of a synthetic llama2.c decoder (dim 2048, hidden 5632,
/// 8 layers, 32 heads, 8 kv heads, vocab 32000: 426M weights, 1.7 GB in fp32), one thread: Squash fp32, Squash int4
/// (block 32, symmetric, every matrix and the tied embedding; with fp32 and with int8 activations), and ONNX Runtime on the int4 export (com.microsoft
/// MatMulNBits over the same int4 values; accuracy_level 0, fp32 compute, and 4, int8 activations). Both Squash
/// variants run with attention fused. Models are built once and cached under the temp folder, keyed by the settings.
/// </summary>
/// <remarks>Run: <c>dotnet run -c Release --project bench/Squash.Benchmarks -- --filter '*LlamaDecode*'</c>.</remarks>
[Config(typeof(Config))]
public class LlamaDecodeBenchmarks
{
    private sealed class Config : ManualConfig
    {
        public Config()
        {
            // A step takes 15-300 ms: one invocation per iteration; the setup loads up to 1.7 GB. The process runs as
            // an app built with Squash.Build does (methods with loops compiled optimized at their first call,
            // docs/msbuild.md "JIT"). Twenty warm-up steps: with five, the int4 variants still spent their first 8-9
            // measured steps 1.5-4x slower than the rest (63 ms, then 16 ms) while the runtime finished tiering up.
            AddJob(Job.Default.WithWarmupCount(20).WithIterationCount(20).WithInvocationCount(1).WithUnrollFactor(1).WithLaunchCount(1)
                .WithEnvironmentVariables(new EnvironmentVariable("DOTNET_TC_QuickJitForLoops", "0")));
            AddColumn(BenchmarkDotNet.Columns.StatisticColumn.Median, BenchmarkDotNet.Columns.StatisticColumn.Min, BenchmarkDotNet.Columns.StatisticColumn.Max);
            WithOption(ConfigOptions.JoinSummary, true);
            // Out of process (unlike PpOcrBenchmarks), so that each variant's heap holds only its own model (the fp32
            // one is 1.7 GB); building that process can take minutes on a loaded machine (the default limit is two).
            WithBuildTimeout(TimeSpan.FromMinutes(15));
        }
    }

    /// <summary>The synthetic model of issue 5.</summary>
    public const string Spec = "dim=2048,hidden=5632,layers=8,heads=32,kv_heads=8,vocab=32000,seq=1024";

    private const int Layers = 8, KvHeads = 8, HeadSize = 64, Past = 128;

    [Params("squash-fp32", "squash-int4", "squash-int4-int8", "ort-int4", "ort-int4-int8")]
    public string Variant { get; set; } = "squash-int4";

    private GraphExecutor _executor = null!;
    private KernelContext _context = null!;
    private Dictionary<string, Tensor> _inputs = null!, _prompt = null!;
    private InferenceSession _ort = null!;
    private string[] _ortNames = null!, _ortOutputs = null!;
    private OrtValue[] _ortValues = null!, _ortPromptValues = null!;

    [GlobalSetup]
    public void Setup()
    {
        string fp32 = LlamaModels.Fp32();
        if (Variant.StartsWith("squash", StringComparison.Ordinal))
        {
            var model = OnnxLoader.Load(Variant switch
            {
                "squash-fp32" => fp32,
                "squash-int4-int8" => LlamaModels.SquashInt4(Int4ActivationPrecision.Int8),
                _ => LlamaModels.SquashInt4(),
            });
            new PassManager([new ShapeInference(), new AttentionFusion(), new DeadNodeElimination()]).Run(model.Graph, new PassContext());
            Console.WriteLine($"// {Variant}: {LlamaModels.WeightBytes(model.Graph)} bytes of weights");
            _executor = new GraphExecutor(model.Graph);
            _context = new KernelContext(1);
            // Fill the cache with a 128-token prompt; every measured step then feeds token 5 at position 128.
            _prompt = Inputs(Enumerable.Range(0, Past).Select(i => (long)(i * 37 % 32000)).ToArray(), null);
            var outputs = _executor.Run(_prompt, _context);
            _inputs = Inputs([5], outputs);
        }
        else
        {
            string path = LlamaModels.OrtInt4(Variant == "ort-int4-int8" ? 4 : 0);
            var options = new SessionOptions
            {
                IntraOpNumThreads = 1,
                InterOpNumThreads = 1,
                GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
                ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            };
            _ort = new InferenceSession(path, options);
            _ortOutputs = [.. _ort.OutputNames];
            _prompt = Inputs(Enumerable.Range(0, Past).Select(i => (long)(i * 37 % 32000)).ToArray(), null);
            var present = RunOrt(_prompt);
            _inputs = Inputs([5], present);
            _ortNames = [.. _inputs.Keys];
            _ortValues = [.. _ortNames.Select(n => ToOrt(_inputs[n]))];
            _ortPromptValues = [.. _ortNames.Select(n => ToOrt(_prompt[n]))];
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        if (_ortValues is not null) foreach (var v in _ortValues) v.Dispose();
        if (_ortPromptValues is not null) foreach (var v in _ortPromptValues) v.Dispose();
        _ort?.Dispose();
    }

    [Benchmark]
    public void DecodeStep() => Step(_inputs, _ortValues);

    /// <summary>The 128-token prompt from empty caches (time to the first token): a GEMM per matrix, where int4 weights are
    /// dequantized per call (Squash, and ONNX Runtime at accuracy_level 0) or multiplied with int8 activations (ONNX
    /// Runtime at accuracy_level 4; Squash keeps prompts in fp32, docs/int4.md).</summary>
    [Benchmark]
    public void Prompt128() => Step(_prompt, _ortPromptValues);

    /// <summary>One run of the variant's engine on these inputs (Squash's tensors or ONNX Runtime's values).</summary>
    private void Step(Dictionary<string, Tensor> inputs, OrtValue[] ortValues)
    {
        if (_ort is null)
        {
            _executor.Run(inputs, _context);
            return;
        }
        using var results = _ort.Run(new RunOptions(), _ortNames, ortValues, _ortOutputs);
    }

    /// <summary>input_ids and the caches (empty, or the presents of a previous run).</summary>
    private static Dictionary<string, Tensor> Inputs(long[] tokens, Dictionary<string, Tensor>? previous)
    {
        var inputs = new Dictionary<string, Tensor>(StringComparer.Ordinal) { ["input_ids"] = Tensor.From<long>(tokens, 1, tokens.Length) };
        for (int l = 0; l < Layers; l++)
        {
            inputs[$"past_key_{l}"] = previous?[$"present_key_{l}"] ?? new Tensor(DataType.Float, 1, KvHeads, 0, HeadSize);
            inputs[$"past_value_{l}"] = previous?[$"present_value_{l}"] ?? new Tensor(DataType.Float, 1, KvHeads, 0, HeadSize);
        }
        return inputs;
    }

    private Dictionary<string, Tensor> RunOrt(Dictionary<string, Tensor> inputs)
    {
        var names = inputs.Keys.ToArray();
        var values = names.Select(n => ToOrt(inputs[n])).ToArray();
        try
        {
            using var results = _ort.Run(new RunOptions(), names, values, _ortOutputs);
            var dict = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            for (int i = 0; i < _ortOutputs.Length; i++)
            {
                var info = results[i].GetTensorTypeAndShape();
                var t = new Tensor((DataType)(int)info.ElementDataType, [.. info.Shape.Select(d => checked((int)d))]);
                results[i].GetTensorMutableRawData().CopyTo(t.Bytes);
                dict[_ortOutputs[i]] = t;
            }
            return dict;
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    private static OrtValue ToOrt(Tensor t)
    {
        var value = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance,
            (Microsoft.ML.OnnxRuntime.Tensors.TensorElementType)(int)t.DataType, [.. t.Shape.Select(d => (long)d)]);
        t.Bytes.CopyTo(value.GetTensorMutableRawData());
        return value;
    }
}

/// <summary>The benchmark's models, built on first use and cached in the temp folder (the fp32 conversion takes about a minute).</summary>
internal static class LlamaModels
{
    private static string Folder
    {
        get
        {
            string folder = Path.Combine(Path.GetTempPath(), "squash-bench-llama2c");
            Directory.CreateDirectory(folder);
            return folder;
        }
    }

    private static string Key => LlamaDecodeBenchmarks.Spec.Replace('=', '-').Replace(',', '_') + "_seed1";

    /// <summary>The int4 settings of the benchmark.</summary>
    public static Int4QuantizationOptions Int4 => new() { BlockSize = 32, Symmetric = true, QuantizeEmbeddings = true };

    public static string Fp32()
    {
        string path = Path.Combine(Folder, Key + ".onnx");
        if (File.Exists(path)) return path;
        int code = Squash.Tools.Llama2c.Program.Run(["--synthetic", LlamaDecodeBenchmarks.Spec, "--seed", "1", path], Console.Out, Console.Error);
        if (code != 0) throw new InvalidOperationException($"The synthetic model could not be written (exit code {code}).");
        return path;
    }

    public static string SquashInt4(Int4ActivationPrecision activations = Int4ActivationPrecision.Fp32)
    {
        string path = Path.Combine(Folder, Key + (activations == Int4ActivationPrecision.Fp32 ? "_int4-b32-sym.onnx" : "_int4-b32-sym_act-int8.onnx"));
        if (File.Exists(path)) return path;
        var model = OnnxLoader.Load(Fp32());
        new Int4MatMulQuantization(Int4 with { ActivationPrecision = activations }).Run(model.Graph, new PassContext());
        OnnxWriter.Save(model, path);
        return path;
    }

    public static string OrtInt4(int accuracyLevel)
    {
        string path = Path.Combine(Folder, Key + $"_int4-b32-sym_ort-acc{accuracyLevel}.onnx");
        if (File.Exists(path)) return path;
        var model = OnnxLoader.Load(SquashInt4());
        Int4OnnxRuntimeExport.Convert(model.Graph);
        if (accuracyLevel != 0)
            foreach (var node in model.Graph.Nodes.Where(n => n.OpType == "MatMulNBits"))
                node.Attributes["accuracy_level"] = AttributeValue.Int(accuracyLevel);
        OnnxWriter.Save(model, path);
        return path;
    }

    /// <summary>Bytes of all constants (weights, tables, norms).</summary>
    public static long WeightBytes(Graph graph) => graph.Initializers.Sum(v => (long)(v.Constant?.ByteLength ?? 0));
}
