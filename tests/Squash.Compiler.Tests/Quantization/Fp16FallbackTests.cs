using System.Text.Json;
using Squash.Compiler.Quantization;
using Squash.Runtime;
using Squash.Runtime.Execution;

namespace Squash.Compiler.Tests.Quantization;

/// <summary>Mixed precision with <c>Int8Fallback="fp16"</c> on <see cref="ChainModel"/>: the units that leave int8 run
/// with float16 weights, the search measures them so, explicit exclusions name their own precision, and the report shows
/// it. The chain's weights are 1 on the diagonal and 12, 1/12, 10 and 1/10 on channel 0: 1/12 and 1/10 are not float16
/// values, so rounding them is visible.</summary>
public sealed class Fp16FallbackTests : IDisposable
{
    private readonly ChainModel _chain = new();

    public void Dispose() => _chain.Dispose();

    [Fact]
    public void FallbackUnitsRunWithFloat16WeightsAndTheSearchMeasuresThem()
    {
        var fp32 = QuantizationPipeline.Quantize(_chain.Load(), _chain.ModelPath, _chain.Options(PrecisionMode.Auto, "sqnr:26"));
        var model = _chain.Load();
        var outcome = QuantizationPipeline.Quantize(model, _chain.ModelPath, _chain.Options(PrecisionMode.Auto, "sqnr:26") with { Fallback = NodePrecision.Fp16 });

        // The same unit falls back (the search ranks by int8 noise, unchanged), now to fp16.
        string unit = _chain.Units[4];
        Assert.Equal([unit], outcome.Fallbacks.Select(f => f.Node));
        Assert.Equal(NodePrecision.Fp16, outcome.Plan[unit]);
        var node = model.Graph.Nodes.Single(n => n.Name == unit);
        var weight = node.Inputs[1]!.Constant!;
        Assert.True(Fp16Weights.IsExactlyFp16(weight));
        Assert.Equal(Fp16Weights.Round(1f / 10), weight.AsSpan<float>()[0]);
        Assert.NotEqual(1f / 10, Fp16Weights.Round(1f / 10));
        var report = Assert.Single(outcome.Rewrite.Fp16Weights);
        Assert.True(report.Fp16);
        Assert.Equal(unit, report.Node);

        // Measured with the fp16 weights: the held-out numbers differ from the fp32 fallback's, and they are what the
        // final graph gives on the held-out samples.
        Assert.NotEqual(fp32.Evaluation.Output.SqnrDb, outcome.Evaluation.Output.SqnrDb);
        Assert.InRange(outcome.Evaluation.Output.SqnrDb, fp32.Evaluation.Output.SqnrDb - 0.5, fp32.Evaluation.Output.SqnrDb + 0.5);
        var plan = ExecutionPlan.Create(model.Graph);
        var reference = ExecutionPlan.Create(_chain.Load().Graph);
        var agreement = new AgreementAccumulator();
        foreach (var file in Directory.GetFiles(_chain.Calibration).Order(StringComparer.Ordinal).Where((_, i) => i % ChainModel.HoldOutEvery == ChainModel.HoldOutEvery - 1))
        {
            var inputs = new Dictionary<string, Tensor> { ["x"] = Runtime.IO.Npy.Read(file) };
            var want = reference.Run(inputs).Values.Single().Clone();
            agreement.Add(want.AsSpan<float>(), plan.Run(inputs).Values.Single().AsSpan<float>());
        }
        Assert.Equal(outcome.Evaluation.Output.SqnrDb, agreement.Result().SqnrDb, 6);

        // The report: the unit is fp16, its weight bytes counted as float16 (64 x 64 values, two bytes each).
        using var json = JsonDocument.Parse(QuantizationReportWriter.ToJson(outcome));
        Assert.Equal("fp16", json.RootElement.GetProperty("fallback").GetString());
        Assert.Equal(64 * 64 * 2, json.RootElement.GetProperty("size").GetProperty("fp16Bytes").GetInt64());
        var weightRow = Assert.Single(json.RootElement.GetProperty("fp16Weights").EnumerateArray().ToList());
        Assert.True(weightRow.GetProperty("fp16").GetBoolean());
        Assert.Equal(JsonValueKind.Null, weightRow.GetProperty("keptFp32Because").ValueKind);
        var row = json.RootElement.GetProperty("units").EnumerateArray().Single(u => u.GetProperty("node").GetString() == unit);
        Assert.Equal("fp16", row.GetProperty("precision").GetString());
        // Constants as stored: at least the unit's weight is halved (other float constants whose values happen to be
        // float16 values, such as power-of-two weight scales, are stored as float16 as well, losslessly).
        Assert.True(outcome.WeightBytes.Quantized <= fp32.WeightBytes.Quantized - 64 * 64 * 2, $"{outcome.WeightBytes} vs {fp32.WeightBytes}");
        string markdown = QuantizationReportWriter.ToMarkdown(outcome);
        Assert.Contains("## Fallbacks to fp16, in order", markdown);
        Assert.Contains($"| `{unit}` | MatMul | fp16 | fallback |", markdown);
    }

