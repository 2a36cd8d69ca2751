using Squash.Runtime.Kernels;

namespace Squash.Runtime.Tests;

public sealed class GemmTests
{
    /// <summary>Every micro-kernel this machine runs (the portable one always).</summary>
    public static TheoryData<int> Kernels()
    {
        var data = new TheoryData<int>();
        foreach (var kind in Enum.GetValues<GemmKernelKind>())
            if (GemmKernel.IsSupported(kind)) data.Add((int)kind);
        return data;
    }

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
        const float alpha = 0.75f, beta = 0.5f;
        var (expected, bound) = Reference(transA, transB, m, n, k, alpha, beta, a, transA ? m : k, b, transB ? k : n, c, n, null, null, default);
        Gemm.Multiply(new KernelContext(1), transA, transB, m, n, k, alpha, a, transA ? m : k, b, transB ? k : n, beta, c, n);
        AssertClose(expected, bound, c, m, n, n);
    }

    /// <summary>Every transpose combination, tile edges in M and N at every kernel's width, K across block borders,
    /// and leading dimensions larger than the rows.</summary>
    [Theory]
    [MemberData(nameof(Kernels))]
    public void EveryKernelMatchesReferenceOnOddShapes(int kernelKind)
    {
        var kind = (GemmKernelKind)kernelKind;
        var kernel = GemmKernel.Create(kind);
        var rng = new Random(42 + (int)kind);
        int[] ms = [1, 2, kernel.Mr - 1, kernel.Mr, kernel.Mr + 1, 2 * kernel.Mr + 3, kernel.Mc + 5];
        int[] ns = [1, 3, kernel.Nr - 1, kernel.Nr, kernel.Nr + 1, 2 * kernel.Nr + 5, kernel.Nc + 17];
        int[] ks = [1, 7, GemmKernel.MaxKc, GemmKernel.MaxKc + 9, 3 * GemmKernel.MaxKc - 1];
        foreach (bool transA in new[] { false, true })
            foreach (bool transB in new[] { false, true })
                for (int t = 0; t < 10; t++)
                {
                    int m = ms[rng.Next(ms.Length)], n = ns[rng.Next(ns.Length)], k = ks[rng.Next(ks.Length)];
                    int lda = (transA ? m : k) + rng.Next(3), ldb = (transB ? k : n) + rng.Next(3), ldc = n + rng.Next(3);
                    var a = RandomArray(rng, (transA ? k : m) * lda);
                    var b = RandomArray(rng, (transB ? n : k) * ldb);
                    var c = RandomArray(rng, m * ldc);
                    float alpha = t % 3 == 0 ? 1 : 1.5f, beta = t % 2 == 0 ? 0 : 0.25f;
                    var (expected, bound) = Reference(transA, transB, m, n, k, alpha, beta, a, lda, b, ldb, c, ldc, null, null, default);
                    var original = (float[])c.Clone();
                    Gemm.Multiply(new KernelContext(1), kernel, transA, transB, m, n, k, a, lda, b, ldb, c, ldc,
                        new GemmEpilogue { Alpha = alpha, Beta = beta });
                    AssertClose(expected, bound, c, m, n, ldc, $"{kind} transA={transA} transB={transB} m={m} n={n} k={k}");
                    // The padding between rows of C is never written.
                    for (int i = 0; i < m; i++)
                        for (int j = n; j < ldc && i * ldc + j < c.Length; j++)
                            Assert.Equal(original[i * ldc + j], c[i * ldc + j]);
                }
    }

    /// <summary>Pre-packed left and right operands give the same results as packing on the fly, with every
    /// epilogue feature on: biases on the first K block, activation only after the last.</summary>
    [Theory]
    [MemberData(nameof(Kernels))]
    public void PackedOperandsAndEpilogueMatchReference(int kernelKind)
    {
        var kind = (GemmKernelKind)kernelKind;
        var kernel = GemmKernel.Create(kind);
        var rng = new Random(7);
        foreach (var (m, n, k) in new[] { (5, 37, 3), (kernel.Mr * 3 + 1, kernel.Nr * 2 + 3, GemmKernel.MaxKc * 2 + 1), (33, 70, 300) })
            foreach (bool trans in new[] { false, true })
            {
                var a = RandomArray(rng, m * k);
                var b = RandomArray(rng, k * n);
                var rowBias = RandomArray(rng, m);
                var columnBias = RandomArray(rng, n);
                var activation = trans ? GemmActivation.Relu : GemmActivation.HardSwish;
                int lda = trans ? m : k, ldb = trans ? k : n;
                var (expected, bound) = Reference(trans, trans, m, n, k, 1, 0, a, lda, b, ldb, new float[m * n], n, rowBias, columnBias, activation);
                var epilogue = new GemmEpilogue { RowBias = rowBias, ColumnBias = columnBias, Activation = activation };

                var c = new float[m * n];
                c.AsSpan().Fill(float.NaN); // beta = 0: C must not be read
                Gemm.Multiply(new KernelContext(1), PackedMatrix.PackLeft(a, lda, trans, m, k, kernel), trans, n, b, ldb, c, n, epilogue);
                AssertClose(expected, bound, c, m, n, n, $"{kind} packed A m={m} n={n} k={k}");

                c.AsSpan().Fill(float.NaN);
                Gemm.Multiply(new KernelContext(1), trans, m, a, lda, PackedMatrix.PackRight(b, ldb, trans, k, n, kernel), c, n, epilogue);
                AssertClose(expected, bound, c, m, n, n, $"{kind} packed B m={m} n={n} k={k}");
            }
    }

    /// <summary>Several threads split the work without changing any result bit (each element is summed by one
    /// thread in the same order).</summary>
    [Fact]
    public void ThreadsGiveIdenticalResults()
    {
        var rng = new Random(3);
        foreach (var (m, n, k) in new[] { (300, 200, 100), (3, 2000, 300), (2000, 5, 150) })
        {
            var a = RandomArray(rng, m * k);
            var b = RandomArray(rng, k * n);
            var one = new float[m * n];
            var many = new float[m * n];
            Gemm.Multiply(new KernelContext(1), false, true, m, n, k, 1, a, k, b, k, 0, one, n);
            Gemm.Multiply(new KernelContext(4), false, true, m, n, k, 1, a, k, b, k, 0, many, n);
            Assert.Equal(one, many);
        }
    }

    /// <summary>An empty sum leaves beta * C plus the biases.</summary>
    [Fact]
    public void ZeroDepthAppliesOnlyTheEpilogue()
    {
        var c = new float[] { 1, 2, 3, 4, 5, 6 };
        Gemm.Multiply(new KernelContext(1), false, false, 2, 3, 0, [], 0, [], 3, c, 3,
            new GemmEpilogue { Beta = 2, RowBias = [10, 20] });
        Assert.Equal(new float[] { 12, 14, 16, 28, 30, 32 }, c);
    }

    [Fact]
    public void RejectsOperandsThatDoNotFit()
    {
        var c = new float[4];
        Assert.Throws<ArgumentException>(() =>
            Gemm.Multiply(new KernelContext(1), false, false, 2, 2, 3, 1, new float[5], 3, new float[6], 2, 0, c, 2));
        Assert.Throws<ArgumentException>(() =>
            Gemm.Multiply(new KernelContext(1), false, false, 2, 2, 3, 1, new float[6], 2, new float[6], 2, 0, c, 2));
    }

    private static (double[] Expected, double[] Bound) Reference(bool transA, bool transB, int m, int n, int k, float alpha, float beta,
        float[] a, int lda, float[] b, int ldb, float[] c, int ldc, float[]? rowBias, float[]? columnBias, GemmActivation activation)
    {
        var expected = new double[m * n];
        var bound = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = 0, abs = 0;
                for (int p = 0; p < k; p++)
                {
                    double av = transA ? a[p * lda + i] : a[i * lda + p];
                    double bv = transB ? b[j * ldb + p] : b[p * ldb + j];
                    sum += av * bv;
                    abs += Math.Abs(av * bv);
                }
                double v = alpha * sum + (beta == 0 ? 0 : beta * c[i * ldc + j]) + (rowBias?[i] ?? 0) + (columnBias?[j] ?? 0);
                expected[i * n + j] = activation.Apply((float)v);
                bound[i * n + j] = 1e-5 * (Math.Abs(alpha) * abs + Math.Abs(v)) + 1e-6;
            }
        return (expected, bound);
    }

    private static void AssertClose(double[] expected, double[] bound, float[] c, int m, int n, int ldc, string what = "")
    {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double e = expected[i * n + j], got = c[i * ldc + j];
                Assert.True(Math.Abs(got - e) <= bound[i * n + j], $"{what}: C[{i},{j}] = {got}, expected {e}");
            }
    }

    private static float[] RandomArray(Random rng, int n)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        return x;
    }
}
