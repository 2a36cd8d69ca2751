using System.Numerics.Tensors;
using Squash.Runtime;

namespace Squash.Compiler.Quantization;

/// <summary>
/// GPTQ (Frantar et al., 2022, "Accurate Post-Training Quantization for Generative Pre-trained Transformers"): quantizes
/// a weight one input feature at a time and spreads each feature's rounding error over the features not yet quantized,
/// weighted by how the calibration activations correlate, so that the product x W (not W itself) stays close.
/// </summary>
/// <remarks>
/// <para>With H = X^T X over the calibration rows (<see cref="Int4ActivationStatistics.Gram"/>), dampened by
/// <see cref="Dampening"/> times its mean diagonal, and U the upper Cholesky factor of H^-1, feature i of every output
/// column is rounded and its error e = (w_i - q_i) / U[i, i] is subtracted, times U[i, j], from each later feature j.
/// Each block's scale and zero point are chosen by round-to-nearest's rule when the sweep reaches the block's first
/// feature, from the weights as updated so far ("static" groups in GPTQ's terms would fix them up front; choosing them
/// late lets the block absorb the errors pushed into it). Codes, scales and zero points have exactly
/// <see cref="RoundToNearestQuantizer"/>'s form, so the packing, kernels and export do not change.</para>
/// <para>Features the calibration never activated (a zero diagonal) keep an uncorrelated unit diagonal: their error
/// cannot be measured, so they are rounded to nearest. Without statistics the weight is rounded to nearest. Cost per
/// weight: a K x K Cholesky factorization and inverse, and N K^2 / 2 multiply-adds.</para>
/// </remarks>
public sealed class GptqQuantizer : IInt4Quantizer
{
    /// <summary>A quantizer with GPTQ's customary dampening, 1% of the mean diagonal.</summary>
    public GptqQuantizer(double dampening = 0.01)
    {
        if (!(dampening > 0 && dampening < 1)) throw new ArgumentOutOfRangeException(nameof(dampening), dampening, "Dampening must be in (0, 1).");
        Dampening = dampening;
    }

    /// <summary>The shared instance with the default dampening.</summary>
    public static GptqQuantizer Instance { get; } = new();

    /// <summary>Added to H's diagonal as a fraction of its mean: keeps H invertible and the error feedback stable.</summary>
    public double Dampening { get; }

    /// <inheritdoc/>
    public string Name => "gptq";

