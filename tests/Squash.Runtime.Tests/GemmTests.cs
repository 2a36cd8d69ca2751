using Squash.Runtime.Kernels;

namespace Squash.Runtime.Tests;

public sealed class GemmTests
{
    /// <summary>Against a double-precision triple loop. Tolerance: 1e-5 relative to the sum of |a*b| terms, a bound
    /// on fp32 rounding error for K up to a few hundred in any summation order.</summary>
    [Theory]
    [InlineData(false, false, 1, 1, 1)]
    [InlineData(false, false, 7, 13, 5)]
    [InlineData(true, false, 17, 33, 65)]
    [InlineData(false, true, 64, 48, 100)]
    [InlineData(true, true, 31, 129, 257)]
    public void MatchesDoublePrecisionReference(bool transA, bool transB, int m, int n, int k)
    {
        var rng = new Random(m * 1000 + n * 10 + k);
        var a = RandomArray(rng, m * k);
        var b = RandomArray(rng, k * n);
        var c = RandomArray(rng, m * n);
        var expected = new double[m * n];
        var bound = new double[m * n];
        const float alpha = 0.75f, beta = 0.5f;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = 0, abs = 0;
                for (int p = 0; p < k; p++)
                {
                    double av = transA ? a[p * m + i] : a[i * k + p];
                    double bv = transB ? b[j * k + p] : b[p * n + j];
                    sum += av * bv;
                    abs += Math.Abs(av * bv);
                }
                expected[i * n + j] = alpha * sum + beta * c[i * n + j];
                bound[i * n + j] = 1e-5 * (Math.Abs(alpha) * abs + Math.Abs(beta * c[i * n + j])) + 1e-6;
            }
        Gemm.Multiply(new KernelContext(1), transA, transB, m, n, k, alpha, a, transA ? m : k, b, transB ? k : n, beta, c, n);
        for (int i = 0; i < c.Length; i++)
            Assert.True(Math.Abs(c[i] - expected[i]) <= bound[i], $"C[{i}] = {c[i]}, expected {expected[i]}");
    }

    private static float[] RandomArray(Random rng, int n)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        return x;
    }
}
