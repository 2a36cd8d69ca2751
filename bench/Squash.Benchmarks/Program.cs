using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Filters;
using BenchmarkDotNet.Running;
using Squash.Benchmarks;

// dotnet run -c Release --project bench/Squash.Benchmarks -- --filter '*'
// The GPU benchmarks need a CUDA device; without one they are left out with a message.
IConfig? config = null;
if (!GpuBenchmarks.CudaPresent(out string reason))
{
    Console.WriteLine($"GpuBenchmarks skipped: {reason}.");
    config = DefaultConfig.Instance.AddFilter(new SimpleFilter(b => b.Descriptor.Type != typeof(GpuBenchmarks)));
}
BenchmarkSwitcher.FromAssembly(typeof(PpOcrBenchmarks).Assembly).Run(args, config);
