using Squash.Compiler.Onnx;
using Squash.Compiler.Passes;
using Squash.Compiler.Quantization;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Ir;
using Xunit.Abstractions;

namespace Squash.Compiler.Tests.Models;

/// <summary>
/// Weight-only int4 on the real stories260K checkpoint: every weight matrix (and, optionally, the tied embedding
/// lookup) in int4, round-to-nearest, against the fp32 model, all run by Squash; and the int4 model exported to ONNX
/// Runtime's MatMulNBits, which must compute the same numbers.
/// </summary>
/// <remarks>
/// The model is tiny (64 wide), so the size threshold is lowered to 2048 values to include its smallest matrices (wk
/// and wv, 64 x 32). It is also extremely sensitive to weight noise: its greedy text from BOS has best-vs-second logit
/// gaps down to 2.9e-3, and every single matrix type quantized alone to 4 bits raises the NLL of fp32's greedy text by
/// 49% (wo) to 195% (the embedding). Even 8-bit absmax blocks of 32 flip the first greedy token (agreement 2/128, NLL
/// +1.2%); 6 bits give +35%, 5 bits +155%. The criteria (at least 95% greedy agreement, NLL rise at most 2%)
/// are therefore out of reach for round-to-nearest int4 on this model; GPTQ meets the NLL criterion on a subset of the
/// matrices, never the agreement one (<see cref="Stories260K_Gptq_BeatsRoundToNearest"/>). The measured numbers are in
/// docs/int4.md and the tests guard them against regression (a packing or kernel error sends the NLL far higher, towards the uniform
/// ln 512 = 6.2).
/// </remarks>
public sealed class Int4Tests(ITestOutputHelper output)
{
    private const int Steps = 128;
    private const long Bos = 1;

    /// <summary>The int4 settings of the measurement: block 32, symmetric, every matrix of 2048 values or more.</summary>
    internal static Int4QuantizationOptions Stories260KOptions(bool embeddings) =>
        new() { BlockSize = 32, Symmetric = true, MinElements = 2048, QuantizeEmbeddings = embeddings };

    internal static Graph Quantized(Int4QuantizationOptions options, bool fuseAttention = false)
    {
        var graph = Llama2cAttentionFusionTests.Load(fuseAttention);
        new Int4MatMulQuantization(options).Run(graph, new PassContext());
        return graph;
    }

    /// <summary>Greedy agreement and likelihood against fp32, with the regression bounds measured for this
    /// configuration (about 1.5x the measured NLL rise; see the remarks for why the targets cannot hold here).</summary>
    [Theory]
    [InlineData(false, 3.3)]
    [InlineData(true, 3.9)]
    public void Stories260K_Int4_AgainstFp32(bool embeddings, double maxNllRise)
    {
        var fp32Graph = Llama2cAttentionFusionTests.Load(fuseAttention: false);
        var fp32 = Greedy(Llama2cAttentionFusionTests.Decoder(fp32Graph));
        var graph = Quantized(Stories260KOptions(embeddings));
        // Seven matrices per layer and the classifier (and the embedding lookup); the rotary tables stay fp32.
        Assert.Equal(5 * 7 + 1 + (embeddings ? 1 : 0), graph.Nodes.Count(n => n.Domain == "com.squash"));
        var int4 = Greedy(Llama2cAttentionFusionTests.Decoder(graph));
        int same = fp32.Tokens.Zip(int4.Tokens).Count(p => p.First == p.Second);

        // Teacher-forced on fp32's greedy text: top-1 agreement and the mean negative log-likelihood.
        long[] text = [Bos, .. fp32.Tokens[..(Steps - 1)]];
        var fp32Rows = Llama2cAttentionFusionTests.Decoder(fp32Graph).Forward(text);
        var int4Rows = Llama2cAttentionFusionTests.Decoder(graph).Forward(text);
        int forced = Enumerable.Range(0, Steps).Count(i => ArgMax(int4Rows[i]) == fp32.Tokens[i]);
        double nllFp32 = MeanNll(fp32Rows, fp32.Tokens), nllInt4 = MeanNll(int4Rows, fp32.Tokens);
        double rise = (nllInt4 - nllFp32) / nllFp32;
        output.WriteLine($"embedding lookup in int4: {embeddings}; free-running greedy agreement {same}/{Steps}; " +
            $"teacher-forced top-1 agreement {forced}/{Steps}; mean NLL of fp32's greedy text: fp32 {nllFp32:F4}, int4 {nllInt4:F4} ({100 * rise:+0.0}%)");
        Assert.True(rise <= maxNllRise, $"NLL rose by {100 * rise:F1}%, more than the {100 * maxNllRise:F0}% measured when this test was written");
        // Measured 36 and 26 of 128 (chance is 1 in 512); a broken kernel or layout drops to chance.
        Assert.True(forced >= 20, $"teacher-forced agreement {forced}/{Steps}");
    }

