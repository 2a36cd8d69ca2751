using System.Globalization;
using System.Text;
using System.Text.Json;
using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Quantization;

/// <summary>
/// The per-model quantization report written next to the generated code: <c>NAME.quantization.json</c> for tools and
/// <c>NAME.quantization.md</c> for people (per-layer sensitivity chart, precision, ranges and scales, borders, size,
/// accuracy on the held-out samples). Both are deterministic: the same model, data and options give the same bytes.
/// Wall-clock times go to a third file, <c>NAME.quantization.timing.json</c>, which is not meant to be committed or
/// compared.
/// </summary>
public static class QuantizationReportWriter
{
    /// <summary>The JSON's <c>format</c> field.</summary>
    public const string Format = "squash-quantization-report";

    /// <summary>Longest bar of the sensitivity chart, in characters.</summary>
    private const int BarWidth = 30;

    /// <summary>One unit's row of the report.</summary>
    private sealed record Row(string Node, Int8UnitKind Kind, string Operators, string Precision, string Reason, long Macs,
        UnitSensitivity? Sensitivity, (float Min, float Max, AffineQuantization Q)? Input, (float Min, float Max, AffineQuantization Q)? Output,
        (float Min, float Max)? WeightScales);

    /// <summary>Writes the three files into <paramref name="directory"/> as <c>NAME.quantization.*</c>, atomically and only
    /// when changed; returns the JSON and Markdown paths.</summary>
    public static (string Json, string Markdown) Write(QuantizationOutcome outcome, string directory, string name)
    {
        Directory.CreateDirectory(directory);
        string json = Path.Combine(directory, name + ".quantization.json");
        string markdown = Path.Combine(directory, name + ".quantization.md");
        var rows = Rows(outcome);
        AtomicFile.WriteIfChanged(json, ToJson(outcome, rows));
        AtomicFile.WriteIfChanged(markdown, Encoding.UTF8.GetBytes(ToMarkdown(outcome, rows)));
        AtomicFile.Write(Path.Combine(directory, name + ".quantization.timing.json"), Timing(outcome));
        return (json, markdown);
    }

    /// <summary>Deletes the three <c>NAME.quantization.*</c> files from <paramref name="directory"/>: a model compiled
    /// without quantization has no report, and one left from an earlier int8 build would describe a class that no longer
    /// exists. The calibration and sensitivity caches stay (they are caches: an int8 build reuses them).</summary>
    public static void Delete(string directory, string name)
    {
        foreach (string suffix in (string[])[".quantization.json", ".quantization.md", ".quantization.timing.json"])
            File.Delete(Path.Combine(directory, name + suffix));
    }

    /// <summary>The JSON report.</summary>
    public static byte[] ToJson(QuantizationOutcome outcome) => ToJson(outcome, Rows(outcome));

    /// <summary>The Markdown report.</summary>
    public static string ToMarkdown(QuantizationOutcome outcome) => ToMarkdown(outcome, Rows(outcome));

    private static List<Row> Rows(QuantizationOutcome outcome)
    {
        var sensitivity = outcome.Profile.Units.ToDictionary(u => u.Node, StringComparer.Ordinal);
        var runs = outcome.Rewrite.Units.ToDictionary(u => u.Node, StringComparer.Ordinal);
        var fallbacks = outcome.Fallbacks.Select(f => f.Node).ToHashSet(StringComparer.Ordinal);
        var exclusions = outcome.Options.Exclusions;
        // A product planned fp16 runs with float16 weights unless its weight had to stay fp32 (range, loss).
        var fp16 = outcome.Rewrite.Fp16Weights.Where(w => w.Fp16).Select(w => w.Node).ToHashSet(StringComparer.Ordinal);
        var rows = new List<Row>();
        var units = Int8Units.Find(outcome.Fp32Graph);
        var composed = QuantizationPlan.ComposedIntoFloatConvolutions(units, outcome.Plan.Precisions);
        foreach (var unit in units)
        {
            string node = unit.Anchor.Name;
            bool int8 = runs.TryGetValue(node, out var r) && r.Int8;
            string reason = int8 ? "int8"
                : fallbacks.Contains(node) ? "fallback"
                : exclusions.PrecisionOf(node, unit.Nodes.Select(n => n.OpType), NodePrecision.Fp32) is not null ? "excluded"
                : outcome.Plan[node] != NodePrecision.Int8 ? (QuantizationPlan.IsFasterInFp32(unit) ? "faster in fp32" : composed.Contains(node) ? "composed into fp32" : "small")
                : "no int8 neighbour";
            string precision = int8 ? "int8" : fp16.Contains(node) ? "fp16" : "fp32";
            rows.Add(new Row(node, unit.Kind, string.Join("+", unit.Nodes.Select(n => n.OpType)), precision, reason,
                SensitivityProfile.Macs(unit), sensitivity.GetValueOrDefault(node), Range(outcome, unit.ActivationInputs[0]),
                unit.Kind == Int8UnitKind.Passthrough ? null : Range(outcome, unit.Output), WeightScales(unit)));
        }
        return rows;
    }

