namespace Squash.Compiler.Quantization;

/// <summary>
/// How closely a quantized model's tensors follow the fp32 model's, over every element of every sample (all of a
/// model's float outputs counted as one signal): signal-to-quantization-noise ratio
/// <c>SQNR = 10 log10(Σ r² / Σ (q - r)²)</c> in dB (infinite when identical) and cosine similarity
/// <c>Σ r q / sqrt(Σ r² Σ q²)</c>, r the fp32 values and q the quantized ones.
/// </summary>
/// <param name="SqnrDb">Signal to noise, dB; <see cref="double.PositiveInfinity"/> for no noise.</param>
/// <param name="Cosine">Cosine similarity (1 for identical directions).</param>
public readonly record struct OutputAgreement(double SqnrDb, double Cosine)
{
    /// <summary>Identical tensors.</summary>
    public static OutputAgreement Exact => new(double.PositiveInfinity, 1);

    /// <summary>The noise power relative to the signal's, <c>10^(-SQNR/10)</c>: what adds up (about) when independent
    /// layers are quantized together.</summary>
    public double RelativeNoise => double.IsPositiveInfinity(SqnrDb) ? 0 : Math.Pow(10, -SqnrDb / 10);
}

/// <summary>Sums for an <see cref="OutputAgreement"/>, accumulated tensor by tensor in double.</summary>
internal sealed class AgreementAccumulator
{
    private double _signal, _noise, _dot, _actual;

    /// <summary>Adds the elements of one tensor pair: <paramref name="reference"/> (fp32) and <paramref name="actual"/>.</summary>
    public void Add(ReadOnlySpan<float> reference, ReadOnlySpan<float> actual)
    {
        if (reference.Length != actual.Length) throw new ArgumentException("The tensors differ in size.", nameof(actual));
        double signal = 0, noise = 0, dot = 0, power = 0;
        for (int i = 0; i < reference.Length; i++)
        {
            double r = reference[i], q = actual[i], d = q - r;
            signal += r * r;
            noise += d * d;
            dot += r * q;
            power += q * q;
        }
        _signal += signal;
        _noise += noise;
        _dot += dot;
        _actual += power;
    }

    /// <summary>The agreement of everything added.</summary>
    public OutputAgreement Result()
    {
        double sqnr = _noise == 0 ? double.PositiveInfinity : _signal == 0 ? double.NegativeInfinity : 10 * Math.Log10(_signal / _noise);
        double norms = Math.Sqrt(_signal * _actual);
        double cosine = norms == 0 ? (_signal == _actual ? 1 : 0) : _dot / norms;
        return new OutputAgreement(sqnr, Math.Clamp(cosine, -1, 1));
    }
}
