namespace Squash.Runtime.Tests;

/// <summary>
/// QuantizeLinear and DequantizeLinear with one scale for a whole uint8 tensor, which split the tensor into chunks
/// between threads: against the closed form of the ONNX definitions (<c>saturate(roundHalfEven(x / scale) + zp)</c>,
/// <c>(q - zp) * scale</c>, exact in float), with 1 and 3 threads, on a length that is not a whole number of chunks.
/// </summary>
public sealed class LinearQuantizationOperatorTests
{
    private const int Length = 3 * 16384 + 1000;

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void PerTensorQuantizeAndDequantizeMatchTheClosedForm(int threads)
    {
        var rng = new Random(7);
        var x = new Tensor(DataType.Float, 1, Length);
        var values = x.AsSpan<float>();
        for (int i = 0; i < values.Length; i++) values[i] = (float)(rng.NextDouble() * 60 - 20);
        const float scale = 0.125f;
        const byte zero = 37;
        var q = NodeRunner.Run("QuantizeLinear", 21, null, threads, 1, x, Tensor.Scalar(scale), Scalar(zero))[0];
        var codes = q.AsSpan<byte>();
        for (int i = 0; i < values.Length; i++)
        {
            double expected = Math.Clamp(Math.Round((double)(values[i] / scale), MidpointRounding.ToEven) + zero, 0, 255);
            Assert.True(codes[i] == (byte)expected, $"q[{i}] = {codes[i]}, expected {expected} for {values[i]}");
        }
        var back = NodeRunner.Run("DequantizeLinear", 21, null, threads, 1, q, Tensor.Scalar(scale), Scalar(zero))[0].AsSpan<float>();
        for (int i = 0; i < codes.Length; i++)
            Assert.Equal((codes[i] - zero) * scale, back[i]);
    }

    private static Tensor Scalar(byte value)
    {
        var t = new Tensor(DataType.UInt8);
        t.AsSpan<byte>()[0] = value;
        return t;
    }
}
