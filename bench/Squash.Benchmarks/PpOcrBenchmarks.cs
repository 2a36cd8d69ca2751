using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using Microsoft.ML.OnnxRuntime;
using Squash.Compiler;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Tensor = Squash.Runtime.Tensor;

namespace Squash.Benchmarks;

/// <summary>
/// PP-OCR det (1x3x640x640), rec (1x3x48x320) and cls (1x3x48x192): Squash's planned execution (what the generated
/// code runs), fp32 and int8 (<see cref="Int8Models"/>), against ONNX Runtime fp32 and ONNX Runtime on the int8 model's
/// QDQ export (all graph optimizations, same intra-op thread count), same input.
/// </summary>
[Config(typeof(Config))]
public class PpOcrBenchmarks
{
    private sealed class Config : ManualConfig
    {
        public Config()
        {
            // In process: no per-benchmark project build (which times out on a loaded 2-core machine); ORT and Squash
            // run in the same process either way.
            AddJob(Job.Default.WithWarmupCount(5).WithIterationCount(15).WithLaunchCount(1)
                .WithToolchain(BenchmarkDotNet.Toolchains.InProcess.Emit.InProcessEmitToolchain.Instance));
            AddColumn(BenchmarkDotNet.Columns.StatisticColumn.Median, BenchmarkDotNet.Columns.StatisticColumn.Min, BenchmarkDotNet.Columns.StatisticColumn.Max);
            WithOption(ConfigOptions.JoinSummary, true);
        }
    }

    private static readonly Dictionary<string, (string File, string Task, int[] Shape)> s_models = new()
    {
        ["det"] = ("ch_PP-OCRv4_det_infer.onnx", "det", [1, 3, 640, 640]),
        ["rec"] = ("ch_PP-OCRv4_rec_infer.onnx", "rec", [1, 3, 48, 320]),
        ["cls"] = ("ch_ppocr_mobile_v2.0_cls_infer.onnx", "cls", [1, 3, 48, 192]),
    };

    [Params("det", "rec", "cls")]
    public string Model { get; set; } = "cls";

    [Params(1, 2)]
    public int Threads { get; set; } = 1;

    private ExecutionPlan _plan = null!;
    private ExecutionPlan _int8 = null!;
    private KernelContext _context = null!;
    private Dictionary<string, Tensor> _inputs = null!;
    private InferenceSession _ort = null!;
    private InferenceSession _ortQdq = null!;
    private OrtValue _ortInput = null!;
    private RunOptions _runOptions = null!;
    private string[] _ortInputNames = null!, _ortOutputNames = null!;

    [GlobalSetup]
    public void Setup()
    {
        var (file, task, shape) = s_models[Model];
        string path = Assets.Model(file);
        var model = global::Squash.Compiler.Onnx.OnnxLoader.Load(path);
        string inputName = model.Graph.Inputs[0].Name;
        ModelPreparation.PinInputShapes(model, new Dictionary<string, int[]> { [inputName] = shape });
        ModelPreparation.OptimizeForCpu(model);
        _plan = ExecutionPlan.Create(model.Graph);
        _int8 = Int8Models.Plan(file, task, shape);
        _context = new KernelContext(Threads);
        var input = Assets.Input(task, shape);
        _inputs = new() { [inputName] = input };

        var options = new SessionOptions
        {
            IntraOpNumThreads = Threads,
            InterOpNumThreads = 1,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
        };
        _ort = new InferenceSession(path, options);
        _ortQdq = new InferenceSession(Int8Models.Qdq(file, task, shape), options);
        // One RunOptions for all runs: one created inline can be finalized during the native call.
        _runOptions = new RunOptions();
        _ortInput = OrtValue.CreateTensorValueFromMemory(input.AsSpan<float>().ToArray(), shape.Select(d => (long)d).ToArray());
        _ortInputNames = [inputName];
        _ortOutputNames = [.. _ort.OutputNames];
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _context.Dispose();
        _ortInput.Dispose();
        _runOptions.Dispose();
        _ort.Dispose();
        _ortQdq.Dispose();
    }

    [Benchmark(Baseline = true)]
    public void OnnxRuntime()
    {
        using var results = _ort.Run(_runOptions, _ortInputNames, [_ortInput], _ortOutputNames);
    }

    [Benchmark]
    public void Squash() => _plan.Run(_inputs, _context);

    [Benchmark]
    public void SquashInt8() => _int8.Run(_inputs, _context);

    /// <summary>ONNX Runtime on Squash's int8 model exported as QDQ (its own int8 kernels after fusion).</summary>
    [Benchmark]
    public void OnnxRuntimeQdq()
    {
        using var results = _ortQdq.Run(_runOptions, _ortInputNames, [_ortInput], _ortOutputNames);
    }
}
