using System.Globalization;
using Squash.Runtime;

namespace Squash.Compiler.Quantization;

/// <summary>What an accuracy target bounds.</summary>
public enum AccuracyMetric
{
    /// <summary>The model's output SQNR against fp32, in dB (at least).</summary>
    Sqnr,
    /// <summary>The cosine similarity of the model's outputs with fp32's (at least).</summary>
    Cosine,
}

/// <summary>
/// The least agreement with the fp32 model that a quantized model must keep on the held-out calibration samples
/// (<c>AccuracyTarget</c> metadata, <c>--accuracy-target</c>): <c>sqnr:30</c> (output SQNR of at least 30 dB) or
/// <c>cos:0.999</c> (cosine similarity of at least 0.999).
/// </summary>
/// <param name="Metric">What is bounded.</param>
/// <param name="Minimum">The least value allowed.</param>
public readonly record struct AccuracyTarget(AccuracyMetric Metric, double Minimum)
{
    /// <summary>Parses <c>sqnr:DB</c> or <c>cos:VALUE</c> (also <c>cosine:</c>), case-insensitive, invariant culture.</summary>
    /// <exception cref="SquashException">Not such a text (SQ1012).</exception>
    public static AccuracyTarget Parse(string text)
    {
        int colon = text.IndexOf(':');
        string metric = colon < 0 ? "" : text[..colon].Trim().ToLowerInvariant();
        string number = colon < 0 ? "" : text[(colon + 1)..].Trim();
        bool parsed = double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) && double.IsFinite(value);
        return (metric, parsed) switch
        {
            ("sqnr", true) => new AccuracyTarget(AccuracyMetric.Sqnr, value),
            ("cos" or "cosine", true) when value is > -1 and <= 1 => new AccuracyTarget(AccuracyMetric.Cosine, value),
            _ => throw new SquashException(ErrorCodes.InvalidOption,
                $"AccuracyTarget '{text}' is not a target: write sqnr:DB (the least output SQNR in dB against fp32, e.g. sqnr:30) or cos:VALUE (the least cosine similarity, e.g. cos:0.999)."),
        };
    }

    /// <summary>True when <paramref name="agreement"/> meets the target.</summary>
    public bool IsMetBy(OutputAgreement agreement) =>
        Metric == AccuracyMetric.Sqnr ? agreement.SqnrDb >= Minimum : agreement.Cosine >= Minimum;

    /// <summary>The SQNR (dB) that meets the target when the noise is uncorrelated with the signal: a cosine c needs
    /// <c>1 - c ≈ noise / (2 signal)</c>, so <c>SQNR ≥ -10 log10(2 (1 - c))</c>. The mixed-precision search predicts with
    /// it and checks the real metric.</summary>
    public double EquivalentSqnrDb =>
        Metric == AccuracyMetric.Sqnr ? Minimum : Minimum >= 1 ? double.PositiveInfinity : -10 * Math.Log10(2 * (1 - Minimum));

    /// <summary>The measured value of this target's metric.</summary>
    public double Measure(OutputAgreement agreement) => Metric == AccuracyMetric.Sqnr ? agreement.SqnrDb : agreement.Cosine;

    /// <summary><c>sqnr:30</c> or <c>cos:0.999</c>.</summary>
    public override string ToString() =>
        (Metric == AccuracyMetric.Sqnr ? "sqnr:" : "cos:") + Minimum.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>The measured value as text, in the unit of this target's metric.</summary>
    public string Format(OutputAgreement agreement) => Metric == AccuracyMetric.Sqnr
        ? FormatDb(agreement.SqnrDb)
        : "cosine " + agreement.Cosine.ToString("0.######", CultureInfo.InvariantCulture);

    /// <summary>A SQNR as text: <c>31.2 dB</c>, or <c>exact</c>.</summary>
    internal static string FormatDb(double db) =>
        double.IsPositiveInfinity(db) ? "exact" : db.ToString("0.0", CultureInfo.InvariantCulture) + " dB";
}
