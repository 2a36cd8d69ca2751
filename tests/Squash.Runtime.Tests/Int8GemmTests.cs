using System.Runtime.Intrinsics;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Tests;

/// <summary>The int8 GEMM against exact scalar references: int32 results must match bit for bit.</summary>
public sealed class Int8GemmTests
{
    /// <summary>Every int8 micro-kernel this machine runs (the portable one always).</summary>
    public static TheoryData<int> Kernels()
    {
        var data = new TheoryData<int>();
        foreach (var kind in Enum.GetValues<Int8KernelKind>())
            if (Int8Kernel.IsSupported(kind)) data.Add((int)kind);
        return data;
    }

    /// <summary>Raw and zero-point-corrected int32 sums, weights on both sides (and transposed on the right), shapes at
    /// every tile edge of the kernel, depths around the quad padding, and strides wider than the rows.</summary>
    [Theory]
    [MemberData(nameof(Kernels))]
    public void IntegerSumsMatchTripleLoopOnOddShapes(int kernelKind)
    {
        var kernel = Int8Kernel.Create((Int8KernelKind)kernelKind);
        var rng = new Random(11 + kernelKind);
        int[] ms = [1, 2, kernel.Mr - 1, kernel.Mr, kernel.Mr + 1, 2 * kernel.Mr + 3, 37];
        int[] ns = [1, 3, kernel.Nr - 1, kernel.Nr, kernel.Nr + 1, 2 * kernel.Nr + 5, 15, 17, 100];
        int[] ks = [0, 1, 2, 3, 4, 5, 7, 8, 33, 129, 578];
        for (int t = 0; t < 60; t++)
        {
            int m = ms[rng.Next(ms.Length)], n = ns[rng.Next(ns.Length)], k = ks[rng.Next(ks.Length)];
            bool weightsLeft = t % 3 == 0, transposed = t % 3 == 2;
            byte zx = (byte)(t % 4 == 0 ? 0 : rng.Next(256));
            int channels = weightsLeft ? m : n;
            int[] bias = t % 2 == 0 ? [] : RandomInts(rng, channels);
            var (x, ldx, w, ldw, c, ldc, packed) = Operands(rng, kernel, m, n, k, weightsLeft, transposed);
            var epilogue = Int8Epilogue.Integer(packed.WeightSums, zx, bias);
            var original = (int[])c.Clone();
            Multiply(weightsLeft, new KernelContext(1), m, n, x, ldx, packed, epilogue, c, ldc);
            var expected = Reference(m, n, k, x, ldx, w, ldw, weightsLeft, transposed, zx, bias);
            string what = $"{kernel.Kind} m={m} n={n} k={k} left={weightsLeft} transposed={transposed} zx={zx}";
            for (int i = 0; i < m; i++)
            {
                for (int j = 0; j < n; j++)
                    Assert.True(expected[i * n + j] == c[i * ldc + j], $"{what}: C[{i},{j}] = {c[i * ldc + j]}, expected {expected[i * n + j]}");
                // The padding between rows of C is never written.
                for (int j = n; j < ldc && i * ldc + j < c.Length; j++) Assert.Equal(original[i * ldc + j], c[i * ldc + j]);
            }
        }
    }

    /// <summary>The worst cases of VPMADDUBSW's int16 saturation: activations 255 with weights +-64 in every pair, so
    /// each pair sum is +-32640; a kernel that saturated anywhere would be off.</summary>
    [Theory]
    [MemberData(nameof(Kernels))]
    public void ExtremeValuesDoNotSaturate(int kernelKind)
    {
        var kernel = Int8Kernel.Create((Int8KernelKind)kernelKind);
        int m = kernel.Mr + 1, n = kernel.Nr + 3, k = 1000;
        foreach (sbyte weight in new sbyte[] { 64, -64 })
            foreach (bool weightsLeft in new[] { true, false })
            {
                var x = Enumerable.Repeat((byte)255, (m + n) * k).ToArray();
                var w = Enumerable.Repeat(weight, m * k + k * n).ToArray();
                var packed = weightsLeft ? Int8PackedWeights.PackLeft(w, k, m, k, kernel) : Int8PackedWeights.PackRight(w, n, false, k, n, kernel);
                var c = new int[m * n];
                var epilogue = Int8Epilogue.Integer(packed.WeightSums, 0, []);
                Multiply(weightsLeft, new KernelContext(1), m, n, x, weightsLeft ? n : k, packed, epilogue, c, n);
                Assert.All(c, value => Assert.Equal(255 * weight * k, value));
                // With the zero point at 255 every (x - zx) is 0.
                epilogue = Int8Epilogue.Integer(packed.WeightSums, 255, []);
                Multiply(weightsLeft, new KernelContext(1), m, n, x, weightsLeft ? n : k, packed, epilogue, c, n);
                Assert.All(c, value => Assert.Equal(0, value));
            }
    }

    /// <summary>Several threads split the work differently but give the same sums.</summary>
    [Fact]
    public void ThreadsGiveTheSameResult()
    {
        var kernel = Int8Kernel.Best;
        var rng = new Random(5);
        foreach (bool weightsLeft in new[] { true, false })
        {
            int m = 70, n = 300, k = 200;
            var (x, ldx, _, _, c, ldc, packed) = Operands(rng, kernel, m, n, k, weightsLeft, false);
            var epilogue = Int8Epilogue.Integer(packed.WeightSums, 7, RandomInts(rng, packed.Channels));
            Multiply(weightsLeft, new KernelContext(1), m, n, x, ldx, packed, epilogue, c, ldc);
            var single = (int[])c.Clone();
            Array.Clear(c);
            Multiply(weightsLeft, new KernelContext(4), m, n, x, ldx, packed, epilogue, c, ldc);
            Assert.Equal(single, c);
        }
    }

