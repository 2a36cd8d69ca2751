using System.Text.Json;

namespace Squash.Compiler.Quantization;

/// <summary>
/// The ranges calibration chose, by value name, with the settings and the number of samples that produced them.
/// Its JSON form (<see cref="ToJson"/>) is deterministic: fixed property order, tensors in ordinal order of name,
/// floats in their shortest round-trip form, no culture.
/// </summary>
public sealed class CalibrationResult
{
    private const string Format = "squash-calibration";
    private const int FormatVersion = 2;

    /// <summary>Creates a result.</summary>
    /// <param name="settings">The settings calibration ran with.</param>
    /// <param name="sampleCount">Samples observed.</param>
    /// <param name="tensors">The ranges, by value name.</param>
    /// <param name="inputMeans">The means of what each product reads, per weight position, by node name (for bias
    /// correction; none when it is off).</param>
    public CalibrationResult(CalibrationSettings settings, int sampleCount,
        IEnumerable<KeyValuePair<string, TensorCalibration>> tensors, IEnumerable<KeyValuePair<string, float[]>>? inputMeans = null)
    {
        Settings = settings;
        SampleCount = sampleCount;
        var sorted = new SortedDictionary<string, TensorCalibration>(StringComparer.Ordinal);
        foreach (var (name, tensor) in tensors) sorted.Add(name, tensor);
        Tensors = sorted;
        var means = new SortedDictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var (name, m) in inputMeans ?? []) means.Add(name, m);
        InputMeans = means;
    }

    /// <summary>The settings calibration ran with.</summary>
    public CalibrationSettings Settings { get; }

    /// <summary>Samples observed.</summary>
    public int SampleCount { get; }

    /// <summary>What calibration found for each observed float value (graph inputs and node outputs), by value name,
    /// in ordinal order.</summary>
    public IReadOnlyDictionary<string, TensorCalibration> Tensors { get; }

    /// <summary>For bias correction, the mean of what each quantizable Conv, MatMul and Gemm reads per weight position
    /// (input channel and tap, or reduction index), by node name, in ordinal order; empty when
    /// <see cref="CalibrationSettings.BiasCorrection"/> is off.</summary>
    public IReadOnlyDictionary<string, float[]> InputMeans { get; }

    /// <summary>The result as indented UTF-8 JSON; <paramref name="cacheKey"/>, when given, is recorded with it.</summary>
    public byte[] ToJson(string? cacheKey = null)
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteString("format", Format);
            json.WriteNumber("version", FormatVersion);
            if (cacheKey is not null) json.WriteString("key", cacheKey);
            json.WriteStartObject("settings");
            json.WriteString("method", Settings.Method.ToString());
            json.WriteNumber("histogramBins", Settings.HistogramBins);
            json.WriteNumber("percentile", Settings.Percentile);
            json.WriteNumber("activationMin", Settings.ActivationRange.Min);
            json.WriteNumber("activationMax", Settings.ActivationRange.Max);
            json.WriteNumber("mseCandidates", Settings.MseCandidates);
            json.WriteBoolean("biasCorrection", Settings.BiasCorrection);
            json.WriteEndObject();
            json.WriteNumber("samples", SampleCount);
            json.WriteStartObject("tensors");
            foreach (var (name, t) in Tensors)
            {
                json.WriteStartObject(name);
                json.WriteNumber("min", t.Min);
                json.WriteNumber("max", t.Max);
                json.WriteNumber("observedMin", t.ObservedMin);
                json.WriteNumber("observedMax", t.ObservedMax);
                json.WriteNumber("count", t.Count);
                json.WriteNumber("nonFinite", t.NonFiniteCount);
                json.WriteEndObject();
            }
            json.WriteEndObject();
            // float32 bytes (little-endian wherever Squash runs) in base64: exact, and a third of the text of decimals.
            json.WriteStartObject("inputMeans");
            foreach (var (name, means) in InputMeans)
                json.WriteBase64String(name, System.Runtime.InteropServices.MemoryMarshal.AsBytes(means.AsSpan()));
            json.WriteEndObject();
            json.WriteEndObject();
        }
        stream.WriteByte((byte)'\n');
        return stream.ToArray();
    }

    /// <summary>Reads what <see cref="ToJson"/> wrote.</summary>
    /// <param name="utf8">The JSON.</param>
    /// <param name="cacheKey">The key recorded with it, or null.</param>
    /// <exception cref="FormatException">The text is not such JSON (or of another version).</exception>
    public static CalibrationResult FromJson(ReadOnlySpan<byte> utf8, out string? cacheKey)
    {
        try
        {
            var reader = new Utf8JsonReader(utf8);
            using var document = JsonDocument.ParseValue(ref reader);
            var root = document.RootElement;
            if (root.GetProperty("format").GetString() != Format || root.GetProperty("version").GetInt32() != FormatVersion)
                throw new FormatException("Not a calibration result of this version.");
            cacheKey = root.TryGetProperty("key", out var key) ? key.GetString() : null;
            var s = root.GetProperty("settings");
            var settings = new CalibrationSettings
            {
                Method = Enum.Parse<CalibrationMethod>(s.GetProperty("method").GetString()!),
                HistogramBins = s.GetProperty("histogramBins").GetInt32(),
                Percentile = s.GetProperty("percentile").GetDouble(),
                ActivationRange = new QuantizationRange(
                    s.GetProperty("activationMin").GetInt32(), s.GetProperty("activationMax").GetInt32()),
                MseCandidates = s.GetProperty("mseCandidates").GetInt32(),
                BiasCorrection = s.GetProperty("biasCorrection").GetBoolean(),
            };
            var tensors = new List<KeyValuePair<string, TensorCalibration>>();
            foreach (var p in root.GetProperty("tensors").EnumerateObject())
            {
                var t = p.Value;
                tensors.Add(new(p.Name, new TensorCalibration(
                    t.GetProperty("min").GetSingle(), t.GetProperty("max").GetSingle(),
                    t.GetProperty("observedMin").GetSingle(), t.GetProperty("observedMax").GetSingle(),
                    t.GetProperty("count").GetInt64(), t.GetProperty("nonFinite").GetInt64())));
            }
            var means = new List<KeyValuePair<string, float[]>>();
            foreach (var p in root.GetProperty("inputMeans").EnumerateObject())
            {
                byte[] bytes = p.Value.GetBytesFromBase64();
                if (bytes.Length % sizeof(float) != 0) throw new FormatException($"The input means of '{p.Name}' are not float32.");
                means.Add(new(p.Name, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).ToArray()));
            }
            return new CalibrationResult(settings, root.GetProperty("samples").GetInt32(), tensors, means);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or ArgumentException)
        {
            throw new FormatException($"Not a valid calibration result: {e.Message}", e);
        }
    }
}
