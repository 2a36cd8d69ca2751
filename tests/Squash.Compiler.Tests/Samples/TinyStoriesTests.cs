using System.Text;
using Squash.Compiler.Tests.Models;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;
using TinyStories;

namespace Squash.Compiler.Tests.Samples;

/// <summary>The TinyStories sample's decoder loop and tokenizer (samples/TinyStories), without the generated class.</summary>
public sealed class TinyStoriesTests
{
    /// <summary>The sample's loop over the converted stories260K, run by Squash behind <see cref="ISquashModel"/> (as the
    /// generated class is), generates the reference forward pass's 128 greedy tokens (Llama2cReference, in double; the
    /// smallest best-vs-second gap along them is 2.9e-3, far above fp32 error, Llama2cTests).</summary>
    [Fact]
    public void GeneratesTheReferenceGreedyTokens()
    {
        var checkpoint = File.ReadAllBytes(TestPaths.Asset("models", "llama2c", "stories260K.bin"));
        var reference = new Llama2cReference(checkpoint);
        var expected = new long[128];
        long token = 1;
        for (int i = 0; i < expected.Length; i++) expected[i] = token = Int4Tests.ArgMax(reference.Forward([token])[0]);

        using var model = new GraphModel(Llama2cAttentionFusionTests.Load(fuseAttention: true));
        var decoder = new GreedyDecoder(model);
        Assert.Equal(expected, decoder.Generate(1, 128));
        Assert.Equal(128, decoder.Position);
        decoder.Reset();
        Assert.Equal(expected[..5], decoder.Generate(1, 5));
    }

    [Fact]
    public void RejectsAModelThatIsNotADecoder()
    {
        var graph = new Graph("g");
        var x = new Value("x", DataType.Float, [1]);
        graph.Inputs.Add(x);
        graph.Outputs.Add(x);
        using var model = new GraphModel(graph);
        Assert.Throws<ArgumentException>(() => new GreedyDecoder(model));
    }

    /// <summary>A three-token file in llama2.c's format: BOS's following piece loses its space, &lt;0x0A&gt; is a newline.</summary>
    [Fact]
    public void TokenizerDecodesLikeRunC()
    {
        var file = new MemoryStream();
        var w = new BinaryWriter(file);
        w.Write(6);
        foreach (var piece in new[] { "<s>", " Once", "<0x0A>" })
        {
            w.Write(0f);
            w.Write(piece.Length);
            w.Write(Encoding.UTF8.GetBytes(piece));
        }
        var tokenizer = Tokenizer.Read(file.ToArray(), 3);
        Assert.Equal("Once\n Once", tokenizer.Decode([1, 2, 1]));
        Assert.Throws<InvalidDataException>(() => Tokenizer.Read(file.ToArray()[..20], 3));
    }

    /// <summary>A graph behind <see cref="ISquashModel"/>, the interface the generated classes implement.</summary>
    private sealed class GraphModel(Graph graph) : ISquashModel
    {
        private readonly GraphExecutor _executor = new(graph);

        public IReadOnlyList<TensorSpec> Inputs { get; } = [.. graph.Inputs.Select(v => new TensorSpec(v.Name, v.Type, v.Shape ?? []))];

        public IReadOnlyList<TensorSpec> Outputs { get; } = [.. graph.Outputs.Select(v => new TensorSpec(v.Name, v.Type, v.Shape ?? []))];

        public IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs) => _executor.Run(inputs, new KernelContext(1));

        public void Dispose() { }
    }
}
