using Squash.Compiler.Onnx;
using Squash.Compiler.Quantization;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.IO;
using Squash.Runtime.Ir;
using Xunit.Abstractions;

namespace Squash.Compiler.Tests.Quantization;

/// <summary>
/// A chain of five MatMuls whose product is the identity, built so that each unit's int8 noise has a closed form.
/// x ~ U(-1, 1) of [32, 64]; unit k's weights are diagonal and exact in 7 bits (every column's largest magnitude is
/// its only non-zero), so the only noise is the uint8 quantization of each unit's input, uniform with variance
/// Δ²/12 for step Δ = scale. Channel 0 is scaled by s before a unit and by 1/s in it, so that unit's input range is s
/// times wider: A, C and D read ranges of 1; B reads 12 and E 10. Alone, a unit adds noise Δ_k²/12 to channels 1..63
/// and Δ_k²/12/s_k² to channel 0 of the output (which equals x in fp32).
/// </summary>
internal sealed class ChainModel : IDisposable
{
    public const int Rows = 32, Channels = 64, Samples = 20, HoldOutEvery = 5;

    /// <summary>The scale of channel 0 at each unit's input: A, B, C, D, E.</summary>
    public static readonly float[] InputScale = [1, 12, 1, 1, 10];

    public string Folder { get; } = Directory.CreateTempSubdirectory("squash-sensitivity-").FullName;

    public string ModelPath => Path.Combine(Folder, "chain.onnx");

    public string Calibration => Path.Combine(Folder, "calib");

    /// <summary>Unit names in order (the MatMul nodes).</summary>
    public string[] Units { get; }

    public ChainModel()
    {
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, Rows, Channels);
        var v = x;
        var units = new List<string>();
        for (int k = 0; k < 5; k++)
        {
            // Undo this unit's input scale, apply the next unit's.
            float next = k + 1 < 5 ? InputScale[k + 1] : 1;
            var w = new float[Channels * Channels];
            for (int c = 0; c < Channels; c++) w[c * Channels + c] = c == 0 ? next / InputScale[k] : 1;
            v = b.Node("MatMul", v, b.Constant(Tensor.From<float>(w, Channels, Channels)));
            units.Add(b.Graph.Nodes[^1].Name);
        }
        b.Output(v);
        Units = [.. units];
        OnnxWriter.Save(b.Build(), ModelPath);
        Directory.CreateDirectory(Calibration);
        var random = new Random(1234);
        for (int s = 0; s < Samples; s++)
        {
            var data = new float[Rows * Channels];
            for (int i = 0; i < data.Length; i++) data[i] = (float)(random.NextDouble() * 2 - 1);
            Npy.Write(Path.Combine(Calibration, $"{s:D3}.npy"), Tensor.From<float>(data, Rows, Channels));
        }
    }

    public Model Load()
    {
        var model = OnnxLoader.Load(ModelPath);
        ModelPreparation.Optimize(model);
        return model;
    }

    public QuantizationOptions Options(PrecisionMode precision, string? target = null) => new()
    {
        Precision = precision,
        CalibrationFolder = Calibration,
        Split = new CalibrationSplit(HoldOutEvery),
        Target = target is null ? null : AccuracyTarget.Parse(target),
    };

    /// <summary>Mean of x² over the held-out samples: the signal power of the output.</summary>
    public double SignalPower()
    {
        double sum = 0;
        long count = 0;
        foreach (var file in Directory.GetFiles(Calibration).Order(StringComparer.Ordinal).Where((_, i) => i % HoldOutEvery == HoldOutEvery - 1))
            foreach (float value in Npy.Read(file).AsSpan<float>())
            {
                sum += (double)value * value;
                count++;
            }
        return sum / count;
    }

    public void Dispose() => Directory.Delete(Folder, recursive: true);
}

/// <summary>The sensitivity profile, the mixed-precision search and the accuracy budget on <see cref="ChainModel"/>,
/// whose numbers have a closed form, and on PP-OCR cls.</summary>
public sealed class SensitivityTests(ITestOutputHelper output)
{
    /// <summary>Closed form vs measurement: the noise power is estimated from 4 x 32 x 64 = 8192 uniform errors, whose
    /// squares have a relative standard deviation of sqrt(4/5) / sqrt(8192) = 1% (0.04 dB); held-out values outside the
    /// calibrated range clip by at most a few thousandths. 0.25 dB is about six standard deviations.</summary>
    private const double ClosedFormToleranceDb = 0.25;

