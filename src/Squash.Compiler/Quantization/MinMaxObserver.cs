namespace Squash.Compiler.Quantization;

/// <summary>
/// The range is exactly [smallest, largest] value seen. Cheapest and outlier-sensitive: one extreme value widens
/// the range and coarsens every other value's quantization. State: a few scalars.
/// </summary>
public sealed class MinMaxObserver : ActivationObserver
{
    /// <inheritdoc/>
    public override CalibrationMethod Method => CalibrationMethod.MinMax;

    /// <inheritdoc/>
    public override long StateBytes => 2 * sizeof(float) + 2 * sizeof(long);

    /// <inheritdoc/>
    protected override void ObserveFinite(ReadOnlySpan<float> values, float min, float max)
    {
        // The base class keeps the minimum and maximum.
    }

    /// <inheritdoc/>
    protected override (float Min, float Max) ChooseRange() => (ObservedMin, ObservedMax);
}