    /// <summary>The five matrices GPTQ packs within the NLL target (+2%) with held-out calibration: added greedily
    /// in order of each one's own NLL rise, keeping each that left the total within +2% (docs/int4.md).</summary>
    internal static readonly string[] WithinTwoPercent =
        ["layers.4.attention.v", "layers.3.ffn.up", "layers.3.ffn.gate", "layers.3.attention.v", "layers.4.ffn.gate"];

    /// <summary>
    /// GPTQ against round-to-nearest on the same model and settings (block 32, asymmetric, embedding lookup fp32),
    /// calibrated on held-out text: fp32's greedy continuations of eight other prompts (BOS then token 100, 200, ... 500),
    /// 1024 rows, none of them the evaluated text. All 36 matrices (the 35 of the layers and the classifier): measured
    /// NLL rise RTN +250.8%, GPTQ +189.0%. The five of <see cref="WithinTwoPercent"/>: RTN +5.70%, GPTQ +0.82%, within the
    /// issue's +2%. Free-running greedy agreement stays far below 95% in every configuration that packs anything (no
    /// single matrix alone exceeds 57/128): the fp32 text has a best-vs-second gap of 2.9e-3 at step 37.
    /// Bounds: about 1.1x the measured GPTQ rises, and GPTQ at most 0.85x RTN (measured 0.75x and 0.14x).
    /// </summary>
    [Fact]
    public void Stories260K_Gptq_BeatsRoundToNearest()
    {
        var fp32Graph = Llama2cAttentionFusionTests.Load(fuseAttention: false);
        var fp32 = Greedy(Llama2cAttentionFusionTests.Decoder(fp32Graph)).Tokens;
        long[] text = [Bos, .. fp32[..(Steps - 1)]];
        var fp32Rows = Llama2cAttentionFusionTests.Decoder(fp32Graph).Forward(text);
        double nllFp32 = MeanNll(fp32Rows, fp32);
        // Greedy agreement needs every step's arg-max kept: the margin of fp32's token over the runner-up at each step
        // bounds the logit change a quantization may make there.
        var gaps = Enumerable.Range(0, Steps).Select(i => Margin(fp32Rows[i], fp32[i])).ToArray();
        var statistics = Int4Calibration.Collect(fp32Graph, HeldOutCalibration(fp32Graph));
        Assert.Equal(36, statistics.Count);
        Assert.All(statistics.Values, s => Assert.Equal(8 * Steps, s.Rows));
        // q, k and v multiply the same normalized activation: one Gram matrix for the three.
        Assert.Same(statistics["layers.2.attention.wq_t"], statistics["layers.2.attention.wv_t"]);
        Assert.NotSame(statistics["layers.2.attention.wq_t"], statistics["layers.2.attention.wo_t"]);

        string[] matrices = [.. fp32Graph.Nodes.Where(n => n.OpType is "MatMul" or "Gemm" && n.Input(1)?.Constant is not null).Select(n => n.Name)];
        (int Same, double Rise, string Forced) Measure(IInt4Quantizer quantizer, string[] packed)
        {
            var graph = Llama2cAttentionFusionTests.Load(fuseAttention: false);
            var options = new Int4QuantizationOptions
            {
                Symmetric = false, MinElements = 2048, QuantizeEmbeddings = false, Quantizer = quantizer, Activations = statistics,
                Exclude = [.. matrices.Except(packed)],
            };
            new Int4MatMulQuantization(options).Run(graph, new PassContext());
            Assert.Equal(packed.Length, graph.Nodes.Count(n => n.OpType == "MatMulNBits"));
            var tokens = Greedy(Llama2cAttentionFusionTests.Decoder(graph)).Tokens;
            var rows = Llama2cAttentionFusionTests.Decoder(graph).Forward(text);
            double nll = MeanNll(rows, fp32);
            // Teacher-forced: how many arg-maxes move, and how far logits move against fp32's token (median over steps).
            var flips = Enumerable.Range(0, Steps).Where(i => ArgMax(rows[i]) != fp32[i]).ToArray();
            var moved = Enumerable.Range(0, Steps).Select(i => LargestRelativeChange(fp32Rows[i], rows[i], fp32[i])).Order().ToArray();
            string forced = $"teacher-forced arg-max moved at {flips.Length} of {Steps} steps" +
                (flips.Length > 0 ? $", first at step {flips[0]} (fp32 margin {gaps[flips[0]]:G3})" : "") + $"; logit change against fp32's token: median {moved[Steps / 2]:G3}";
            return (fp32.Zip(tokens).Count(p => p.First == p.Second), (nll - nllFp32) / nllFp32, forced);
        }
        var rtnAll = Measure(RoundToNearestQuantizer.Instance, matrices);
        var gptqAll = Measure(GptqQuantizer.Instance, matrices);
        var rtnFive = Measure(RoundToNearestQuantizer.Instance, WithinTwoPercent);
        var gptqFive = Measure(GptqQuantizer.Instance, WithinTwoPercent);
        output.WriteLine($"NLL of fp32's greedy text {nllFp32:F4}; rise (free-running agreement of 128):");
        output.WriteLine($"  36 matrices: RTN {100 * rtnAll.Rise:+0.00}% ({rtnAll.Same}), GPTQ {100 * gptqAll.Rise:+0.00}% ({gptqAll.Same})");
        output.WriteLine($"  5 matrices:  RTN {100 * rtnFive.Rise:+0.00}% ({rtnFive.Same}), GPTQ {100 * gptqFive.Rise:+0.00}% ({gptqFive.Same})");
        var smallest = Enumerable.Range(0, Steps - Steps / 20).OrderBy(i => gaps[i]).Take(5);
        output.WriteLine($"fp32's smallest margins in the first {Steps - Steps / 20} steps (95% greedy agreement needs the arg-max kept at each, unless the texts rejoin after a flip): " +
            string.Join(", ", smallest.Select(i => $"step {i} {gaps[i]:G3}")) + $"; median margin {gaps.Order().ElementAt(Steps / 2):G3}");
        output.WriteLine($"  GPTQ, 36 matrices: {gptqAll.Forced}");
        output.WriteLine($"  GPTQ, 5 matrices:  {gptqFive.Forced}");
        Assert.True(gptqAll.Rise <= 2.1 && gptqAll.Rise <= 0.85 * rtnAll.Rise, $"36 matrices: GPTQ {gptqAll.Rise:P1}, RTN {rtnAll.Rise:P1}");
        Assert.True(gptqFive.Rise <= 0.02, $"5 matrices: GPTQ {gptqFive.Rise:P2} is above the issue's 2%");
        Assert.True(gptqFive.Rise <= 0.85 * rtnFive.Rise, $"5 matrices: GPTQ {gptqFive.Rise:P2}, RTN {rtnFive.Rise:P2}");
    }

