using Squash.Compiler.Onnx;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Tools.Llama2c;

namespace Squash.Compiler.Tests.Models;

/// <summary>
/// The llama2.c converter (testassets/tools/Llama2cToOnnx) on the vendored stories260K checkpoint and on small
/// synthetic ones: the ONNX model it writes, read back through <see cref="OnnxLoader"/> and run by ONNX Runtime and by
/// Squash, against a plain reference forward pass.
/// </summary>
/// <remarks>
/// Logit tolerance: |got - expected| &lt;= 2e-4 + 1e-4 * |expected|. The reference sums in double, the model in
/// float32 (ONNX Runtime's blocked MatMul and fused kernels, other summation orders). stories260K's logits reach
/// about 21 and float32 keeps about 7 digits, so errors of a few 1e-5 are expected; measured with ONNX Runtime 1.31.1
/// (one thread): at most 5.7e-5 over the 128 greedy steps, one token or 48 + 80 at a time. The bound leaves 3x room
/// for other summation orders while a real bug (a wrong rotation, mask, position or head mapping) moves logits by
/// 0.1 or more. The smallest gap between the best and second-best logit over these steps is 2.9e-3, well above the
/// bound, so equal tokens follow from close logits and cannot flip by rounding.
/// Squash against ONNX Runtime uses the same bound: both are float32 implementations of the same graph.
/// </remarks>
public sealed class Llama2cTests
{
    private const double Rtol = 1e-4;
    private const double Atol = 2e-4;
    private const int Steps = 128;
    private const long Bos = 1;

    private static readonly Lazy<byte[]> s_checkpoint = new(() =>
        File.ReadAllBytes(TestPaths.Asset("models", "llama2c", "stories260K.bin")));

    // Converted once and written with OnnxWriter; every test runs what was written.
    private static readonly Lazy<byte[]> s_onnx = new(() => OnnxWriter.ToBytes(Llama2cConverter.Convert(s_checkpoint.Value)));

    private static readonly Lazy<(long[] Tokens, float[][] Logits)> s_referenceGreedy = new(() =>
        Greedy(new Llama2cReference(s_checkpoint.Value), Steps));

    // stories260K: dim 64, 5 layers, 8 heads, 4 kv heads (head size 8), vocab 512.
    private const int Layers = 5, KvHeads = 4, HeadSize = 8, Vocab = 512;

    [Fact]
    public void OnnxRuntime_GreedyGenerationFromBos_MatchesReference()
    {
        var (expectedTokens, expectedLogits) = s_referenceGreedy.Value;
        using var ort = new OrtReference(s_onnx.Value);
        var (tokens, logits) = Greedy(Decoder(ort), Steps);
        AssertLogitsClose(expectedLogits, logits, "ONNX Runtime vs reference");
        Assert.Equal(expectedTokens, tokens);
    }

    /// <summary>
    /// The first 128 tokens that llama2.c's own run.c (github.com/karpathy/llama2.c at 350e04f, built with
    /// gcc -O2, run as <c>run stories260K.bin -t 0 -n 129</c> with a tokenizer that prints token ids) generates
    /// from BOS: an outside check that the reference reads the file and computes the forward pass as llama2.c does.
    /// </summary>
    private static readonly long[] s_runCGreedyTokens =
    [
        461, 461, 401, 401, 401, 461, 378, 455, 473, 456, 435, 299, 362, 409, 283, 264, 283, 452, 288, 13, 431, 431,
        431, 431, 431, 431, 431, 431, 431, 431, 431, 431, 431, 293, 430, 417, 363, 416, 315, 342, 418, 424, 400, 442,
        402, 303, 266, 299, 374, 466, 396, 303, 271, 362, 390, 469, 306, 469, 423, 314, 347, 305, 356, 333, 333, 333,
        333, 425, 377, 354, 304, 304, 304, 304, 304, 330, 341, 382, 468, 473, 473, 402, 402, 299, 299, 483, 456, 473,
        456, 473, 465, 465, 465, 341, 317, 436, 363, 454, 315, 377, 360, 408, 472, 453, 327, 316, 266, 417, 277, 299,
        369, 283, 266, 417, 264, 277, 277, 277, 439, 456, 407, 407, 309, 341, 436, 330, 466, 377,
    ];

    [Fact]
    public void Reference_GreedyGenerationFromBos_MatchesLlama2cRunC()
    {
        Assert.Equal(Steps, s_runCGreedyTokens.Length);
        Assert.Equal(s_runCGreedyTokens, s_referenceGreedy.Value.Tokens);
    }

