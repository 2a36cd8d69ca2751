using BenchmarkDotNet.Running;

// dotnet run -c Release --project bench/Squash.Benchmarks -- --filter '*'
BenchmarkSwitcher.FromAssembly(typeof(Squash.Benchmarks.PpOcrBenchmarks).Assembly).Run(args);
