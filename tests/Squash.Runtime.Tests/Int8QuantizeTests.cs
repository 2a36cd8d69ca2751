using System.Runtime.Intrinsics;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Tests;

/// <summary>Quantize, dequantize, requantize and the quantized Add against scalar references, at every vector width.</summary>
public sealed class Int8QuantizeTests
{
    public static TheoryData<int> Widths() => Int8EpilogueTests.Widths();

    /// <summary>Constructed ties (x / 0.5 lands on halves), saturation at both ends, infinities and NaN.</summary>
    [Theory]
    [MemberData(nameof(Widths))]
    public void QuantizeRoundsTiesToEvenAndSaturates(int width)
    {
        float[] inputs = [0.25f, 0.75f, -0.25f, -0.75f, 1.25f, -1.25f, 100f, -100f, float.PositiveInfinity, float.NegativeInfinity, float.NaN, 0f, -0f];
        // x / 0.5 = 0.5 -> 0, 1.5 -> 2, -0.5 -> 0, -1.5 -> -2, 2.5 -> 2, -2.5 -> -2; then + 100, saturated; NaN -> 0.
        byte[] quantized = [100, 102, 100, 98, 102, 98, 255, 0, 255, 0, 0, 100, 100];
        const int count = 3 * 16 + 7;
        var x = new float[count];
        var expected = new byte[count];
        for (int i = 0; i < count; i++)
        {
            x[i] = inputs[i % inputs.Length];
            expected[i] = quantized[i % inputs.Length];
        }
        var y = new byte[count];
        switch (width)
        {
            case 512: Int8Quantize.Quantize<Vector512<int>, Vector512<float>, Quantize512>(x, 0.5f, 100, 0, 255, y); break;
            case 256: Int8Quantize.Quantize<Vector256<int>, Vector256<float>, Quantize256>(x, 0.5f, 100, 0, 255, y); break;
            default: Int8Quantize.Quantize<Vector128<int>, Vector128<float>, Quantize128>(x, 0.5f, 100, 0, 255, y); break;
        }
        Assert.Equal(expected, y);
    }