    [Fact]
    public void OnnxRuntime_PromptInChunks_MatchesReference()
    {
        // Feeding the same 128 tokens 48 + 80 at a time exercises the causal mask with P = 0 and with P > 0.
        var (generated, expected) = s_referenceGreedy.Value;
        long[] fed = [Bos, .. generated[..(Steps - 1)]];
        using var ort = new OrtReference(s_onnx.Value);
        var logits = RunInChunks(Decoder(ort), fed, 48);
        AssertLogitsClose(expected, logits, "ONNX Runtime prompt chunks vs reference");
    }

    [Fact]
    public void SquashExecutor_GreedyGenerationFromBos_MatchesOnnxRuntime()
    {
        var model = OnnxLoader.Load(s_onnx.Value, null, "stories260K.onnx");
        using var ort = new OrtReference(s_onnx.Value);
        var (expectedTokens, expectedLogits) = Greedy(Decoder(ort), Steps);
        var executor = new GraphExecutor(model.Graph);
        var (tokens, logits) = Greedy(Decoder(executor), Steps);
        AssertLogitsClose(expectedLogits, logits, "Squash vs ONNX Runtime");
        Assert.Equal(expectedTokens, tokens);

        // The batched path (mask, several tokens per call) too.
        long[] fed = [Bos, .. expectedTokens[..(Steps - 1)]];
        var chunked = RunInChunks(Decoder(executor), fed, 48);
        AssertLogitsClose(expectedLogits, chunked, "Squash prompt chunks vs ONNX Runtime");
    }

    [Fact]
    public void WrittenModel_LoadsWithTheDocumentedInterface()
    {
        var model = OnnxLoader.Load(s_onnx.Value, null, "stories260K.onnx");
        var g = model.Graph;
        Assert.Equal(17, g.DefaultOpset);
        Assert.Equal([""], g.OpsetImports.Keys);
        string[] inputs = ["input_ids", .. Enumerable.Range(0, Layers).SelectMany(l => new[] { $"past_key_{l}", $"past_value_{l}" })];
        string[] outputs = ["logits", .. Enumerable.Range(0, Layers).SelectMany(l => new[] { $"present_key_{l}", $"present_value_{l}" })];
        Assert.Equal(inputs, g.Inputs.Select(v => v.Name));
        Assert.Equal(outputs, g.Outputs.Select(v => v.Name));
        Assert.Equal(DataType.Int64, g.Inputs[0].Type);
        Assert.Equal((int[])[1, -1], g.Inputs[0].Shape!);
        Assert.Equal("?,sequence", string.Join(",", g.Inputs[0].DimNames!.Select(n => n ?? "?")));
        foreach (var v in g.Inputs.Skip(1))
        {
            Assert.Equal(DataType.Float, v.Type);
            Assert.Equal((int[])[1, KvHeads, -1, HeadSize], v.Shape!);
        }
        Assert.Equal((int[])[1, -1, Vocab], g.Outputs[0].Shape!);
        foreach (var v in g.Outputs.Skip(1)) Assert.Equal((int[])[1, KvHeads, -1, HeadSize], v.Shape!);
        // Standard operators of the default domain only.
        Assert.All(g.Nodes, n => Assert.Equal("", n.Domain));
        Assert.Subset(OperatorsUsed, g.Nodes.Select(n => n.OpType).ToHashSet());
        // The shared classifier is the embedding itself, not a copy.
        Assert.Single(g.Initializers, v => v.Shape is [Vocab, 64]);
        // Loading and writing again gives the same file.
        Assert.Equal(s_onnx.Value, OnnxWriter.ToBytes(model));
    }

    [Fact]
    public void TruncatedCheckpoint_GivesClearError()
    {
        var bytes = s_checkpoint.Value;
        var e = Assert.Throws<SquashException>(() => Llama2cConverter.Convert(bytes[..^100]));
        Assert.Equal(ErrorCodes.InvalidModel, e.Code);
        Assert.Contains("is truncated", e.Message);
        Assert.Contains($"needs {bytes.Length} bytes, the file has {bytes.Length - 100}", e.Message);

        e = Assert.Throws<SquashException>(() => Llama2cConverter.Convert(bytes[..10]));
        Assert.Contains("less than the 28-byte header", e.Message);
    }

