using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using Squash.Compiler;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Tensor = Squash.Runtime.Tensor;

namespace Squash.Benchmarks;

/// <summary>
/// Squash's planned execution against ONNX Runtime in one process, runs interleaved (ABAB, then BABA; with several
/// threads, blocks of an eighth of the runs with a pause between, so that ONNX Runtime's spinning threads do not hold the cores
/// Squash runs on) so that both see the same load on a shared machine; prints min and median milliseconds and their
/// ratios.
/// <c>dotnet run -c Release --project bench/Squash.Benchmarks -- interleaved det|rec|cls THREADS RUNS [int8]</c>; with
/// int8, Squash int8 (<see cref="Int8Models"/>) runs too, in the same rotation; with auto, the mixed-precision plan of
/// Precision="auto" (MSE calibration, sqnr:28) in its place (the QDQ export is still of the all-int8 plan).
/// </summary>
internal static class Interleaved
{
    internal static readonly Dictionary<string, (string File, string Task, int[] Shape)> Models = new()
    {
        ["det"] = ("ch_PP-OCRv4_det_infer.onnx", "det", [1, 3, 640, 640]),
        ["rec"] = ("ch_PP-OCRv4_rec_infer.onnx", "rec", [1, 3, 48, 320]),
        ["cls"] = ("ch_ppocr_mobile_v2.0_cls_infer.onnx", "cls", [1, 3, 48, 192]),
    };

    /// <summary>The fewest consecutive runs of one engine when several threads are used (see the measured loop): an
    /// eighth of the runs, at least this many, so that the run after each pause is a small part of them.</summary>
    private const int BlockRuns = 5;

    /// <summary>The pause before each block of several-thread runs: ONNX Runtime's idle threads stop spinning.</summary>
    private static readonly TimeSpan PauseBetweenBlocks = TimeSpan.FromMilliseconds(100);

    /// <summary>How long every engine runs before the measured runs.</summary>
    private static readonly TimeSpan WarmUpTime = TimeSpan.FromSeconds(5);

    public static void Run(string name, int threads, int runs, bool int8 = false, bool auto = false)
    {
        var (file, task, shape) = Models[name];
        string path = Assets.Model(file);
        var model = global::Squash.Compiler.Onnx.OnnxLoader.Load(path);
        string inputName = model.Graph.Inputs[0].Name;
        ModelPreparation.PinInputShapes(model, new Dictionary<string, int[]> { [inputName] = shape });
        ModelPreparation.OptimizeForCpu(model);
        var plan = ExecutionPlan.Create(model.Graph);
        var quantized = auto ? Int8Models.AutoPlan(file, task, shape, "mse", "sqnr:28") : int8 ? Int8Models.Plan(file, task, shape) : null;
        int8 |= auto;
        using var ortQdq = int8 ? new InferenceSession(Int8Models.Qdq(file, task, shape), OrtOptions(threads)) : null;
        var context = new KernelContext(threads);
        var input = Assets.Input(task, shape);
        var inputs = new Dictionary<string, Tensor> { [inputName] = input };

        using var options = OrtOptions(threads);
        using var ort = new InferenceSession(path, options);
        using var runOptions = new RunOptions();
        using var ortInput = OrtValue.CreateTensorValueFromMemory(input.AsSpan<float>().ToArray(), shape.Select(d => (long)d).ToArray());
        string[] names = [inputName], outputNames = [.. ort.OutputNames];

        double RunSquash()
        {
            long start = Stopwatch.GetTimestamp();
            plan.Run(inputs, context);
            return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        double Ort()
        {
            long start = Stopwatch.GetTimestamp();
            using var results = ort.Run(runOptions, names, [ortInput], outputNames);
            return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }

        double RunInt8()
        {
            if (quantized is null) return 0;
            long start = Stopwatch.GetTimestamp();
            quantized.Run(inputs, context);
            return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }

        double OrtQdq()
        {
            if (ortQdq is null) return 0;
            long start = Stopwatch.GetTimestamp();
            using var results = ortQdq.Run(runOptions, names, [ortInput], outputNames);
            return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }

        // Warm up long enough for tiered compilation to finish: the JIT recompiles hot methods with full optimization
        // only after they have run a while (call counting starts once no new methods have been compiled for 100 ms).
        // Three runs were not enough: cls int8's uint8 MaxPool still ran its first-tier code after 300 runs
        // (0.21 ms instead of 0.02), which made the whole model look 1.8x slower.
        var warmUp = Stopwatch.StartNew();
        for (int i = 0; i < 3 || warmUp.Elapsed < WarmUpTime; i++) { RunSquash(); Ort(); RunInt8(); OrtQdq(); }
        var squash = new List<double>();
        var onnx = new List<double>();
        var squashInt8 = new List<double>();
        var onnxQdq = new List<double>();
        // With several threads, ONNX Runtime's pool spins after each run (its default), holding the cores the next engine
        // needs: interleaved run by run, Squash's two-thread cls median was 2.0 ms against a 0.43 ms minimum. So each
        // engine then runs a block of runs, with a pause for the spinning to stop before the next engine's block.
        int block = threads > 1 ? Math.Max(BlockRuns, runs / 8) : 1;
        void Block(Func<double> run, List<double> times)
        {
            if (block > 1) Thread.Sleep(PauseBetweenBlocks);
            for (int r = 0; r < block && times.Count < runs; r++) times.Add(run());
        }
        for (int i = 0; squash.Count < runs; i++)
        {
            if (i % 2 == 0) { Block(RunSquash, squash); Block(Ort, onnx); Block(RunInt8, squashInt8); Block(OrtQdq, onnxQdq); }
            else { Block(OrtQdq, onnxQdq); Block(RunInt8, squashInt8); Block(Ort, onnx); Block(RunSquash, squash); }
        }
        context.Dispose();
        if (quantized is not null)
            Console.WriteLine($"{name} threads={threads} runs={runs}: Squash int8 min {squashInt8.Min():F2} median {Median(squashInt8):F2} ms; " +
                $"int8/ORT fp32 min {squashInt8.Min() / onnx.Min():F3} median {Median(squashInt8) / Median(onnx):F3}; " +
                $"int8/Squash fp32 median {Median(squashInt8) / Median(squash):F3}; ORT on the QDQ export min {onnxQdq.Min():F2} median {Median(onnxQdq):F2} ms, " +
                $"Squash int8/ORT QDQ min {squashInt8.Min() / onnxQdq.Min():F3} median {Median(squashInt8) / Median(onnxQdq):F3}");
        double sMin = squash.Min(), sMed = Median(squash), oMin = onnx.Min(), oMed = Median(onnx);
        Console.WriteLine($"{name} threads={threads} runs={runs}: Squash min {sMin:F2} median {sMed:F2} ms; ONNX Runtime min {oMin:F2} median {oMed:F2} ms; " +
            $"Squash/ORT min {sMin / oMin:F3} median {sMed / oMed:F3}");
    }

    /// <summary>ONNX Runtime with every graph optimization and <paramref name="threads"/> intra-op threads, its other
    /// settings (thread spinning included) at their defaults.</summary>
    internal static SessionOptions OrtOptions(int threads) => new()
    {
        IntraOpNumThreads = threads,
        InterOpNumThreads = 1,
        GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
    };

    public static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
