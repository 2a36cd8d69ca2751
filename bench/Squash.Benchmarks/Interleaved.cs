using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using Squash.Compiler;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Tensor = Squash.Runtime.Tensor;

namespace Squash.Benchmarks;

/// <summary>
/// Squash's planned execution against ONNX Runtime in one process, runs interleaved (ABAB, then BABA) so that both
/// see the same load on a shared machine; prints min and median milliseconds and their ratios.
/// <c>dotnet run -c Release --project bench/Squash.Benchmarks -- interleaved det|rec|cls THREADS RUNS</c>
/// </summary>
internal static class Interleaved
{
    private static readonly Dictionary<string, (string File, string Task, int[] Shape)> s_models = new()
    {
        ["det"] = ("ch_PP-OCRv4_det_infer.onnx", "det", [1, 3, 640, 640]),
        ["rec"] = ("ch_PP-OCRv4_rec_infer.onnx", "rec", [1, 3, 48, 320]),
        ["cls"] = ("ch_ppocr_mobile_v2.0_cls_infer.onnx", "cls", [1, 3, 48, 192]),
    };

    public static void Run(string name, int threads, int runs)
    {
        var (file, task, shape) = s_models[name];
        string path = Assets.Model(file);
        var model = global::Squash.Compiler.Onnx.OnnxLoader.Load(path);
        string inputName = model.Graph.Inputs[0].Name;
        ModelPreparation.PinInputShapes(model, new Dictionary<string, int[]> { [inputName] = shape });
        ModelPreparation.OptimizeForCpu(model);
        var plan = ExecutionPlan.Create(model.Graph);
        var context = new KernelContext(threads);
        var input = Assets.Input(task, shape);
        var inputs = new Dictionary<string, Tensor> { [inputName] = input };

        using var options = new SessionOptions
        {
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
        };
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

        for (int i = 0; i < 3; i++) { RunSquash(); Ort(); }
        var squash = new List<double>();
        var onnx = new List<double>();
        for (int i = 0; i < runs; i++)
        {
            if (i % 2 == 0) { squash.Add(RunSquash()); onnx.Add(Ort()); }
            else { onnx.Add(Ort()); squash.Add(RunSquash()); }
        }
        context.Dispose();
        double sMin = squash.Min(), sMed = Median(squash), oMin = onnx.Min(), oMed = Median(onnx);
        Console.WriteLine($"{name} threads={threads} runs={runs}: Squash min {sMin:F2} median {sMed:F2} ms; ONNX Runtime min {oMin:F2} median {oMed:F2} ms; " +
            $"Squash/ORT min {sMin / oMin:F3} median {sMed / oMed:F3}");
    }

    public static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
