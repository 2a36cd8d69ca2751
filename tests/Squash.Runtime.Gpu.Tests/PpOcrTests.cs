using Squash.Compiler;
using Squash.Compiler.Onnx;
using Squash.Runtime.Execution;
using Squash.Runtime.IO;

namespace Squash.Runtime.Gpu.Tests;

/// <summary>
/// PP-OCR models end to end on the CPU accelerator against the CPU runtime (the planned execution the generated code
/// runs). Tolerance: rtol 1e-4, atol 1e-4 on the outputs (softmax probabilities): two fp32 implementations of every
/// layer, with different summation orders in each convolution, drift apart by a few ulp per layer over ~50 layers.
/// </summary>
public class PpOcrTests
{
    internal static string Root
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Squash.Build.sln"))) dir = dir.Parent;
            return dir?.FullName ?? throw new InvalidOperationException("Run the tests from inside the repository.");
        }
    }

    internal static (Ir.Graph Graph, Dictionary<string, Tensor> Inputs) Prepare(string file, string task, int[] shape)
    {
        var model = OnnxLoader.Load(Path.Combine(Root, "testassets", "models", "ppocr", file));
        string input = model.Graph.Inputs[0].Name;
        ModelPreparation.PinInputShapes(model, new Dictionary<string, int[]> { [input] = shape });
        ModelPreparation.Optimize(model);
        var path = Directory.GetFiles(Path.Combine(Root, "testassets", "data", "ppocr", "eval", task), "*.npy.gz").Order(StringComparer.Ordinal).First();
        var sample = Npy.Read(path);
        return (model.Graph, new Dictionary<string, Tensor> { [input] = Crop(sample, shape) });
    }

    /// <summary>The top-left <paramref name="shape"/> corner of an NCHW sample (the emulator is too slow for whole
    /// recognizer lines in CI time; any input exercises the same kernels).</summary>
    internal static Tensor Crop(Tensor sample, int[] shape)
    {
        if (Shapes.Equal(sample.Shape, shape)) return sample;
        var result = new Tensor(DataType.Float, shape);
        var src = sample.AsSpan<float>();
        var dst = result.AsSpan<float>();
        for (int c = 0; c < shape[1]; c++)
            for (int y = 0; y < shape[2]; y++)
                src.Slice((c * sample.Shape[2] + y) * sample.Shape[3], shape[3]).CopyTo(dst.Slice((c * shape[2] + y) * shape[3], shape[3]));
        return result;
    }

    [Fact]
    public void ClassifierMatchesTheCpuRuntime() => CheckModel("ch_ppocr_mobile_v2.0_cls_infer.onnx", "cls", [1, 3, 48, 192]);

    internal static void CheckModel(string file, string task, int[] shape)
    {
        var (graph, inputs) = Prepare(file, task, shape);
        var expected = ExecutionPlan.Create(graph).Run(inputs);
        using var model = GpuModel.Create(graph, GpuDevice.Emulator);
        BackendCompiler.CompileAll(model);
        Console.WriteLine(string.Join("\n", model.HostNodes.Select(h => $"host: {h.Node.Describe()}: {h.Reason}")));
        Assert.Empty(model.HostNodes.Select(h => $"{h.Node.Describe()}: {h.Reason}"));
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var actual = model.Run(inputs);
        Console.WriteLine($"{file}: {graph.Nodes.Count} nodes, {watch.ElapsedMilliseconds} ms on the emulator");
        foreach (var (name, tensor) in expected) DeviceCase.AssertClose(tensor, actual[name], 1e-4f, 1e-4f, name);
    }
}

public class PpOcrRecTests
{
    [Fact]
    public void RecognizerMatchesTheCpuRuntime() => PpOcrTests.CheckModel("ch_PP-OCRv4_rec_infer.onnx", "rec", [1, 3, 48, 64]);
}

public class PpOcrDetTests
{
    [Fact]
    public void DetectorMatchesTheCpuRuntime() => PpOcrTests.CheckModel("ch_PP-OCRv4_det_infer.onnx", "det", [1, 3, 64, 96]);
}