    /// <summary>One prompt per sample: BOS, a start token, then fp32's 126 greedy tokens after it; empty caches.</summary>
    internal static List<IReadOnlyDictionary<string, Tensor>> HeldOutCalibration(Graph fp32Graph)
    {
        var samples = new List<IReadOnlyDictionary<string, Tensor>>();
        foreach (long start in (long[])[100, 200, 250, 300, 350, 400, 450, 500])
        {
            var decoder = Llama2cAttentionFusionTests.Decoder(fp32Graph);
            var tokens = new List<long> { Bos, start };
            decoder.Forward([Bos]);
            long token = ArgMax(decoder.Forward([start])[0]);
            while (tokens.Count < Steps)
            {
                tokens.Add(token);
                token = ArgMax(decoder.Forward([token])[0]);
            }
            var sample = new Dictionary<string, Tensor> { ["input_ids"] = Tensor.From<long>([.. tokens], 1, Steps) };
            for (int l = 0; l < 5; l++)
            {
                sample[$"past_key_{l}"] = new Tensor(DataType.Float, 1, 4, 0, 8);
                sample[$"past_value_{l}"] = new Tensor(DataType.Float, 1, 4, 0, 8);
            }
            samples.Add(sample);
        }
        return samples;
    }

    /// <summary>
    /// Squash's int4 kernels against ONNX Runtime's MatMulNBits on the exported model, step by step over ONNX Runtime's
    /// greedy tokens (fed to both), one token at a time (GEMV) and as one 128-token prompt (dequantize + GEMM).
    /// Tolerance |squash - ort| &lt;= 2e-4 + 1e-4 * |ort|, Llama2cTests' bound for two fp32 implementations of one graph:
    /// the weights are the same int4 values, only sums are ordered differently.
    /// </summary>
    [Fact]
    public void Stories260K_Int4_SquashMatchesOnnxRuntimeOnTheExport()
    {
        var graph = Quantized(Stories260KOptions(embeddings: true), fuseAttention: true);
        var exported = Llama2cAttentionFusionTests.Load(fuseAttention: false);
        new Int4MatMulQuantization(Stories260KOptions(embeddings: true)).Run(exported, new PassContext());
        Assert.Equal(37, Int4OnnxRuntimeExport.Convert(exported));
        using var ort = new OrtReference(OnnxWriter.ToBytes(new Model(exported)));
        var reference = new OnnxDecoder(ort.Run, 5, 4, 8, 512);
        var (tokens, expected) = Greedy(reference);
        var squash = Llama2cAttentionFusionTests.Decoder(graph);
        long token = Bos;
        for (int i = 0; i < Steps; i++)
        {
            AssertClose(expected[i], squash.Forward([token])[0], $"step {i}");
            token = tokens[i];
        }
        var prompt = Llama2cAttentionFusionTests.Decoder(graph).Forward([Bos, .. tokens[..(Steps - 1)]]);
        for (int i = 0; i < Steps; i++) AssertClose(expected[i], prompt[i], $"prompt position {i}");
    }

