using Squash.Runtime.Ir;

namespace Squash.Runtime.Tests.Nn;

/// <summary>
/// The normalization operators against direct double-precision evaluations of their ONNX definitions. Rows and planes
/// are long enough (and of odd lengths) to reach both the vector loops and their scalar tails. Tolerance 1e-5
/// relative: fp32 statistics over a few hundred elements.
/// </summary>
public sealed class NormalizationTests
{
    [Theory]
    [InlineData(-1, true)]
    [InlineData(1, true)]
    [InlineData(1, false)]
    public void LayerNormalizationMatchesDefinition(int axis, bool withBias)
    {
        var rng = new Random(axis + 10);
        var x = SingleNode.Random(rng, 3, 5, 71);
        // With axis 1 the parameters are [1, 71]: they broadcast over the normalized shape [5, 71].
        int[] paramShape = axis == 1 ? [1, 71] : [71];
        var scale = SingleNode.Random(rng, paramShape);
        var bias = SingleNode.Random(rng, paramShape);
        var attributes = new Dictionary<string, AttributeValue> { ["axis"] = AttributeValue.Int(axis), ["epsilon"] = AttributeValue.Float(1e-3f) };
        var outputs = SingleNode.Run("LayerNormalization", 17, attributes, withBias ? [x, scale, bias] : [x, scale], outputCount: 3, threads: 2);
        int size = axis == 1 ? 5 * 71 : 71, rows = x.ElementCount / size;
        var expected = new double[x.ElementCount];
        var means = new double[rows];
        var invs = new double[rows];
        var xs = x.AsSpan<float>();
        for (int r = 0; r < rows; r++)
        {
            double mean = 0, variance = 0;
            for (int i = 0; i < size; i++) mean += xs[r * size + i];
            mean /= size;
            for (int i = 0; i < size; i++) variance += Math.Pow(xs[r * size + i] - mean, 2);
            double inv = 1 / Math.Sqrt(variance / size + 1e-3);
            means[r] = mean;
            invs[r] = inv;
            for (int i = 0; i < size; i++)
                expected[r * size + i] = (xs[r * size + i] - mean) * inv * scale.AsSpan<float>()[i % 71] + (withBias ? bias.AsSpan<float>()[i % 71] : 0);
        }
        SingleNode.Close(expected, outputs[0], 1e-5, "Y");
        SingleNode.Close(means, outputs[1], 1e-5, "Mean");
        SingleNode.Close(invs, outputs[2], 1e-5, "InvStdDev");
        Assert.Equal(axis == 1 ? new[] { 3, 1, 1 } : new[] { 3, 5, 1 }, outputs[1].Shape);
    }

    [Fact]
    public void RmsNormalizationMatchesDefinition()
    {
        var rng = new Random(3);
        var x = SingleNode.Random(rng, 4, 133);
        var scale = SingleNode.Random(rng, 133);
        var y = SingleNode.Run("RMSNormalization", 23, new() { ["epsilon"] = AttributeValue.Float(1e-2f) }, [x, scale])[0];
        var expected = new double[x.ElementCount];
        var xs = x.AsSpan<float>();
        for (int r = 0; r < 4; r++)
        {
            double squares = 0;
            for (int i = 0; i < 133; i++) squares += (double)xs[r * 133 + i] * xs[r * 133 + i];
            double inv = 1 / Math.Sqrt(squares / 133 + 1e-2);
            for (int i = 0; i < 133; i++) expected[r * 133 + i] = xs[r * 133 + i] * inv * scale.AsSpan<float>()[i];
        }
        SingleNode.Close(expected, y, 1e-5, "Y");
    }

    /// <summary>Per-channel parameters (opset 15), and opset 7's spatial = 0 with one parameter per channel and position.</summary>
    [Theory]
    [InlineData(15, true)]
    [InlineData(7, false)]
    public void BatchNormalizationMatchesDefinition(int opset, bool spatial)
    {
        var rng = new Random(opset);
        var x = SingleNode.Random(rng, 2, 3, 7, 9);
        int[] paramShape = spatial ? [3] : [3, 7, 9];
        var scale = SingleNode.Random(rng, paramShape);
        var bias = SingleNode.Random(rng, paramShape);
        var mean = SingleNode.Random(rng, paramShape);
        var variance = SingleNode.Random(rng, paramShape);
        foreach (ref float v in variance.AsSpan<float>()) v = Math.Abs(v);
        var attributes = new Dictionary<string, AttributeValue> { ["epsilon"] = AttributeValue.Float(1e-2f) };
        if (!spatial) attributes["spatial"] = AttributeValue.Int(0);
        var y = SingleNode.Run("BatchNormalization", opset, attributes, [x, scale, bias, mean, variance])[0];
        var expected = new double[x.ElementCount];
        var xs = x.AsSpan<float>();
        for (int i = 0; i < expected.Length; i++)
        {
            int p = spatial ? i / 63 % 3 : i % (3 * 63);
            expected[i] = (xs[i] - mean.AsSpan<float>()[p]) / Math.Sqrt(variance.AsSpan<float>()[p] + (double)1e-2f)
                * scale.AsSpan<float>()[p] + bias.AsSpan<float>()[p];
        }
        SingleNode.Close(expected, y, 1e-5, "Y");
    }

