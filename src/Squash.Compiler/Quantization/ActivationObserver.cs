using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Squash.Compiler.Quantization;

/// <summary>
/// Collects the statistics of one float tensor over the calibration samples, one sample at a time, and chooses its
/// quantization range. Every observer keeps state of a size fixed at construction (<see cref="StateBytes"/>),
/// whatever the number of samples or values, and is deterministic: the same values in the same order give the same
/// result bit for bit (no parallel or order-dependent float reductions). Non-finite values are counted and skipped.
/// </summary>
/// <remarks>Not thread-safe: one observer serves one tensor of one calibration run.</remarks>
public abstract class ActivationObserver
{
    private float _min = float.PositiveInfinity;
    private float _max = float.NegativeInfinity;

    /// <summary>The method this observer implements.</summary>
    public abstract CalibrationMethod Method { get; }

    /// <summary>Bytes of state the observer keeps; fixed at construction, independent of the values observed.</summary>
    public abstract long StateBytes { get; }

    /// <summary>Finite values observed.</summary>
    public long Count { get; private set; }

    /// <summary>NaN and infinite values observed (and skipped).</summary>
    public long NonFiniteCount { get; private set; }

    /// <summary>Smallest finite value observed; 0 before any.</summary>
    public float ObservedMin => Count == 0 ? 0 : _min;

    /// <summary>Largest finite value observed; 0 before any.</summary>
    public float ObservedMax => Count == 0 ? 0 : _max;

    /// <summary>Creates the observer of <paramref name="settings"/>' method.</summary>
    public static ActivationObserver Create(CalibrationSettings settings) => settings.Method switch
    {
        CalibrationMethod.MinMax => new MinMaxObserver(),
        CalibrationMethod.Percentile => new PercentileObserver(settings.HistogramBins, settings.Percentile),
        CalibrationMethod.Entropy => new EntropyObserver(settings.HistogramBins, settings.ActivationRange),
        CalibrationMethod.Mse => new MseObserver(settings.HistogramBins, settings.ActivationRange, settings.MseCandidates),
        _ => throw new ArgumentOutOfRangeException(nameof(settings), $"Unknown calibration method {settings.Method}."),
    };

    /// <summary>Adds the values of one tensor (one sample's activation).</summary>
    public void Observe(ReadOnlySpan<float> values)
    {
        if (values.IsEmpty) return;
        Scan(values, out float min, out float max, out int nonFinite);
        NonFiniteCount += nonFinite;
        int finite = values.Length - nonFinite;
        if (finite == 0) return;
        Count += finite;
        _min = Math.Min(_min, min);
        _max = Math.Max(_max, max);
        ObserveFinite(values, min, max);
    }

    /// <summary>The chosen range and the statistics behind it.</summary>
    public TensorCalibration Result()
    {
        if (Count == 0) return new TensorCalibration(0, 0, 0, 0, 0, NonFiniteCount);
        var (min, max) = ChooseRange();
        // Ranges never leave what was seen, and never come out inverted, whatever a method's rounding.
        min = Math.Clamp(min, _min, _max);
        max = Math.Clamp(max, min, _max);
        return new TensorCalibration(min, max, _min, _max, Count, NonFiniteCount);
    }

    /// <summary>Adds one tensor whose finite values lie in [<paramref name="min"/>, <paramref name="max"/>]; the
    /// span may also hold non-finite values, which must be skipped.</summary>
    protected abstract void ObserveFinite(ReadOnlySpan<float> values, float min, float max);

    /// <summary>The range chosen from what was observed; called only after some finite value was.</summary>
    protected abstract (float Min, float Max) ChooseRange();

    /// <summary>Minimum and maximum of the finite values, and the number of others. Min and max are exact whatever
    /// the order (zeros are returned as +0), so the vector path gives what the scalar one does.</summary>
    internal static void Scan(ReadOnlySpan<float> values, out float min, out float max, out int nonFinite)
    {
        float mn = float.PositiveInfinity, mx = float.NegativeInfinity;
        int bad = 0, i = 0;
        if (Vector256.IsHardwareAccelerated && values.Length >= Vector256<float>.Count)
        {
            ref float start = ref MemoryMarshal.GetReference(values);
            var vmin = Vector256.Create(float.PositiveInfinity);
            var vmax = Vector256.Create(float.NegativeInfinity);
            for (; i <= values.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var v = Vector256.LoadUnsafe(ref start, (nuint)i);
                // x - x is 0 for finite x and NaN for NaN and infinities.
                var finite = Vector256.Equals(v - v, Vector256<float>.Zero);
                bad += Vector256<float>.Count - BitOperations.PopCount(finite.ExtractMostSignificantBits());
                vmin = Vector256.MinNative(vmin, Vector256.ConditionalSelect(finite, v, Vector256.Create(float.PositiveInfinity)));
                vmax = Vector256.MaxNative(vmax, Vector256.ConditionalSelect(finite, v, Vector256.Create(float.NegativeInfinity)));
            }
            for (int k = 0; k < Vector256<float>.Count; k++)
            {
                mn = Math.Min(mn, vmin[k]);
                mx = Math.Max(mx, vmax[k]);
            }
        }
        for (; i < values.Length; i++)
        {
            float x = values[i];
            if (!float.IsFinite(x))
            {
                bad++;
                continue;
            }
            if (x < mn) mn = x;
            if (x > mx) mx = x;
        }
        // -0 and +0 compare equal; which one a vector lane keeps depends on the order, so report +0.
        min = mn == 0 ? 0f : mn;
        max = mx == 0 ? 0f : mx;
        nonFinite = bad;
    }
}
