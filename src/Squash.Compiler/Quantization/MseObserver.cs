namespace Squash.Compiler.Quantization;

/// <summary>
/// The clipping threshold T with the least expected squared quantization error. Candidates form a geometric grid of
/// <see cref="Candidates"/> thresholds from M/65536 to M (M the largest magnitude seen; 16 octaves, so that a few
/// huge outliers cannot hide the optimum), then 16 even steps between the best one's neighbours. Each T gives the
/// range [max(min, -T), min(max, T)], quantized exactly as <see cref="QuantizationParameters.Asymmetric"/> would (zero
/// point rounded, so zero stays exact; a non-negative tensor's range starts at 0). The error is integrated in closed
/// form over the histogram, reading each bin's values as spread evenly over the bin (clipped to the values seen);
/// exact zeros cost nothing. The smallest T wins on ties. Cost: O((candidates + 16) x bins) per tensor. State as <see cref="HistogramObserver"/>.
/// </summary>
public sealed class MseObserver : HistogramObserver
{
    private const int Octaves = 16;
    private const int RefineSteps = 16;

    /// <summary>Creates the observer.</summary>
    /// <param name="bins">Histogram bins per sign.</param>
    /// <param name="activationRange">The integers the tensor will be quantized to.</param>
    /// <param name="candidates">Thresholds on the geometric grid, at least 2.</param>
    public MseObserver(int bins, QuantizationRange activationRange, int candidates = 256)
        : base(bins)
    {
        activationRange.Validate();
        ArgumentOutOfRangeException.ThrowIfLessThan(candidates, 2);
        ActivationRange = activationRange;
        Candidates = candidates;
    }

    /// <summary>The integers the tensor will be quantized to.</summary>
    public QuantizationRange ActivationRange { get; }

    /// <summary>Thresholds on the geometric grid.</summary>
    public int Candidates { get; }

    /// <inheritdoc/>
    public override CalibrationMethod Method => CalibrationMethod.Mse;

    /// <inheritdoc/>
    protected override (float Min, float Max) ChooseRange()
    {
        double magnitude = Math.Max(-(double)ObservedMin, ObservedMax);
        if (magnitude == 0) return (0, 0);
        var bins = new Intervals(this);
        double Threshold(int k) =>
            k == Candidates - 1 ? magnitude : magnitude * Math.Pow(2, Octaves * ((double)k / (Candidates - 1) - 1));
        (float Min, float Max) best = (ObservedMin, ObservedMax);
        double bestError = double.PositiveInfinity;
        int bestK = Candidates - 1;
        for (int k = 0; k < Candidates; k++)
            if (Try(Threshold(k)))
                bestK = k;
        double from = Threshold(Math.Max(bestK - 1, 0)), to = Threshold(Math.Min(bestK + 1, Candidates - 1));
        for (int s = 1; s < RefineSteps; s++) Try(from + (to - from) * s / RefineSteps);
        return best;

        bool Try(double threshold)
        {
            // Quantization includes 0, so a non-negative tensor's range starts at 0 whatever its smallest value.
            var range = ((float)Math.Max(Math.Min(ObservedMin, 0), -threshold), (float)Math.Min(Math.Max(ObservedMax, 0), threshold));
            double error = ExpectedError(bins, range.Item1, range.Item2);
            if (!(error < bestError)) return false;
            bestError = error;
            best = range;
            return true;
        }
    }

    /// <summary>The expected squared error per value of quantizing what was seen to the range
    /// [<paramref name="min"/>, <paramref name="max"/>] (widened to include 0).</summary>
    public double ExpectedError(float min, float max) =>
        Histogram.Total == 0 ? 0 : ExpectedError(new Intervals(this), min, max);

    private double ExpectedError(Intervals bins, float min, float max)
    {
        var q = QuantizationParameters.Asymmetric(min, max, ActivationRange);
        var quantizer = new Quantizer(q.Scale, q.Scale * ((double)ActivationRange.Min - q.ZeroPoint), ActivationRange.Levels);
        double sum = 0, lastTo = double.NaN, lastIntegral = 0;
        for (int i = 0; i < bins.Count.Length; i++)
        {
            double from = bins.From[i], to = bins.To[i];
            if (to > from)
            {
                // Bins are in value order and share edges: reuse the integral at the previous bin's end.
                double atFrom = from == lastTo ? lastIntegral : quantizer.Integral(from);
                lastIntegral = quantizer.Integral(to);
                lastTo = to;
                sum += bins.Count[i] * (lastIntegral - atFrom) / (to - from);
            }
            else
            {
                sum += bins.Count[i] * quantizer.SquaredError(from);
            }
        }
        return sum / Histogram.Total;
    }

    /// <summary>The non-empty bins as value intervals in increasing order, clipped to the values seen.</summary>
    private readonly struct Intervals
    {
        public readonly double[] From;
        public readonly double[] To;
        public readonly long[] Count;

        public Intervals(MseObserver observer)
        {
            var h = observer.Histogram;
            double w = h.BinWidth, min = observer.ObservedMin, max = observer.ObservedMax;
            int n = 0;
            foreach (long c in h.Negative) if (c != 0) n++;
            foreach (long c in h.Positive) if (c != 0) n++;
            From = new double[n];
            To = new double[n];
            Count = new long[n];
            int i = 0;
            for (int b = h.Bins - 1; b >= 0; b--)
                if (h.Negative[b] != 0) Set(ref i, Math.Max(-(b + 1) * w, min), Math.Min(-b * w, max), h.Negative[b]);
            for (int b = 0; b < h.Bins; b++)
                if (h.Positive[b] != 0) Set(ref i, Math.Max(b * w, min), Math.Min((b + 1) * w, max), h.Positive[b]);
        }

        private void Set(ref int i, double from, double to, long count)
        {
            From[i] = from;
            To[i] = to;
            Count[i++] = count;
        }
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
