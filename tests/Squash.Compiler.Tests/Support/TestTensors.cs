using Squash.Runtime;

namespace Squash.Compiler.Tests.Support;

/// <summary>Random tensors for the pass tests.</summary>
internal static class TestTensors
{
    /// <summary>A float tensor of <paramref name="shape"/> with values uniform in [-<paramref name="limit"/>, <paramref name="limit"/>).</summary>
    public static Tensor Uniform(Random rng, double limit, params int[] shape)
    {
        var t = new Tensor(DataType.Float, shape);
        var s = t.AsSpan<float>();
        for (int i = 0; i < s.Length; i++) s[i] = (float)(rng.NextDouble() * 2 * limit - limit);
        return t;
    }
}
