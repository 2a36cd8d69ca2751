using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Tests;

public sealed class ResizeTests
{
    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(8)]
    [InlineData(16)]
    public void ExpandRepeatsEveryElement(int factor)
    {
        var rng = new Random(factor);
        foreach (int n in new[] { 1, 3, 4, 7, 33 })
        {
            var src = NodeRunner.Random(rng, n);
            var dst = new float[n * factor + 1];
            dst[^1] = 42;
            Resample.Expand<float>(src, dst, factor);
            for (int i = 0; i < n * factor; i++) Assert.Equal(src[i / factor], dst[i]);
            Assert.Equal(42, dst[^1]);
        }
    }

    /// <summary>Bytes (uint8 feature maps of int8 models; factor 2 has a vector path) repeat exactly too, including the
    /// scalar tail after whole vectors of 16.</summary>
    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void ExpandRepeatsEveryByte(int factor)
    {
        var rng = new Random(factor);
        foreach (int n in new[] { 1, 15, 16, 17, 47, 120 })
        {
            var src = new byte[n];
            rng.NextBytes(src);
            var dst = new byte[n * factor + 1];
            dst[^1] = 42;
            Resample.Expand<byte>(src, dst, factor);
            for (int i = 0; i < n * factor; i++) Assert.Equal(src[i / factor], dst[i]);
            Assert.Equal(42, dst[^1]);
        }
    }

    /// <summary>
    /// Integer nearest upscales (the replicated-row fast path) against out[y][x] = in[y / s][x / s]: asymmetric with
    /// nearest_mode floor (how Paddle exports), and half_pixel with the default round_prefer_floor.
    /// </summary>
    [Theory]
    [InlineData("asymmetric", 2, 1)]
    [InlineData("half_pixel", 2, 1)]
    [InlineData("half_pixel", 4, 3)]
    [InlineData("asymmetric", 8, 4)]
    [InlineData("asymmetric", 3, 1)]
    public void NearestIntegerUpscaleReplicatesPixels(string transform, int s, int threads)
    {
        var rng = new Random(s);
        int c = 3, h = 5, w = 7;
        var x = Tensor.From<float>(NodeRunner.Random(rng, c * h * w), 1, c, h, w);
        var attributes = new Dictionary<string, AttributeValue>
        {
            ["mode"] = AttributeValue.String("nearest"),
            ["coordinate_transformation_mode"] = AttributeValue.String(transform),
            ["nearest_mode"] = AttributeValue.String(transform == "asymmetric" ? "floor" : "round_prefer_floor"),
        };
        var y = RunResize(x, [1, 1, s, s], attributes, threads);
        Assert.Equal([1, c, h * s, w * s], y.Shape);
        var xs = x.AsSpan<float>();
        var ys = y.AsSpan<float>();
        for (int ch = 0; ch < c; ch++)
            for (int i = 0; i < h * s; i++)
                for (int j = 0; j < w * s; j++)
                    Assert.Equal(xs[(ch * h + i / s) * w + j / s], ys[(ch * h * s + i) * w * s + j]);
    }

    [Fact]
    public void NearestGeneralMapsMatchTheCoordinateFormula()
    {
        // Non-integer scales on both axes: half_pixel with round_prefer_ceil, computed directly.
        var rng = new Random(5);
        int h = 4, w = 6;
        var x = Tensor.From<Half>(Array.ConvertAll(NodeRunner.Random(rng, h * w), v => (Half)v), 1, 1, h, w);
        var y = RunResize(x, [1, 1, 1.7f, 0.6f], new() { ["mode"] = AttributeValue.String("nearest"), ["nearest_mode"] = AttributeValue.String("round_prefer_ceil") }, 2);
        int oh = (int)Math.Floor(h * (double)1.7f), ow = (int)Math.Floor(w * (double)0.6f);
        Assert.Equal([1, 1, oh, ow], y.Shape);
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++)
            {
                int si = Nearest((i + 0.5) / 1.7f - 0.5, h), sj = Nearest((j + 0.5) / 0.6f - 0.5, w);
                Assert.Equal(x.AsSpan<Half>()[si * w + sj], y.AsSpan<Half>()[i * ow + j]);
            }

        static int Nearest(double v, int n) => Math.Clamp(v - Math.Floor(v) >= 0.5 ? (int)Math.Floor(v) + 1 : (int)Math.Floor(v), 0, n - 1);
    }

    /// <summary>Bilinear (half_pixel) against the textbook formula in double. Tolerance 1e-5: fp32 sums of two or four products of values below 1.</summary>
    [Theory]
    [InlineData(2f, 1)]
    [InlineData(2f, 4)]
    [InlineData(0.6f, 1)]
    public void LinearMatchesBilinearFormula(float scale, int threads)
    {
        var rng = new Random(7);
        int c = 2, h = 5, w = 6;
        var x = Tensor.From<float>(NodeRunner.Random(rng, c * h * w), 1, c, h, w);
        var y = RunResize(x, [1, 1, scale, scale], new() { ["mode"] = AttributeValue.String("linear") }, threads);
        int oh = (int)Math.Floor(h * (double)scale), ow = (int)Math.Floor(w * (double)scale);
        Assert.Equal([1, c, oh, ow], y.Shape);
        var xs = x.AsSpan<float>().ToArray();
        for (int ch = 0; ch < c; ch++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++)
                {
                    double fy = Math.Clamp((i + 0.5) / scale - 0.5, 0, h - 1), fx = Math.Clamp((j + 0.5) / scale - 0.5, 0, w - 1);
                    int y0 = (int)fy, x0 = (int)fx, y1 = Math.Min(y0 + 1, h - 1), x1 = Math.Min(x0 + 1, w - 1);
                    double dy = fy - y0, dx = fx - x0;
                    double at(int yy, int xx) => xs[(ch * h + yy) * w + xx];
                    double expected = (1 - dy) * ((1 - dx) * at(y0, x0) + dx * at(y0, x1)) + dy * ((1 - dx) * at(y1, x0) + dx * at(y1, x1));
                    Assert.Equal(expected, y.AsSpan<float>()[(ch * oh + i) * ow + j], 1e-5);
                }
    }

    [Fact]
    public void LinearOnUInt8RoundsHalfToEvenAndSaturates()
    {
        // Upscaling [0, 255, 1, 0] by 2 (asymmetric): midpoints 127.5 -> 128 and 0.5 -> 0 (ties to even), 128 stays.
        var x = Tensor.From<byte>([0, 255, 1, 0], 4);
        var y = RunResize(x, [2f], new() { ["mode"] = AttributeValue.String("linear"), ["coordinate_transformation_mode"] = AttributeValue.String("asymmetric") }, 1);
        Assert.Equal([0, 128, 255, 128, 1, 0, 0, 0], y.AsSpan<byte>().ToArray());
    }

    [Fact]
    public void UpsampleOpset7NearestRepeats()
    {
        var x = Tensor.From<int>([1, 2, 3, 4], 2, 2);
        var y = NodeRunner.Run("Upsample", 7, new() { ["scales"] = AttributeValue.FloatList(2, 3) }, 1, 1, x)[0];
        Assert.Equal([4, 6], y.Shape);
        Assert.Equal([1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4], y.AsSpan<int>().ToArray());
    }

    private static Tensor RunResize(Tensor x, float[] scales, Dictionary<string, AttributeValue> attributes, int threads) =>
        NodeRunner.Run("Resize", 19, attributes, threads, 1, x, null, Tensor.From<float>(scales, scales.Length))[0];
}