    /// <summary>
    /// int8 activations (<c>accuracy_level</c> 4) on stories260K's decode steps, fed fp32's greedy text one token at a
    /// time (a prompt would run in fp32): against the same int4 weights with fp32 activations, and against ONNX
    /// Runtime's MatMulNBits with accuracy_level 4 on the export. Logits are not compared step by step: both quantize
    /// the activations identically (Passes/Int4QuantizationTests checks one row against ONNX Runtime within fp32 rounding), but
    /// inside the model a last-bit difference in an earlier fp32 sum moves a value across a rounding midpoint now and
    /// then (first at step 4, in layer 1's ffn.down), and this model amplifies one such code into logit changes of 0.3.
    /// The mean NLL over 128 steps averages that out: Squash's and ONNX Runtime's must agree within 2% (measured
    /// 0.3%, see the output), and int8 activations may add at most 5% to the int4 weights' NLL (measured +1.2%).
    /// </summary>
    [Fact]
    public void Stories260K_Int4Int8Activations_AgainstFp32ActivationsAndOnnxRuntime()
    {
        var options = Stories260KOptions(embeddings: true);
        var int8Options = options with { ActivationPrecision = Squash.Runtime.Kernels.Int4ActivationPrecision.Int8 };
        var fp32Graph = Llama2cAttentionFusionTests.Load(fuseAttention: false);
        var fp32 = Greedy(Llama2cAttentionFusionTests.Decoder(fp32Graph));
        var w4 = Quantized(options, fuseAttention: true);
        var w4a8 = Quantized(int8Options, fuseAttention: true);
        var matmuls = w4a8.Nodes.Where(n => n.OpType == "MatMulNBits").ToList();
        Assert.Equal(36, matmuls.Count);
        Assert.All(matmuls, n => Assert.Equal(4, n.Attributes["accuracy_level"].IntValue));

        long[] text = [Bos, .. fp32.Tokens[..(Steps - 1)]];
        var exported = Llama2cAttentionFusionTests.Load(fuseAttention: false);
        new Int4MatMulQuantization(int8Options).Run(exported, new PassContext());
        Int4OnnxRuntimeExport.Convert(exported);
        Assert.All(exported.Nodes.Where(n => n.OpType == "MatMulNBits"), n => Assert.Equal(4, n.Attributes["accuracy_level"].IntValue));
        using var ort = new OrtReference(OnnxWriter.ToBytes(new Model(exported)));
        var decoders = new IDecoder[]
        {
            Llama2cAttentionFusionTests.Decoder(fp32Graph), Llama2cAttentionFusionTests.Decoder(w4), Llama2cAttentionFusionTests.Decoder(w4a8),
            new OnnxDecoder(ort.Run, 5, 4, 8, 512),
        };
        var rows = decoders.Select(_ => new float[Steps][]).ToArray();
        double int8Effect = 0;
        for (int i = 0; i < Steps; i++)
        {
            for (int d = 0; d < decoders.Length; d++) rows[d][i] = decoders[d].Forward([text[i]])[0];
            for (int j = 0; j < rows[2][i].Length; j++) int8Effect = Math.Max(int8Effect, Math.Abs(rows[2][i][j] - rows[1][i][j]));
        }
        var nll = rows.Select(r => MeanNll(r, fp32.Tokens)).ToArray();
        int forced = Enumerable.Range(0, Steps).Count(i => ArgMax(rows[2][i]) == fp32.Tokens[i]);
        output.WriteLine($"mean NLL of fp32's greedy text, one token per step: fp32 {nll[0]:F4}, int4 {nll[1]:F4} ({100 * (nll[1] - nll[0]) / nll[0]:+0.0}%), " +
            $"int4 + int8 activations {nll[2]:F4} ({100 * (nll[2] - nll[0]) / nll[0]:+0.0}%; {100 * (nll[2] - nll[1]) / nll[1]:+0.0}% over int4), " +
            $"ONNX Runtime accuracy_level 4 {nll[3]:F4}; teacher-forced top-1 {forced}/{Steps}; largest logit change from int8 activations {int8Effect:G3}");
        // The int8 path ran (it changes logits far beyond fp32 rounding) and costs little on top of the int4 weights.
        Assert.True(int8Effect > 1e-2, $"int8 activations changed the logits by at most {int8Effect}");
        Assert.True(nll[2] <= nll[1] * 1.05, $"int8 activations raised the NLL from {nll[1]:F4} to {nll[2]:F4}");
        Assert.True(Math.Abs(nll[2] - nll[3]) <= 0.02 * nll[3], $"NLL: Squash {nll[2]:F4}, ONNX Runtime {nll[3]:F4}");
        Assert.True(forced >= 20, $"teacher-forced agreement {forced}/{Steps}");
    }

