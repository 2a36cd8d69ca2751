using Squash.Compiler.Onnx;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Tests.Support;

/// <summary>What the fusion passes' tests check: a fused graph computes the unfused one's outputs bit for bit.</summary>
internal static class FusionAssert
{
    /// <summary>The graph through the ONNX writer and loader (a fused node must survive being saved).</summary>
    public static Graph Copy(Graph g) => OnnxLoader.Load(OnnxWriter.ToBytes(new Model(g)), null).Graph;

    /// <summary>The outputs of both graphs are identical (tolerance 0), with one and with three threads, and after the
    /// fused graph goes through the ONNX writer and loader.</summary>
    public static void Identical(Graph before, Graph after, Dictionary<string, Tensor> inputs)
    {
        foreach (int threads in new[] { 1, 3 })
        {
            var expected = new GraphExecutor(before).Run(inputs, new KernelContext(threads));
            foreach (var graph in new[] { after, Copy(after) })
            {
                var actual = new GraphExecutor(graph).Run(inputs, new KernelContext(threads));
                foreach (var (name, e) in expected)
                    Assert.True(e.Bytes.SequenceEqual(actual[name].Bytes),
                        $"{name} ({threads} threads): max error {Metrics.MaxAbsError(e, actual[name])}");
            }
        }
    }
}
