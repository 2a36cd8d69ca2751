namespace Squash.Compiler.Quantization;

/// <summary>
/// The range keeps <see cref="Percentile"/> percent of the values and cuts the rest as outliers: for a tensor with
/// negative values, (100 - p)/2 percent from each end; for a non-negative one (after Relu), 100 - p percent from the
/// top only, the bottom staying at the smallest value. Quantiles come from the histogram, reading values as spread
/// evenly within a bin, so they are within one bin width (<see cref="ActivationHistogram.BinWidth"/>) of the exact
/// quantiles of the data. As ONNX Runtime's percentile calibration; state as <see cref="HistogramObserver"/>.
/// </summary>
public sealed class PercentileObserver : HistogramObserver
{
    /// <summary>Creates the observer.</summary>
    /// <param name="bins">Histogram bins per sign.</param>
    /// <param name="percentile">Percent of the values to keep, in (50, 100].</param>
    public PercentileObserver(int bins = 2048, double percentile = 99.99)
        : base(bins)
    {
        if (!(percentile > 50 && percentile <= 100))
            throw new ArgumentOutOfRangeException(nameof(percentile), $"The percentile {percentile} must be in (50, 100].");
        Percentile = percentile;
    }

    /// <summary>Percent of the values the range keeps.</summary>
    public double Percentile { get; }

    /// <inheritdoc/>
    public override CalibrationMethod Method => CalibrationMethod.Percentile;

    /// <inheritdoc/>
    protected override (float Min, float Max) ChooseRange()
    {
        double keep = Percentile / 100;
        if (ObservedMin >= 0) return (ObservedMin, (float)Quantile(keep));
        double tail = (1 - keep) / 2;
        return ((float)Quantile(tail), (float)Quantile(1 - tail));
    }

    /// <summary>The value below which a fraction <paramref name="q"/> of the values seen lie, values being read as
    /// spread evenly within their bin (exact zeros as exactly 0).</summary>
    public double Quantile(double q)
    {
        var h = Histogram;
        double target = q * h.Total, w = h.BinWidth;
        long below = 0;
        var negative = h.Negative;
        for (int b = negative.Length - 1; b >= 0; b--)
        {
            long c = negative[b];
            if (c != 0 && below + c >= target) return -(b + 1) * w + (target - below) / c * w;
            below += c;
        }
        if (h.Zeros != 0 && below + h.Zeros >= target) return 0;
        below += h.Zeros;
        var positive = h.Positive;
        for (int b = 0; b < positive.Length; b++)
        {
            long c = positive[b];
            if (c != 0 && below + c >= target) return b * w + (target - below) / c * w;
            below += c;
        }
        return ObservedMax;
    }
}
