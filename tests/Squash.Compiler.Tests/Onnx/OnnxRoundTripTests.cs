using Squash.Compiler.Onnx;
using Squash.Compiler.Tests.Models;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;

namespace Squash.Compiler.Tests.Onnx;

/// <summary>Load then save must give a model ONNX Runtime runs with bit-identical outputs (the quantized export and the
/// Llama converter write through the same code).</summary>
public sealed class OnnxRoundTripTests
{
    [Theory]
    [InlineData(PpOcr.Cls, "cls")]
    [InlineData(PpOcr.Rec, "rec")]
    [InlineData(PpOcr.Det, "det")]
    public void SavedModelGivesIdenticalOutputsInOnnxRuntime(string modelFile, string task)
    {
        string path = PpOcr.ModelPath(modelFile);
        var model = OnnxLoader.Load(path);
        byte[] saved = OnnxWriter.ToBytes(model);
        using var original = new OrtReference(path);
        using var roundTripped = new OrtReference(saved);
        var sample = PpOcr.Samples("eval", task)[0];
        var inputs = new Dictionary<string, Tensor> { [model.Graph.Inputs[0].Name] = PpOcr.Load(sample) };
        var expected = original.Run(inputs);
        var actual = roundTripped.Run(inputs);
        foreach (var (name, tensor) in expected)
            Assert.True(tensor.Bytes.SequenceEqual(actual[name].Bytes), $"output '{name}' differs after a save");
    }

    [Theory]
    [InlineData("test_if")]
    [InlineData("test_constant")]
    [InlineData("test_conv_with_strides_padding")]
    public void ConformanceModelsSurviveASaveAndReload(string name)
    {
        string path = TestPaths.Asset("onnx-node", name, "model.onnx");
        var model = OnnxLoader.Load(path);
        var reloaded = OnnxLoader.Load(OnnxWriter.ToBytes(model), baseDirectory: null);
        Assert.Equal(Describe(model.Graph), Describe(reloaded.Graph));
        Assert.Equal(model.Graph.OpsetImports, reloaded.Graph.OpsetImports);
    }

    private static string Describe(Squash.Runtime.Ir.Graph g) =>
        string.Join("\n", g.Inputs.Select(v => "in " + v) .Concat(g.Initializers.Select(v => "init " + v))
            .Concat(g.Nodes.Select(n => n + " " + string.Join(",", n.Attributes.OrderBy(a => a.Key, StringComparer.Ordinal).Select(a => a.Key + "=" + a.Value))
                + string.Concat(n.Subgraphs.Select(s => "{" + Describe(s) + "}"))))
            .Concat(g.Outputs.Select(v => "out " + v)));
}
