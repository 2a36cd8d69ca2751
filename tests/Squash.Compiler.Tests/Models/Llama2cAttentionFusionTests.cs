using Squash.Compiler.Onnx;
using Squash.Compiler.Passes;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;
using Squash.Tools.Llama2c;

namespace Squash.Compiler.Tests.Models;

/// <summary>
/// The attention fusion on the real stories260K decoder: each layer's attention (QK^T, scale, causal Where, Softmax,
/// ·V over the grouped heads and the concatenated KV cache) becomes one com.squash Attention node, and the fused model
/// generates the same 128 greedy tokens as the unfused one, one token at a time and as a prompt in two chunks.
/// </summary>
/// <remarks>
/// Logit tolerance |fused - unfused| &lt;= 2e-4 + 1e-4 * |unfused|, Llama2cTests' bound for two fp32 implementations of the
/// same graph (here the flash kernel sums scores, exponentials and values in another order than MatMul, Softmax,
/// MatMul). The smallest gap between the best and second-best logit over these steps is 2.9e-3 (Llama2cTests), well
/// above the bound, so equal tokens follow from close logits.
/// </remarks>
public sealed class Llama2cAttentionFusionTests
{
    private const int Steps = 128, Layers = 5, KvHeads = 4, HeadSize = 8, Vocab = 512;

    private static readonly Lazy<byte[]> s_onnx = new(() =>
        OnnxWriter.ToBytes(Llama2cConverter.Convert(File.ReadAllBytes(TestPaths.Asset("models", "llama2c", "stories260K.bin")))));

    /// <summary>The stories260K graph with shapes inferred and, when asked, attention fused.</summary>
    internal static Graph Load(bool fuseAttention)
    {
        var graph = OnnxLoader.Load(s_onnx.Value, null, "stories260K.onnx").Graph;
        new PassManager([new ShapeInference()]).Run(graph, new PassContext());
        if (fuseAttention) new PassManager([new AttentionFusion(), new DeadNodeElimination()]).Run(graph, new PassContext());
        return graph;
    }

    internal static OnnxDecoder Decoder(Graph graph)
    {
        var executor = new GraphExecutor(graph);
        return new OnnxDecoder(inputs => executor.Run(inputs, new KernelContext(1)), Layers, KvHeads, HeadSize, Vocab);
    }

    [Fact]
    public void FusedAttention_GeneratesTheSame128GreedyTokens()
    {
        var fused = Load(fuseAttention: true);
        Assert.Equal(Layers, fused.Nodes.Count(n => n.OpType == "Attention" && n.Domain == "com.squash"));
        Assert.DoesNotContain(fused.Nodes, n => n.OpType == "Softmax");
        var (expectedTokens, expectedLogits) = Greedy(Decoder(Load(fuseAttention: false)));
        var (tokens, logits) = Greedy(Decoder(fused));
        for (int i = 0; i < Steps; i++) AssertClose(expectedLogits[i], logits[i], $"step {i}");
        Assert.Equal(expectedTokens, tokens);

        // The prompt path: 48 tokens with an empty cache, then 80 more (the causal mask with and without a past).
        long[] fed = [1, .. expectedTokens[..(Steps - 1)]];
        var chunked = Decoder(fused);
        var rows = chunked.Forward(fed[..48]).Concat(chunked.Forward(fed[48..])).ToArray();
        for (int i = 0; i < Steps; i++) AssertClose(expectedLogits[i], rows[i], $"prompt position {i}");
    }

    private static (long[] Tokens, float[][] Logits) Greedy(IDecoder decoder)
    {
        var tokens = new long[Steps];
        var logits = new float[Steps][];
        long token = 1;
        for (int i = 0; i < Steps; i++)
        {
            logits[i] = decoder.Forward([token])[0];
            tokens[i] = token = Int4Tests.ArgMax(logits[i]);
        }
        return (tokens, logits);
    }

    private static void AssertClose(float[] expected, float[] actual, string what) =>
        TensorAssert.Close(Tensor.From<float>(expected, expected.Length), Tensor.From<float>(actual, actual.Length), 1e-4, 2e-4, what);
}
