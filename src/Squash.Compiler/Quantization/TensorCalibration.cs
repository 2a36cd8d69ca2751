namespace Squash.Compiler.Quantization;

/// <summary>What calibration found for one tensor.</summary>
/// <param name="Min">Lower end of the chosen range.</param>
/// <param name="Max">Upper end of the chosen range (at least <paramref name="Min"/>). Quantization parameters
/// widen the range to include 0 (<see cref="QuantizationParameters.Asymmetric"/>).</param>
/// <param name="ObservedMin">Smallest finite value seen (0 when none was).</param>
/// <param name="ObservedMax">Largest finite value seen (0 when none was).</param>
/// <param name="Count">Finite values seen, over all samples.</param>
/// <param name="NonFiniteCount">NaN and infinite values seen; they are left out of every statistic. A tensor that
/// has them (an attention mask of -inf, an overflow) is a poor candidate for quantization.</param>
public sealed record TensorCalibration(float Min, float Max, float ObservedMin, float ObservedMax, long Count, long NonFiniteCount);