    private static (float, float, AffineQuantization)? Range(QuantizationOutcome outcome, Value v) =>
        outcome.Calibration.Tensors.TryGetValue(v.Name, out var t) && float.IsFinite(t.Min) && float.IsFinite(t.Max)
            ? (t.Min, t.Max, QuantizationParameters.Asymmetric(t.Min, t.Max, QuantizationRange.UInt8))
            : null;

    /// <summary>The smallest and largest per-channel weight scale of a product, in the int8 kernels' weight range.</summary>
    private static (float, float)? WeightScales(Int8Unit unit)
    {
        if (!unit.IsProduct || unit.Anchor.Input(1)?.Constant is not { } w) return null;
        bool depthwise = unit.Kind == Int8UnitKind.Conv && w.Shape[1] == 1 && unit.Anchor.Attributes.TryGetValue("group", out var g) && g.IntValue == w.Shape[0];
        bool transB = unit.Anchor.OpType == "Gemm" && unit.Anchor.Attributes.TryGetValue("transB", out var t) && t.IntValue != 0;
        int axis = unit.Kind == Int8UnitKind.Conv || transB ? 0 : 1;
        var scales = QuantizationParameters.SymmetricPerChannel(w, axis, depthwise ? new QuantizationRange(-127, 127) : new QuantizationRange(-64, 64));
        return (scales.Min(), scales.Max());
    }

    private static byte[] ToJson(QuantizationOutcome o, List<Row> rows)
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteString("format", Format);
            json.WriteNumber("version", 2);
            json.WriteString("model", o.Model);
            json.WriteString("precision", o.Options.Precision.ToString().ToLowerInvariant());
            json.WriteString("fallback", o.Options.Fallback.ToString().ToLowerInvariant());
            if (o.Target is { } target) json.WriteString("target", target.ToString());
            else json.WriteNull("target");
            json.WriteBoolean("targetMet", o.TargetMet);
            json.WriteStartObject("calibration");
            json.WriteString("method", o.Calibration.Settings.Method.ToString());
            json.WriteNumber("samples", o.Samples.Calibration);
            json.WriteNumber("heldOut", o.Samples.HeldOut);
            json.WriteEndObject();
            json.WriteStartObject("accuracy");
            Agreement(json, "heldOut", o.Evaluation.Output);
            Agreement(json, "allInt8", o.Profile.AllInt8);
            json.WriteEndObject();
            json.WriteStartObject("size");
            json.WriteNumber("fp32Bytes", o.WeightBytes.Fp32);
            json.WriteNumber("quantizedBytes", o.WeightBytes.Quantized);
            json.WriteNumber("fp16Bytes", Fp16Bytes(o));
            json.WriteEndObject();
            json.WriteStartObject("borders");
            json.WriteNumber("quantize", o.Rewrite.Quantizes);
            json.WriteNumber("dequantize", o.Rewrite.Dequantizes);
            json.WriteEndObject();
            json.WriteStartArray("units");
            foreach (var r in rows)
            {
                json.WriteStartObject();
                json.WriteString("node", r.Node);
                json.WriteString("kind", r.Kind.ToString());
                json.WriteString("operators", r.Operators);
                json.WriteString("precision", r.Precision);
                json.WriteString("reason", r.Reason);
                json.WriteNumber("macs", r.Macs);
                Number(json, "aloneSqnrDb", r.Sensitivity?.Output?.SqnrDb);
                Number(json, "activationSqnrDb", r.Sensitivity?.Activation?.SqnrDb);
                Quantization(json, "input", r.Input);
                Quantization(json, "output", r.Output);
                if (r.WeightScales is { } ws)
                {
                    json.WriteStartObject("weightScales");
                    json.WriteNumber("min", ws.Min);
                    json.WriteNumber("max", ws.Max);
                    json.WriteEndObject();
                }
                else json.WriteNull("weightScales");
                json.WriteEndObject();
            }
            json.WriteEndArray();
            // The weights of the units planned fp16: rounded, or kept fp32 and why.
            json.WriteStartArray("fp16Weights");
            foreach (var w in o.Rewrite.Fp16Weights)
            {
                json.WriteStartObject();
                json.WriteString("weight", w.Weight);
                json.WriteString("node", w.Node);
                json.WriteNumber("elements", w.Elements);
                json.WriteBoolean("fp16", w.Fp16);
                Number(json, "sqnrDb", double.IsNaN(w.SqnrDb) ? null : w.SqnrDb);
                if (w.KeptFp32Because is { } why) json.WriteString("keptFp32Because", why);
                else json.WriteNull("keptFp32Because");
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteStartArray("fallbacks");
            foreach (var f in o.Fallbacks)
            {
                json.WriteStartObject();
                json.WriteString("node", f.Node);
                json.WriteNumber("borders", f.Borders);
                if (f.Measured is { } m) Agreement(json, "measured", m);
                else json.WriteNull("measured");
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteEndObject();
        }
        stream.WriteByte((byte)'\n');
        return stream.ToArray();
    }

