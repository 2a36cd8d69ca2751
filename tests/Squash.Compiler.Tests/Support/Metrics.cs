using Squash.Runtime;

namespace Squash.Compiler.Tests.Support;

/// <summary>Closed-form comparisons of two float tensors of the same shape.</summary>
internal static class Metrics
{
    /// <summary>Cosine similarity, accumulated in double.</summary>
    public static double Cosine(Tensor a, Tensor b)
    {
        var x = a.AsSpan<float>();
        var y = b.AsSpan<float>();
        double dot = 0, nx = 0, ny = 0;
        for (int i = 0; i < x.Length; i++)
        {
            dot += (double)x[i] * y[i];
            nx += (double)x[i] * x[i];
            ny += (double)y[i] * y[i];
        }
        return nx == 0 && ny == 0 ? 1 : dot / Math.Sqrt(nx * ny);
    }

    /// <summary>Largest absolute difference.</summary>
    public static double MaxAbsError(Tensor a, Tensor b)
    {
        var x = a.AsSpan<float>();
        var y = b.AsSpan<float>();
        double worst = 0;
        for (int i = 0; i < x.Length; i++) worst = Math.Max(worst, Math.Abs((double)x[i] - y[i]));
        return worst;
    }

    /// <summary>max - min of the reference.</summary>
    public static double Range(Tensor reference)
    {
        var x = reference.AsSpan<float>();
        float min = float.MaxValue, max = float.MinValue;
        foreach (float v in x)
        {
            min = Math.Min(min, v);
            max = Math.Max(max, v);
        }
        return max - min;
    }

    /// <summary>Signal-to-quantization-noise ratio in dB: 10 log10(sum ref^2 / sum (ref - x)^2).</summary>
    public static double Sqnr(Tensor reference, Tensor x)
    {
        var r = reference.AsSpan<float>();
        var q = x.AsSpan<float>();
        double signal = 0, noise = 0;
        for (int i = 0; i < r.Length; i++)
        {
            signal += (double)r[i] * r[i];
            double d = (double)r[i] - q[i];
            noise += d * d;
        }
        return noise == 0 ? double.PositiveInfinity : 10 * Math.Log10(signal / noise);
    }
}
