using Squash.Compiler.Quantization;

namespace Squash.Compiler.Tests.Quantization;

/// <summary>The observers against closed forms, sorting and brute-force searches; their memory bound and determinism.</summary>
public sealed class ObserverTests
{
    private static readonly CalibrationSettings s_defaults = new();

    [Fact]
    public void MinMaxIsExactAndSkipsNonFiniteValues()
    {
        var observer = new MinMaxObserver();
        observer.Observe([3f, -2.5f, float.NaN, 7.25f]);
        observer.Observe([float.PositiveInfinity, -4f, 1f, float.NegativeInfinity]);
        var r = observer.Result();
        Assert.Equal((-4f, 7.25f, -4f, 7.25f), (r.Min, r.Max, r.ObservedMin, r.ObservedMax));
        Assert.Equal(5, r.Count);
        Assert.Equal(3, r.NonFiniteCount);
    }

    [Fact]
    public void AnObserverThatSawNothingFiniteReportsAnEmptyRange()
    {
        var observer = ActivationObserver.Create(s_defaults with { Method = CalibrationMethod.Percentile });
        observer.Observe([float.NaN]);
        Assert.Equal(new TensorCalibration(0, 0, 0, 0, 0, 1), observer.Result());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(8)]
    [InlineData(37)]
    [InlineData(1000)]
    public void VectorScanMatchesAScalarLoop(int length)
    {
        var random = new Random(length);
        var values = new float[length];
        for (int i = 0; i < length; i++) values[i] = (float)(random.NextDouble() * 200 - 100);
        float[] specials = [float.NaN, float.PositiveInfinity, float.NegativeInfinity, -0f, 0f];
        for (int i = 0; i < length; i += 5) values[i] = specials[i / 5 % specials.Length];
        ActivationObserver.Scan(values, out float min, out float max, out int nonFinite);
        var finite = values.Where(float.IsFinite).ToArray();
        Assert.Equal(values.Length - finite.Length, nonFinite);
        if (finite.Length == 0) return;
        Assert.Equal(finite.Min(), min);
        Assert.Equal(finite.Max(), max);
        if (min == 0) Assert.False(float.IsNegative(min)); // zeros come back as +0, whatever the lane order
    }

    [Theory]
    [InlineData(99.0)]
    [InlineData(99.99)]
    public void TwoSidedPercentileMatchesSortingWithinABin(double percentile)
    {
        var data = Gaussian(200_000, seed: 1, mean: 0.5, sigma: 2);
        var observer = new PercentileObserver(2048, percentile);
        foreach (var chunk in Chunks(data, 20)) observer.Observe(chunk);
        var sorted = data.Order().ToArray();
        double tail = (1 - percentile / 100) / 2;
        double w = observer.Histogram.BinWidth;
        var r = observer.Result();
        Assert.InRange(r.Min, ExactQuantile(sorted, tail) - w, ExactQuantile(sorted, tail) + w);
        Assert.InRange(r.Max, ExactQuantile(sorted, 1 - tail) - w, ExactQuantile(sorted, 1 - tail) + w);
    }

    [Fact]
    public void PercentileOfANonNegativeTensorCutsOnlyTheTop()
    {
        // A Relu output: half exact zeros, half |N(0, 1)|.
        var data = Gaussian(100_000, seed: 2).Select(x => Math.Max(x, 0f)).ToArray();
        var observer = new PercentileObserver(2048, 99.9);
        foreach (var chunk in Chunks(data, 10)) observer.Observe(chunk);
        var sorted = data.Order().ToArray();
        var r = observer.Result();
        Assert.Equal(0f, r.Min);
        double exact = ExactQuantile(sorted, 0.999), w = observer.Histogram.BinWidth;
        Assert.InRange(r.Max, exact - w, exact + w);
        // Uniform data: the quantile is known in closed form too.
        var uniform = Uniform(100_000, seed: 3, 0, 10);
        var u = new PercentileObserver(2048, 99);
        u.Observe(uniform);
        Assert.InRange(u.Result().Max, 9.9 - 0.02, 9.9 + 0.02); // sampling error of the 99th percentile of 1e5 values ~0.003
    }