    [Fact]
    public void ExclusionsNameTheirPrecisionAndDefaultToTheFallback()
    {
        var exclusions = QuantizationExclusions.Parse($"{_chain.Units[0]}=fp32;{_chain.Units[2]}; op:Conv = FP16 ");
        Assert.Equal(NodePrecision.Fp32, exclusions.Precisions[_chain.Units[0]]);
        Assert.False(exclusions.Precisions.ContainsKey(_chain.Units[2]));
        Assert.Equal(NodePrecision.Fp16, exclusions.Precisions["op:Conv"]);
        Assert.Equal(NodePrecision.Fp16, exclusions.PrecisionOf("any", ["Conv"], NodePrecision.Fp32));
        Assert.Equal(NodePrecision.Fp16, exclusions.PrecisionOf(_chain.Units[2], ["MatMul"], NodePrecision.Fp16));
        Assert.Null(exclusions.PrecisionOf(_chain.Units[1], ["MatMul"], NodePrecision.Fp16));
        // The old syntax means what it meant: fp32 with the default fallback.
        Assert.Equal(NodePrecision.Fp32, QuantizationExclusions.Parse("a;op:MatMul").PrecisionOf("b", ["MatMul"], NodePrecision.Fp32));
        foreach (var bad in new[] { "a=fp8", "=fp16", "a=int8" })
            Assert.Equal(ErrorCodes.InvalidOption, Assert.Throws<SquashException>(() => QuantizationExclusions.Parse(bad)).Code);

        var model = _chain.Load();
        var options = _chain.Options(PrecisionMode.Int8) with
        {
            Fallback = NodePrecision.Fp16,
            Exclusions = QuantizationExclusions.Parse($"{_chain.Units[0]}=fp32;{_chain.Units[1]}"),
        };
        var outcome = QuantizationPipeline.Quantize(model, _chain.ModelPath, options);
        Assert.Equal([NodePrecision.Fp32, NodePrecision.Fp16, NodePrecision.Int8, NodePrecision.Int8, NodePrecision.Int8],
            _chain.Units.Select(u => outcome.Plan[u]));
        // Unit 0's weight stays as it is; unit 1's 1/12 is rounded.
        Assert.Equal([_chain.Units[1]], outcome.Rewrite.Fp16Weights.Select(w => w.Node));
        Assert.Equal(Fp16Weights.Round(1f / 12), model.Graph.Nodes.Single(n => n.Name == _chain.Units[1]).Inputs[1]!.Constant!.AsSpan<float>()[0]);
        Assert.Equal(12f, model.Graph.Nodes.Single(n => n.Name == _chain.Units[0]).Inputs[1]!.Constant!.AsSpan<float>()[0]);
        Assert.Contains($"| `{_chain.Units[1]}` | MatMul | fp16 | excluded |", QuantizationReportWriter.ToMarkdown(outcome));
        Assert.Contains($"| `{_chain.Units[0]}` | MatMul | fp32 | excluded |", QuantizationReportWriter.ToMarkdown(outcome));
    }
}
