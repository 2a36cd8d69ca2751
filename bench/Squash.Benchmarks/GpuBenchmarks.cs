using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using ILGPU;
using ILGPU.Runtime.Cuda;
using Microsoft.ML.OnnxRuntime;
using Squash.Compiler;
using Squash.Compiler.Onnx;
using Squash.Compiler.Passes;
using Squash.Compiler.Quantization;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Gpu;
using Squash.Tools.Llama2c;
using Tensor = Squash.Runtime.Tensor;

namespace Squash.Benchmarks;

/// <summary>
/// Squash on a CUDA GPU (<see cref="GpuModel"/>: inputs uploaded, every node on one stream, outputs downloaded, all
/// inside the measured call) against Squash's CPU runtime and ONNX Runtime's CPU provider (all graph optimizations),
/// every core, same inputs: PP-OCR det (1x3x640x640), rec (1x3x48x320), cls (1x3x48x192), fp32, and the llama2.c
/// stories260K decoder (one decode step of one token after 32 cached positions): fp32, and int4 ("decoder-int4": every
/// matrix of 2048 values or more and the tied embedding, block 32, symmetric, as in docs/int4.md; ONNX Runtime runs the
/// same int4 values as com.microsoft MatMulNBits/GatherBlockQuantized), and with the attention fused
/// ("decoder-attention": each layer's attention one com.squash Attention node; ONNX Runtime runs the unfused model and
/// fuses what it fuses). The PP-OCR models also in int8 ("det-int8", "rec-int8", "cls-int8": quantized as the int8
/// tests and <see cref="Int8Models"/> quantize them; ONNX Runtime runs the same int8 model exported as QDQ). Without a
/// CUDA device the class is left out of the run with a message (Program.cs).
/// </summary>
[Config(typeof(Config))]
public class GpuBenchmarks
{
    private sealed class Config : ManualConfig
    {
        public Config()
        {
            // In process, like PpOcrBenchmarks (no per-benchmark project build).
            AddJob(Job.Default.WithWarmupCount(5).WithIterationCount(15).WithLaunchCount(1)
                .WithToolchain(BenchmarkDotNet.Toolchains.InProcess.Emit.InProcessEmitToolchain.Instance));
            AddColumn(BenchmarkDotNet.Columns.StatisticColumn.Median, BenchmarkDotNet.Columns.StatisticColumn.Min, BenchmarkDotNet.Columns.StatisticColumn.Max);
            WithOption(ConfigOptions.JoinSummary, true);
        }
    }

    private const int PastLength = 32;

    [Params("det", "rec", "cls", "det-int8", "rec-int8", "cls-int8", "decoder", "decoder-int4", "decoder-attention")]
    public string Model { get; set; } = "cls";

    private GpuModel _gpu = null!;
    private ExecutionPlan _plan = null!;
    private KernelContext _context = null!;
    private Dictionary<string, Tensor> _inputs = null!;
    private InferenceSession _ort = null!;
    private string[] _ortInputNames = null!, _ortOutputNames = null!;
    private OrtValue[] _ortInputs = null!;
    /// <summary>The ONNX Runtime model's file when it is too large for a byte array (the 2048-wide decoder).</summary>
    private string? _ortPath;
    // One RunOptions for every call: a RunOptions created per call has crashed ONNX Runtime (use after free).
    private readonly RunOptions _runOptions = new();

    /// <summary>True when ILGPU finds a CUDA device; otherwise <paramref name="reason"/> says why.</summary>
    public static bool CudaPresent(out string reason)
    {
        try
        {
            using var context = Context.Create(b => b.Cuda());
            if (context.GetCudaDevices().Count > 0)
            {
                reason = "";
                return true;
            }
            reason = "no CUDA device was found (the NVIDIA driver provides libcuda; the CUDA toolkit is not needed)";
        }
        catch (Exception e)
        {
            reason = $"CUDA could not be initialised: {e.Message}";
        }
        return false;
    }

    [GlobalSetup]
    public void Setup()
    {
        var (onnx, graph, inputs) = Model.StartsWith("llama2048", StringComparison.Ordinal) ? LargeDecoder(int4: Model == "llama2048-int4")
            : Model.StartsWith("decoder", StringComparison.Ordinal) ? Decoder(int4: Model == "decoder-int4", fuseAttention: Model == "decoder-attention")
            : PpOcr();
        _inputs = inputs;
        // SQUASH_BENCH_EMULATOR=1 runs the device code on ILGPU's CPU emulator (a dry run of the harness, not a figure).
        _gpu = GpuModel.Create(graph, Environment.GetEnvironmentVariable("SQUASH_BENCH_EMULATOR") == "1" ? GpuDevice.Cpu : GpuDevice.Gpu);
        foreach (var (node, reason) in _gpu.HostNodes) Console.WriteLine($"// {Model}: {node.Describe()} on the host: {reason}");
        _plan = ExecutionPlan.Create(graph);
        _context = new KernelContext(Environment.ProcessorCount);
        var options = new SessionOptions
        {
            IntraOpNumThreads = Environment.ProcessorCount,
            InterOpNumThreads = 1,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
        };
        _ort = onnx.Length == 0 ? new InferenceSession(_ortPath!, options) : new InferenceSession(onnx, options);
        _ortInputNames = [.. inputs.Keys];
        _ortInputs = [.. inputs.Values.Select(ToOrt)];
        _ortOutputNames = [.. _ort.OutputNames];
    }