    [Fact]
    public void HistogramGrowthMergesBinsExactly()
    {
        var h = new ActivationHistogram(8);
        h.Add([0.5f, 1f, -0.25f, 0f], 1);
        Assert.Equal(1.0, h.Range);
        Assert.Equal([0L, 0, 0, 0, 1, 0, 0, 1], h.Positive.ToArray());
        Assert.Equal([0L, 0, 1, 0, 0, 0, 0, 0], h.Negative.ToArray());
        h.Add([3f], 3); // range doubles twice to 4: bins of 4 old bins each
        Assert.Equal(4.0, h.Range);
        Assert.Equal([0L, 2, 0, 0, 0, 0, 1, 0], h.Positive.ToArray());
        Assert.Equal([1L, 0, 0, 0, 0, 0, 0, 0], h.Negative.ToArray());
        Assert.Equal(1, h.Zeros);
        Assert.Equal(5, h.Total);
    }

    [Fact]
    public void EntropyThresholdIsTheBruteForceMinimumOfTheKlDivergence()
    {
        // A signed bell with rare outliers, a Relu-like one with a long tail, and a uniform one.
        var random = new Random(4);
        var bell = Gaussian(200_000, seed: 5).Concat(Enumerable.Range(0, 20).Select(_ => (float)(random.NextDouble() * 40 - 20))).ToArray();
        var relu = Gaussian(200_000, seed: 6).Select(x => x > 0 ? x * x : 0f).ToArray();
        var uniform = Uniform(200_000, seed: 7, -3, 3);
        foreach (var data in new[] { bell, relu, uniform })
        {
            var observer = new EntropyObserver(2048, QuantizationRange.UInt8);
            foreach (var chunk in Chunks(data, 10)) observer.Observe(chunk);
            var counts = observer.FoldedCounts();
            int levels = observer.LevelsPerSide;
            Assert.Equal(data.Min() < 0 ? 128 : 256, levels);
            int best = -1;
            double bestKl = double.PositiveInfinity;
            for (int i = levels; i <= counts.Length; i++)
            {
                double kl = BruteForceKl(counts, i, levels);
                if (kl < bestKl)
                {
                    bestKl = kl;
                    best = i;
                }
            }
            int found = EntropyObserver.SearchThreshold(counts, levels, out double divergence);
            // Prefix sums add in another order than the brute force: allow rounding, then the thresholds agree.
            Assert.Equal(bestKl, divergence, 1e-9);
            Assert.True(found == best || Math.Abs(BruteForceKl(counts, found, levels) - bestKl) < 1e-9, $"threshold bin {found}, brute force {best}");
            var r = observer.Result();
            double t = found * observer.Histogram.BinWidth;
            Assert.Equal((float)Math.Min(data.Max(), t), r.Max);
            Assert.Equal(data.Min() < 0 ? (float)Math.Max(data.Min(), -t) : data.Min(), r.Min);
        }
        // Clipping a uniform distribution only loses information: the threshold stays at the top.
        var flat = new EntropyObserver(2048, QuantizationRange.UInt8);
        flat.Observe(uniform);
        Assert.True(flat.Result().Max > 2.9f, $"uniform clipped at {flat.Result().Max}");
    }

    [Fact]
    public void EntropyClipsOutliersOfABell()
    {
        var data = Gaussian(200_000, seed: 8).Concat([60f, -60f]).ToArray();
        var observer = new EntropyObserver(2048, QuantizationRange.UInt8);
        observer.Observe(data);
        var r = observer.Result();
        // 4 sigma is far beyond any 128-level optimum's loss; 60 (the outliers) would waste nearly every level.
        Assert.InRange(r.Max, 2f, 10f);
        Assert.InRange(r.Min, -10f, -2f);
    }