    /// <inheritdoc/>
    public Int4Codes Quantize(Int4QuantizationRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Activations is not { } stats || stats.Rows == 0) return RoundToNearestQuantizer.Instance.Quantize(request);
        int k = request.K, n = request.N, bs = request.BlockSize, blocks = (k + bs - 1) / bs;
        if (stats.K != k)
            throw new SquashException(ErrorCodes.Int4Calibration,
                $"The calibration statistics of weight '{request.Name}' have {stats.K} input features, the weight has {k}; recalibrate on this model.");
        var u = InverseCholeskyUpper(stats.Gram, k, Dampening);
        var codes = new byte[(long)n * k];
        var scales = new float[n * blocks];
        var zeros = new byte[n * blocks];
        Parallel.For(0, n, new ParallelOptions { MaxDegreeOfParallelism = k * (long)k * n > 1 << 22 ? -1 : 1 }, col =>
        {
            var w = new double[k];
            for (int i = 0; i < k; i++) w[i] = request.Columns[(long)col * k + i];
            var block = new float[bs];
            float scale = 0;
            int zero = 0;
            for (int i = 0; i < k; i++)
            {
                if (i % bs == 0)
                {
                    int length = Math.Min(bs, k - i);
                    for (int j = 0; j < length; j++) block[j] = (float)w[i + j];
                    (scale, zero) = ClippedBlock(block.AsSpan(0, length), u.AsSpan(), i, k, request);
                    scales[col * blocks + i / bs] = scale;
                    zeros[col * blocks + i / bs] = (byte)zero;
                }
                byte q = RoundToNearestQuantizer.Code((float)w[i], scale, zero);
                codes[(long)col * k + i] = q;
                // The kernels' dequantized weight, (q - zero) * scale in fp32.
                double error = (w[i] - (q - zero) * scale) / u[(long)i * k + i];
                var rest = w.AsSpan(i + 1);
                TensorPrimitives.MultiplyAdd(u.AsSpan((int)((long)i * k + i + 1), k - i - 1), -error, rest, rest);
            }
        });
        return new Int4Codes(codes, scales, zeros);
    }

    /// <summary>Shrink factors of the block's range tried by <see cref="ClippedBlock"/>: clipping the extremes a little
    /// often lowers the error of all the other values more than it adds to theirs.</summary>
    private static readonly float[] s_clipping = [1f, 0.95f, 0.9f, 0.85f, 0.8f, 0.75f, 0.7f];

    /// <summary>The block's scale and zero point: round-to-nearest's rule applied to the range shrunk by each factor of
    /// <see cref="s_clipping"/>, keeping the one with the least error sum (w - q)^2 / U[j, j]^2 (the weight GPTQ gives a
    /// feature's error: 1 / [H^-1]_jj, for the features not yet quantized).</summary>
    private static (float Scale, int Zero) ClippedBlock(ReadOnlySpan<float> values, ReadOnlySpan<double> u, int first, int k, Int4QuantizationRequest request)
    {
        Span<float> shrunk = stackalloc float[values.Length];
        (float Scale, int Zero) best = default;
        double bestError = double.PositiveInfinity;
        foreach (float factor in s_clipping)
        {
            for (int j = 0; j < values.Length; j++) shrunk[j] = values[j] * factor;
            var (scale, zero) = RoundToNearestQuantizer.BlockParameters(shrunk, request.Symmetric, request.Name);
            double error = 0;
            for (int j = 0; j < values.Length; j++)
            {
                double d = values[j] - (RoundToNearestQuantizer.Code(values[j], scale, zero) - zero) * scale;
                double pivot = u[(first + j) * k + first + j];
                error += d * d / (pivot * pivot);
            }
            if (error < bestError) (bestError, best) = (error, (scale, zero));
        }
        return best;
    }

    /// <summary>U, upper triangular with H^-1 = U^T U, for H = gram / its mean diagonal, dampened. Row-major K x K.</summary>
    internal static double[] InverseCholeskyUpper(double[] gram, int k, double dampening)
    {
        var h = (double[])gram.Clone();
        double mean = 0;
        for (int i = 0; i < k; i++)
        {
            if (h[(long)i * k + i] <= 0)
            {
                // Never activated: no correlation to exploit, unit weight.
                for (int j = 0; j < k; j++) h[(long)i * k + j] = h[(long)j * k + i] = 0;
                h[(long)i * k + i] = 1;
            }
            mean += h[(long)i * k + i];
        }
        mean /= k;
        // Scale-free: H and c H give the same feedback; normalizing keeps the numbers near 1.
        for (int i = 0; i < h.Length; i++) h[i] /= mean;
        for (double damp = dampening; ; damp *= 10)
        {
            var l = (double[])h.Clone();
            for (int i = 0; i < k; i++) l[(long)i * k + i] += damp;
            if (CholeskyLower(l, k))
            {
                var inverse = InverseFromCholesky(l, k);
                if (!CholeskyLower(inverse, k)) continue;
                // U = C^T where H^-1 = C C^T.
                var upper = new double[(long)k * k];
                for (int i = 0; i < k; i++)
                    for (int j = i; j < k; j++) upper[(long)i * k + j] = inverse[(long)j * k + i];
                return upper;
            }
            if (damp > 1) throw new SquashException(ErrorCodes.Int4Calibration, "The calibration statistics are not a valid Gram matrix (not positive semi-definite).");
        }
    }

    /// <summary>In place: the lower triangle becomes L with A = L L^T (the upper triangle is left as is). False when A is
    /// not positive definite.</summary>
    private static bool CholeskyLower(double[] a, int k)
    {
        for (int j = 0; j < k; j++)
        {
            var rowJ = a.AsSpan(j * k, j);
            double d = a[(long)j * k + j] - TensorPrimitives.Dot<double>(rowJ, rowJ);
            if (!(d > 0)) return false;
            d = Math.Sqrt(d);
            a[(long)j * k + j] = d;
            for (int i = j + 1; i < k; i++)
                a[(long)i * k + j] = (a[(long)i * k + j] - TensorPrimitives.Dot<double>(a.AsSpan(i * k, j), rowJ)) / d;
        }
        return true;
    }

    /// <summary>(L L^T)^-1 = L^-T L^-1, full and symmetric, from the lower factor in <paramref name="l"/>.</summary>
    private static double[] InverseFromCholesky(double[] l, int k)
    {
        // T = (L^-1)^T, upper triangular, by forward substitution: T[j, p] = (L^-1)[p, j]. Stored this way both sums
        // below run over contiguous rows (vectorized dot products).
        var t = new double[(long)k * k];
        for (int i = 0; i < k; i++)
        {
            double pivot = l[(long)i * k + i];
            t[(long)i * k + i] = 1 / pivot;
            var rowL = l.AsSpan(i * k, i);
            for (int j = 0; j < i; j++)
                t[(long)j * k + i] = -TensorPrimitives.Dot<double>(rowL[j..], t.AsSpan(j * k + j, i - j)) / pivot;
        }
        // (L^-T L^-1)[a, b] = sum over p >= max(a, b) of T[a, p] T[b, p].
        var result = new double[(long)k * k];
        for (int a = 0; a < k; a++)
            for (int b = 0; b <= a; b++)
                result[(long)a * k + b] = result[(long)b * k + a] = TensorPrimitives.Dot<double>(t.AsSpan(a * k + a, k - a), t.AsSpan(b * k + a, k - a));
        return result;
    }
}