    /// <summary>Random values against <c>clamp(roundHalfEven(x / scale) + zp)</c> evaluated with the fp32 division and
    /// double rounding.</summary>
    [Fact]
    public void QuantizeMatchesReference()
    {
        var rng = new Random(1);
        var x = new float[1000];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 8 - 3);
        var y = new byte[x.Length];
        const float scale = 0.0213f;
        Int8Quantize.Quantize(x, scale, 77, y, 10, 250);
        for (int i = 0; i < x.Length; i++)
            Assert.Equal((byte)Math.Clamp(Math.Round((double)(x[i] / scale), MidpointRounding.ToEven) + 77, 10, 250), y[i]);
    }

    [Theory]
    [MemberData(nameof(Widths))]
    public void DequantizeIsExactProduct(int width)
    {
        var rng = new Random(width);
        const int count = 16 * 4 + 9;
        var u = new byte[count];
        var s = new sbyte[count];
        rng.NextBytes(u);
        for (int i = 0; i < count; i++) s[i] = (sbyte)rng.Next(-128, 128);
        var yu = new float[count];
        var ys = new float[count];
        const float scale = 0.0371f;
        switch (width)
        {
            case 512:
                Int8Quantize.Dequantize<Vector512<int>, Vector512<float>, Quantize512>(u, scale, 131, yu);
                Int8Quantize.Dequantize<Vector512<int>, Vector512<float>, Quantize512>(s, scale, -5, ys);
                break;
            case 256:
                Int8Quantize.Dequantize<Vector256<int>, Vector256<float>, Quantize256>(u, scale, 131, yu);
                Int8Quantize.Dequantize<Vector256<int>, Vector256<float>, Quantize256>(s, scale, -5, ys);
                break;
            default:
                Int8Quantize.Dequantize<Vector128<int>, Vector128<float>, Quantize128>(u, scale, 131, yu);
                Int8Quantize.Dequantize<Vector128<int>, Vector128<float>, Quantize128>(s, scale, -5, ys);
                break;
        }
        for (int i = 0; i < count; i++)
        {
            Assert.Equal((u[i] - 131) * scale, yu[i]);
            Assert.Equal((s[i] + 5) * scale, ys[i]);
        }
        // The public entry points agree with the width-specific ones.
        var viaPublic = new float[count];
        Int8Quantize.Dequantize(u, scale, 131, viaPublic);
        Assert.Equal(yu, viaPublic);
    }

    /// <summary>Requantization with ties (multiplier 0.5 on odd differences) and saturation, at every width; a range
    /// from 0 leaves the lower clamp to the saturating store (a multiplier of 1e9 puts sums beyond int32).</summary>
    [Theory]
    [MemberData(nameof(Widths))]
    public void RequantizeMatchesReference(int width)
    {
        const int count = 256 + 13;
        var x = new byte[count];
        for (int i = 0; i < count; i++) x[i] = (byte)(i * 7);
        foreach (var (min, max) in new (byte, byte)[] { (5, 250), (0, 255), (0, 200) })
            foreach (float multiplier in new[] { 0.5f, 1.7f, 0.0123f, 1e9f })
            {
                var y = new byte[count];
                switch (width)
                {
                    case 512: Int8Requantize.Requantize<Vector512<int>, Vector512<float>, Quantize512>(x, 101, multiplier, 90, min, max, y); break;
                    case 256: Int8Requantize.Requantize<Vector256<int>, Vector256<float>, Quantize256>(x, 101, multiplier, 90, min, max, y); break;
                    default: Int8Requantize.Requantize<Vector128<int>, Vector128<float>, Quantize128>(x, 101, multiplier, 90, min, max, y); break;
                }
                for (int i = 0; i < count; i++)
                {
                    double rounded = Math.Round((double)((float)(x[i] - 101) * multiplier), MidpointRounding.ToEven);
                    Assert.True((byte)Math.Clamp(rounded + 90, min, max) == y[i], $"x = {x[i]}, multiplier {multiplier}, [{min}, {max}]: {y[i]}");
                }
            }
        // Odd differences times 0.5 are ties: (102 - 101) * 0.5 = 0.5 -> 0, (104 - 101) * 0.5 = 1.5 -> 2.
        var ties = new byte[2];
        Int8Requantize.Requantize([102, 104], 101, 0.5f, 90, ties);
        Assert.Equal(new byte[] { 90, 92 }, ties);
    }

    /// <summary>The quantized sum against <c>roundHalfEven(fma(b', mb, a' * ma))</c>, with a fused ReLU, and over the
    /// full range (from 0: the lower clamp left to the saturating store).</summary>
    [Theory]
    [MemberData(nameof(Widths))]
    public void AddMatchesReference(int width)
    {
        var rng = new Random(width + 1);
        const int count = 16 * 5 + 11;
        var a = new byte[count];
        var b = new byte[count];
        rng.NextBytes(a);
        rng.NextBytes(b);
        foreach (byte min in new byte[] { 128, 0 })
        {
            var p = new Int8Requantize.AddParameters(120, 0.8f, 60, 1.3f, 128, min, 255);
            var y = new byte[count];
            switch (width)
            {
                case 512: Int8Requantize.Add<Vector512<int>, Vector512<float>, Quantize512>(a, b, p, y); break;
                case 256: Int8Requantize.Add<Vector256<int>, Vector256<float>, Quantize256>(a, b, p, y); break;
                default: Int8Requantize.Add<Vector128<int>, Vector128<float>, Quantize128>(a, b, p, y); break;
            }
            for (int i = 0; i < count; i++)
            {
                float sum = MathF.FusedMultiplyAdd(b[i] - 60, 1.3f, (a[i] - 120) * 0.8f);
                Assert.Equal((byte)Math.Clamp(Math.Round((double)sum, MidpointRounding.ToEven) + 128, min, 255), y[i]);
            }
        }
        // A tie: (121 - 120) * 0.5 + (60 - 60) * 1 = 0.5 -> 0; (123 - 120) * 0.5 = 1.5 -> 2.
        var ties = new byte[2];
        Int8Requantize.Add([121, 123], 120, 0.5f, [60, 60], 60, 1f, 10, ties);
        Assert.Equal(new byte[] { 10, 12 }, ties);
        Assert.Throws<ArgumentException>(() => Int8Requantize.Add(new byte[2], 0, 1, new byte[3], 0, 1, 0, new byte[3]));
    }

    /// <summary>The exact byte sum that QGlobalAveragePool divides, against a scalar loop, at every length from 0 to 100
    /// (32-byte steps, then 16 and 8, then single bytes), on bytes up to 255.</summary>
    [Fact]
    public void ByteSumIsExactAtEveryLength()
    {
        var rng = new Random(3);
        var x = new byte[100];
        rng.NextBytes(x);
        x[0] = x[47] = x[99] = 255;
        for (int length = 0; length <= x.Length; length++)
        {
            long expected = 0;
            for (int i = 0; i < length; i++) expected += x[i];
            Assert.Equal(expected, Int8Lookup.Sum(x.AsSpan(0, length)));
        }
    }
}
