namespace Squash.Compiler.Quantization;

/// <summary>
/// A histogram of a tensor's values over all samples, in memory fixed at construction: <see cref="Bins"/> bins of
/// magnitudes for each sign over (0, <see cref="Range"/>], plus a count of exact zeros (most of a Relu output).
/// Bin b of either sign counts magnitudes in [bw, (b+1)w), w = Range / Bins (the last bin also Range itself).
/// </summary>
/// <remarks>
/// The first tensor with a non-zero value sets <see cref="Range"/> to its largest magnitude. A later tensor with a
/// larger one doubles the range as often as needed, merging each run of 2^k old bins into one new bin: exact (old bin
/// edges are new bin edges), so counts are never spread by interpolation, and state never grows. The resolution is
/// thus at worst twice as coarse as for a histogram fitted to the final range. As ONNX Runtime's HistogramCalibrater,
/// but with bounded memory (ONNX Runtime adds bins as the range grows).
/// </remarks>
public sealed class ActivationHistogram
{
    private readonly long[] _counts;

    /// <summary>Creates an empty histogram with <paramref name="bins"/> bins per sign.</summary>
    public ActivationHistogram(int bins)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bins, 1);
        Bins = bins;
        _counts = new long[2 * bins];
    }

    /// <summary>Bins per sign.</summary>
    public int Bins { get; }

    /// <summary>The largest magnitude the bins cover (0 until a non-zero value is added).</summary>
    public double Range { get; private set; }

    /// <summary>Width of one bin.</summary>
    public double BinWidth => Range / Bins;

    /// <summary>Values that were exactly zero (either sign).</summary>
    public long Zeros { get; private set; }

    /// <summary>Counts of positive values by magnitude bin.</summary>
    public ReadOnlySpan<long> Positive => _counts.AsSpan(0, Bins);

    /// <summary>Counts of negative values by magnitude bin.</summary>
    public ReadOnlySpan<long> Negative => _counts.AsSpan(Bins, Bins);

    /// <summary>Finite values added.</summary>
    public long Total { get; private set; }

    /// <summary>Bytes of state: the counts and a few scalars.</summary>
    public long StateBytes => _counts.LongLength * sizeof(long) + 4 * sizeof(long);

    /// <summary>Adds the finite values of <paramref name="values"/> (others are skipped), whose largest finite
    /// magnitude is <paramref name="maxMagnitude"/>.</summary>
    public void Add(ReadOnlySpan<float> values, double maxMagnitude)
    {
        Grow(maxMagnitude);
        int bins = Bins, last = bins - 1;
        // In double: a tiny range (subnormal floats) makes the scale overflow float.
        double scale = bins / Range;
        var counts = _counts;
        long zeros = 0, total = 0;
        foreach (float x in values)
        {
            if (!float.IsFinite(x)) continue;
            total++;
            if (x == 0)
            {
                zeros++;
                continue;
            }
            int b = (int)Math.Min(Math.Abs((double)x) * scale, last);
            counts[x < 0 ? b + bins : b]++;
        }
        Zeros += zeros;
        Total += total;
    }

    /// <summary>Widens <see cref="Range"/> to at least <paramref name="maxMagnitude"/> by doubling, merging bins.</summary>
    private void Grow(double maxMagnitude)
    {
        if (maxMagnitude <= Range) return;
        if (Range == 0)
        {
            Range = maxMagnitude;
            return;
        }
        int doublings = 0;
        double range = Range;
        while (range < maxMagnitude)
        {
            range *= 2;
            doublings++;
        }
        Range = range;
        Merge(_counts.AsSpan(0, Bins), doublings);
        Merge(_counts.AsSpan(Bins, Bins), doublings);
    }

    private static void Merge(Span<long> counts, int doublings)
    {
        // New bin j gathers old bins [j * 2^k, (j + 1) * 2^k); j <= b, so going up in b never reads a merged bin.
        for (int b = 0; b < counts.Length; b++)
        {
            long c = counts[b];
            counts[b] = 0;
            counts[doublings >= 31 ? 0 : b >> doublings] += c;
        }
    }
}