    [Fact]
    public void ProfileMatchesTheClosedFormAndRanksTheWidestInputFirst()
    {
        using var chain = new ChainModel();
        var (profile, _) = QuantizationPipeline.Profile(chain.Load(), chain.ModelPath, chain.Options(PrecisionMode.Int8));
        Assert.Equal(chain.Units, profile.Units.Select(u => u.Node));
        Assert.Equal(4, profile.Samples);
        double signal = chain.SignalPower();
        // The calibrated input step of each unit, from the same calibration the profile used.
        var calibration = new Calibrator().Calibrate(Runtime.Execution.ExecutionPlan.Create(PreparedGraph(chain)),
            CalibrationDataSet.Open(chain.Calibration, chain.Load().Graph.Inputs, new CalibrationSplit(ChainModel.HoldOutEvery)));
        var graph = PreparedGraph(chain);
        for (int k = 0; k < 5; k++)
        {
            var unit = profile.Units[k];
            var input = graph.Nodes.First(n => n.Name == unit.Node).Inputs[0]!;
            var range = calibration.Tensors[input.Name];
            double step = QuantizationParameters.Asymmetric(range.Min, range.Max, QuantizationRange.UInt8).Scale;
            double s = ChainModel.InputScale[k];
            double noise = step * step / 12 * ((ChainModel.Channels - 1) + 1 / (s * s)) / ChainModel.Channels;
            double expected = 10 * Math.Log10(signal / noise);
            output.WriteLine($"{unit.Node}: measured {unit.Output!.Value.SqnrDb:F3} dB, closed form {expected:F3} dB, activation {unit.Activation!.Value.SqnrDb:F3} dB");
            Assert.InRange(unit.Output!.Value.SqnrDb, expected - ClosedFormToleranceDb, expected + ClosedFormToleranceDb);
        }
        // C's output is the model's output up to D and E scaling channel 0 by 10 and 0.1f in fp32 (a relative 1e-8),
        // so its activation SQNR is the output SQNR.
        Assert.Equal(profile.Units[2].Output!.Value.SqnrDb, profile.Units[2].Activation!.Value.SqnrDb, 0.01);
        var ranked = profile.Units.OrderBy(u => u.Output!.Value.SqnrDb).Select(u => u.Node).ToArray();
        Assert.Equal(chain.Units[1], ranked[0]);
        Assert.Equal(chain.Units[4], ranked[1]);
        // Round trip of the file format.
        var again = SensitivityProfile.FromJson(profile.ToJson("k"), out string? key);
        Assert.Equal("k", key);
        Assert.Equal(profile.ToJson("k"), again.ToJson("k"));
    }

    private static Graph PreparedGraph(ChainModel chain)
    {
        var model = chain.Load();
        Squash.Compiler.Passes.Pipeline.QuantizationPrep().Run(model.Graph, new Squash.Compiler.Passes.PassContext());
        return model.Graph;
    }

    /// <summary>B (26.6 dB alone) and E (28.2 dB) are within 3 dB of each other; all int8 is 24.3 dB. For sqnr:26 either
    /// fallback suffices (without B 28.0 dB, without E 26.6 dB): the search falls back E, the region's edge, which keeps
    /// one border, rather than B, which would split the region (two borders), though B is the more sensitive.</summary>
    [Fact]
    public void MixedPrecisionFallsBackTheEdgeOfTheRegionAmongEquallySensitiveUnits()
    {
        using var chain = new ChainModel();
        var log = new List<string>();
        var outcome = QuantizationPipeline.Quantize(chain.Load(), chain.ModelPath, chain.Options(PrecisionMode.Auto, "sqnr:26"), log.Add);
        foreach (var line in log) output.WriteLine(line);
        Assert.True(outcome.TargetMet);
        Assert.Equal([chain.Units[4]], outcome.Fallbacks.Select(f => f.Node));
        Assert.Equal(1, outcome.Rewrite.Quantizes + outcome.Rewrite.Dequantizes);
        // The solo noises add up (in units of Δ²/12 with Δ = 2/255, channel 0's share of B and E divided by s²):
        // 1 + 144 x 63/64 + 1 + 1 = 144.75 without E (26.6 dB), plus 100 x 63/64 with E (24.3 dB). Within 0.5 dB: a
        // tensor requantized from a finer grid does not get exactly uniform, independent noise.
        Assert.InRange(outcome.Evaluation.Output.SqnrDb, 26.1, 27.1);
        Assert.InRange(outcome.Profile.AllInt8.SqnrDb, 23.8, 24.8);
        Assert.Equal([NodePrecision.Int8, NodePrecision.Int8, NodePrecision.Int8, NodePrecision.Int8, NodePrecision.Fp32],
            chain.Units.Select(u => outcome.Plan[u]));

        // A stricter target needs B too; the search measures and goes on.
        var strict = QuantizationPipeline.Quantize(chain.Load(), chain.ModelPath, chain.Options(PrecisionMode.Auto, "sqnr:40"));
        Assert.True(strict.TargetMet);
        Assert.Equal([chain.Units[4], chain.Units[1]], strict.Fallbacks.Select(f => f.Node));
        Assert.True(strict.Evaluation.Output.SqnrDb >= 40);
    }

