using System.Globalization;
using System.Text.Json;
using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Quantization;

/// <summary>How much quantizing one unit alone costs.</summary>
/// <param name="Node">The unit's name (its first node, after the fp32 passes).</param>
/// <param name="Kind">What it becomes in int8.</param>
/// <param name="Operators">The operator types of its nodes, in order (a Conv and its fused Relu: <c>Conv, Relu</c>).</param>
/// <param name="Macs">Multiply-adds per run for a product, 0 for other units.</param>
/// <param name="Output">The model's outputs against fp32 when only this unit is int8 (plan.AllFp32().With(unit, Int8));
/// null when the unit does not run in int8 alone (a unit that only moves bytes, sums or looks up runs in int8 only
/// between other int8 units).</param>
/// <param name="Activation">The unit's own output tensor against its fp32 value, in that same run; null as above.</param>
public sealed record UnitSensitivity(string Node, Int8UnitKind Kind, IReadOnlyList<string> Operators, long Macs,
    OutputAgreement? Output, OutputAgreement? Activation);

/// <summary>
/// Per-unit int8 sensitivity of a model: for every unit that can run in int8, the whole model's output SQNR and cosine
/// against fp32 when that unit alone is quantized, and the unit's own activation SQNR. Measured on the held-out
/// calibration samples, with the rewrite and the runtime operators the generated code uses. Written as JSON (schema in
/// docs/quantization.md) to be committed next to the model (<c>SensitivityProfile</c> metadata), or cached by the build.
/// </summary>
public sealed class SensitivityProfile
{
    /// <summary>The <c>format</c> field.</summary>
    public const string Format = "squash-sensitivity";

    /// <summary>The <c>version</c> field.</summary>
    public const int FormatVersion = 1;

    /// <summary>Creates a profile.</summary>
    public SensitivityProfile(string model, int samples, CalibrationSettings calibration, OutputAgreement allInt8, IReadOnlyList<UnitSensitivity> units)
    {
        Model = model;
        Samples = samples;
        Calibration = calibration;
        AllInt8 = allInt8;
        Units = units;
    }

    /// <summary>The model's file name.</summary>
    public string Model { get; }

    /// <summary>Number of samples measured on.</summary>
    public int Samples { get; }

    /// <summary>The calibration settings of the ranges used.</summary>
    public CalibrationSettings Calibration { get; }

    /// <summary>The default plan (every unit int8 but the small products) against fp32: what quantizing all costs.</summary>
    public OutputAgreement AllInt8 { get; }

    /// <summary>Every unit, in graph order.</summary>
    public IReadOnlyList<UnitSensitivity> Units { get; }

    /// <summary>Measures every unit of <paramref name="evaluator"/>'s graph, one run of the samples per unit that runs in
    /// int8 alone.</summary>
    /// <param name="evaluator">The graph, its calibration and the samples.</param>
    /// <param name="model">The model's file name, recorded.</param>
    /// <param name="calibration">The calibration settings, recorded.</param>
    /// <param name="progress">Called after each unit (done, total).</param>
    internal static SensitivityProfile Compute(Int8Evaluator evaluator, string model, CalibrationSettings calibration, Action<int, int>? progress = null)
    {
        var units = Int8Units.Find(evaluator.Graph);
        var all = evaluator.DefaultPlan();
        var none = all.AllFp32();
        var results = new List<UnitSensitivity>(units.Count);
        foreach (var unit in units)
        {
            var solo = none.With(unit.Anchor.Name, NodePrecision.Int8);
            OutputAgreement? output = null, activation = null;
            // Units that would not run in int8 alone are not run: their result is fp32's.
            if (evaluator.Rewrite(solo).Report.Units.Any(u => u.Node == unit.Anchor.Name && u.Int8))
            {
                var evaluation = evaluator.Evaluate(solo, unit.Output.Name);
                output = evaluation.Output;
                activation = evaluation.Probe;
            }
            results.Add(new UnitSensitivity(unit.Anchor.Name, unit.Kind, [.. unit.Nodes.Select(n => n.OpType)], Macs(unit), output, activation));
            progress?.Invoke(results.Count, units.Count);
        }
        return new SensitivityProfile(model, evaluator.SampleCount, calibration, evaluator.Evaluate(all).Output, results);
    }

    /// <summary>Multiply-adds of a product per run (0 for other units).</summary>
    internal static long Macs(Int8Unit unit)
    {
        if (!unit.IsProduct || unit.Anchor.Outputs[0].Shape is not { } output || unit.Anchor.Inputs[1]?.Shape is not { } w) return 0;
        bool transB = unit.Anchor.OpType == "Gemm" && unit.Anchor.Attributes.TryGetValue("transB", out var t) && t.IntValue != 0;
        long depth = unit.Kind == Int8UnitKind.Conv ? Shapes.Product(w, 1, w.Length) : w[transB ? 1 : 0];
        return Shapes.ElementCount(output) * depth;
    }