    [Fact]
    public void InconsistentHeaders_GiveClearErrors()
    {
        var bytes = s_checkpoint.Value;
        var e = Assert.Throws<SquashException>(() => Llama2cConverter.Convert([.. bytes, 0, 0, 0, 0]));
        Assert.Contains("the header does not match the data", e.Message);

        var sevenHeads = (byte[])bytes.Clone();
        BitConverter.TryWriteBytes(sevenHeads.AsSpan(12), 7);
        e = Assert.Throws<SquashException>(() => Llama2cConverter.Convert(sevenHeads));
        Assert.Contains("dim 64 is not a multiple of n_heads 7", e.Message);

        var threeKvHeads = (byte[])bytes.Clone();
        BitConverter.TryWriteBytes(threeKvHeads.AsSpan(16), 3);
        e = Assert.Throws<SquashException>(() => Llama2cConverter.Convert(threeKvHeads));
        Assert.Contains("n_heads 8 is not a multiple of n_kv_heads 3", e.Message);

        var negativeLayers = (byte[])bytes.Clone();
        BitConverter.TryWriteBytes(negativeLayers.AsSpan(8), -5);
        e = Assert.Throws<SquashException>(() => Llama2cConverter.Convert(negativeLayers));
        Assert.Contains("must be positive", e.Message);
    }

    [Fact]
    public void CommandLine_ReportsBadInputOnOneLine()
    {
        using var dir = new TempDirectory();
        string truncated = Path.Combine(dir.Path, "truncated.bin");
        File.WriteAllBytes(truncated, s_checkpoint.Value[..1000]);
        foreach (var (input, message) in new[] { (Path.Combine(dir.Path, "missing.bin"), "does not exist"), (truncated, "is truncated") })
        {
            var (code, stdout, stderr) = RunTool(input, Path.Combine(dir.Path, "out.onnx"));
            Assert.Equal(1, code);
            Assert.Equal("", stdout);
            Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.Contains(message, stderr);
            Assert.False(File.Exists(Path.Combine(dir.Path, "out.onnx")));
        }
        Assert.Equal(2, RunTool("only-one-argument.bin").Code);
        Assert.Equal(2, RunTool("--synthetic", "dim=8", "--seed", "x", "out.onnx").Code);
    }

    [Fact]
    public void CommandLine_WritesSyntheticModelAndCheckpoint()
    {
        using var dir = new TempDirectory();
        string onnx = Path.Combine(dir.Path, "model.onnx"), bin = Path.Combine(dir.Path, "model.bin");
        const string Spec = "dim=32,hidden=40,layers=1,heads=4,kv_heads=2,vocab=16,seq=8";
        var (code, _, stderr) = RunTool("--synthetic", Spec, "--seed", "5", onnx, "--checkpoint-out", bin);
        Assert.True(code == 0, stderr);
        var checkpoint = Llama2cCheckpoint.Synthetic(Llama2cConfig.Parse(Spec), 5);
        Assert.Equal(checkpoint.ToBytes(), File.ReadAllBytes(bin));
        Assert.Equal(OnnxWriter.ToBytes(Llama2cConverter.Convert(checkpoint)), File.ReadAllBytes(onnx));

        var e = Assert.Throws<SquashException>(() => Llama2cConfig.Parse("dim=32,hidden=40,layers=1,heads=4,vocab=16"));
        Assert.Contains("'seq' is missing", e.Message);
        e = Assert.Throws<SquashException>(() => Llama2cConfig.Parse(Spec + ",width=3"));
        Assert.Contains("unknown key 'width'", e.Message);
    }

    [Fact]
    public void Synthetic_IsDeterministicPerSeed()
    {
        var config = Llama2cConfig.Parse("dim=16,hidden=24,layers=2,heads=2,kv_heads=1,vocab=20,seq=16");
        var a = Llama2cCheckpoint.Synthetic(config, 42).ToBytes();
        Assert.Equal(a, Llama2cCheckpoint.Synthetic(config, 42).ToBytes());
        Assert.NotEqual(a, Llama2cCheckpoint.Synthetic(config, 43).ToBytes());
        Assert.Equal(config.FileSize, a.Length);
        var parsed = Llama2cCheckpoint.Parse(a);
        Assert.Equal(config, parsed.Config);
        Assert.Equal(a, parsed.ToBytes());
    }