    [Fact]
    public void ExclusionsAndCosineTargetsAreHonoured()
    {
        using var chain = new ChainModel();
        var options = chain.Options(PrecisionMode.Auto, "cos:0.999") with { Exclusions = QuantizationExclusions.Parse(chain.Units[0]) };
        var outcome = QuantizationPipeline.Quantize(chain.Load(), chain.ModelPath, options);
        Assert.True(outcome.TargetMet);
        Assert.True(outcome.Evaluation.Output.Cosine >= 0.999);
        Assert.Equal(NodePrecision.Fp32, outcome.Plan[chain.Units[0]]);
        Assert.DoesNotContain(chain.Units[0], outcome.Fallbacks.Select(f => f.Node));
        Assert.Contains("| `" + chain.Units[0] + "` | MatMul | fp32 | excluded |", QuantizationReportWriter.ToMarkdown(outcome));
    }

    [Fact]
    public void AMissedTargetIsAnErrorNamingTheLayersOrAWarningWhenAskedFor()
    {
        using var chain = new ChainModel();
        var error = Assert.Throws<SquashException>(() =>
            QuantizationPipeline.Quantize(chain.Load(), chain.ModelPath, chain.Options(PrecisionMode.Int8, "sqnr:30")));
        output.WriteLine(error.Message);
        Assert.Equal("SQ1041", error.Code);
        // All int8 measures 24.3 dB; B and E are named first, with their solo numbers.
        Assert.Matches(@"int8 measures SQNR 2[45]\.\d dB, cosine 0\.99", error.Message);
        Assert.Contains($"{chain.Units[1]} (MatMul: alone 26.", error.Message);
        Assert.True(error.Message.IndexOf(chain.Units[1], StringComparison.Ordinal) < error.Message.IndexOf(chain.Units[4], StringComparison.Ordinal));

        var log = new List<string>();
        var outcome = QuantizationPipeline.Quantize(chain.Load(), chain.ModelPath,
            chain.Options(PrecisionMode.Int8, "sqnr:30") with { TargetMissIsWarning = true }, log.Add);
        Assert.False(outcome.TargetMet);
        Assert.Single(log, l => l.StartsWith("warning SQ2010: chain.onnx misses AccuracyTarget sqnr:30", StringComparison.Ordinal));

        // Auto cannot reach 60 dB with any product in int8 (one alone gives at most 48 dB).
        var auto = Assert.Throws<SquashException>(() =>
            QuantizationPipeline.Quantize(chain.Load(), chain.ModelPath, chain.Options(PrecisionMode.Auto, "sqnr:60")));
        output.WriteLine(auto.Message);
        Assert.Equal("SQ1041", auto.Code);
        Assert.Matches(@"needs every layer in fp32; with only MatMul_\d+ in int8 the output measures 4\d\.\d dB", auto.Message);
    }

    [Fact]
    public void ReportsAreByteIdenticalWhateverTheThreadCount()
    {
        using var chain = new ChainModel();
        var reports = new List<(byte[] Json, string Markdown)>();
        foreach (int threads in new[] { 1, 2 })
        {
            var outcome = QuantizationPipeline.Quantize(chain.Load(), chain.ModelPath, chain.Options(PrecisionMode.Auto, "sqnr:26") with { Threads = threads });
            reports.Add((QuantizationReportWriter.ToJson(outcome), QuantizationReportWriter.ToMarkdown(outcome)));
            string dir = Path.Combine(chain.Folder, $"report{threads}");
            QuantizationReportWriter.Write(outcome, dir, "Chain");
            Assert.True(File.Exists(Path.Combine(dir, "Chain.quantization.timing.json")));
        }
        Assert.Equal(reports[0].Json, reports[1].Json);
        Assert.Equal(reports[0].Markdown, reports[1].Markdown);
        Assert.Equal(File.ReadAllBytes(Path.Combine(chain.Folder, "report1", "Chain.quantization.md")),
            File.ReadAllBytes(Path.Combine(chain.Folder, "report2", "Chain.quantization.md")));
    }

