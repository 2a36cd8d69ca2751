namespace Squash.Compiler.Quantization;

/// <summary>
/// The clipping threshold T with the least expected squared quantization error. Candidates are T = M k / C for
/// k = 1..C (M the largest magnitude seen, C = <see cref="Candidates"/>); each gives the range
/// [max(min, -T), min(max, T)], quantized exactly as <see cref="QuantizationParameters.Asymmetric"/> would (zero
/// point rounded, so zero stays exact). The error is integrated in closed form over the histogram, reading each bin's
/// values as spread evenly over the bin (clipped to the values seen); exact zeros cost nothing. The smallest T wins
/// on ties. Cost: O(C x bins) per tensor. State as <see cref="HistogramObserver"/>.
/// </summary>
public sealed class MseObserver : HistogramObserver
{
    /// <summary>Creates the observer.</summary>
    /// <param name="bins">Histogram bins per sign.</param>
    /// <param name="activationRange">The integers the tensor will be quantized to.</param>
    /// <param name="candidates">Thresholds to try.</param>
    public MseObserver(int bins, QuantizationRange activationRange, int candidates = 512)
        : base(bins)
    {
        activationRange.Validate();
        ArgumentOutOfRangeException.ThrowIfLessThan(candidates, 1);
        ActivationRange = activationRange;
        Candidates = candidates;
    }

    /// <summary>The integers the tensor will be quantized to.</summary>
    public QuantizationRange ActivationRange { get; }

    /// <summary>Thresholds tried.</summary>
    public int Candidates { get; }

    /// <inheritdoc/>
    public override CalibrationMethod Method => CalibrationMethod.Mse;

    /// <inheritdoc/>
    protected override (float Min, float Max) ChooseRange()
    {
        double magnitude = Math.Max(-(double)ObservedMin, ObservedMax);
        if (magnitude == 0) return (0, 0);
        var intervals = Intervals();
        (float Min, float Max) best = (ObservedMin, ObservedMax);
        double bestError = double.PositiveInfinity;
        for (int k = 1; k <= Candidates; k++)
        {
            var range = Clip(k == Candidates ? magnitude : magnitude * k / Candidates);
            double error = ExpectedError(intervals, range.Min, range.Max);
            if (error < bestError)
            {
                bestError = error;
                best = range;
            }
        }
        return best;
    }

    /// <summary>The expected squared error per value of quantizing what was seen to the range
    /// [<paramref name="min"/>, <paramref name="max"/>] (widened to include 0).</summary>
    public double ExpectedError(float min, float max) =>
        Histogram.Total == 0 ? 0 : ExpectedError(Intervals(), min, max);

    private (float Min, float Max) Clip(double threshold) =>
        ((float)Math.Max(ObservedMin, -threshold), (float)Math.Min(ObservedMax, threshold));

    private double ExpectedError(List<(double From, double To, long Count)> intervals, float min, float max)
    {
        var q = QuantizationParameters.Asymmetric(min, max, ActivationRange);
        var quantizer = new Quantizer(q.Scale, q.Scale * ((double)ActivationRange.Min - q.ZeroPoint), ActivationRange.Levels);
        double sum = 0;
        foreach (var (from, to, count) in intervals)
            sum += to > from
                ? count * (quantizer.Integral(to) - quantizer.Integral(from)) / (to - from)
                : count * quantizer.SquaredError(from);
        return sum / Histogram.Total;
    }

    /// <summary>The non-empty bins as value intervals, clipped to the values seen.</summary>
    private List<(double From, double To, long Count)> Intervals()
    {
        var h = Histogram;
        double w = h.BinWidth, min = ObservedMin, max = ObservedMax;
        var result = new List<(double, double, long)>();
        for (int b = 0; b < h.Bins; b++)
        {
            if (h.Negative[b] != 0) result.Add((Math.Max(-(b + 1) * w, min), Math.Min(-b * w, max), h.Negative[b]));
            if (h.Positive[b] != 0) result.Add((Math.Max(b * w, min), Math.Min((b + 1) * w, max), h.Positive[b]));
        }
        return result;
    }

    /// <summary>Rounding to the nearest of <c>levels</c> points <c>low + k step</c>, clamping beyond them.</summary>
    private readonly record struct Quantizer(double Step, double Low, int Levels)
    {
        private double High => Low + (Levels - 1) * Step;

        public double SquaredError(double x)
        {
            double k = Math.Clamp(Math.Round((x - Low) / Step, MidpointRounding.ToEven), 0, Levels - 1);
            double e = x - (Low + k * Step);
            return e * e;
        }

        /// <summary>The integral of the squared error from <see cref="Low"/> to <paramref name="x"/> (negative
        /// below it): (Low - x)^3 / 3 clipped below; in the rounding cell of point k at offset d steps,
        /// step^3 (k / 12 + d^3 / 3); beyond the last point, its value there plus (x - High)^3 / 3.</summary>
        public double Integral(double x)
        {
            if (x <= Low) return -Cube(Low - x) / 3;
            double u = (x - Low) / Step;
            if (u >= Levels - 1) return Cube(Step) * (Levels - 1) / 12 + Cube(x - High) / 3;
            double k = Math.Floor(u + 0.5), d = u - k;
            return Cube(Step) * (k / 12 + Cube(d) / 3);
        }

        private static double Cube(double v) => v * v * v;
    }
}
