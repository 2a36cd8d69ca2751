using Squash.Compiler;
using Squash.Compiler.Onnx;
using Squash.Compiler.Quantization;
using Squash.Runtime.Execution;
using Squash.Runtime.IO;

namespace Squash.Runtime.Gpu.Tests;

/// <summary>
/// PP-OCR cls in int8 (the build's quantization pipeline with its defaults, calibrated on the cls calibration set) end
/// to end on the CPU accelerator against the CPU runtime, every node on the device (35 QConv, 18 QLookup, 10
/// QGlobalAveragePool, 9 QMul, 7 QAdd, a uint8 MaxPool, the QuantizeLinear at the input; the squeeze-and-excitation
/// branches' 18 convolutions, the head MatMul and Softmax stay fp32). Measured: the probabilities are identical (max
/// difference 0). Tolerance rtol 1e-4, atol 1e-4, as the fp32 cls test: the int8 kernels are exact, but the fp32 layers
/// sum in another order than the CPU's and may differ by a few ulp, which can move a value feeding a requantization
/// across a rounding boundary (one uint8 step).
/// </summary>
public class PpOcrInt8Tests
{
    [Fact]
    public void ClassifierInt8MatchesTheCpuRuntime()
    {
        string path = Path.Combine(PpOcrTests.Root, "testassets", "models", "ppocr", "ch_ppocr_mobile_v2.0_cls_infer.onnx");
        var model = OnnxLoader.Load(path);
        string input = model.Graph.Inputs[0].Name;
        ModelPreparation.PinInputShapes(model, new Dictionary<string, int[]> { [input] = [1, 3, 48, 192] });
        ModelPreparation.Optimize(model);
        string folder = Path.Combine(PpOcrTests.Root, "testassets", "data", "ppocr", "calib", "cls");
        ModelPreparation.ApplyPrecision(model, "int8", calibrationFolder: folder, int8: QuantizationOptions.FromText("int8", folder), modelPath: path);
        var graph = model.Graph;
        var ops = graph.Nodes.GroupBy(n => n.OpType).Select(g => $"{g.Key} {g.Count()}");
        Console.WriteLine(string.Join(", ", ops));
        var sample = Directory.GetFiles(Path.Combine(PpOcrTests.Root, "testassets", "data", "ppocr", "eval", "cls"), "*.npy.gz").Order(StringComparer.Ordinal).First();
        var inputs = new Dictionary<string, Tensor> { [input] = Npy.Read(sample) };

        var expected = ExecutionPlan.Create(graph).Run(inputs);
        using var device = GpuModel.Create(graph, GpuDevice.Emulator);
        BackendCompiler.CompileAll(device);
        Assert.Empty(device.HostNodes.Select(h => $"{h.Node.Describe()}: {h.Reason}"));
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var actual = device.Run(inputs);
        Console.WriteLine($"cls int8: {graph.Nodes.Count} nodes, {watch.ElapsedMilliseconds} ms on the emulator");
        foreach (var (name, tensor) in expected)
        {
            double worst = 0;
            for (int i = 0; i < tensor.ElementCount; i++) worst = Math.Max(worst, Math.Abs(tensor.GetAsDouble(i) - actual[name].GetAsDouble(i)));
            Console.WriteLine($"{name}: max |device - cpu| {worst:G3}");
            DeviceCase.AssertClose(tensor, actual[name], 1e-4f, 1e-4f, name);
        }
    }
}