    private (byte[] Onnx, Runtime.Ir.Graph Graph, Dictionary<string, Tensor> Inputs) PpOcr()
    {
        string task = Model.Replace("-int8", "", StringComparison.Ordinal);
        var (file, shape) = task switch
        {
            "det" => ("ch_PP-OCRv4_det_infer.onnx", new[] { 1, 3, 640, 640 }),
            "rec" => ("ch_PP-OCRv4_rec_infer.onnx", new[] { 1, 3, 48, 320 }),
            _ => ("ch_ppocr_mobile_v2.0_cls_infer.onnx", new[] { 1, 3, 48, 192 }),
        };
        if (task != Model)
        {
            var int8 = Int8Models.Graph(file, task, shape);
            return (Int8Models.Qdq(file, task, shape), int8, new() { [int8.Inputs[0].Name] = Assets.Input(task, shape) });
        }
        var bytes = File.ReadAllBytes(Assets.Model(file));
        var model = OnnxLoader.Load(bytes, null, file);
        string input = model.Graph.Inputs[0].Name;
        ModelPreparation.PinInputShapes(model, new Dictionary<string, int[]> { [input] = shape });
        ModelPreparation.Optimize(model);
        return (bytes, model.Graph, new() { [input] = Assets.Input(task, shape) });
    }

    private static (byte[] Onnx, Runtime.Ir.Graph Graph, Dictionary<string, Tensor> Inputs) Decoder(bool int4, bool fuseAttention)
    {
        var checkpoint = File.ReadAllBytes(Path.Combine(Assets.Root, "testassets", "models", "llama2c", "stories260K.bin"));
        var bytes = OnnxWriter.ToBytes(Llama2cConverter.Convert(checkpoint));
        var model = OnnxLoader.Load(bytes, null, "stories260K.onnx");
        if (int4)
        {
            var quantization = new Int4MatMulQuantization(new Int4QuantizationOptions { BlockSize = 32, Symmetric = true, MinElements = 2048 });
            quantization.Run(model.Graph, new PassContext());
            // ONNX Runtime gets the same int4 values in its own operators, from a second copy.
            var ort = OnnxLoader.Load(bytes, null, "stories260K.onnx");
            quantization.Run(ort.Graph, new PassContext());
            Int4OnnxRuntimeExport.Convert(ort.Graph);
            bytes = OnnxWriter.ToBytes(ort);
        }
        var shapes = new Dictionary<string, int[]>();
        var inputs = new Dictionary<string, Tensor>();
        foreach (var v in model.Graph.Inputs)
        {
            int[] shape = v.Type == DataType.Int64 ? [1, 1] : [1, v.Shape![1], PastLength, v.Shape[3]];
            shapes[v.Name] = shape;
            inputs[v.Name] = new Tensor(v.Type, shape);
        }
        inputs["input_ids"].AsSpan<long>()[0] = 1;
        ModelPreparation.PinInputShapes(model, shapes);
        ModelPreparation.Optimize(model);
        if (fuseAttention) new AttentionFusion().Run(model.Graph, new PassContext());
        return (bytes, model.Graph, inputs);
    }

    /// <summary>The synthetic decoder of <see cref="LlamaDecodeBenchmarks"/> (dim 2048, 8 layers, vocab 32000: 1.7 GB
    /// fp32, 0.24 GB int4), one decode step of one token after 128 cached positions, attention fused; ONNX Runtime runs
    /// the fp32 model or the MatMulNBits export (accuracy_level 0) from its file. Only with <c>gpu</c> (RunQuick): the
    /// models are built on first use (about a minute).</summary>
    private (byte[] Onnx, Runtime.Ir.Graph Graph, Dictionary<string, Tensor> Inputs) LargeDecoder(bool int4)
    {
        var model = OnnxLoader.Load(int4 ? LlamaModels.SquashInt4() : LlamaModels.Fp32());
        _ortPath = int4 ? LlamaModels.OrtInt4(0) : LlamaModels.Fp32();
        var shapes = new Dictionary<string, int[]>();
        var inputs = new Dictionary<string, Tensor>();
        foreach (var v in model.Graph.Inputs)
        {
            int[] shape = v.Type == DataType.Int64 ? [1, 1] : [1, v.Shape![1], 128, v.Shape[3]];
            shapes[v.Name] = shape;
            inputs[v.Name] = new Tensor(v.Type, shape);
        }
        inputs["input_ids"].AsSpan<long>()[0] = 5;
        ModelPreparation.PinInputShapes(model, shapes);
        ModelPreparation.Optimize(model);
        new AttentionFusion().Run(model.Graph, new PassContext());
        return ([], model.Graph, inputs);
    }

