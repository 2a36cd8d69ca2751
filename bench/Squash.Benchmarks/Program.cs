using System.Globalization;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Filters;
using BenchmarkDotNet.Running;
using Squash.Benchmarks;

// dotnet run -c Release --project bench/Squash.Benchmarks -- --filter '*'
//   ... -- interleaved det|rec|cls THREADS RUNS [int8|auto]  (Squash [and Squash int8] against ONNX Runtime, interleaved)
//   ... -- nodes det|rec|cls RUNS [int8] [TOP] [THREADS]  (time per node of the plans interleaved runs)
//   ... -- dispatch THREADS BLOCKS CALLS WORK     (cost of one parallel call; WORK steps per item, 0 for none)
//   ... -- gemm RUNS                              (1-thread fp32 GEMM GFLOP/s: 512^3 and PP-OCR's largest conv GEMMs)
//   ... -- depthwise RUNS                         (1-thread int8 depthwise convolution on PP-OCR's shapes)
//   ... -- convtranspose RUNS                     (1-thread fp32 2x2 stride-2 transposed convolution on det's shapes)
//   ... -- gpu RUNS [MODEL ...]                   (CUDA against Squash CPU and ONNX Runtime CPU, without BenchmarkDotNet)
//   ... -- int4 RUNS                              (1-thread int4 GEMV GB/s, fp32 and int8 activations, L3 and memory)
static int Int(string s) => int.Parse(s, CultureInfo.InvariantCulture);
if (args is ["interleaved", var model, var threads, var runs])
    Interleaved.Run(model, Int(threads), Int(runs));
else if (args is ["interleaved", var model8, var threads8, var runs8, "int8"])
    Interleaved.Run(model8, Int(threads8), Int(runs8), int8: true);
else if (args is ["interleaved", var modelA, var threadsA, var runsA, "auto"])
    Interleaved.Run(modelA, Int(threadsA), Int(runsA), auto: true);
else if (args is ["nodes", var modelN, var runsN, .. var restN])
    NodeProfile.Run(modelN, Int(runsN), restN.Contains("int8"), restN.Where(a => a != "int8").Select(Int).DefaultIfEmpty(30).First(),
        restN.Where(a => a != "int8").Select(Int).Skip(1).DefaultIfEmpty(1).First());
else if (args is ["gemm", var gemmRuns])
    GemmRate.Run(Int(gemmRuns));
else if (args is ["depthwise", var dwRuns])
    DepthwiseRate.Run(Int(dwRuns));
else if (args is ["convtranspose", var ctRuns])
    TransposedRate.Run(Int(ctRuns));
else if (args is ["gpu", var gpuRuns, .. var gpuModels])
    GpuBenchmarks.RunQuick(Int(gpuRuns), gpuModels.Length > 0 ? gpuModels : ["cls", "rec", "det", "cls-int8", "rec-int8", "det-int8", "decoder", "decoder-int4", "decoder-attention", "llama2048-int4", "llama2048"]);
else if (args is ["int4", var int4Runs])
    Int4Rate.Run(Int(int4Runs));
else if (args is ["dispatch", var threads2, var blocks, var calls, var work])
    Dispatch.Run(Int(threads2), Int(blocks), Int(calls), Int(work));
else
{
    // The GPU benchmarks need a CUDA device; without one they are left out with a message.
    IConfig? config = null;
    if (!GpuBenchmarks.CudaPresent(out string reason))
    {
        Console.WriteLine($"GpuBenchmarks skipped: {reason}.");
        config = DefaultConfig.Instance.AddFilter(new SimpleFilter(b => b.Descriptor.Type != typeof(GpuBenchmarks)));
    }
    BenchmarkSwitcher.FromAssembly(typeof(PpOcrBenchmarks).Assembly).Run(args, config);
}
