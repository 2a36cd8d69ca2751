using System.Diagnostics;
using Squash.Compiler;
using Squash.Runtime;
using Squash.Runtime.Kernels;

namespace Squash.Benchmarks;

/// <summary>
/// Single-thread fp32 GEMM rate on 512x512x512 and on the largest convolution GEMMs of PP-OCR det and rec
/// (<c>M = output channels / group, K = input channels / group x taps, N = output pixels</c>, weights pre-packed as the
/// convolutions pack them, the im2col operand a plain matrix): best of RUNS, in GFLOP/s and as a share of the core's
/// FMA peak (117 GFLOP/s on the project's machines, docs/performance.md).
/// <c>dotnet run -c Release --project bench/Squash.Benchmarks -- gemm RUNS</c>
/// </summary>
internal static class GemmRate
{
    private const double PeakGflops = 117;

    public static void Run(int runs)
    {
        using var context = new KernelContext(1);
        Measure(context, "512x512x512, both operands plain", 512, 512, 512, runs, prepackA: false);
        Measure(context, "512x512x512, A pre-packed", 512, 512, 512, runs, prepackA: true);
        foreach (var (model, file, shape) in new[] { ("det", "ch_PP-OCRv4_det_infer.onnx", new[] { 1, 3, 640, 640 }), ("rec", "ch_PP-OCRv4_rec_infer.onnx", new[] { 1, 3, 48, 320 }) })
            foreach (var (m, n, k, count) in LargestConvGemms(file, shape, 3))
                Measure(context, $"{model} conv GEMM x{count}", m, n, k, runs, prepackA: true);
    }

    /// <summary>The <paramref name="top"/> convolution GEMM shapes (non-depthwise) with the most floating-point work in
    /// the model, with how many convolutions share each.</summary>
    private static IEnumerable<(int M, int N, int K, int Count)> LargestConvGemms(string file, int[] shape, int top)
    {
        var model = global::Squash.Compiler.Onnx.OnnxLoader.Load(Assets.Model(file));
        ModelPreparation.PinInputShapes(model, new Dictionary<string, int[]> { [model.Graph.Inputs[0].Name] = shape });
        ModelPreparation.Optimize(model);
        var shapes = new List<(int M, int N, int K)>();
        foreach (var node in model.Graph.Nodes)
        {
            if (node.OpType != "Conv" || node.Input(1)?.Shape is not { Length: 4 } w || node.Outputs[0].Shape is not { Length: 4 } y) continue;
            int group = node.Attributes.TryGetValue("group", out var g) ? (int)g.IntValue : 1;
            if (w[1] == 1 && group > 1) continue; // depthwise: a direct kernel, not a GEMM
            shapes.Add((w[0] / group, y[2] * y[3], w[1] * w[2] * w[3]));
        }
        return shapes.GroupBy(s => s).Select(g => (g.Key.M, g.Key.N, g.Key.K, Count: g.Count()))
            .OrderByDescending(s => (double)s.M * s.N * s.K * s.Count).Take(top);
    }

    private static void Measure(KernelContext context, string label, int m, int n, int k, int runs, bool prepackA)
    {
        var rng = new Random(1);
        float[] a = new float[m * k], b = new float[k * n], c = new float[m * n];
        for (int i = 0; i < a.Length; i++) a[i] = (float)rng.NextDouble() - 0.5f;
        for (int i = 0; i < b.Length; i++) b[i] = (float)rng.NextDouble() - 0.5f;
        var packed = prepackA ? PackedMatrix.PackLeft(a, k, false, m, k) : null;
        void Once()
        {
            if (packed is not null) Gemm.Multiply(context, packed, false, n, b, n, c, n, new GemmEpilogue());
            else Gemm.Multiply(context, false, false, m, n, k, 1, a, k, b, n, 0, c, n);
        }
        for (int i = 0; i < 3; i++) Once();
        double best = double.MaxValue;
        var times = new List<double>();
        for (int i = 0; i < runs; i++)
        {
            long start = Stopwatch.GetTimestamp();
            Once();
            double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            times.Add(seconds);
            best = Math.Min(best, seconds);
        }
        double flops = 2.0 * m * n * k, gflops = flops / best / 1e9, median = flops / Interleaved.Median(times) / 1e9;
        Console.WriteLine($"{label,-36} M={m,5} N={n,6} K={k,5}: best {gflops,6:F1} GFLOP/s ({100 * gflops / PeakGflops:F0}% of peak), median {median,6:F1}");
    }
}