    /// <summary>The portable quad dot product (for machines without SSSE3) against scalar sums, over the full byte
    /// ranges (it never saturates).</summary>
    [Fact]
    public void PortableDotProductIsExact()
    {
        var rng = new Random(3);
        for (int t = 0; t < 1000; t++)
        {
            var u = new byte[16];
            var s = new sbyte[16];
            rng.NextBytes(u);
            for (int i = 0; i < 16; i++) s[i] = (sbyte)rng.Next(-128, 128);
            var acc = Vector128.Create(rng.Next(), rng.Next(), -rng.Next(), 0);
            var result = Int8Dot128.DotAddPortable(acc, Vector128.Create(u).AsInt32(), Vector128.Create(s).AsInt32());
            for (int lane = 0; lane < 4; lane++)
            {
                int expected = acc[lane];
                for (int j = 0; j < 4; j++) expected += u[4 * lane + j] * s[4 * lane + j];
                Assert.Equal(expected, result[lane]);
            }
        }
    }

    [Fact]
    public void WeightsOutsideTheExactRangeAreRejected()
    {
        sbyte[] w = [1, 2, 65, 4];
        Assert.False(Int8PackedWeights.IsInRange(w));
        Assert.Throws<ArgumentException>(() => Int8PackedWeights.PackLeft(w, 4, 1, 4));
        Assert.Throws<ArgumentException>(() => Int8PackedWeights.PackRight(new sbyte[] { -65 }, 1, false, 1, 1));
        Assert.True(Int8PackedWeights.IsInRange(new sbyte[] { -64, 64, 0 }));
    }

    [Fact]
    public void MismatchedEpilogueIsRejected()
    {
        var packed = Int8PackedWeights.PackRight(new sbyte[6], 3, false, 2, 3);
        var integer = Int8Epilogue.Integer(packed.WeightSums, 0, []);
        var c = new float[3];
        Assert.Throws<ArgumentException>(() => Int8Gemm.Multiply<float>(new KernelContext(1), 1, new byte[2], 2, packed, integer, c, 3));
        var other = Int8Epilogue.Integer(new int[4], 0, []);
        Assert.Throws<ArgumentException>(() => Int8Gemm.Multiply<int>(new KernelContext(1), 1, new byte[2], 2, packed, other, new int[3], 3));
        Assert.Throws<ArgumentException>(() => Int8Gemm.Multiply<int>(new KernelContext(1), packed, 1, new byte[2], 1, integer, new int[3], 1));
    }

    /// <summary>Random operands: x uint8 over the full range, w int8 in [-64, 64], C filled with a marker.</summary>
    internal static (byte[] X, int Ldx, sbyte[] W, int Ldw, int[] C, int Ldc, Int8PackedWeights Packed) Operands(
        Random rng, Int8Kernel kernel, int m, int n, int k, bool weightsLeft, bool transposed)
    {
        // Weights left: W [m,k], X [k,n]. Weights right: X [m,k], W [k,n] or [n,k] transposed.
        int ldx = (weightsLeft ? n : k) + rng.Next(3);
        int ldw = (weightsLeft || transposed ? k : n) + rng.Next(3);
        int ldc = n + rng.Next(3);
        var x = new byte[(weightsLeft ? k : m) * ldx];
        rng.NextBytes(x);
        var w = new sbyte[(weightsLeft ? m : transposed ? n : k) * ldw];
        for (int i = 0; i < w.Length; i++) w[i] = (sbyte)rng.Next(-64, 65);
        var c = new int[m * ldc];
        Array.Fill(c, 0x5A5A5A5A);
        var packed = weightsLeft ? Int8PackedWeights.PackLeft(w, ldw, m, k, kernel) : Int8PackedWeights.PackRight(w, ldw, transposed, k, n, kernel);
        return (x, ldx, w, ldw, c, ldc, packed);
    }

    internal static void Multiply<T>(bool weightsLeft, KernelContext context, int m, int n, byte[] x, int ldx, Int8PackedWeights packed,
        Int8Epilogue epilogue, T[] c, int ldc) where T : unmanaged
    {
        if (weightsLeft) Int8Gemm.Multiply<T>(context, packed, n, x, ldx, epilogue, c, ldc);
        else Int8Gemm.Multiply<T>(context, m, x, ldx, packed, epilogue, c, ldc);
    }

    /// <summary>The triple loop: C[i,j] = sum over p of (x - zx) * w + bias[channel], in int64 (checked to fit int32).</summary>
    internal static int[] Reference(int m, int n, int k, byte[] x, int ldx, sbyte[] w, int ldw, bool weightsLeft, bool transposed,
        byte zx, int[] bias)
    {
        var c = new int[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                long sum = bias.Length == 0 ? 0 : bias[weightsLeft ? i : j];
                for (int p = 0; p < k; p++)
                {
                    int xv = weightsLeft ? x[p * ldx + j] : x[i * ldx + p];
                    int wv = weightsLeft ? w[i * ldw + p] : transposed ? w[j * ldw + p] : w[p * ldw + j];
                    sum += (xv - zx) * wv;
                }
                c[i * n + j] = checked((int)sum);
            }
        return c;
    }

    internal static int[] RandomInts(Random rng, int count)
    {
        var values = new int[count];
        for (int i = 0; i < count; i++) values[i] = rng.Next(-100_000, 100_000);
        return values;
    }
}
