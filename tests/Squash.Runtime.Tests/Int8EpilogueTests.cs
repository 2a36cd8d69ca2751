using System.Runtime.Intrinsics;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Tests;

/// <summary>The fused epilogues of the int8 GEMM against scalar references, and round-half-to-even on constructed ties
/// at every vector width.</summary>
public sealed class Int8EpilogueTests
{
    /// <summary>Lane widths: 512, 256, 128 (each runs its vector body where the machine has it, else the scalar loop).</summary>
    public static TheoryData<int> Widths() => new() { 512, 256, 128 };

    /// <summary>Requantization: <c>clamp(roundHalfEven((float)acc * M[c]) + zy, min, max)</c>, channels on rows and on
    /// columns, per-channel multipliers, int32 bias, a fused ReLU range, and values past both ends of uint8.</summary>
    [Theory]
    [MemberData(nameof(Int8GemmTests.Kernels), MemberType = typeof(Int8GemmTests))]
    public void RequantizeMatchesScalarReference(int kernelKind)
    {
        var kernel = Int8Kernel.Create((Int8KernelKind)kernelKind);
        var rng = new Random(21 + kernelKind);
        foreach (bool weightsLeft in new[] { true, false })
            foreach (var (m, n, k) in new[] { (kernel.Mr + 3, 2 * kernel.Nr + 7, 75), (37, 45, 300), (1, 1, 1) })
            {
                var (x, ldx, w, ldw, _, ldc, packed) = Int8GemmTests.Operands(rng, kernel, m, n, k, weightsLeft, false);
                int channels = packed.Channels;
                var bias = Int8GemmTests.RandomInts(rng, channels);
                var multipliers = new float[channels];
                // Scales that put outputs on both sides of the clamp.
                for (int i = 0; i < channels; i++) multipliers[i] = (float)(rng.NextDouble() * 2e-3 + 1e-5);
                byte zx = (byte)rng.Next(256), zy = (byte)rng.Next(40, 200);
                foreach (var (min, max) in new[] { ((byte)0, (byte)255), (zy, (byte)255), ((byte)(zy - 20), (byte)(zy + 30)) })
                {
                    var epilogue = Int8Epilogue.Requantize(packed.WeightSums, zx, bias, multipliers, zy, min, max);
                    var c = new byte[m * ldc];
                    Int8GemmTests.Multiply(weightsLeft, new KernelContext(1), m, n, x, ldx, packed, epilogue, c, ldc);
                    var acc = Int8GemmTests.Reference(m, n, k, x, ldx, w, ldw, weightsLeft, false, zx, bias);
                    for (int i = 0; i < m; i++)
                        for (int j = 0; j < n; j++)
                        {
                            float multiplier = multipliers[weightsLeft ? i : j];
                            double rounded = Math.Round((double)((float)acc[i * n + j] * multiplier), MidpointRounding.ToEven);
                            byte expected = (byte)Math.Clamp(rounded + zy, min, max);
                            Assert.True(expected == c[i * ldc + j],
                                $"{kernel.Kind} left={weightsLeft} C[{i},{j}] = {c[i * ldc + j]}, expected {expected} (acc {acc[i * n + j]})");
                        }
                }
            }
    }