    /// <summary>Layouts the real checkpoint does not have: no grouping (opset 18's ReduceMean and Split forms),
    /// three query heads per kv head with a separate classifier (opset 13).</summary>
    [Theory]
    [InlineData("dim=32,hidden=48,layers=2,heads=4,kv_heads=4,vocab=40,seq=32", 18, true)]
    [InlineData("dim=48,hidden=64,layers=2,heads=6,kv_heads=2,vocab=50,seq=32", 13, false)]
    public void Synthetic_OnnxRuntimeMatchesReference(string spec, int opset, bool shared)
    {
        var config = Llama2cConfig.Parse(spec);
        var checkpoint = Llama2cCheckpoint.Synthetic(config, 3);
        var bytes = checkpoint.ToBytes();
        if (!shared)
        {
            // llama2.c's flag for a separate classifier is a negative vocabulary size; the matrix follows the tables.
            BitConverter.TryWriteBytes(bytes.AsSpan(20), -config.VocabSize);
            var classifier = Llama2cCheckpoint.Synthetic(config, 4).TokenEmbedding;
            bytes = [.. bytes, .. System.Runtime.InteropServices.MemoryMarshal.AsBytes(classifier.AsSpan())];
        }
        var onnx = OnnxWriter.ToBytes(Llama2cConverter.Convert(bytes, opset));
        Assert.Equal(opset, OnnxLoader.Load(onnx, null).Graph.DefaultOpset);
        OnnxDecoder Decode(OrtReference ort) => new(ort.Run, config.Layers, config.KvHeads, config.HeadSize, config.VocabSize);
        const int Length = 20;

        // Random weights soon repeat one token under greedy decoding, and equal tokens have equal values, which
        // would hide attention errors; so also feed a varied sequence.
        long[] varied = [.. Enumerable.Range(0, Length).Select(i => (long)((i * 7 + 3) % config.VocabSize))];
        var expected = new Llama2cReference(bytes).Forward(varied);
        using var ort = new OrtReference(onnx);
        var stepwise = Decode(ort);
        AssertLogitsClose(expected, [.. varied.Select(t => stepwise.Forward([t])[0])], $"{spec} one token at a time");
        AssertLogitsClose(expected, RunInChunks(Decode(ort), varied, 7), $"{spec} in chunks");

        var (expectedTokens, expectedLogits) = Greedy(new Llama2cReference(bytes), Length);
        var (tokens, logits) = Greedy(Decode(ort), Length);
        AssertLogitsClose(expectedLogits, logits, $"{spec} greedy");
        Assert.Equal(expectedTokens, tokens);
    }

    /// <summary>The operator types the converter may emit (everything ONNX Runtime's CPU provider runs).</summary>
    internal static readonly HashSet<string> OperatorsUsed =
    [
        "Add", "Concat", "Div", "Gather", "Gemm", "LessOrEqual", "MatMul", "Mul", "Range", "Reciprocal", "ReduceMean",
        "Reshape", "Shape", "Sigmoid", "Softmax", "Split", "Sqrt", "Sub", "Tile", "Transpose", "Where",
    ];

    private static OnnxDecoder Decoder(OrtReference ort) => new(ort.Run, Layers, KvHeads, HeadSize, Vocab);

    private static OnnxDecoder Decoder(GraphExecutor executor) =>
        new(inputs => executor.Run(inputs, new KernelContext(1)), Layers, KvHeads, HeadSize, Vocab);

    /// <summary>Feeds BOS, then each step's arg-max; returns the generated tokens and each step's logits.</summary>
    private static (long[] Tokens, float[][] Logits) Greedy(IDecoder decoder, int steps)
    {
        var tokens = new long[steps];
        var logits = new float[steps][];
        long token = Bos;
        for (int i = 0; i < steps; i++)
        {
            Assert.Equal(i, decoder.Position);
            logits[i] = decoder.Forward([token])[0];
            tokens[i] = token = ArgMax(logits[i]);
        }
        return (tokens, logits);
    }

    /// <summary>Feeds <paramref name="tokens"/> <paramref name="chunk"/> (the first call) and then the rest at once.</summary>
    private static float[][] RunInChunks(IDecoder decoder, long[] tokens, int chunk)
    {
        var first = decoder.Forward(tokens[..chunk]);
        Assert.Equal(chunk, decoder.Position);
        var rest = decoder.Forward(tokens[chunk..]);
        Assert.Equal(tokens.Length, decoder.Position);
        return [.. first, .. rest];
    }

    private static long ArgMax(float[] values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
            if (values[i] > values[best]) best = i;
        return best;
    }

    private static void AssertLogitsClose(float[][] expected, float[][] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int step = 0; step < expected.Length; step++)
            TensorAssert.Close(Tensor.From<float>(expected[step], expected[step].Length), Tensor.From<float>(actual[step], actual[step].Length),
                Rtol, Atol, $"{what}, logits at position {step}");
    }

    private static (int Code, string Stdout, string Stderr) RunTool(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = Squash.Tools.Llama2c.Program.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    private sealed class TempDirectory : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("squash-llama2c-").FullName;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
