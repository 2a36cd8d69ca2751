using System.Diagnostics;
using Squash.Runtime;
using Squash.Runtime.Kernels;

namespace Squash.Benchmarks;

/// <summary>1-thread fp32 transposed convolution (2x2 stride 2 upsampling) on PP-OCR det's shapes (microseconds).</summary>
internal static class TransposedRate
{
    public static void Run(int runs)
    {
        (int C, int M, int H, int W)[] shapes = [(24, 24, 120, 120), (24, 1, 240, 240)];
        using var context = new KernelContext(1);
        var rng = new Random(1);
        foreach (var (c, m, h, w) in shapes)
        {
            // The adjoint geometry: its input is Y (M channels, 2H x 2W), its output X (C channels, H x W).
            var g = new ConvGeometry(1, m, c, 1, [2 * h, 2 * w], [2, 2], [h, w], [2, 2], [1, 1], [0, 0]);
            var x = Enumerable.Range(0, c * h * w).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
            var weights = Enumerable.Range(0, c * m * 4).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
            var bias = Enumerable.Range(0, m).Select(_ => (float)rng.NextDouble()).ToArray();
            var packed = new PackedConvWeights(Tensor.From<float>(weights, weights.Length));
            var y = new float[m * 4 * h * w];
            foreach (bool fused in new[] { false, true })
            {
                string name = fused ? "bias+relu" : "plain";
                var epilogue = fused ? new GemmEpilogue { RowBias = bias, Activation = GemmActivation.Relu } : new GemmEpilogue();
                var times = new double[runs];
                for (int r = 0; r < runs; r++)
                {
                    long t0 = Stopwatch.GetTimestamp();
                    TransposedConvolution.Run(context, g, x, weights, packed, y, epilogue);
                    times[r] = Stopwatch.GetElapsedTime(t0).TotalMicroseconds;
                }
                Array.Sort(times);
                Console.WriteLine($"convtranspose {c}->{m} {h}x{w} 2x2/2 {name}: best {times[0]:F0} us, median {times[runs / 2]:F0} us");
            }
        }
    }
}
