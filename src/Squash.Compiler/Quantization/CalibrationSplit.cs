using Squash.Runtime;

namespace Squash.Compiler.Quantization;

/// <summary>
/// Divides a calibration data set into the samples that calibrate and the samples held out to check the accuracy of
/// the quantized model: with <see cref="HoldOutEvery"/> = k &gt; 0, samples k-1, 2k-1, 3k-1, ... (0-based, in the data
/// set's ordinal order) are held out; with 0 none are. Deterministic, and stable when samples are appended.
/// </summary>
/// <param name="HoldOutEvery">Hold out every k-th sample; 0 holds out none, 1 is not allowed (nothing would calibrate).</param>
public readonly record struct CalibrationSplit(int HoldOutEvery)
{
    /// <summary>Every sample calibrates.</summary>
    public static CalibrationSplit None => new(0);

    /// <summary>True when the sample at <paramref name="index"/> (0-based, ordinal order) is held out.</summary>
    public bool IsHeldOut(int index) => HoldOutEvery > 0 && index % HoldOutEvery == HoldOutEvery - 1;

    /// <summary>Throws unless the split leaves samples to calibrate.</summary>
    /// <exception cref="SquashException">The split is negative or 1 (SQ1016).</exception>
    public void Validate()
    {
        if (HoldOutEvery is < 0 or 1)
            throw new SquashException(ErrorCodes.CalibrationData,
                $"Cannot hold out every {HoldOutEvery}th calibration sample: use 0 (hold out none) or 2 or more.");
    }
}
