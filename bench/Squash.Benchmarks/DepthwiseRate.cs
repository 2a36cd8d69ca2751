using System.Diagnostics;
using Squash.Runtime;
using Squash.Runtime.Kernels;

namespace Squash.Benchmarks;

/// <summary>1-thread int8 depthwise convolution timings on PP-OCR's shapes (microseconds, best and median).</summary>
internal static class DepthwiseRate
{
    public static void Run(int runs)
    {
        (int C, int H, int W, int K, int S)[] shapes = [(200, 2, 96, 5, 1), (88, 3, 96, 5, 1), (104, 3, 96, 3, 2), (192, 40, 40, 5, 1), (384, 20, 20, 5, 1), (48, 160, 160, 3, 2), (96, 60, 60, 5, 2), (128, 12, 160, 3, 1), (96, 80, 80, 3, 1), (192, 40, 40, 3, 1)];
        using var context = new KernelContext(1);
        var rng = new Random(1);
        foreach (var (c, h, w, k, s) in shapes)
        {
            var g = new Int8ConvGeometry(1, c, h, w, c, c, k, k, s, s, k / 2, k / 2, k / 2, k / 2);
            var wq = new sbyte[c * k * k];
            foreach (ref var v in wq.AsSpan()) v = (sbyte)rng.Next(-127, 128);
            var weights = Int8ConvWeights.Pack(g, wq);
            var x = new byte[c * h * w];
            rng.NextBytes(x);
            var y = new byte[c * g.OutHeight * g.OutWidth];
            var epilogue = Int8Epilogue.Requantize(weights.WeightSums, 7, new int[c], [0.001f], 3);
            var times = new double[runs];
            for (int r = 0; r < runs; r++)
            {
                long t0 = Stopwatch.GetTimestamp();
                Int8Conv.Run<byte>(context, weights, x, epilogue, y);
                times[r] = Stopwatch.GetElapsedTime(t0).TotalMicroseconds;
            }
            Array.Sort(times);
            double macs = (double)c * g.OutHeight * g.OutWidth * k * k;
            Console.WriteLine($"depthwise {c}x{h}x{w} {k}x{k} stride {s}: best {times[0]:F1} us, median {times[runs / 2]:F1} us, {2 * macs / times[0] / 1e3:F1} GOPS");
        }
    }
}
