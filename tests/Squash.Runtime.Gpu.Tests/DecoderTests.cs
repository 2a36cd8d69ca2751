using Squash.Compiler;
using Squash.Compiler.Onnx;
using Squash.Compiler.Passes;
using Squash.Compiler.Quantization;
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
    public void DecoderStepMatchesTheCpuRuntime() => CheckDecoder(int4: false);

    /// <summary>Every weight matrix of 2048 values or more in int4 (block 32, symmetric: 36 MatMulNBits nodes), run
    /// by the fused-dequantization kernel; the same tolerance (the CPU's int4 GEMV sums dequantized weights, the device
    /// scales each block's sum once).</summary>
    [Fact]
    public void Int4DecoderStepMatchesTheCpuRuntime() => CheckDecoder(int4: true);

    /// <summary>With the attention fusion (as the int4 pipeline runs it), so each layer's attention is one com.squash
    /// Attention node over the KV cache (grouped-query heads) instead of the unfused MatMul/Softmax/MatMul; the same
    /// tolerance.</summary>
    [Fact]
    public void FusedAttentionDecoderStepMatchesTheCpuRuntime() => CheckDecoder(int4: false, fuseAttention: true);

    private static void CheckDecoder(bool int4, bool fuseAttention = false)
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
        if (int4)
        {
            new Int4MatMulQuantization(new Int4QuantizationOptions { BlockSize = 32, Symmetric = true, MinElements = 2048 })
                .Run(model.Graph, new PassContext());
            Assert.Equal(36, model.Graph.Nodes.Count(n => n.OpType == "MatMulNBits"));
        }
        ModelPreparation.PinInputShapes(model, shapes);
        ModelPreparation.Optimize(model);
        if (fuseAttention)
        {
            new AttentionFusion().Run(model.Graph, new PassContext());
            Assert.Equal(5, model.Graph.Nodes.Count(n => n.OpType == "Attention"));
        }
        var expected = ExecutionPlan.Create(model.Graph).Run(inputs);
        using var gpu = GpuModel.Create(model.Graph, GpuDevice.Emulator);
        BackendCompiler.CompileAll(gpu);
        Assert.Empty(gpu.HostNodes.Select(h => $"{h.Node.Describe()}: {h.Reason}"));
        var actual = gpu.Run(inputs);
        foreach (var (name, tensor) in expected) DeviceCase.AssertClose(tensor, actual[name], 1e-4f, 2e-4f, name);
    }
}