    /// <summary>Dequantization: <c>clamp(fma((float)acc, scale[c], bias[c]), min, max)</c> in fp32, bit for bit, with and
    /// without a bias.</summary>
    [Theory]
    [MemberData(nameof(Int8GemmTests.Kernels), MemberType = typeof(Int8GemmTests))]
    public void DequantizeMatchesScalarReference(int kernelKind)
    {
        var kernel = Int8Kernel.Create((Int8KernelKind)kernelKind);
        var rng = new Random(31 + kernelKind);
        foreach (bool weightsLeft in new[] { true, false })
        {
            int m = kernel.Mr * 2 + 1, n = kernel.Nr + 5, k = 130;
            var (x, ldx, w, ldw, _, ldc, packed) = Int8GemmTests.Operands(rng, kernel, m, n, k, weightsLeft, false);
            int channels = packed.Channels;
            var scales = new float[channels];
            var bias = new float[channels];
            for (int i = 0; i < channels; i++)
            {
                scales[i] = (float)(rng.NextDouble() * 1e-3);
                bias[i] = (float)(rng.NextDouble() * 4 - 2);
            }
            byte zx = (byte)rng.Next(256);
            foreach (var (min, max, withBias) in new[] { (float.NegativeInfinity, float.PositiveInfinity, true), (0f, 6f, true), (-1f, 1f, false) })
            {
                if (!withBias) Array.Clear(bias);
                var epilogue = Int8Epilogue.Dequantize(packed.WeightSums, zx, scales, withBias ? bias : [], min, max);
                var c = new float[m * ldc];
                Int8GemmTests.Multiply(weightsLeft, new KernelContext(1), m, n, x, ldx, packed, epilogue, c, ldc);
                var acc = Int8GemmTests.Reference(m, n, k, x, ldx, w, ldw, weightsLeft, false, zx, []);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++)
                    {
                        int channel = weightsLeft ? i : j;
                        float expected = Math.Clamp(MathF.FusedMultiplyAdd(acc[i * n + j], scales[channel], bias[channel]), min, max);
                        Assert.Equal(expected, c[i * ldc + j]);
                    }
            }
        }
    }

    /// <summary>Ties round to even at every vector width and in the scalar tail: with multiplier 0.5 the odd sums
    /// -9..9 land exactly on halves. The sums are repeated over 3 x 16 + 5 lanes so every position of every width sees
    /// them (the last vector overlapping the one before); 3 sums are shorter than any vector.</summary>
    [Theory]
    [InlineData(512, 53)]
    [InlineData(256, 53)]
    [InlineData(128, 53)]
    [InlineData(512, 3)]
    public void RequantizeRoundsTiesToEven(int width, int count)
    {
        int[] odd = [-9, -7, -5, -3, -1, 1, 3, 5, 7, 9];
        // roundHalfEven(s / 2): -4.5 -> -4, -3.5 -> -4, -2.5 -> -2, -1.5 -> -2, -0.5 -> 0, 0.5 -> 0, 1.5 -> 2, ...
        int[] rounded = [-4, -4, -2, -2, 0, 0, 2, 2, 4, 4];
        var sums = new int[count];
        var expected = new byte[count];
        for (int i = 0; i < count; i++)
        {
            // The offset (bias - zx * sum w) is 1000: the sums are stored 1000 lower.
            sums[i] = odd[i % odd.Length] - 1000;
            expected[i] = (byte)(100 + rounded[i % odd.Length]);
        }
        var epilogue = Int8Epilogue.Requantize([0], 0, [1000], [0.5f], 100);
        var output = new byte[count];
        StoreRow(width, epilogue, sums, output);
        Assert.Equal(expected, output);
    }

    /// <summary>Saturation at both ends and the clamp range, at every width: sums far beyond uint8 saturate instead of
    /// wrapping, including ones whose fp32 conversion rounds (beyond 2^24).</summary>
    [Theory]
    [InlineData(512, 37)]
    [InlineData(256, 37)]
    [InlineData(128, 37)]
    [InlineData(512, 7)]
    public void RequantizeSaturates(int width, int count)
    {
        int[] values = [int.MaxValue - 5000, int.MinValue + 5000, 1 << 25, -(1 << 25) - 1, 300, -300, 0, 27];
        var sums = new int[count];
        var expected = new byte[count];
        var clamped = new byte[count];
        for (int i = 0; i < count; i++)
        {
            int v = values[i % values.Length];
            sums[i] = v;
            int q = (int)Math.Clamp(Math.Round((double)(float)v, MidpointRounding.ToEven) + 10, 0, 255);
            expected[i] = (byte)q;
            clamped[i] = (byte)Math.Clamp(q, 10, 200);
        }
        var output = new byte[count];
        StoreRow(width, Int8Epilogue.Requantize([0], 0, [], [1f], 10), sums, output);
        Assert.Equal(expected, output);
        StoreRow(width, Int8Epilogue.Requantize([0], 0, [], [1f], 10, 10, 200), sums, output);
        Assert.Equal(clamped, output);
    }

    /// <summary>The weight-sum correction: offset = bias - zx * sum(w), also when it wraps int32 arithmetic.</summary>
    [Fact]
    public void OffsetsFoldZeroPointAndBias()
    {
        var epilogue = Int8Epilogue.Integer([10, -3, 0], 200, [5, 6, int.MinValue + 1]);
        Assert.Equal(new[] { 5 - 2000, 6 + 600, int.MinValue + 1 }, epilogue.Offsets.ToArray());
        Assert.Throws<ArgumentException>(() => Int8Epilogue.Requantize([1, 2], 0, [], [1f, 2f, 3f], 0));
        Assert.Throws<ArgumentException>(() => Int8Epilogue.Requantize([1, 2], 0, [1], [1f], 0));
        Assert.Throws<ArgumentException>(() => Int8Epilogue.Requantize([1], 0, [], [1f], 0, 200, 100));
        Assert.Equal(0.5f * 0.25f / 0.125f, Int8Epilogue.Multiplier(0.5f, 0.25f, 0.125f));
    }

    /// <summary>One row of <paramref name="sums"/> through the requantizing store at the given lane width, one channel
    /// on the row.</summary>
    private static void StoreRow(int width, Int8Epilogue epilogue, int[] sums, byte[] output)
    {
        switch (width)
        {
            case 512: Int8Store.StoreRow<Vector512<int>, Vector512<float>, Quantize512, byte>(epilogue, sums, output); break;
            case 256: Int8Store.StoreRow<Vector256<int>, Vector256<float>, Quantize256, byte>(epilogue, sums, output); break;
            default: Int8Store.StoreRow<Vector128<int>, Vector128<float>, Quantize128, byte>(epilogue, sums, output); break;
        }
    }
}
