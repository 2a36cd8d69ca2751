using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

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
    // Positive bins, negative bins, then the count of exact zeros.
    private readonly long[] _counts;

    /// <summary>Creates an empty histogram with <paramref name="bins"/> bins per sign.</summary>
    public ActivationHistogram(int bins)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bins, 1);
        Bins = bins;
        _counts = new long[2 * bins + 1];
    }

    /// <summary>Bins per sign.</summary>
    public int Bins { get; }

    /// <summary>The largest magnitude the bins cover (0 until a non-zero value is added).</summary>
    public double Range { get; private set; }

    /// <summary>Width of one bin.</summary>
    public double BinWidth => Range / Bins;

    /// <summary>Values that were exactly zero (either sign).</summary>
    public long Zeros => _counts[2 * Bins];

    /// <summary>Counts of positive values by magnitude bin.</summary>
    public ReadOnlySpan<long> Positive => _counts.AsSpan(0, Bins);

    /// <summary>Counts of negative values by magnitude bin.</summary>
    public ReadOnlySpan<long> Negative => _counts.AsSpan(Bins, Bins);

    /// <summary>Finite values added.</summary>
    public long Total { get; private set; }

    /// <summary>Bytes of state: the counts and a few scalars.</summary>
    public long StateBytes => _counts.LongLength * sizeof(long) + 3 * sizeof(long);

    /// <summary>Adds the finite values of <paramref name="values"/> (others are skipped), whose largest finite
    /// magnitude is <paramref name="maxMagnitude"/>.</summary>
    public void Add(ReadOnlySpan<float> values, double maxMagnitude)
    {
        Grow(maxMagnitude);
        double scale = Range == 0 ? 0 : Bins / Range;
        if (scale > float.MaxValue)
        {
            // A range of subnormal floats: too fine a scale for float arithmetic (and too rare to vectorize).
            foreach (float x in values) AddOne(x, scale);
            return;
        }
        // Bin of x: min(|x| * scale, bins - 1) truncated, in float, the same on the vector and the scalar path.
        float s = (float)scale, last = Bins - 1;
        int i = 0;
        if (Vector256.IsHardwareAccelerated && values.Length >= Vector256<float>.Count)
        {
            ref float start = ref MemoryMarshal.GetReference(values);
            Span<int> slots = stackalloc int[Vector256<int>.Count];
            var counts = _counts;
            var vs = Vector256.Create(s);
            var vlast = Vector256.Create(last);
            var negativeOffset = Vector256.Create(Bins);
            var zeroSlot = Vector256.Create(2 * Bins);
            long finite = 0;
            for (; i <= values.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var v = Vector256.LoadUnsafe(ref start, (nuint)i);
                if (!Vector256.EqualsAll(v - v, Vector256<float>.Zero))
                {
                    // NaN or infinity among them: x - x is NaN only for those.
                    for (int k = 0; k < Vector256<float>.Count; k++) AddOne(values[i + k], s, last);
                    continue;
                }
                var magnitude = Vector256.Abs(v);
                var slot = Vector256.ConvertToInt32(Vector256.Min(magnitude * vs, vlast))
                    + (Vector256.LessThan(v, Vector256<float>.Zero).AsInt32() & negativeOffset);
                slot = Vector256.ConditionalSelect(Vector256.Equals(magnitude, Vector256<float>.Zero).AsInt32(), zeroSlot, slot);
                slot.CopyTo(slots);
                foreach (int k in slots) counts[k]++;
                finite += Vector256<float>.Count;
            }
            Total += finite;
        }
        for (; i < values.Length; i++) AddOne(values[i], s, last);
    }

    private void AddOne(float x, float scale, float last)
    {
        if (!float.IsFinite(x)) return;
        Total++;
        float magnitude = MathF.Abs(x);
        _counts[magnitude == 0 ? 2 * Bins : (int)MathF.Min(magnitude * scale, last) + (x < 0 ? Bins : 0)]++;
    }

    private void AddOne(float x, double scale)
    {
        if (!float.IsFinite(x)) return;
        Total++;
        double magnitude = Math.Abs((double)x);
        _counts[magnitude == 0 ? 2 * Bins : (int)Math.Min(magnitude * scale, Bins - 1) + (x < 0 ? Bins : 0)]++;
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
