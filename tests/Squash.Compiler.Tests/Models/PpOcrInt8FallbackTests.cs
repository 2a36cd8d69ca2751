using Squash.Compiler.Quantization;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Xunit.Abstractions;

namespace Squash.Compiler.Tests.Models;

/// <summary>
/// Int8 PP-OCR with <c>Int8Fallback</c> fp32 and fp16 (the default plan: the fallback units are the small products):
/// a mixed int8 run whose fallback units' weights are float16, and the figures docs/quantization.md quotes for keeping
/// fp32 the default. Bounds: cls keeps fp32's label on every sample either way (measured); rec reads fp32's text on 51
/// (fp32 fallback) and 52 (fp16) of 64 lines (49 and 47 before bias correction), its line-end spaces being borderline
/// (PpOcrInt8Tests), so the bound is PpOcrInt8Tests' 75 % less two lines.
/// </summary>
public sealed class PpOcrInt8FallbackTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(PpOcr.Cls, "cls", 192, "fp32")]
    [InlineData(PpOcr.Cls, "cls", 192, "fp16")]
    [InlineData(PpOcr.Rec, "rec", 320, "fp32")]
    [InlineData(PpOcr.Rec, "rec", 320, "fp16")]
    public void FallbackUnitsRunInTheFallbackPrecision(string file, string task, int width, string fallback)
    {
        var (fp32, int8, outcome) = PpOcrInt8Tests.Quantize(file, task, [1, 3, 48, width], fallback: fallback);

        // Every fallback product's weight is float16 with fp16, none with fp32.
        var fallbackUnits = outcome.Rewrite.Units.Where(u => !u.Int8 && u.Kind is Int8UnitKind.Conv or Int8UnitKind.MatMul).Select(u => u.Node).ToHashSet();
        var rounded = outcome.Rewrite.Fp16Weights.Where(w => w.Fp16).Select(w => w.Node).ToHashSet();
        if (fallback == "fp16")
        {
            Assert.NotEmpty(rounded);
            Assert.Subset(fallbackUnits, rounded);
            foreach (var node in int8.Graph.Nodes.Where(n => rounded.Contains(n.Name)))
                Assert.True(Fp16Weights.IsExactlyFp16(node.Inputs[1]!.Constant!), node.Name);
        }
        else Assert.Empty(rounded);

        var reference = ExecutionPlan.Create(fp32.Graph);
        var quantized = ExecutionPlan.Create(int8.Graph);
        string outputName = fp32.Graph.Outputs[0].Name;
        int same = 0, samples = 0;
        foreach (var sample in PpOcr.Samples("eval", task))
        {
            var inputs = new Dictionary<string, Tensor> { ["x"] = PpOcr.Load(sample) };
            var want = reference.Run(inputs)[outputName].Clone();
            var got = quantized.Run(inputs)[outputName];
            samples++;
            if (task == "rec" ? PpOcr.DecodeCtc(want) == PpOcr.DecodeCtc(got) : ArgMax(want) == ArgMax(got)) same++;
        }
        output.WriteLine($"{task} int8, fallback {fallback}: {outcome.Rewrite.Int8Count} of {outcome.Rewrite.Units.Count} units int8, "
            + $"{rounded.Count} fp16 weights; held-out SQNR {outcome.Evaluation.Output.SqnrDb:F1} dB; same {(task == "rec" ? "text" : "label")} {same}/{samples}; "
            + $"constants {outcome.WeightBytes.Fp32:N0} -> {outcome.WeightBytes.Quantized:N0} bytes");
        Assert.True(same >= (task == "cls" ? samples : 0.75 * samples - 2), $"{same} of {samples}");
    }

    private static int ArgMax(Tensor t)
    {
        var s = t.AsSpan<float>();
        int best = 0;
        for (int i = 1; i < s.Length; i++) if (s[i] > s[best]) best = i;
        return best;
    }
}
