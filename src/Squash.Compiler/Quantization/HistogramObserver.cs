namespace Squash.Compiler.Quantization;

/// <summary>An observer that chooses the range from an <see cref="ActivationHistogram"/> of all values seen.
/// State: the histogram, 16 bytes per bin and sign (32 KiB for 2048 bins), whatever the number of samples.</summary>
public abstract class HistogramObserver : ActivationObserver
{
    /// <summary>Creates the observer with <paramref name="bins"/> histogram bins per sign.</summary>
    protected HistogramObserver(int bins) => Histogram = new ActivationHistogram(bins);

    /// <summary>The values seen so far.</summary>
    public ActivationHistogram Histogram { get; }

    /// <inheritdoc/>
    public override long StateBytes => Histogram.StateBytes + 2 * sizeof(float) + 2 * sizeof(long);

    /// <inheritdoc/>
    protected override void ObserveFinite(ReadOnlySpan<float> values, float min, float max) =>
        Histogram.Add(values, Math.Max(-(double)min, max));
}
