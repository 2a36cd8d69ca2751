using Squash.Compiler.Quantization;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;
using Xunit.Abstractions;

namespace Squash.Compiler.Tests.Models;

/// <summary>
/// Int8 post-training quantization of the PP-OCR models against their fp32 form (issue 4): calibrated on
/// testassets/data/ppocr/calib only, measured on eval.
/// </summary>
public sealed class PpOcrInt8Tests(ITestOutputHelper output)
{
    /// <summary>The model optimized and pinned to the data's shape, then quantized to int8.</summary>
    internal static (Model Fp32, Model Int8, Int8QuantizationReport Report) Prepare(string modelFile, string task, int[] shape,
        QuantizationExclusions? exclusions = null)
    {
        var (fp32, int8, outcome) = Quantize(modelFile, task, shape, exclusions);
        return (fp32, int8, outcome.Rewrite);
    }

    /// <summary>As <see cref="Prepare"/>, with the units that stay out of int8 in <paramref name="fallback"/> (fp32 or
    /// fp16; null for the default), returning all the pipeline says.</summary>
    internal static (Model Fp32, Model Int8, QuantizationOutcome Outcome) Quantize(string modelFile, string task, int[] shape,
        QuantizationExclusions? exclusions = null, string? fallback = null)
    {
        Model Load()
        {
            var m = Squash.Compiler.Onnx.OnnxLoader.Load(PpOcr.ModelPath(modelFile));
            ModelPreparation.PinInputShapes(m, new Dictionary<string, int[]> { [m.Graph.Inputs[0].Name] = shape });
            ModelPreparation.Optimize(m);
            return m;
        }
        var fp32 = Load();
        var int8 = Load();
        // The build's pipeline with the build's defaults (gamma migration, every 5th sample held out to measure on).
        string folder = TestPaths.Asset("data", "ppocr", "calib", task);
        var options = QuantizationOptions.FromText("int8", folder, fallback: fallback) with { Exclusions = exclusions ?? QuantizationExclusions.None };
        var outcome = ModelPreparation.ApplyPrecision(int8, "int8", calibrationFolder: folder, int8: options, modelPath: PpOcr.ModelPath(modelFile))!;
        return (fp32, int8, outcome);
    }

    /// <summary>
    /// Det keeps the first half of its first stage in fp32 (the five convolutions after the stem, at 1/2 resolution and
    /// the first at 1/4): with every unit in int8 the mask IoU against fp32 was 0.78-0.94 per image (its squeeze-and-
    /// excitation gates amplify the first stage's rounding: a gate flips between 0.48 and 1.0 on one eval image). Chosen on
    /// the calibration images, with a margin: IoU >= 0.98 on all six (0.981-0.989; Conv.1-3 alone 0.954, every unit
    /// 0.898); on eval 0.955-0.986. The whole first stage (Conv.1-10, used until 2026-11-26) gives 0.968-0.988 on eval but
    /// costs det int8 5 % of its speed at 640x640 (0.505 -> 0.483 of ONNX Runtime fp32). Percentile or MSE calibration
    /// with every unit int8 gave 0.80-0.96.
    /// </summary>
    internal const string DetExclusions = "p2o.Conv.1;p2o.Conv.2;p2o.Conv.3;p2o.Conv.4;p2o.Conv.5";

    /// <summary>
    /// Rec int8 (every unit) reads fp32's exact text on 51 of 64 eval lines with bias correction (49 without), short of
    /// the 98 %: most differences are a leading or trailing space that fp32 reads and the ground truth lacks,
    /// the rest a space between words, so int8's CER against the ground truth is lower than fp32's (1.33 % vs 2.36 %). The space decisions at the
    /// line ends are borderline in fp32, and no exclusion tried moved them enough (the head MatMul, every MatMul, either
    /// third of the convolutions: 50-54 of 64; Percentile and MSE calibration: 53 of 64). This bound guards against
    /// regressions at the measured level; the CER target holds.
    /// </summary>
    private const double MinRecAgreement = 0.75;

