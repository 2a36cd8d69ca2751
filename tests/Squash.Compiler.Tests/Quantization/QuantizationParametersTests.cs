using Squash.Compiler.Quantization;
using Squash.Runtime;

namespace Squash.Compiler.Tests.Quantization;

/// <summary>Scales and zero points from ranges and weights.</summary>
public sealed class QuantizationParametersTests
{
    [Fact]
    public void AsymmetricCoversTheRangeAndRepresentsZeroExactly()
    {
        var q = QuantizationParameters.Asymmetric(-1f, 3f, QuantizationRange.UInt8);
        Assert.Equal(4f / 255, q.Scale);
        Assert.Equal(64, q.ZeroPoint); // 255 / 4 = 63.75 rounds to 64
        Assert.Equal(q.ZeroPoint, q.Quantize(0f));
        Assert.Equal(0f, q.Dequantize(q.Quantize(0f)));
        Assert.Equal(0, q.Quantize(-1f));
        Assert.Equal(255, q.Quantize(3f));
        Assert.Equal(255, q.Quantize(100f)); // saturates
        Assert.Equal(0, q.Quantize(-100f));
    }

    [Fact]
    public void RangesAreWidenedToIncludeZero()
    {
        var positive = QuantizationParameters.Asymmetric(2f, 6f, QuantizationRange.UInt8);
        Assert.Equal((6f / 255, 0), (positive.Scale, positive.ZeroPoint));
        var negative = QuantizationParameters.Asymmetric(-6f, -2f, QuantizationRange.UInt8);
        Assert.Equal((6f / 255, 255), (negative.Scale, negative.ZeroPoint));
        Assert.Equal(0f, negative.RealMax);
    }

    [Fact]
    public void SevenBitActivationsUseHalfTheLevels()
    {
        var q = QuantizationParameters.Asymmetric(0f, 6.35f, QuantizationRange.UInt7);
        Assert.Equal(6.35f / 127, q.Scale);
        Assert.Equal(0, q.ZeroPoint);
        Assert.Equal(127, q.Quantize(6.35f));
        Assert.Equal(127, q.Quantize(1000f));
    }

    [Fact]
    public void ZeroPointRoundsHalfToEven()
    {
        // min = -0.5 scale -> zero point 0.5 -> 0; min = -1.5 scale -> 1.5 -> 2; min = -2.5 scale -> 2.5 -> 2.
        foreach (var (steps, expected) in new[] { (0.5, 0), (1.5, 2), (2.5, 2) })
        {
            // A range of 255 steps of 1/8 (exact in binary) starting at -steps/8.
            float min = (float)(-steps / 8), max = (float)(255.0 / 8 - steps / 8);
            var q = QuantizationParameters.Asymmetric(min, max, QuantizationRange.UInt8);
            Assert.Equal(1f / 8, q.Scale);
            Assert.Equal(expected, q.ZeroPoint);
        }
        // Values halfway between two levels round to the even one, as QuantizeLinear does.
        var unit = QuantizationParameters.Asymmetric(0f, 255f, QuantizationRange.UInt8);
        Assert.Equal((2, 4), (unit.Quantize(2.5f), unit.Quantize(3.5f)));
    }

    [Fact]
    public void AnEmptyRangeGetsScaleOne()
    {
        var q = QuantizationParameters.Asymmetric(0f, 0f, QuantizationRange.UInt8);
        Assert.Equal((1f, 0), (q.Scale, q.ZeroPoint));
        Assert.Throws<ArgumentOutOfRangeException>(() => QuantizationParameters.Asymmetric(1f, 0f, QuantizationRange.UInt8));
        Assert.Throws<ArgumentOutOfRangeException>(() => QuantizationParameters.Asymmetric(float.NaN, 0f, QuantizationRange.UInt8));
        Assert.Throws<ArgumentOutOfRangeException>(() => QuantizationParameters.Asymmetric(0f, 1f, new QuantizationRange(0, 300)));
    }

    [Fact]
    public void SymmetricPerChannelScalesByTheLargestMagnitudeOfEachOutputChannel()
    {
        // Conv weights [M=3, C=1, 1, 2]: output channels on axis 0.
        var conv = Tensor.From<float>([1f, -2f, 0.5f, 0.25f, 0f, 0f], 3, 1, 1, 2);
        Assert.Equal([2f / 127, 0.5f / 127, 1f], QuantizationParameters.SymmetricPerChannel(conv, 0));
        // MatMul weights [K=2, N=3]: output channels on axis 1.
        var matmul = Tensor.From<float>([1f, -4f, 0f, -3f, 2f, 0f], 2, 3);
        Assert.Equal([3f / 127, 4f / 127, 1f], QuantizationParameters.SymmetricPerChannel(matmul, 1));
        // A 7-bit weight range.
        Assert.Equal([2f / 63, 0.5f / 63, 1f], QuantizationParameters.SymmetricPerChannel(conv, 0, new QuantizationRange(-63, 63)));
        Assert.Throws<ArgumentException>(() => QuantizationParameters.SymmetricPerChannel(conv, 0, QuantizationRange.UInt8));
        Assert.Throws<ArgumentException>(() => QuantizationParameters.SymmetricPerChannel(conv, 4));
        var broken = Tensor.From<float>([1f, float.NaN], 2, 1);
        Assert.Equal(ErrorCodes.InvalidModel, Assert.Throws<SquashException>(() => QuantizationParameters.SymmetricPerChannel(broken, 0)).Code);
    }
}