    [Fact]
    public void MseThresholdIsWithinTwoPercentOfTheBruteForceOptimum()
    {
        // At 8 bits clipping rarely pays (the step is small); at 4 bits a Gaussian is best clipped near 2.5 sigma.
        var gaussian = Gaussian(5_000, seed: 10);
        var relu = Gaussian(5_000, seed: 11).Select(x => Math.Max(x, 0f)).ToArray();
        var uniform = Uniform(5_000, seed: 12, 0, 1);
        var fourBits = new QuantizationRange(0, 15);
        foreach (var range in new[] { QuantizationRange.UInt8, QuantizationRange.UInt7, fourBits })
            foreach (var data in new[] { gaussian, relu, uniform })
            {
                var observer = new MseObserver(2048, range);
                foreach (var chunk in Chunks(data, 5)) observer.Observe(chunk);
                var r = observer.Result();
                double chosen = TrueMse(data, r.Min, r.Max, range);
                float min = data.Min(), max = data.Max();
                double magnitude = Math.Max(-min, max), best = double.PositiveInfinity;
                // Brute force: 200 even thresholds and 200 geometric ones down to 1/65536 of the largest magnitude.
                for (int k = 1; k <= 200; k++)
                    foreach (double t in new[] { magnitude * k / 200, magnitude * Math.Pow(2, -16.0 * k / 200) })
                        best = Math.Min(best, TrueMse(data, (float)Math.Max(Math.Min(min, 0), -t), (float)Math.Min(max, t), range));
                // The histogram reads values as spread evenly in a bin, and the search grid differs from this one.
                Assert.True(chosen <= best * 1.02, $"{range}: MSE {chosen} at [{r.Min}, {r.Max}], brute force {best}");
                // And the closed-form estimate is the real error, up to the same approximation.
                Assert.Equal(chosen, observer.ExpectedError(r.Min, r.Max), chosen * 0.05);
                if (range == fourBits && data == gaussian) Assert.InRange(r.Max, 2f, 3f);
            }
        // Uniform [0, 1]: clipping at T costs (1 - T)^3 / 3, the step T^3 / (255^2 12): the optimum is T = 510/511.
        var u = new MseObserver(2048, QuantizationRange.UInt8);
        u.Observe(uniform);
        Assert.InRange(u.Result().Max, 0.99f, 1f);
    }