    [Fact]
    public void AProfileIsCachedByContentAndACommittedOneIsReadAsItIs()
    {
        using var chain = new ChainModel();
        string cache = Path.Combine(chain.Folder, "obj");
        var log = new List<string>();
        var options = chain.Options(PrecisionMode.Auto, "sqnr:26") with { CacheDirectory = cache };
        QuantizationPipeline.Quantize(chain.Load(), chain.ModelPath, options, log.Add);
        Assert.Single(log, l => l.Contains("measuring the int8 sensitivity", StringComparison.Ordinal));
        string cached = Path.Combine(cache, "chain.sensitivity.json");
        Assert.True(File.Exists(cached));
        log.Clear();
        var again = QuantizationPipeline.Quantize(chain.Load(), chain.ModelPath, options, log.Add);
        Assert.DoesNotContain(log, l => l.Contains("measuring", StringComparison.Ordinal));
        Assert.Equal([chain.Units[4]], again.Fallbacks.Select(f => f.Node));

        // Other settings, another key: measured again.
        log.Clear();
        QuantizationPipeline.Quantize(chain.Load(), chain.ModelPath, options with { Calibration = new CalibrationSettings { Method = CalibrationMethod.Percentile } }, log.Add);
        Assert.Contains(log, l => l.Contains("measuring", StringComparison.Ordinal));

        // A committed profile is used whatever its key; here one that claims E is the only sensitive unit.
        var profile = SensitivityProfile.FromJson(File.ReadAllBytes(cached), out _);
        var edited = new SensitivityProfile(profile.Model, profile.Samples, profile.Calibration, profile.AllInt8,
            [.. profile.Units.Select(u => u with { Output = new OutputAgreement(u.Node == chain.Units[4] ? 10 : 90, 1) })]);
        string committed = Path.Combine(chain.Folder, "chain.sensitivity.json");
        File.WriteAllBytes(committed, edited.ToJson());
        log.Clear();
        var fromCommitted = QuantizationPipeline.Quantize(chain.Load(), chain.ModelPath, options with { SensitivityProfilePath = committed }, log.Add);
        Assert.DoesNotContain(log, l => l.Contains("measuring", StringComparison.Ordinal));
        Assert.Equal(chain.Units[4], fromCommitted.Fallbacks[0].Node);

        // One made for another model is stale: warning SQ2011, measured again.
        File.WriteAllText(committed, System.Text.Encoding.UTF8.GetString(edited.ToJson()).Replace(chain.Units[2], "gone"));
        log.Clear();
        QuantizationPipeline.Quantize(chain.Load(), chain.ModelPath, options with { SensitivityProfilePath = committed }, log.Add);
        Assert.Contains(log, l => l.StartsWith("warning SQ2011:", StringComparison.Ordinal) && l.Contains("gone", StringComparison.Ordinal));

        // Garbage is SQ1040.
        File.WriteAllText(committed, "{}");
        Assert.Equal("SQ1040", Assert.Throws<SquashException>(() =>
            QuantizationPipeline.Quantize(chain.Load(), chain.ModelPath, options with { SensitivityProfilePath = committed })).Code);
    }

    [Fact]
    public void PlainInt8MeasuresNoProfileUnlessAskedOrTheTargetIsMissed()
    {
        using var chain = new ChainModel();
        var log = new List<string>();
        var outcome = QuantizationPipeline.Quantize(chain.Load(), chain.ModelPath, chain.Options(PrecisionMode.Int8, "sqnr:20") with { Sensitivity = false }, log.Add);
        Assert.DoesNotContain(log, l => l.Contains("measuring", StringComparison.Ordinal));
        Assert.Empty(outcome.Profile.Units);
        Assert.Equal(outcome.Evaluation.Output, outcome.Profile.AllInt8);
        Assert.Contains("Not measured for this build", QuantizationReportWriter.ToMarkdown(outcome));
        // A miss measures it, to name the layers.
        var error = Assert.Throws<SquashException>(() =>
            QuantizationPipeline.Quantize(chain.Load(), chain.ModelPath, chain.Options(PrecisionMode.Int8, "sqnr:30") with { Sensitivity = false }));
        Assert.Contains($"{chain.Units[1]} (MatMul: alone 26.", error.Message);
    }

    [Theory]
    [InlineData("sqnr:30", AccuracyMetric.Sqnr, 30)]
    [InlineData("SQNR: 42.5", AccuracyMetric.Sqnr, 42.5)]
    [InlineData("cos:0.999", AccuracyMetric.Cosine, 0.999)]
    [InlineData("cosine:1", AccuracyMetric.Cosine, 1)]
    public void TargetsParse(string text, AccuracyMetric metric, double minimum) =>
        Assert.Equal(new AccuracyTarget(metric, minimum), AccuracyTarget.Parse(text));

    [Theory]
    [InlineData("30")]
    [InlineData("sqnr:")]
    [InlineData("cos:1.5")]
    [InlineData("psnr:30")]
    [InlineData("sqnr:NaN")]
    public void BadTargetsAreSQ1012(string text) => Assert.Equal("SQ1012", Assert.Throws<SquashException>(() => AccuracyTarget.Parse(text)).Code);
}
