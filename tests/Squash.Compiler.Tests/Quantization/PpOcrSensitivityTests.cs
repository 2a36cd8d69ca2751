using Squash.Compiler.Onnx;
using Squash.Compiler.Quantization;
using Squash.Compiler.Tests.Models;
using Squash.Compiler.Tests.Support;
using Squash.Runtime.Ir;
using Xunit.Abstractions;

namespace Squash.Compiler.Tests.Quantization;

/// <summary>The sensitivity profile and mixed precision on PP-OCR cls (calibrated on calib/cls, every 5th sample held
/// out).</summary>
public sealed class PpOcrSensitivityTests(ITestOutputHelper output)
{
    private static Model Cls()
    {
        var model = OnnxLoader.Load(PpOcr.ModelPath(PpOcr.Cls));
        ModelPreparation.PinInputShapes(model, new Dictionary<string, int[]> { [model.Graph.Inputs[0].Name] = [1, 3, 48, 192] });
        ModelPreparation.Optimize(model);
        return model;
    }

    /// <summary>One profile, then a target 6 dB above what all-int8 measures: the search falls back units and measures
    /// the target met; the profile covers every product, and the ones fallen back are among the most sensitive.</summary>
    [Fact]
    public void ClsProfileAndMixedPrecision()
    {
        using var folder = new TempFolder();
        var options = new QuantizationOptions
        {
            CalibrationFolder = TestPaths.Asset("data", "ppocr", "calib", "cls"),
            Precision = PrecisionMode.Int8,
            CacheDirectory = folder.Path,
            Threads = 2,
        };
        var log = new List<string>();
        var int8 = QuantizationPipeline.Quantize(Cls(), PpOcr.ModelPath(PpOcr.Cls), options, log.Add);
        var profile = int8.Profile;
        Assert.Equal(6, profile.Samples);
        var products = profile.Units.Where(u => u.Kind is Int8UnitKind.Conv or Int8UnitKind.MatMul).ToList();
        Assert.True(products.Count >= 40, $"{products.Count} products");
        // Every product runs in int8 alone and is measured; quantizing one layer never beats the model with none.
        Assert.All(products, u => Assert.True(u.Output is { SqnrDb: > 0 } && u.Activation is not null, u.Node));
        // Quantizing one layer adds less noise than quantizing all of them (noise powers add).
        Assert.All(products, u => Assert.True(u.Output!.Value.SqnrDb >= profile.AllInt8.SqnrDb - 0.5, u.Node));
        Assert.Equal(int8.Evaluation.Output, profile.AllInt8);

        var target = new AccuracyTarget(AccuracyMetric.Sqnr, Math.Round(profile.AllInt8.SqnrDb + 6));
        log.Clear();
        var auto = QuantizationPipeline.Quantize(Cls(), PpOcr.ModelPath(PpOcr.Cls), options with { Precision = PrecisionMode.Auto, Target = target }, log.Add);
        foreach (var line in log) output.WriteLine(line);
        Assert.DoesNotContain(log, l => l.Contains("measuring", StringComparison.Ordinal));
        Assert.True(auto.TargetMet);
        Assert.True(auto.Evaluation.Output.SqnrDb >= target.Minimum);
        Assert.NotEmpty(auto.Fallbacks);
        Assert.NotNull(auto.Fallbacks[^1].Measured);
        // The first fallback is within 3 dB of the int8 product with the most noise per multiply-add (the search's
        // candidate window; the products too small for int8 are fp32 from the start).
        static double Density(UnitSensitivity u) => u.Output!.Value.RelativeNoise / Math.Max(1, u.Macs);
        double densest = products.Where(u => int8.Plan[u.Node] == NodePrecision.Int8).Max(Density);
        Assert.True(Density(profile.Units.First(u => u.Node == auto.Fallbacks[0].Node)) >= densest / 2.01);
        output.WriteLine(QuantizationReportWriter.ToMarkdown(auto));
    }

    private sealed class TempFolder : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("squash-cls-").FullName;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