    /// <summary>The profile as indented UTF-8 JSON (deterministic: fixed order, numbers rounded to 4 decimals, no
    /// timestamps); <paramref name="cacheKey"/>, when given, is recorded.</summary>
    public byte[] ToJson(string? cacheKey = null)
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteString("format", Format);
            json.WriteNumber("version", FormatVersion);
            if (cacheKey is not null) json.WriteString("key", cacheKey);
            json.WriteString("model", Model);
            json.WriteNumber("samples", Samples);
            json.WriteString("calibration", Calibration.Method.ToString());
            WriteAgreement(json, "allInt8", AllInt8);
            json.WriteStartArray("units");
            foreach (var u in Units)
            {
                json.WriteStartObject();
                json.WriteString("node", u.Node);
                json.WriteString("kind", u.Kind.ToString());
                json.WriteString("operators", string.Join(",", u.Operators));
                json.WriteNumber("macs", u.Macs);
                WriteAgreement(json, "output", u.Output);
                if (u.Activation is { } a) json.WriteNumber("activationSqnrDb", Round(a.SqnrDb) ?? 999);
                else json.WriteNull("activationSqnrDb");
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteEndObject();
        }
        stream.WriteByte((byte)'\n');
        return stream.ToArray();
    }

    /// <summary>A SQNR without noise is written as 999 dB (JSON has no infinity).</summary>
    internal const double ExactDb = 999;

    private static void WriteAgreement(Utf8JsonWriter json, string name, OutputAgreement? agreement)
    {
        if (agreement is not { } a)
        {
            json.WriteNull(name);
            return;
        }
        json.WriteStartObject(name);
        json.WriteNumber("sqnrDb", Round(a.SqnrDb) ?? ExactDb);
        json.WriteNumber("cosine", Math.Round(a.Cosine, 8));
        json.WriteEndObject();
    }

    private static double? Round(double db) => double.IsPositiveInfinity(db) || db >= ExactDb ? null : Math.Round(db, 4);

    private static OutputAgreement? ReadAgreement(JsonElement e) =>
        e.ValueKind == JsonValueKind.Null ? null : new OutputAgreement(ReadDb(e.GetProperty("sqnrDb")), e.GetProperty("cosine").GetDouble());

    private static double ReadDb(JsonElement e) => e.GetDouble() is var db && db >= ExactDb ? double.PositiveInfinity : db;

    /// <summary>Reads what <see cref="ToJson"/> wrote.</summary>
    /// <exception cref="FormatException">Not such JSON, or another version.</exception>
    public static SensitivityProfile FromJson(ReadOnlySpan<byte> utf8, out string? cacheKey)
    {
        try
        {
            var reader = new Utf8JsonReader(utf8);
            using var document = JsonDocument.ParseValue(ref reader);
            var root = document.RootElement;
            if (root.GetProperty("format").GetString() != Format || root.GetProperty("version").GetInt32() != FormatVersion)
                throw new FormatException($"Not a sensitivity profile of version {FormatVersion} (\"format\": \"{Format}\").");
            cacheKey = root.TryGetProperty("key", out var key) ? key.GetString() : null;
            var units = new List<UnitSensitivity>();
            foreach (var u in root.GetProperty("units").EnumerateArray())
            {
                var activation = u.GetProperty("activationSqnrDb");
                units.Add(new UnitSensitivity(u.GetProperty("node").GetString()!, Enum.Parse<Int8UnitKind>(u.GetProperty("kind").GetString()!),
                    u.GetProperty("operators").GetString()!.Split(','), u.GetProperty("macs").GetInt64(), ReadAgreement(u.GetProperty("output")),
                    activation.ValueKind == JsonValueKind.Null ? null : new OutputAgreement(ReadDb(activation), double.NaN)));
            }
            return new SensitivityProfile(root.GetProperty("model").GetString()!, root.GetProperty("samples").GetInt32(),
                new CalibrationSettings { Method = Enum.Parse<CalibrationMethod>(root.GetProperty("calibration").GetString()!) },
                ReadAgreement(root.GetProperty("allInt8")) ?? OutputAgreement.Exact, units);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or ArgumentException)
        {
            throw new FormatException($"Not a valid sensitivity profile: {e.Message}", e);
        }
    }

    /// <summary>Reads a profile file (a committed one, or the build's cache).</summary>
    /// <exception cref="SquashException">The file cannot be read or is not a profile (SQ1040).</exception>
    public static SensitivityProfile Read(string path, out string? cacheKey)
    {
        try
        {
            return FromJson(File.ReadAllBytes(path), out cacheKey);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            throw new SquashException(ErrorCodes.SensitivityProfile,
                $"The sensitivity profile '{path}' cannot be used: {e.Message.TrimEnd('.')}. Write it again with 'squash profile' or remove the SensitivityProfile metadata.", inner: e);
        }
    }

    /// <summary>The units of <paramref name="graph"/> this profile has no entry for, and its entries that name no unit of
    /// the graph (a profile made for another version of the model, or other input shapes).</summary>
    internal (List<string> Missing, List<string> Extra) Compare(Graph graph)
    {
        var names = Int8Units.Find(graph).Select(u => u.Anchor.Name).ToList();
        var mine = Units.Select(u => u.Node).ToHashSet(StringComparer.Ordinal);
        var theirs = names.ToHashSet(StringComparer.Ordinal);
        return ([.. names.Where(n => !mine.Contains(n))], [.. Units.Select(u => u.Node).Where(n => !theirs.Contains(n))]);
    }

    /// <summary>The measured SQNR of a unit as text, for messages.</summary>
    internal static string Describe(UnitSensitivity u) => string.Create(CultureInfo.InvariantCulture,
        $"{u.Node} ({string.Join("+", u.Operators)}: alone {(u.Output is { } o ? AccuracyTarget.FormatDb(o.SqnrDb) : "fp32")})");
}