    /// <summary>Feeds BOS, then each step's arg-max.</summary>
    private static (long[] Tokens, float[][] Logits) Greedy(IDecoder decoder)
    {
        var tokens = new long[Steps];
        var logits = new float[Steps][];
        long token = Bos;
        for (int i = 0; i < Steps; i++)
        {
            logits[i] = decoder.Forward([token])[0];
            tokens[i] = token = ArgMax(logits[i]);
        }
        return (tokens, logits);
    }

    /// <summary>Mean of -log softmax(rows[i])[targets[i]], in double.</summary>
    private static double MeanNll(float[][] rows, long[] targets)
    {
        double total = 0;
        for (int i = 0; i < targets.Length; i++)
        {
            var row = rows[i];
            double max = row.Max(), sum = 0;
            foreach (float v in row) sum += Math.Exp(v - max);
            total += -(row[targets[i]] - max - Math.Log(sum));
        }
        return total / targets.Length;
    }

    /// <summary>How far the logit of <paramref name="token"/> leads the largest other one.</summary>
    private static double Margin(float[] logits, long token)
    {
        double other = double.NegativeInfinity;
        for (int j = 0; j < logits.Length; j++)
            if (j != token) other = Math.Max(other, logits[j]);
        return logits[token] - other;
    }

    /// <summary>The largest change of any logit relative to the logit of <paramref name="token"/>, between two rows.</summary>
    private static double LargestRelativeChange(float[] before, float[] after, long token)
    {
        double largest = 0;
        for (int j = 0; j < before.Length; j++)
            largest = Math.Max(largest, Math.Abs((after[j] - after[token]) - (before[j] - before[token])));
        return largest;
    }

    private static void AssertClose(float[] expected, float[] actual, string what) =>
        TensorAssert.Close(Tensor.From<float>(expected, expected.Length), Tensor.From<float>(actual, actual.Length), 1e-4, 2e-4, what);

    internal static long ArgMax(float[] values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
            if (values[i] > values[best]) best = i;
        return best;
    }
}