    private static void Agreement(Utf8JsonWriter json, string name, OutputAgreement a)
    {
        json.WriteStartObject(name);
        Number(json, "sqnrDb", a.SqnrDb);
        json.WriteNumber("cosine", Math.Round(a.Cosine, 8));
        json.WriteEndObject();
    }

    /// <summary>A dB value rounded to 4 decimals; 999 for exact (JSON has no infinity); null when not measured.</summary>
    private static void Number(Utf8JsonWriter json, string name, double? db)
    {
        if (db is not { } d) json.WriteNull(name);
        else json.WriteNumber(name, double.IsPositiveInfinity(d) ? SensitivityProfile.ExactDb : Math.Round(d, 4));
    }

    private static void Quantization(Utf8JsonWriter json, string name, (float Min, float Max, AffineQuantization Q)? range)
    {
        if (range is not { } r)
        {
            json.WriteNull(name);
            return;
        }
        json.WriteStartObject(name);
        json.WriteNumber("min", r.Min);
        json.WriteNumber("max", r.Max);
        json.WriteNumber("scale", r.Q.Scale);
        json.WriteNumber("zeroPoint", r.Q.ZeroPoint);
        json.WriteEndObject();
    }

    private static byte[] Timing(QuantizationOutcome o)
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteString("model", o.Model);
            json.WriteStartObject("seconds");
            foreach (var (stage, seconds) in o.Seconds) json.WriteNumber(stage, seconds);
            json.WriteNumber("total", Math.Round(o.Seconds.Values.Sum(), 3));
            json.WriteEndObject();
            json.WriteEndObject();
        }
        stream.WriteByte((byte)'\n');
        return stream.ToArray();
    }

    private static string ToMarkdown(QuantizationOutcome o, List<Row> rows)
    {
        var ci = CultureInfo.InvariantCulture;
        var md = new StringBuilder();
        string Db(double db) => AccuracyTarget.FormatDb(db);
        string Cos(double c) => c.ToString("0.######", ci);
        int int8 = rows.Count(r => r.Precision == "int8");
        int fp16 = rows.Count(r => r.Precision == "fp16");
        md.Append(ci, $"# Quantization report: {o.Model}\n\n");
        md.Append("| | |\n| --- | --- |\n");
        string target = o.Target is { } t ? $" (target {t}: {(o.TargetMet ? "met" : "**missed**")})" : "";
        md.Append(ci, $"| precision | {o.Options.Precision.ToString().ToLowerInvariant()}{target}, falling back to {o.Options.Fallback.ToString().ToLowerInvariant()} |\n");
        md.Append(ci, $"| calibration | {o.Calibration.Settings.Method}, {o.Samples.Calibration} samples; accuracy measured on {o.Samples.HeldOut} held-out samples |\n");
        md.Append(ci, $"| accuracy against fp32 | SQNR {Db(o.Evaluation.Output.SqnrDb)}, cosine {Cos(o.Evaluation.Output.Cosine)} (every layer int8: {Db(o.Profile.AllInt8.SqnrDb)}, cosine {Cos(o.Profile.AllInt8.Cosine)}) |\n");
        var reasons = rows.Where(r => r.Precision != "int8").GroupBy(r => r.Reason).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Count()} {g.Key}");
        md.Append(ci, $"| layers | {int8} int8, {fp16} fp16, {rows.Count - int8 - fp16} fp32 (not int8: {string.Join(", ", reasons)}) |\n");
        md.Append(ci, $"| borders | {o.Rewrite.Quantizes} QuantizeLinear, {o.Rewrite.Dequantizes} DequantizeLinear |\n");
        md.Append(ci, $"| constants | {o.WeightBytes.Fp32:N0} bytes fp32, {o.WeightBytes.Quantized:N0} bytes quantized ({(double)o.WeightBytes.Fp32 / Math.Max(1, o.WeightBytes.Quantized):0.0}x smaller), of which {Fp16Bytes(o):N0} bytes fp16 weights |\n");
        md.Append("| compile time | in the `.quantization.timing.json` file beside this page (kept out of it, so that this page is byte-identical from build to build) |\n\n");

        md.Append("## Sensitivity\n\n");
        var measured = rows.Where(r => r.Sensitivity?.Output is { } a && double.IsFinite(a.SqnrDb)).ToList();
        double top = measured.Count > 0 ? measured.Max(r => r.Sensitivity!.Output!.Value.SqnrDb) : 0;
        double bottom = measured.Count > 0 ? measured.Min(r => r.Sensitivity!.Output!.Value.SqnrDb) : 0;
        if (o.Profile.Units.Count == 0)
        {
            // Nothing to chart: say how to get one instead of an empty table.
            md.Append("Not measured for this build: plain int8 needs no profile unless it misses its target. Commit one next to the model ");
            md.Append("(`squash profile MODEL --calibration DIR --output FILE`, or `dotnet build -t:Squash_Profile`) and name it in the ");
            md.Append("`SensitivityProfile` metadata to chart each layer's sensitivity here.\n");
        }
        else
        {
            md.Append("Model output SQNR against fp32 when each layer alone runs in int8 (the sensitivity profile). ");
            md.Append(ci, $"The bar grows as the SQNR falls, from empty at {Db(top)} (the least sensitive layer) to full at {Db(bottom)} (the most sensitive). ");
            md.Append("Activation: the layer's own output tensor against fp32, in that run. ");
            md.Append("Layers that only move bytes, sum or look up run in int8 only between other int8 layers and have no solo number.\n\n");
            md.Append("| layer | operators | precision | alone | activation | sensitivity |\n| --- | --- | --- | ---: | ---: | --- |\n");
            foreach (var r in rows.Where(r => r.Sensitivity?.Output is not null))
            {
                double db = r.Sensitivity!.Output!.Value.SqnrDb;
                int bar = !double.IsFinite(db) || top <= bottom ? 0 : (int)Math.Round((top - db) / (top - bottom) * BarWidth);
                string activation = r.Sensitivity.Activation is { } a ? Db(a.SqnrDb) : "";
                md.Append(ci, $"| `{r.Node}` | {r.Operators} | {r.Precision} | {Db(db)} | {activation} | `{new string('#', bar)}{new string('.', BarWidth - bar)}` |\n");
            }
        }
        md.Append('\n');

        if (o.Fallbacks.Count > 0)
        {
            md.Append(ci, $"## Fallbacks to {o.Options.Fallback.ToString().ToLowerInvariant()}, in order\n\n| layer | borders after | measured after |\n| --- | ---: | --- |\n");
            foreach (var f in o.Fallbacks)
                md.Append(ci, $"| `{f.Node}` | {f.Borders} | {(f.Measured is { } m ? $"{Db(m.SqnrDb)}, cosine {Cos(m.Cosine)}" : "(predicted short)")} |\n");
            md.Append('\n');
        }

        if (o.Rewrite.Fp16Weights.Any(w => !w.Fp16))
        {
            md.Append("## fp16 weights kept in fp32\n\n| weight | layer | why |\n| --- | --- | --- |\n");
            foreach (var w in o.Rewrite.Fp16Weights.Where(w => !w.Fp16))
                md.Append(ci, $"| `{w.Weight}` | `{w.Node}` | {w.KeptFp32Because} |\n");
            md.Append('\n');
        }

        md.Append("## Layers\n\n");
        md.Append("Ranges are calibrated [min, max]; uint8 scale and zero point as the int8 kernels use them; weight scales per output channel (smallest..largest).\n\n");
        md.Append("| layer | operators | precision | why | MACs | input range | input scale, zp | output range | output scale, zp | weight scales |\n");
        md.Append("| --- | --- | --- | --- | ---: | --- | --- | --- | --- | --- |\n");
        foreach (var r in rows)
        {
            md.Append(ci, $"| `{r.Node}` | {r.Operators} | {r.Precision} | {r.Reason} | {(r.Macs > 0 ? r.Macs.ToString("N0", ci) : "")} | ");
            md.Append(ci, $"{RangeText(r.Input)} | {ScaleText(r.Input)} | {RangeText(r.Output)} | {ScaleText(r.Output)} | ");
            md.Append(r.WeightScales is { } ws ? string.Create(ci, $"{ws.Min:G4}..{ws.Max:G4}") : "");
            md.Append(" |\n");
        }
        return md.ToString();
    }

    /// <summary>Bytes of the weights stored as float16 (two a value).</summary>
    private static long Fp16Bytes(QuantizationOutcome o) => o.Rewrite.Fp16Weights.Where(w => w.Fp16).Sum(w => w.Elements * 2);

    private static string RangeText((float Min, float Max, AffineQuantization Q)? r) =>
        r is { } v ? string.Create(CultureInfo.InvariantCulture, $"[{v.Min:G4}, {v.Max:G4}]") : "";

    private static string ScaleText((float Min, float Max, AffineQuantization Q)? r) =>
        r is { } v ? string.Create(CultureInfo.InvariantCulture, $"{v.Q.Scale:G4}, {v.Q.ZeroPoint}") : "";
}
