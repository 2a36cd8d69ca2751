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
        var (onnx, graph, inputs) = Model.StartsWith("decoder", StringComparison.Ordinal)
            ? Decoder(int4: Model == "decoder-int4", fuseAttention: Model == "decoder-attention")
            : PpOcr();
        _inputs = inputs;
        _gpu = GpuModel.Create(graph, GpuDevice.Gpu);
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
        _ort = new InferenceSession(onnx, options);
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
}