    [Theory]
    [InlineData(CalibrationMethod.MinMax)]
    [InlineData(CalibrationMethod.Percentile)]
    [InlineData(CalibrationMethod.Entropy)]
    [InlineData(CalibrationMethod.Mse)]
    public void MemoryDoesNotGrowWithTheNumberOfSamples(CalibrationMethod method)
    {
        var settings = s_defaults with { Method = method };
        var few = ActivationObserver.Create(settings);
        few.Observe(Gaussian(10_000, seed: 13));
        // The least over three identical runs: the runtime itself may allocate on this thread while it re-JITs the
        // hot loops (tiered compilation, on-stack replacement), but an allocation of the observer shows in every run.
        long allocated = long.MaxValue;
        ActivationObserver many = few;
        for (int attempt = 0; attempt < 3; attempt++)
        {
            many = ActivationObserver.Create(settings);
            var sample = Gaussian(10_000, seed: 13);
            many.Observe(sample);
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int s = 1; s < 10; s++)
            {
                // Each sample a little wider, so that the histogram range grows (and re-bins) along the way.
                for (int i = 0; i < sample.Length; i++) sample[i] *= 1.3f;
                many.Observe(sample);
            }
            allocated = Math.Min(allocated, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        Assert.Equal(0, allocated);
        Assert.Equal(few.StateBytes, many.StateBytes);
        Assert.Equal(10 * few.Count, many.Count);
        if (many is HistogramObserver h)
        {
            Assert.Equal(2048, h.Histogram.Bins);
            Assert.True(h.StateBytes < 40_000, $"{h.StateBytes} bytes of state");
        }
    }

    [Theory]
    [InlineData(CalibrationMethod.MinMax)]
    [InlineData(CalibrationMethod.Percentile)]
    [InlineData(CalibrationMethod.Entropy)]
    [InlineData(CalibrationMethod.Mse)]
    public void SameSamplesInTheSameOrderGiveTheSameBits(CalibrationMethod method)
    {
        var settings = s_defaults with { Method = method };
        var samples = Enumerable.Range(0, 6).Select(s => Gaussian(5000 + 17 * s, seed: 20 + s, sigma: 1 + s)).ToArray();
        var a = ActivationObserver.Create(settings);
        var b = ActivationObserver.Create(settings);
        foreach (var s in samples) a.Observe(s);
        foreach (var s in samples) b.Observe(s.ToArray());
        Assert.Equal(a.Result(), b.Result());
    }

    // KL(P || Q) for threshold bin i, written out as TensorRT's description reads, one array at a time.
    private static double BruteForceKl(long[] counts, int i, int levels)
    {
        var p = new double[i];
        for (int k = 0; k < i; k++) p[k] = counts[k];
        for (int k = i; k < counts.Length; k++) p[i - 1] += counts[k];
        var q = new double[i];
        int width = i / levels;
        for (int j = 0; j < levels; j++)
        {
            int start = j * width, stop = j == levels - 1 ? i : start + width;
            double sum = 0;
            int nonZero = 0;
            for (int k = start; k < stop; k++)
            {
                sum += counts[k];
                if (p[k] != 0) nonZero++;
            }
            for (int k = start; k < stop; k++) q[k] = p[k] != 0 ? sum / nonZero : 0;
        }
        double pSum = p.Sum(), qSum = q.Sum(), kl = 0;
        for (int k = 0; k < i; k++)
        {
            if (p[k] == 0) continue;
            double pk = p[k] / pSum, qk = q[k] != 0 ? q[k] / qSum : EntropyObserver.MissingProbability;
            kl += pk * Math.Log(pk / qk);
        }
        return kl;
    }

    private static double TrueMse(float[] data, float min, float max, QuantizationRange range)
    {
        var q = QuantizationParameters.Asymmetric(min, max, range);
        // QuantizeLinear then DequantizeLinear, written out (AffineQuantization's methods, without the calls).
        float scale = q.Scale, zeroPoint = q.ZeroPoint, low = range.Min, high = range.Max;
        double sum = 0;
        foreach (float x in data)
        {
            float level = MathF.Round(x / scale) + zeroPoint;
            level = level < low ? low : level > high ? high : level;
            double e = x - (level - zeroPoint) * scale;
            sum += e * e;
        }
        return sum / data.Length;
    }

    // The q-quantile of sorted data, interpolating between order statistics.
    private static double ExactQuantile(float[] sorted, double q)
    {
        double position = q * sorted.Length - 0.5;
        int lo = Math.Clamp((int)Math.Floor(position), 0, sorted.Length - 1), hi = Math.Min(lo + 1, sorted.Length - 1);
        double f = Math.Clamp(position - lo, 0, 1);
        return sorted[lo] + f * (sorted[hi] - sorted[lo]);
    }

    internal static float[] Gaussian(int count, int seed, double mean = 0, double sigma = 1)
    {
        var random = new Random(seed);
        var result = new float[count];
        for (int i = 0; i < count; i++)
        {
            double u1 = 1 - random.NextDouble(), u2 = random.NextDouble();
            result[i] = (float)(mean + sigma * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return result;
    }

    private static float[] Uniform(int count, int seed, double from, double to)
    {
        var random = new Random(seed);
        var result = new float[count];
        for (int i = 0; i < count; i++) result[i] = (float)(from + (to - from) * random.NextDouble());
        return result;
    }

    private static IEnumerable<float[]> Chunks(float[] data, int count)
    {
        int size = (data.Length + count - 1) / count;
        for (int start = 0; start < data.Length; start += size) yield return data[start..Math.Min(data.Length, start + size)];
    }
}
