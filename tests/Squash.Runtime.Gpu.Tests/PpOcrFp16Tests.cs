using Squash.Runtime.Execution;
using Squash.Runtime.Ir;

namespace Squash.Runtime.Gpu.Tests;

/// <summary>
/// PP-OCR computed in fp16 end to end (every float tensor float16, the fp32 input cast on entry) on the CPU
/// accelerator against the CPU runtime's fp16, with no host node. Both widen each node's fp16 inputs, compute in fp32 and round back, so
/// the only differences are fp32 sums in another order that round to neighbouring fp16 values, carried through the
/// layers. Tolerance for cls and rec: rtol 4e-3, atol 1e-4 on the fp16 probabilities, four fp16 ulp (2^-10 relative
/// each); measured: cls 6.1e-5 (2^-14, one ulp of a value in [1/16, 1/8)), rec 2.7e-5. det: below.
/// </summary>
public class PpOcrFp16Tests
{
    [Fact]
    public void ClassifierInFp16MatchesTheCpuRuntime() =>
        CheckModel("ch_ppocr_mobile_v2.0_cls_infer.onnx", "cls", [1, 3, 48, 192], 4e-3f, 1e-4f);

    /// <summary>rec's transformer adds fp16 LayerNormalization, Softmax and MatMul; the same bound as cls (measured
    /// 2.7e-5).</summary>
    [Fact]
    public void RecognizerInFp16MatchesTheCpuRuntime() =>
        CheckModel("ch_PP-OCRv4_rec_infer.onnx", "rec", [1, 3, 48, 64], 4e-3f, 1e-4f);

    /// <summary>det amplifies one-ulp differences: at its fifth convolution, inputs one fp16 ulp apart (4.9e-4) give
    /// outputs 0.012 apart (measured, device against CPU fp16; 0.0146 on the probability map). The bound, atol 3e-2, is below the fp16 model's own error: the CPU
    /// runtime's fp16 differs from its fp32 by 0.046 on the map (0.17 at that block), so a device error as large as
    /// fp16's own fails.</summary>
    [Fact]
    public void DetectorInFp16IsWithinTheFp16Error() =>
        CheckModel("ch_PP-OCRv4_det_infer.onnx", "det", [1, 3, 64, 96], 0, 3e-2f);

    private static void CheckModel(string file, string task, int[] shape, float rtol, float atol)
    {
        var (graph, inputs) = PpOcrTests.Prepare(file, task, shape);
        ToFloat16(graph);
        var expected = ExecutionPlan.Create(graph).Run(inputs);
        using var model = GpuModel.Create(graph, GpuDevice.Emulator);
        BackendCompiler.CompileAll(model);
        Assert.Empty(model.HostNodes.Select(h => $"{h.Node.Describe()}: {h.Reason}"));
        // Conv, pooling and Softmax widen into the scratch; its size is that of the largest such node's fp32 tensors.
        Console.WriteLine($"arena {model.ArenaBytes} bytes, scratch {model.ScratchBytes} bytes");
        Assert.InRange(model.ScratchBytes, 1, 4 * model.ArenaBytes);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var actual = model.Run(inputs);
        Console.WriteLine($"{task} fp16: {graph.Nodes.Count} nodes, {watch.ElapsedMilliseconds} ms on the emulator");
        foreach (var (name, tensor) in expected)
        {
            Assert.Equal(DataType.Float16, tensor.DataType);
            double worst = 0;
            for (int i = 0; i < tensor.ElementCount; i++) worst = Math.Max(worst, Math.Abs(tensor.GetAsDouble(i) - actual[name].GetAsDouble(i)));
            Console.WriteLine($"{name}: max |device - cpu| {worst}");
            DeviceCase.AssertClose(tensor, actual[name], rtol, atol, name);
        }
    }

    /// <summary>Makes an optimized fp32 graph compute in fp16: float constants rounded to float16 (nearest even), every
    /// float value float16, and the fp32 graph inputs cast to float16 by a Cast node in front.</summary>
    internal static void ToFloat16(Graph graph)
    {
        var inputs = new HashSet<Value>(graph.Inputs);
        foreach (var v in graph.AllValues())
        {
            if (v.Type != DataType.Float || inputs.Contains(v)) continue;
            if (v.Constant is { } c)
            {
                var source = c.AsSpan<float>();
                var half = new System.Half[source.Length];
                for (int i = 0; i < half.Length; i++) half[i] = (System.Half)source[i];
                v.Constant = Tensor.From<System.Half>(half, c.Shape);
            }
            else v.Type = DataType.Float16;
        }
        foreach (var input in graph.Inputs.Where(v => v.Type == DataType.Float))
        {
            var narrow = new Value(input.Name + "_fp16", DataType.Float16, input.Shape);
            graph.ReplaceUses(input, narrow);
            var cast = new Node("Cast", input.Name + "_to_fp16", "", graph.DefaultOpset);
            cast.Attributes["to"] = AttributeValue.Int((long)DataType.Float16);
            cast.AddInput(input).AddOutput(narrow);
            graph.Nodes.Insert(0, cast);
        }
    }
}
