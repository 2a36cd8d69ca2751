using Squash.Runtime;

namespace Squash.Compiler.Quantization;

/// <summary>
/// Bias correction (Nagel et al., "Data-Free Quantization Through Weight Equalization and Bias Correction", 2019, with
/// the input means measured on the calibration samples): rounding the weights to int8 moves each output channel's mean
/// by <c>sum (w - s*q) * E[x]</c>, the same on every sample; adding that amount to the channel's bias takes the shift
/// back. On PP-OCR rec it is what keeps the thin margins between a space and a blank at line ends: the weights rounded
/// to the int8 GEMM's [-64, 64], everything else fp32, read fp32's text on 45 of 64 lines uncorrected and 59 corrected
/// (docs/quantization.md).
/// </summary>
internal static class BiasCorrection
{
    /// <summary>The shift to add to a convolution's bias per output channel.</summary>
    /// <param name="w">Float weights [Co, Ci/group, taps...].</param>
    /// <param name="q">Their int8 codes, same shape.</param>
    /// <param name="scales">Per output channel.</param>
    /// <param name="group">The convolution's group count.</param>
    /// <param name="means">Per input channel and tap (<see cref="ProductInputMeans"/>), [Ci * taps].</param>
    public static double[] ForConv(Tensor w, Tensor q, float[] scales, int group, float[] means)
    {
        var wv = w.AsSpan<float>();
        var qv = q.AsSpan<sbyte>();
        int outputs = w.Shape[0], perGroup = outputs / group, inner = wv.Length / outputs;
        if (means.Length != group * inner) throw new ArgumentException($"{means.Length} means for {group} x {inner} weights per channel.", nameof(means));
        var shift = new double[outputs];
        for (int c = 0; c < outputs; c++)
        {
            var m = means.AsSpan(c / perGroup * inner, inner);
            double scale = scales[c], sum = 0;
            for (int i = 0, at = c * inner; i < inner; i++, at++) sum += (wv[at] - scale * qv[at]) * m[i];
            shift[c] = sum;
        }
        return shift;
    }

    /// <summary>The shift to add to a MatMul's or Gemm's bias per column.</summary>
    /// <param name="w">Float weights [K, N].</param>
    /// <param name="q">Their int8 codes [K, N].</param>
    /// <param name="scales">Per column.</param>
    /// <param name="means">Per k, [K].</param>
    public static double[] ForMatMul(Tensor w, Tensor q, float[] scales, float[] means)
    {
        var wv = w.AsSpan<float>();
        var qv = q.AsSpan<sbyte>();
        int depth = w.Shape[0], columns = w.Shape[1];
        if (means.Length != depth) throw new ArgumentException($"{means.Length} means for depth {depth}.", nameof(means));
        var shift = new double[columns];
        for (int k = 0; k < depth; k++)
        {
            double m = means[k];
            for (int n = 0, at = k * columns; n < columns; n++, at++) shift[n] += (wv[at] - (double)scales[n] * qv[at]) * m;
        }
        return shift;
    }

    /// <summary><paramref name="bias"/> (or zeros) plus <paramref name="shift"/>.</summary>
    public static float[] Apply(ReadOnlySpan<float> bias, double[] shift)
    {
        var result = new float[shift.Length];
        for (int c = 0; c < result.Length; c++)
            result[c] = (float)((bias.IsEmpty ? 0 : bias[bias.Length == 1 ? 0 : c]) + shift[c]);
        return result;
    }
}
