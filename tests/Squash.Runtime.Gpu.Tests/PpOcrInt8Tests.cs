using Squash.Compiler;
using Squash.Compiler.Onnx;
using Squash.Compiler.Quantization;
using Squash.Runtime.Execution;
using Squash.Runtime.IO;

namespace Squash.Runtime.Gpu.Tests;

/// <summary>
/// PP-OCR in int8 end to end on the CPU accelerator against the CPU runtime, every node on the device. Quantized as the
/// benchmarks' Int8Models does: calibrated at the calibration data's shape (testassets/data/ppocr/calib), the ranges
/// then applied to the graph pinned at the test's shape with the default quantization plan (units it keeps fp32, such
/// as the convolutions fp32 runs by Winograd, stay fp32). cls at its full [1,3,48,192] (35 QConv,
/// 18 QLookup, 10 QGlobalAveragePool, 9 QMul, 7 QAdd, a uint8 MaxPool); rec and det on the top-left corner of a sample,
/// as the fp32 tests (rec adds QMatMul and the fp32 transformer around it, det QConcat, ConvTranspose and Resize).
/// Measured max |device - cpu|: cls 0, rec 4.8e-7, det 1.1e-6 (the fp32 layers' order). Tolerance rtol 1e-4, atol 1e-4, the fp32 tests' bound: the
/// int8 kernels are exact, but the fp32 layers between them sum in another order than the CPU's and may differ by a
/// few ulp, which can move a value feeding a QuantizeLinear or a QMul gate across a rounding boundary.
/// </summary>
public class PpOcrInt8Tests
{
    [Theory]
    [InlineData("ch_ppocr_mobile_v2.0_cls_infer.onnx", "cls", new[] { 1, 3, 48, 192 })]
    [InlineData("ch_PP-OCRv4_rec_infer.onnx", "rec", new[] { 1, 3, 48, 64 })]
    [InlineData("ch_PP-OCRv4_det_infer.onnx", "det", new[] { 1, 3, 64, 96 })]
    public void Int8ModelMatchesTheCpuRuntime(string file, string task, int[] shape)
    {
        string path = Path.Combine(PpOcrTests.Root, "testassets", "models", "ppocr", file);
        string folder = Path.Combine(PpOcrTests.Root, "testassets", "data", "ppocr", "calib", task);
        Ir.Model Prepared(int[] pinned)
        {
            var model = OnnxLoader.Load(path);
            ModelPreparation.PinInputShapes(model, new Dictionary<string, int[]> { [model.Graph.Inputs[0].Name] = pinned });
            ModelPreparation.Optimize(model);
            return model;
        }
        var calibrationModel = Prepared(Int8Preparation.SampleShapes(Prepared(shape), folder).Values.Single());
        var calibration = new Calibrator().Calibrate(ExecutionPlan.Create(calibrationModel.Graph),
            CalibrationDataSet.Open(folder, calibrationModel.Graph.Inputs));
        var graph = Prepared(shape).Graph;
        Int8Quantization.Apply(graph, calibration, QuantizationPlan.Create(graph));
        Assert.Contains(graph.Nodes, n => n.OpType == "QConv");
        Console.WriteLine(string.Join(", ", graph.Nodes.GroupBy(n => n.OpType).Select(g => $"{g.Key} {g.Count()}")));
        var sample = Npy.Read(Directory.GetFiles(Path.Combine(PpOcrTests.Root, "testassets", "data", "ppocr", "eval", task), "*.npy.gz")
            .Order(StringComparer.Ordinal).First());
        var inputs = new Dictionary<string, Tensor> { [graph.Inputs[0].Name] = PpOcrTests.Crop(sample, shape) };

        var expected = ExecutionPlan.Create(graph).Run(inputs);
        using var device = GpuModel.Create(graph, GpuDevice.Emulator);
        BackendCompiler.CompileAll(device);
        Assert.Empty(device.HostNodes.Select(h => $"{h.Node.Describe()}: {h.Reason}"));
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var actual = device.Run(inputs);
        Console.WriteLine($"{task} int8: {graph.Nodes.Count} nodes, {watch.ElapsedMilliseconds} ms on the emulator");
        foreach (var (name, tensor) in expected)
        {
            double worst = 0;
            for (int i = 0; i < tensor.ElementCount; i++) worst = Math.Max(worst, Math.Abs(tensor.GetAsDouble(i) - actual[name].GetAsDouble(i)));
            Console.WriteLine($"{task} {name}: max |device - cpu| {worst:G3}");
            DeviceCase.AssertClose(tensor, actual[name], 1e-4f, 1e-4f, name);
        }
    }
}
