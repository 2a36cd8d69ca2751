using Squash.Runtime;

namespace Squash.Compiler.Quantization;

/// <summary>An affine quantization, <c>real = Scale x (q - ZeroPoint)</c> with q in <see cref="Range"/>, as ONNX's
/// QuantizeLinear / DequantizeLinear define it.</summary>
/// <param name="Scale">Real step between consecutive integers (positive, normal).</param>
/// <param name="ZeroPoint">The integer that stands for real 0 (within <paramref name="Range"/>).</param>
/// <param name="Range">The integers q may take.</param>
public readonly record struct AffineQuantization(float Scale, int ZeroPoint, QuantizationRange Range)
{
    /// <summary>The smallest real value represented, <c>Scale x (Range.Min - ZeroPoint)</c>.</summary>
    public float RealMin => Scale * (Range.Min - ZeroPoint);

    /// <summary>The largest real value represented, <c>Scale x (Range.Max - ZeroPoint)</c>.</summary>
    public float RealMax => Scale * (Range.Max - ZeroPoint);

    /// <summary>QuantizeLinear: <c>saturate(round_half_to_even(x / Scale) + ZeroPoint)</c>, in float as ONNX does.</summary>
    public int Quantize(float x) =>
        (int)Math.Clamp(MathF.Round(x / Scale, MidpointRounding.ToEven) + ZeroPoint, Range.Min, Range.Max);

    /// <summary>DequantizeLinear: <c>(q - ZeroPoint) x Scale</c>.</summary>
    public float Dequantize(int q) => (q - ZeroPoint) * Scale;
}

/// <summary>From calibrated ranges and weights to scales and zero points.</summary>
public static class QuantizationParameters
{
    /// <summary>The smallest positive normal float: smaller scales would lose precision or overflow on division.</summary>
    private const float SmallestNormal = 1.17549435E-38f;

    /// <summary>
    /// Asymmetric (affine) parameters for an activation with range [<paramref name="min"/>, <paramref name="max"/>]:
    /// the range is first widened to include 0 (so that padding and Relu's zeros are exact), then
    /// <c>scale = (max - min) / (Range.Max - Range.Min)</c> in float, and
    /// <c>zero point = round_half_to_even(Range.Min - min / scale)</c> (computed in double from the float scale,
    /// clamped to the range). Zero is exactly representable: it quantizes to the zero point. A range narrower than
    /// the smallest normal float per level (all zeros) gets scale 1.
    /// </summary>
    /// <param name="min">Lower end of the calibrated range.</param>
    /// <param name="max">Upper end, at least <paramref name="min"/>.</param>
    /// <param name="range">The integers: <see cref="QuantizationRange.UInt8"/>, or <see cref="QuantizationRange.UInt7"/>
    /// when the int8 kernels must avoid VPMADDUBSW saturation.</param>
    /// <exception cref="ArgumentOutOfRangeException">A bound is not finite, or <paramref name="min"/> &gt;
    /// <paramref name="max"/>.</exception>
    public static AffineQuantization Asymmetric(float min, float max, QuantizationRange range)
    {
        range.Validate();
        if (!float.IsFinite(min) || !float.IsFinite(max) || min > max)
            throw new ArgumentOutOfRangeException(nameof(min), $"[{min}, {max}] is not a finite range.");
        double low = Math.Min(min, 0.0), high = Math.Max(max, 0.0);
        float scale = (float)((high - low) / (range.Max - range.Min));
        if (!(scale >= SmallestNormal)) scale = 1;
        double zeroPoint = Math.Round(range.Min - low / scale, MidpointRounding.ToEven);
        return new AffineQuantization(scale, (int)Math.Clamp(zeroPoint, range.Min, range.Max), range);
    }

    /// <summary>
    /// Symmetric per-channel scales for weights: <c>scale[c] = max |w| over channel c / Range.Max</c> (zero point 0),
    /// so that the largest weight of each channel maps to +-Range.Max. A channel of zeros gets scale 1.
    /// </summary>
    /// <param name="weights">A float tensor, for example Conv's [M, C/group, kH, kW].</param>
    /// <param name="axis">The output-channel axis: 0 for Conv and for Gemm with transB, 1 for MatMul's [K, N].</param>
    /// <param name="range">Symmetric integers, <see cref="QuantizationRange.Int8Symmetric"/> by default (a narrower
    /// one such as [-63, 63] also keeps VPMADDUBSW from saturating).</param>
    /// <exception cref="ArgumentException">The weights are not float, the axis is out of range, or the range is not
    /// symmetric around 0.</exception>
    /// <exception cref="SquashException">A weight is NaN or infinite (SQ1005).</exception>
    public static float[] SymmetricPerChannel(Tensor weights, int axis, QuantizationRange? range = null)
    {
        var r = range ?? QuantizationRange.Int8Symmetric;
        r.Validate();
        if (r.Min > -r.Max) throw new ArgumentException($"Weights need a range symmetric around 0, not {r}.", nameof(range));
        if (weights.DataType != DataType.Float)
            throw new ArgumentException(
                $"Weights must be float to quantize, not {DataTypes.Name(weights.DataType)}.", nameof(weights));
        if (axis < 0 || axis >= weights.Rank)
            throw new ArgumentException($"Axis {axis} is outside the weights' shape {Shapes.Format(weights.Shape)}.", nameof(axis));
        int channels = weights.Shape[axis];
        int inner = 1, outer = 1;
        for (int d = axis + 1; d < weights.Rank; d++) inner *= weights.Shape[d];
        for (int d = 0; d < axis; d++) outer *= weights.Shape[d];
        var w = weights.AsSpan<float>();
        var maxAbs = new float[channels];
        for (int o = 0; o < outer; o++)
            for (int c = 0; c < channels; c++)
            {
                var row = w.Slice((o * channels + c) * inner, inner);
                foreach (float x in row)
                {
                    if (!float.IsFinite(x))
                        throw new SquashException(ErrorCodes.InvalidModel,
                            $"Weights of shape {Shapes.Format(weights.Shape)} hold NaN or infinity; they cannot be quantized.");
                    maxAbs[c] = Math.Max(maxAbs[c], Math.Abs(x));
                }
            }
        var scales = new float[channels];
        for (int c = 0; c < channels; c++)
        {
            float scale = maxAbs[c] / r.Max;
            scales[c] = scale >= SmallestNormal ? scale : 1;
        }
        return scales;
    }
}