    private static OrtValue ToOrt(Tensor t)
    {
        long[] shape = [.. t.Shape.Select(d => (long)d)];
        return t.DataType == DataType.Int64
            ? OrtValue.CreateTensorValueFromMemory(t.AsSpan<long>().ToArray(), shape)
            : OrtValue.CreateTensorValueFromMemory(t.AsSpan<float>().ToArray(), shape);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _gpu.Dispose();
        foreach (var v in _ortInputs) v.Dispose();
        _ort.Dispose();
        _runOptions.Dispose();
    }

    [Benchmark(Baseline = true)]
    public void OnnxRuntimeCpu()
    {
        using var results = _ort.Run(_runOptions, _ortInputNames, _ortInputs, _ortOutputNames);
    }

    [Benchmark]
    public void SquashCpu() => _plan.Run(_inputs, _context);

    [Benchmark]
    public void SquashCuda() => _gpu.Run(_inputs);

    /// <summary>
    /// The same three engines without BenchmarkDotNet, for a GPU machine lent for minutes: per model, setup, warm-up
    /// (three calls each, then until two seconds have passed), <paramref name="runs"/> rounds that call the engines in
    /// turn (order alternating), medians and minimums in milliseconds, and the largest difference between the CUDA
    /// and CPU outputs as a check. <c>dotnet Squash.Benchmarks.dll gpu RUNS [MODEL ...]</c>.
    /// </summary>
    public static void RunQuick(int runs, IReadOnlyList<string> models)
    {
        Console.WriteLine($"gpu: {Environment.ProcessorCount} cores, {runs} runs per engine");
        foreach (string name in models)
        {
            var bench = new GpuBenchmarks { Model = name };
            try
            {
                var setup = System.Diagnostics.Stopwatch.StartNew();
                bench.Setup();
                Console.WriteLine($"{name}: setup {setup.Elapsed.TotalSeconds:F1} s on {bench._gpu.DeviceName} ({bench._gpu.Backend}), {bench._gpu.HostNodes.Count} host nodes, arena {bench._gpu.ArenaBytes / 1e6:F1} MB");
                var first = System.Diagnostics.Stopwatch.StartNew();
                var gpuOut = bench._gpu.Run(bench._inputs);
                Console.WriteLine($"{name}: first CUDA run {first.Elapsed.TotalMilliseconds:F0} ms (kernel compilation)");
                var cpuOut = bench._plan.Run(bench._inputs, bench._context);
                var worst = cpuOut.Where(p => p.Value.DataType == DataType.Float)
                    .Select(p => (p.Key, Difference: MaxAbsDifference(p.Value, gpuOut[p.Key]), Scale: p.Value.AsSpan<float>().ToArray().Max(Math.Abs)))
                    .OrderByDescending(d => d.Difference).First();
                Console.WriteLine($"{name}: largest |CUDA - CPU| {worst.Difference:E2} in {worst.Key} (its largest |value| {worst.Scale:E2})");
                Action[] engines = [bench.OnnxRuntimeCpu, bench.SquashCpu, bench.SquashCuda];
                var warm = System.Diagnostics.Stopwatch.StartNew();
                for (int i = 0; i < 3 || warm.Elapsed.TotalSeconds < 2; i++) foreach (var e in engines) e();
                var times = engines.Select(_ => new List<double>()).ToArray();
                for (int r = 0; r < runs; r++)
                    for (int k = 0; k < engines.Length; k++)
                    {
                        int e = r % 2 == 0 ? k : engines.Length - 1 - k;
                        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
                        engines[e]();
                        times[e].Add(System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                    }
                double ort = Interleaved.Median(times[0]), cpu = Interleaved.Median(times[1]), cuda = Interleaved.Median(times[2]);
                Console.WriteLine($"{name}: median (min) ms: ONNX Runtime CPU {ort:F3} ({times[0].Min():F3}), Squash CPU {cpu:F3} ({times[1].Min():F3}), "
                    + $"Squash CUDA {cuda:F3} ({times[2].Min():F3}); CUDA/ORT {cuda / ort:F3}, CUDA/Squash CPU {cuda / cpu:F3}");
            }
            catch (Exception e)
            {
                Console.WriteLine($"{name}: FAILED {e.GetType().Name}: {e.Message}");
                Console.WriteLine(e.StackTrace);
            }
            finally
            {
                try { bench.Cleanup(); } catch (Exception) { }
            }
        }
    }

    private static double MaxAbsDifference(Tensor expected, Tensor actual)
    {
        var a = expected.AsSpan<float>();
        var b = actual.AsSpan<float>();
        double max = 0;
        for (int i = 0; i < a.Length; i++) max = Math.Max(max, Math.Abs(a[i] - b[i]));
        return max;
    }
}
