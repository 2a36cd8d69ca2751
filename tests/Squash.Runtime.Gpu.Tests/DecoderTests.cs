using Squash.Compiler;
using Squash.Compiler.Onnx;
using Squash.Runtime.Execution;
using Squash.Tools.Llama2c;

namespace Squash.Runtime.Gpu.Tests;

/// <summary>
/// The llama2.c stories260K decoder (fp32), one step of 4 new tokens after 6 cached positions, on the CPU accelerator
/// against the CPU runtime. Tolerance rtol 1e-4, atol 2e-4 on logits of magnitude up to ~20 and on the KV cache: the
/// bound the llama2.c tests use between two fp32 implementations (docs in Llama2cTests).
/// </summary>
public class DecoderTests
{
    [Fact]
    public void DecoderStepMatchesTheCpuRuntime()
    {
        var checkpoint = File.ReadAllBytes(Path.Combine(PpOcrTests.Root, "testassets", "models", "llama2c", "stories260K.bin"));
        var model = OnnxLoader.Load(OnnxWriter.ToBytes(Llama2cConverter.Convert(checkpoint)), null, "stories260K.onnx");
        var shapes = new Dictionary<string, int[]>();
        var inputs = new Dictionary<string, Tensor>();
        foreach (var v in model.Graph.Inputs)
        {
            int[] shape = v.Type == DataType.Int64 ? [1, 4] : [1, v.Shape![1], 6, v.Shape[3]];
            shapes[v.Name] = shape;
            inputs[v.Name] = v.Type == DataType.Int64 ? Tensor.From<long>([1, 461, 401, 7], 1, 4) : DeviceCase.Random(v.Name.Length, 1, shape);
        }
        ModelPreparation.PinInputShapes(model, shapes);
        ModelPreparation.Optimize(model);
        var expected = ExecutionPlan.Create(model.Graph).Run(inputs);
        using var gpu = GpuModel.Create(model.Graph, GpuDevice.Emulator);
        BackendCompiler.CompileAll(gpu);
        Assert.Empty(gpu.HostNodes.Select(h => $"{h.Node.Describe()}: {h.Reason}"));
        var actual = gpu.Run(inputs);
        foreach (var (name, tensor) in expected) DeviceCase.AssertClose(tensor, actual[name], 1e-4f, 2e-4f, name);
    }
}
