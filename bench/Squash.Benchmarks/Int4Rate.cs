using System.Diagnostics;
using Squash.Compiler.Quantization;
using Squash.Runtime;
using Squash.Runtime.Kernels;

namespace Squash.Benchmarks;

/// <summary>
/// Single-thread int4 GEMV rate (one row times a 2048 x 5632 block-32 weight, the decode benchmark's largest
/// matrices) with fp32 and with int8 activations, in GB/s of packed weights (codes and fp16 scales): once with the
/// same matrix every call (it stays in L3: the kernel's compute roof) and once cycling through 24 copies (156 MB:
/// read from memory), interleaved so that both variants see the same machine. Best and median of RUNS calls; on an
/// AVX-512 machine also with the AVX2 kernels (what machines without AVX-512 run).
/// <c>dotnet run -c Release --project bench/Squash.Benchmarks -- int4 RUNS</c>
/// </summary>
internal static class Int4Rate
{
    private const int K = 2048, N = 5632, Copies = 24;

    public static void Run(int runs)
    {
        using var context = new KernelContext(1);
        var rng = new Random(1);
        var weight = new float[K * N];
        for (int i = 0; i < weight.Length; i++) weight[i] = (float)rng.NextDouble() - 0.5f;
        var copies = new Int4PackedWeight[Copies];
        copies[0] = Int4WeightPacking.Quantize(weight, K, N, transposed: false, blockSize: 32, symmetric: true);
        for (int i = 1; i < Copies; i++)
        {
            // Different bytes in each copy, so that nothing is shared in any cache.
            for (int j = i; j < weight.Length; j += 97) weight[j] = -weight[j];
            copies[i] = Int4WeightPacking.Quantize(weight, K, N, transposed: false, blockSize: 32, symmetric: true);
        }
        var x = new float[K];
        for (int i = 0; i < K; i++) x[i] = (float)rng.NextDouble() - 0.5f;
        var y = new float[N];
        double bytes = copies[0].Bytes;
        var isas = Int4Gemv.Best == Int4Isa.Avx512 ? new[] { Int4Isa.Avx512, Int4Isa.Avx2 } : new[] { Int4Gemv.Best };
        foreach (var isa in isas)
            foreach (bool fromMemory in new[] { false, true })
            {
                var times = new Dictionary<Int4ActivationPrecision, List<double>> { [Int4ActivationPrecision.Fp32] = [], [Int4ActivationPrecision.Int8] = [] };
                int next = 0;
                // Warm-up: tiered compilation settles in well under a second.
                for (long end = Stopwatch.GetTimestamp() + Stopwatch.Frequency; Stopwatch.GetTimestamp() < end;)
                    foreach (var mode in times.Keys) Int4MatMul.Multiply(context, isa, 1, x, copies[0].Weights, default, y, mode);
                for (int r = 0; r < runs; r++)
                    foreach (var mode in times.Keys)
                    {
                        var w = copies[fromMemory ? next++ % Copies : 0];
                        long start = Stopwatch.GetTimestamp();
                        Int4MatMul.Multiply(context, isa, 1, x, w.Weights, default, y, mode);
                        times[mode].Add(Stopwatch.GetElapsedTime(start).TotalSeconds);
                    }
                foreach (var (mode, list) in times)
                    Console.WriteLine($"int4 GEMV K={K} N={N} {isa,-6} {(fromMemory ? "from memory (24 copies)" : "in L3 (one copy)       ")} {mode,-4} activations: " +
                        $"best {bytes / list.Min() / 1e9,5:F1} GB/s ({list.Min() * 1e3:F3} ms), median {bytes / Interleaved.Median(list) / 1e9,5:F1} GB/s ({Interleaved.Median(list) * 1e3:F3} ms)");
            }
    }
}