    [Fact]
    public void InstanceNormalizationMatchesDefinition()
    {
        var rng = new Random(4);
        var x = SingleNode.Random(rng, 2, 3, 13, 17);
        var scale = SingleNode.Random(rng, 3);
        var bias = SingleNode.Random(rng, 3);
        var y = SingleNode.Run("InstanceNormalization", 22, new(), [x, scale, bias], threads: 2)[0];
        var expected = new double[x.ElementCount];
        var xs = x.AsSpan<float>();
        const int size = 13 * 17;
        for (int p = 0; p < 6; p++)
        {
            double mean = 0, variance = 0;
            for (int i = 0; i < size; i++) mean += xs[p * size + i];
            mean /= size;
            for (int i = 0; i < size; i++) variance += Math.Pow(xs[p * size + i] - mean, 2);
            double inv = 1 / Math.Sqrt(variance / size + (double)1e-5f);
            for (int i = 0; i < size; i++)
                expected[p * size + i] = (xs[p * size + i] - mean) * inv * scale.AsSpan<float>()[p % 3] + bias.AsSpan<float>()[p % 3];
        }
        SingleNode.Close(expected, y, 1e-5, "Y");
    }

    /// <summary>Odd and even sizes: the window is [c - floor((size-1)/2), c + ceil((size-1)/2)].</summary>
    [Theory]
    [InlineData(5)]
    [InlineData(4)]
    public void LrnMatchesDefinition(int size)
    {
        var rng = new Random(size);
        var x = SingleNode.Random(rng, 2, 7, 5, 11);
        var attributes = new Dictionary<string, AttributeValue>
        {
            ["size"] = AttributeValue.Int(size),
            ["alpha"] = AttributeValue.Float(0.01f),
            ["beta"] = AttributeValue.Float(0.75f),
            ["bias"] = AttributeValue.Float(1.5f),
        };
        var y = SingleNode.Run("LRN", 13, attributes, [x])[0];
        var expected = new double[x.ElementCount];
        var xs = x.AsSpan<float>();
        const int plane = 55;
        for (int i = 0; i < expected.Length; i++)
        {
            int c = i / plane % 7, n = i / (7 * plane), s = i % plane;
            double sum = 0;
            for (int k = Math.Max(0, c - (size - 1) / 2); k <= Math.Min(6, c + size / 2); k++)
                sum += Math.Pow(xs[(n * 7 + k) * plane + s], 2);
            expected[i] = xs[i] / Math.Pow(1.5 + 0.01 / size * sum, 0.75);
        }
        SingleNode.Close(expected, y, 1e-5, "Y");
    }

    [Theory]
    [InlineData(null)]
    [InlineData(new long[] { 1, -1 })]
    public void MeanVarianceNormalizationMatchesDefinition(long[]? axes)
    {
        var rng = new Random(axes?.Length ?? 0);
        var x = SingleNode.Random(rng, 3, 4, 5, 6);
        var attributes = new Dictionary<string, AttributeValue>();
        if (axes is not null) attributes["axes"] = AttributeValue.IntList(axes);
        var y = SingleNode.Run("MeanVarianceNormalization", 13, attributes, [x])[0];
        bool[] reduced = axes is null ? [true, false, true, true] : [false, true, false, true];
        var xs = x.AsSpan<float>();
        int[] shape = x.Shape;
        // Group elements by their coordinates on the kept axes.
        var groups = new Dictionary<string, List<int>>();
        for (int i = 0; i < xs.Length; i++)
        {
            var key = new List<int>();
            for (int d = 3, rest = i; d >= 0; d--)
            {
                if (!reduced[d]) key.Add(rest % shape[d]);
                rest /= shape[d];
            }
            string k = string.Join(",", key);
            if (!groups.TryGetValue(k, out var list)) groups[k] = list = [];
            list.Add(i);
        }
        var expected = new double[xs.Length];
        foreach (var members in groups.Values)
        {
            double mean = 0, variance = 0;
            foreach (int i in members) mean += xs[i];
            mean /= members.Count;
            foreach (int i in members) variance += Math.Pow(xs[i] - mean, 2);
            variance /= members.Count;
            foreach (int i in members) expected[i] = (xs[i] - mean) / (Math.Sqrt(variance) + 1e-9);
        }
        SingleNode.Close(expected, y, 1e-5, "Y");
    }
}