    [Fact]
    public void ClsInt8GivesFp32sLabelOnEverySample()
    {
        var (fp32, int8, report) = Prepare(PpOcr.Cls, "cls", [1, 3, 48, 192]);
        output.WriteLine($"{report.Int8Count} of {report.Units.Count} units int8; {report.Quantizes} Q, {report.Dequantizes} DQ");
        var reference = ExecutionPlan.Create(fp32.Graph);
        var quantized = ExecutionPlan.Create(int8.Graph);
        string input = fp32.Graph.Inputs[0].Name, outputName = fp32.Graph.Outputs[0].Name;
        var failures = new List<string>();
        double worst = 0;
        foreach (var sample in PpOcr.Samples("eval", "cls"))
        {
            var inputs = new Dictionary<string, Tensor> { [input] = PpOcr.Load(sample) };
            var want = reference.Run(inputs)[outputName].Clone();
            var got = quantized.Run(inputs)[outputName];
            worst = Math.Max(worst, Metrics.MaxAbsError(want, got));
            if (ArgMax(want) != ArgMax(got)) failures.Add($"{Path.GetFileName(sample)}: int8 {Format(got)}, fp32 {Format(want)}");
        }
        output.WriteLine($"max |int8 - fp32| probability {worst:F4}");
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public void RecInt8ReadsTheSameTextAsFp32()
    {
        var (fp32, int8, report) = Prepare(PpOcr.Rec, "rec", [1, 3, 48, 320]);
        output.WriteLine($"{report.Int8Count} of {report.Units.Count} units int8; {report.Quantizes} Q, {report.Dequantizes} DQ");
        var (same, lines, fp32Cer, int8Cer) = ReadRec(fp32, int8);
        Assert.True(same >= MinRecAgreement * lines, $"int8 reads fp32's text on {same} of {lines} lines");
        Assert.True(int8Cer <= fp32Cer + 0.5, $"int8 CER {int8Cer:F2} % vs fp32 {fp32Cer:F2} %");
    }

    /// <summary>
    /// The accuracy-first configuration of rec (issue 4's 98 % of lines): <c>Precision="auto"</c> with MSE calibration
    /// and <c>AccuracyTarget="sqnr:28"</c> falls back the products with the most noise per multiply-add until the 6
    /// held-out calibration lines meet 28 dB. Measured: 15 of 123 units in int8 holding 60 % of the multiply-adds (the
    /// large pointwise convolutions), 32.5 dB held out, fp32's text on all 64 eval lines (bar: 63, 98 %), CER within 0.5
    /// points of fp32's. Bounds: the bar, and at least half the multiply-adds in int8 (ranking by noise alone kept 13
    /// cheap units and ran at fp32's speed); docs/quantization.md, "The search".
    /// </summary>
    [Fact]
    public void RecAutoMeetsTheLineAgreementBar()
    {
        Model Load()
        {
            var m = Squash.Compiler.Onnx.OnnxLoader.Load(PpOcr.ModelPath(PpOcr.Rec));
            ModelPreparation.PinInputShapes(m, new Dictionary<string, int[]> { [m.Graph.Inputs[0].Name] = [1, 3, 48, 320] });
            ModelPreparation.Optimize(m);
            return m;
        }
        var fp32 = Load();
        var auto = Load();
        string folder = TestPaths.Asset("data", "ppocr", "calib", "rec");
        var options = QuantizationOptions.FromText("auto", folder, "mse", target: "sqnr:28");
        var outcome = ModelPreparation.ApplyPrecision(auto, "auto", calibrationFolder: folder, int8: options, modelPath: PpOcr.ModelPath(PpOcr.Rec))!;
        long macs = outcome.Profile.Units.Sum(u => u.Macs), int8Macs = outcome.Profile.Units.Where(u => outcome.Plan[u.Node] == NodePrecision.Int8).Sum(u => u.Macs);
        output.WriteLine($"auto: {outcome.Rewrite.Int8Count} of {outcome.Rewrite.Units.Count} units int8 ({100.0 * int8Macs / macs:F0} % of the multiply-adds); held-out {outcome.Evaluation.Output.SqnrDb:F1} dB");
        var (same, lines, fp32Cer, autoCer) = ReadRec(fp32, auto);
        Assert.True(outcome.TargetMet);
        Assert.True(int8Macs >= macs / 2, $"{int8Macs} of {macs} multiply-adds in int8");
        Assert.True(same >= 0.98 * lines, $"auto reads fp32's text on {same} of {lines} lines");
        Assert.True(autoCer <= fp32Cer + 0.5, $"auto CER {autoCer:F2} % vs fp32 {fp32Cer:F2} %");
    }

    /// <summary>Both models on the 64 eval lines: lines read as fp32 reads them, and each one's character error rate
    /// against the ground truth (percent); differences are written out.</summary>
    private (int Same, int Lines, double Fp32Cer, double OtherCer) ReadRec(Model fp32, Model other)
    {
        var reference = ExecutionPlan.Create(fp32.Graph);
        var quantized = ExecutionPlan.Create(other.Graph);
        string input = fp32.Graph.Inputs[0].Name, outputName = fp32.Graph.Outputs[0].Name;
        var labels = PpOcr.Labels("eval", "rec");
        int lines = 0, same = 0;
        long truthChars = 0, fp32Edits = 0, otherEdits = 0;
        var differences = new List<string>();
        foreach (var sample in PpOcr.Samples("eval", "rec"))
        {
            var inputs = new Dictionary<string, Tensor> { [input] = PpOcr.Load(sample) };
            string want = PpOcr.DecodeCtc(reference.Run(inputs)[outputName]);
            string got = PpOcr.DecodeCtc(quantized.Run(inputs)[outputName]);
            string truth = labels[Path.GetFileNameWithoutExtension(sample)];
            lines++;
            if (want == got) same++;
            else differences.Add($"{Path.GetFileName(sample)}: quantized '{got}', fp32 '{want}'");
            truthChars += truth.Length;
            fp32Edits += EditDistance(want, truth);
            otherEdits += EditDistance(got, truth);
        }
        double fp32Cer = 100.0 * fp32Edits / truthChars, otherCer = 100.0 * otherEdits / truthChars;
        output.WriteLine($"same text {same}/{lines}; CER fp32 {fp32Cer:F2} %, quantized {otherCer:F2} %");
        foreach (var d in differences) output.WriteLine(d);
        return (same, lines, fp32Cer, otherCer);
    }

    [Fact]
    public void DetInt8MaskMatchesFp32()
    {
        var (fp32, int8, report) = Prepare(PpOcr.Det, "det", [1, 3, 480, 480], QuantizationExclusions.Parse(DetExclusions));
        output.WriteLine($"{report.Int8Count} of {report.Units.Count} units int8; {report.Quantizes} Q, {report.Dequantizes} DQ");
        var reference = ExecutionPlan.Create(fp32.Graph);
        var quantized = ExecutionPlan.Create(int8.Graph);
        string input = fp32.Graph.Inputs[0].Name, outputName = fp32.Graph.Outputs[0].Name;
        var failures = new List<string>();
        foreach (var sample in PpOcr.Samples("eval", "det"))
        {
            var inputs = new Dictionary<string, Tensor> { [input] = PpOcr.Load(sample) };
            var want = reference.Run(inputs)[outputName].Clone();
            var got = quantized.Run(inputs)[outputName];
            double iou = MaskIoU(want, got, 0.3f);
            output.WriteLine($"{Path.GetFileName(sample)}: IoU {iou:F4}");
            if (iou < 0.95) failures.Add($"{Path.GetFileName(sample)}: IoU {iou:F4}");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    /// <summary>Intersection over union of the masks probability &gt; <paramref name="threshold"/>.</summary>
    internal static double MaskIoU(Tensor a, Tensor b, float threshold)
    {
        var x = a.AsSpan<float>();
        var y = b.AsSpan<float>();
        long both = 0, either = 0;
        for (int i = 0; i < x.Length; i++)
        {
            bool p = x[i] > threshold, q = y[i] > threshold;
            if (p && q) both++;
            if (p || q) either++;
        }
        return either == 0 ? 1 : (double)both / either;
    }

    /// <summary>Levenshtein distance over UTF-16 code units (the labels are BMP characters).</summary>
    internal static int EditDistance(string a, string b)
    {
        var row = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) row[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            int diagonal = row[0];
            row[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int above = row[j];
                row[j] = Math.Min(Math.Min(row[j] + 1, row[j - 1] + 1), diagonal + (a[i - 1] == b[j - 1] ? 0 : 1));
                diagonal = above;
            }
        }
        return row[b.Length];
    }

    private static int ArgMax(Tensor t)
    {
        var s = t.AsSpan<float>();
        int best = 0;
        for (int i = 1; i < s.Length; i++) if (s[i] > s[best]) best = i;
        return best;
    }

    private static string Format(Tensor t) => string.Join(", ", t.AsSpan<float>().ToArray().Select(v => v.ToString("F3")));
}
