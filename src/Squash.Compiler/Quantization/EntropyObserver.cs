namespace Squash.Compiler.Quantization;

/// <summary>
/// TensorRT's entropy calibration: the clipping threshold T whose quantized distribution loses the least information,
/// measured by the KL divergence KL(P || Q) over the histogram of magnitudes |x| (both signs folded, zeros in bin 0).
/// <para>
/// For each candidate i from L to the number of bins (L = quantized levels on one side: all of
/// <see cref="ActivationRange"/>'s levels for a non-negative tensor, half of them for a signed one):
/// P is bins [0, i) with every count beyond added to bin i - 1 (clipped values land on T);
/// Q merges bins [0, i) (without the clipped counts) into L groups of i / L bins (the last group takes the
/// remainder) and spreads each group's count evenly over the group's bins where P is non-zero. Where P has mass that Q
/// lacks (only the clipped counts, in a group that was empty), Q is taken as 1e-4. Both are normalised, and the
/// i with the least divergence wins (the smallest on ties); T = i bin widths.
/// </para>
/// <para>
/// The range is [max(min, -T), min(max, T)]. Cost: O(bins x L) per tensor with prefix sums. State as
/// <see cref="HistogramObserver"/>.
/// </para>
/// </summary>
public sealed class EntropyObserver : HistogramObserver
{
    /// <summary>The probability Q is given where it has none but P has (see the class remarks).</summary>
    public const double MissingProbability = 1e-4;

    /// <summary>Creates the observer.</summary>
    /// <param name="bins">Histogram bins per sign; at least the levels of <paramref name="activationRange"/>.</param>
    /// <param name="activationRange">The integers the tensor will be quantized to.</param>
    public EntropyObserver(int bins, QuantizationRange activationRange)
        : base(bins)
    {
        activationRange.Validate();
        ArgumentOutOfRangeException.ThrowIfLessThan(bins, activationRange.Levels);
        ActivationRange = activationRange;
    }

    /// <summary>The integers the tensor will be quantized to.</summary>
    public QuantizationRange ActivationRange { get; }

    /// <inheritdoc/>
    public override CalibrationMethod Method => CalibrationMethod.Entropy;

    /// <summary>Quantized levels on the side the threshold clips: all of them for a non-negative tensor, half for a
    /// signed one (whose range [-T, T] spends half on each side).</summary>
    public int LevelsPerSide => ObservedMin >= 0 ? ActivationRange.Levels : ActivationRange.Levels / 2;

    /// <summary>The histogram of magnitudes: both signs added, exact zeros in bin 0.</summary>
    public long[] FoldedCounts()
    {
        var h = Histogram;
        var folded = new long[h.Bins];
        for (int b = 0; b < folded.Length; b++) folded[b] = h.Positive[b] + h.Negative[b];
        folded[0] += h.Zeros;
        return folded;
    }

    /// <inheritdoc/>
    protected override (float Min, float Max) ChooseRange()
    {
        int bins = SearchThreshold(FoldedCounts(), LevelsPerSide, out _);
        double t = bins * Histogram.BinWidth;
        return (ObservedMin >= 0 ? ObservedMin : (float)Math.Max(ObservedMin, -t), (float)Math.Min(ObservedMax, t));
    }

    /// <summary>The number of bins i (in [<paramref name="levels"/>, counts.Length]) whose clipping gives the least
    /// divergence, and that divergence (in nats).</summary>
    public static int SearchThreshold(ReadOnlySpan<long> counts, int levels, out double divergence)
    {
        int n = counts.Length;
        ArgumentOutOfRangeException.ThrowIfLessThan(levels, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(n, levels);
        // Prefix sums: counts, non-zero bins, and counts x log(counts).
        var sum = new long[n + 1];
        var nonZero = new int[n + 1];
        var countLogCount = new double[n + 1];
        var logOf = new double[n + 1]; // log k for the number of non-zero bins k in a group
        for (int k = 1; k <= n; k++) logOf[k] = Math.Log(k);
        for (int b = 0; b < n; b++)
        {
            long c = counts[b];
            sum[b + 1] = sum[b] + c;
            nonZero[b + 1] = nonZero[b] + (c != 0 ? 1 : 0);
            countLogCount[b + 1] = countLogCount[b] + (c != 0 ? c * Math.Log(c) : 0);
        }
        long total = sum[n];
        divergence = 0;
        if (total == 0) return n;
        double logTotal = Math.Log(total), logMissing = Math.Log(MissingProbability);
        int best = n;
        double bestDivergence = double.PositiveInfinity;
        for (int i = levels; i <= n; i++)
        {
            long kept = sum[i];
            if (kept == 0) continue;
            long clipped = total - kept;
            long lastP = counts[i - 1] + clipped;
            // sum of p log p, with p = count / total.
            double pLogP = countLogCount[i - 1] - sum[i - 1] * logTotal + (lastP != 0 ? lastP * (Math.Log(lastP) - logTotal) : 0);
            // sum of p log q: within a group, q is the same on every bin where p is non-zero.
            double pLogQ = 0, logKept = Math.Log(kept);
            int width = i / levels;
            for (int j = 0; j < levels; j++)
            {
                int start = j * width, stop = j == levels - 1 ? i : start + width;
                long groupQ = sum[stop] - sum[start];
                bool last = j == levels - 1;
                long groupP = groupQ + (last ? clipped : 0);
                if (groupP == 0) continue;
                int bins = nonZero[stop] - nonZero[start] + (last && counts[i - 1] == 0 && clipped != 0 ? 1 : 0);
                double logQ = groupQ != 0 ? Math.Log(groupQ) - logOf[bins] - logKept : logMissing;
                pLogQ += groupP * logQ;
            }
            double kl = (pLogP - pLogQ) / total;
            if (kl < bestDivergence)
            {
                bestDivergence = kl;
                best = i;
            }
        }
        divergence = double.IsPositiveInfinity(bestDivergence) ? 0 : bestDivergence;
        return best;
    }
}
