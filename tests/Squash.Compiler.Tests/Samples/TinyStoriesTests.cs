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

    /// <summary>
    /// The int4 pipeline through the compiler, as <c>Precision="int4"</c> runs it (here with the size threshold lowered to
    /// 2048 values so that stories260K's matrices qualify): the generated class, compiled in memory, drives the sample's
    /// loop to the same 32 greedy tokens as the int4 graph run by the executor after <see cref="Squash.Compiler.Passes.Pipeline.Int4"/>,
    /// with logits within 2e-4 + 1e-4 |x| (the same kernels; the class plans memory and may order sums differently).
    /// </summary>
    [Fact]
    public void GeneratedInt4ClassDrivesTheLoop()
    {
        string dir = Directory.CreateTempSubdirectory("squash-tinystories-").FullName;
        try
        {
            string onnx = Path.Combine(dir, "stories260K.onnx");
            Compiler.Onnx.OnnxWriter.Save(Squash.Tools.Llama2c.Llama2cConverter.Convert(File.ReadAllBytes(TestPaths.Asset("models", "llama2c", "stories260K.bin"))), onnx);
            var options = new Squash.Compiler.Quantization.Int4QuantizationOptions { MinElements = 2048 };
            var result = Squash.Compiler.Compilation.ModelCompiler.Compile(new Squash.Compiler.Compilation.CompileRequest
            {
                ModelPath = onnx, OutputDirectory = dir, OutputName = "Stories260K", Int4 = options,
                Class = new Squash.Compiler.CodeGen.ModelClassOptions
                {
                    ClassName = "Stories260K", Namespace = "Tests", WeightsName = "Tests.Stories260K.sqw", SourceFileName = "", SourceSha256 = "", Precision = "int4",
                },
            });
            string source = File.ReadAllText(result.SourcePath);
            Assert.Contains("MatMulNBits", source);
            Assert.Contains("Attention", source);
            var assembly = InMemoryCompiler.Compile([source], [("Tests.Stories260K.sqw", File.ReadAllBytes(result.WeightsPath!))]);
            using var generated = (ISquashModel)Activator.CreateInstance(assembly.GetType("Tests.Stories260K")!, [1])!;

            var model = Compiler.Onnx.OnnxLoader.Load(onnx);
            ModelPreparation.Optimize(model);
            ModelPreparation.ApplyPrecision(model, "int4", options);
            using var executed = new GraphModel(model.Graph);
            var a = new GreedyDecoder(generated);
            var b = new GreedyDecoder(executed);
            long token = 1;
            for (int i = 0; i < 32; i++)
            {
                var expected = b.Step(token);
                var actual = a.Step(token);
                TensorAssert.Close(Tensor.From<float>(expected, expected.Length), Tensor.From<float>(actual, actual.Length), 1e-4, 2e-4, $"step {i}");
                token = GreedyDecoder.ArgMax(expected);
                Assert.Equal(token, GreedyDecoder.ArgMax(actual));
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
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
