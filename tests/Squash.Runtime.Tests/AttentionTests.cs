using Squash.Runtime.Kernels;

namespace Squash.Runtime.Tests;

/// <summary>
/// The flash-style attention kernel against a naive reference that materializes the scores, applies the mask, takes
/// the softmax and multiplies by V, all in double.
/// </summary>
/// <remarks>Tolerance 1e-5 absolute: the outputs are convex combinations of values in [-1, 1], the scores are O(1),
/// and fp32 rounding of the dot products (D up to 64), exponentials and sums stays near 1e-6; a wrong tile rescaling,
/// head mapping or mask offset moves outputs by 1e-2 or more.</remarks>
public sealed class AttentionTests
{
    private static float[] Random(Random rng, int n)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        return x;
    }

    /// <summary>softmax(scale * q k^T + mask) v in double; mask(b, h, i, j) gives null (no mask), bool or an additive float.</summary>
    private static double[] Reference(AttentionShape s, float scale, float[] q, float[] k, float[] v, Func<int, int, int, int, double>? additive)
    {
        var result = new double[s.Batch * s.QueryHeads * s.QueryLength * s.ValueSize];
        var scores = new double[s.KeyLength];
        for (int b = 0; b < s.Batch; b++)
            for (int h = 0; h < s.QueryHeads; h++)
                for (int i = 0; i < s.QueryLength; i++)
                {
                    int kvh = h / s.Group;
                    int row = (b * s.QueryHeads + h) * s.QueryLength + i;
                    double max = double.NegativeInfinity;
                    for (int j = 0; j < s.KeyLength; j++)
                    {
                        double dot = 0;
                        for (int p = 0; p < s.HeadSize; p++)
                            dot += (double)q[row * s.HeadSize + p] * k[((b * s.KeyValueHeads + kvh) * s.KeyLength + j) * s.HeadSize + p];
                        scores[j] = dot * scale + (additive?.Invoke(b, h, i, j) ?? 0);
                        max = Math.Max(max, scores[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < s.KeyLength; j++) sum += scores[j] = Math.Exp(scores[j] - max);
                    for (int p = 0; p < s.ValueSize; p++)
                    {
                        double acc = 0;
                        for (int j = 0; j < s.KeyLength; j++)
                            acc += scores[j] / sum * v[((b * s.KeyValueHeads + kvh) * s.KeyLength + j) * s.ValueSize + p];
                        result[row * s.ValueSize + p] = acc;
                    }
                }
        return result;
    }

    [Theory]
    [InlineData(1, 8, 4, 1, 37, 8, 8, 1)]      // one decode step, grouped heads, one partial tile
    [InlineData(1, 4, 4, 5, 200, 16, 16, 1)]   // several tiles
    [InlineData(2, 6, 2, 3, 130, 64, 32, 2)]   // batch, three query heads per kv head, Dv != D, two threads
    public void MatchesNaiveReference_WithCausalBooleanAndAdditiveMasks(int batch, int heads, int kvHeads, int sq, int t, int d, int dv, int threads)
    {
        var rng = new Random(batch * 1000 + heads * 100 + t);
        var shape = new AttentionShape(batch, heads, kvHeads, sq, t, d, dv);
        var q = Random(rng, batch * heads * sq * d);
        var k = Random(rng, batch * kvHeads * t * d);
        var v = Random(rng, batch * kvHeads * t * dv);
        float scale = 1f / MathF.Sqrt(d);
        var context = new KernelContext(threads);
        var output = new float[batch * heads * sq * dv];

        // No mask.
        FlashAttention.Compute(context, shape, scale, q, k, v, AttentionMaskKind.None, default, default, output);
        AssertClose(Reference(shape, scale, q, k, v, null), output, "no mask");

        // A causal boolean mask [Sq, T] for queries at positions t - sq .. t - 1, broadcast over batch and heads.
        int past = t - sq;
        var causal = new byte[sq * t];
        for (int i = 0; i < sq; i++)
            for (int j = 0; j < t; j++) causal[i * t + j] = j <= past + i ? (byte)1 : (byte)0;
        FlashAttention.Compute(context, shape, scale, q, k, v, AttentionMaskKind.Boolean, causal, [0, 0, t, 1], output);
        AssertClose(Reference(shape, scale, q, k, v, (_, _, i, j) => j <= past + i ? 0 : double.NegativeInfinity), output, "causal");

        // An additive float mask per head [1, Hq, 1, T].
        var bias = new float[heads * t];
        for (int i = 0; i < bias.Length; i++) bias[i] = (float)(rng.NextDouble() - 0.5);
        var biasBytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(bias.AsSpan()).ToArray();
        FlashAttention.Compute(context, shape, scale, q, k, v, AttentionMaskKind.Additive, biasBytes, [0, t, 0, 1], output);
        AssertClose(Reference(shape, scale, q, k, v, (_, h, _, j) => bias[h * t + j]), output, "additive");
    }

    [Fact]
    public void FullyMaskedRow_IsNaN_AsTheUnfusedSoftmaxGives()
    {
        var shape = new AttentionShape(1, 1, 1, 2, 3, 4, 4);
        var rng = new Random(3);
        var output = new float[8];
        byte[] mask = [0, 0, 0, 1, 0, 1];
        FlashAttention.Compute(new KernelContext(1), shape, 0.5f, Random(rng, 8), Random(rng, 12), Random(rng, 12), AttentionMaskKind.Boolean, mask, [0, 0, 3, 1], output);
        Assert.All(output[..4], x => Assert.True(float.IsNaN(x)));
        Assert.All(output[4..], x => Assert.False(float.IsNaN(x)));
    }

    private static void AssertClose(double[] expected, float[] actual, string what)
    {
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5, $"{what}: output[{i}] = {actual[i]}, expected {expected[i]}");
    }
}
