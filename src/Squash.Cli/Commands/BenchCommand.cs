using System.Diagnostics;
using System.Globalization;
using Squash.Compiler;
using Squash.Compiler.Onnx;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.IO;

namespace Squash.Cli.Commands;

/// <summary><c>squash bench MODEL --input NAME=FILE ... [--precision P --calibration DIR ...] [--threads N] [--iters N]
/// [--warmup N] [--profile] [--no-fuse]</c>: prepares the model as the build does (the same precision options as
/// <c>squash run</c>), times the planned execution (what the generated code runs) and prints median, min and max
/// milliseconds.</summary>
internal static class BenchCommand
{
    public static int Run(Arguments args, TextWriter output)
    {
        if (args.Help)
        {
            output.WriteLine("usage: squash bench MODEL.onnx --input NAME=FILE.npy [--input ...] [precision options] [--threads N] [--iters N] [--warmup N] [--profile [--top N]] [--no-fuse]");
            output.WriteLine("Input shapes are pinned to the given files' shapes. --profile adds time per operator type and the N slowest nodes (12); --no-fuse");
            output.WriteLine("skips the fusion passes (Pipeline.Fuse) to measure what they gain. Warm-up: at least 3 s (the JIT optimizes hot code");
            output.WriteLine("after it has run a while), or exactly --warmup N runs. Precision options, as squash run's:");
            output.WriteLine(PrecisionArguments.Usage);
            return 0;
        }
        string modelPath = args.Positional(0, "the model file (squash bench MODEL.onnx --input NAME=FILE)");
        var specs = args.All("input");
        int threads = args.Int("threads", 1, min: 0);
        int iters = args.Int("iters", 20, min: 1);
        // By default at least 3 s of warm-up: the JIT replaces a hot method's first-tier code with optimized code only
        // after it has run a while, and a measurement before that is of the wrong code (docs/performance.md).
        bool fixedWarmup = args.Optional("warmup") is not null;
        int warmup = args.Int("warmup", 3, min: 0);
        bool profile = args.Flag("profile");
        int slowest = args.Int("top", 12, min: 0);
        bool fuse = !args.Flag("no-fuse");
        var precision = PrecisionArguments.Parse(args);
        args.CheckNoneLeft(1);

        var model = OnnxLoader.Load(modelPath);
        var inputs = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var spec in specs)
        {
            int eq = spec.IndexOf('=');
            if (eq <= 0) throw new UsageException($"--input takes NAME=FILE, not '{spec}'.");
            inputs[spec[..eq]] = Npy.Read(spec[(eq + 1)..]);
        }
        foreach (var input in model.Graph.Inputs)
            if (!inputs.ContainsKey(input.Name))
                throw new SquashException(ErrorCodes.BadInput, $"Give --input {input.Name}=FILE.npy (the model's inputs are {string.Join(", ", model.Graph.Inputs.Select(i => i.Name))}).");
        // The build's order: pinned shapes, the fp32 passes, the precision (int8: calibration and rewrite), fusion.
        ModelPreparation.PinInputShapes(model, inputs.ToDictionary(p => p.Key, p => p.Value.Shape));
        ModelPreparation.Optimize(model);
        var outcome = ModelPreparation.ApplyPrecision(model, precision.Precision, precision.Int4, precision.CalibrationFolder, log: null,
            precision.Int8(threads), modelPath);
        if (outcome is not null) output.WriteLine(QuantizationArguments.Summary(outcome));
        if (fuse) ModelPreparation.Fuse(model);
        var plan = ExecutionPlan.Create(model.Graph);
        using var context = new KernelContext(threads);
        // The first runs show what an app that runs the model once or twice sees (the first includes JIT compilation).
        var firstRuns = new List<double>();
        var warmupTime = Stopwatch.StartNew();
        for (int i = 0; i < warmup || (!fixedWarmup && warmupTime.Elapsed.TotalSeconds < 3); i++)
        {
            long start = Stopwatch.GetTimestamp();
            plan.Run(inputs, context);
            if (firstRuns.Count < 3) firstRuns.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }
        var times = new double[iters];
        // Per node: the sum over runs, and its fastest run (what it costs when nothing else takes the core; on a
        // shared machine the sums are mostly other jobs' time slices).
        long[]? ticks = profile ? new long[model.Graph.Nodes.Count] : null;
        long[]? runTicks = profile ? new long[model.Graph.Nodes.Count] : null;
        long[]? bestTicks = profile ? Enumerable.Repeat(long.MaxValue, model.Graph.Nodes.Count).ToArray() : null;
        plan.StepTicks = runTicks;
        for (int i = 0; i < iters; i++)
        {
            if (runTicks is not null) Array.Clear(runTicks);
            long start = Stopwatch.GetTimestamp();
            plan.Run(inputs, context);
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            if (runTicks is null) continue;
            for (int j = 0; j < runTicks.Length; j++)
            {
                ticks![j] += runTicks[j];
                bestTicks![j] = Math.Min(bestTicks[j], runTicks[j]);
            }
        }
        Array.Sort(times);
        double median = iters % 2 == 1 ? times[iters / 2] : (times[iters / 2 - 1] + times[iters / 2]) / 2;
        var ci = CultureInfo.InvariantCulture;
        output.WriteLine(string.Create(ci, $"{Path.GetFileName(modelPath)}: {model.Graph.Nodes.Count} nodes, {threads} thread(s), {iters} runs after {warmupTime.Elapsed.TotalSeconds:F1} s of warm-up"));
        output.WriteLine(string.Create(ci, $"median {median:F3} ms   min {times[0]:F3} ms   max {times[^1]:F3} ms"));
        if (firstRuns.Count > 0)
            output.WriteLine(string.Create(ci, $"first runs {string.Join(", ", firstRuns.Select(t => t.ToString("F3", ci)))} ms (the first compiles the code)"));
        if (ticks is not null && bestTicks is not null)
        {
            long[] sums = ticks, best = bestTicks;
            double total = sums.Sum(), bestTotal = best.Sum();
            double Ms(double t) => t * 1000.0 / Stopwatch.Frequency;
            output.WriteLine();
            output.WriteLine(string.Create(ci, $"time per operator type: mean per run, and the sum of each node's fastest run ({Ms(bestTotal):F3} ms in all):"));
            foreach (var group in model.Graph.Nodes.Select((n, i) => (n.OpType, Ticks: sums[i], Best: best[i]))
                .GroupBy(p => p.OpType).Select(g => (Op: g.Key, Count: g.Count(), Ticks: g.Sum(p => p.Ticks), Best: g.Sum(p => p.Best)))
                .OrderByDescending(g => g.Best))
            {
                output.WriteLine(string.Create(ci,
                    $"  {group.Op,-24} {group.Count,5} nodes {Ms(group.Ticks) / iters,10:F3} ms {100 * group.Ticks / total,6:F1} %   fastest {Ms(group.Best),9:F3} ms {100 * group.Best / bestTotal,6:F1} %"));
            }
                        output.WriteLine();
            output.WriteLine(string.Create(ci, $"the {slowest} slowest nodes by their fastest run (GFLOP/s for convolutions and matrix products):"));
            foreach (var (node, ticksOfNode) in model.Graph.Nodes.Select((n, i) => (n, best[i])).OrderByDescending(p => p.Item2).Take(slowest))
            {
                double ms = Ms(ticksOfNode);
                string rate = NodeWork.Flops(node) is { } flops && ms > 0 ? string.Create(ci, $"{flops / (ms * 1e6),7:F1} GFLOP/s") : "";
                output.WriteLine(string.Create(ci, $"  {node.Name,-28} {node.OpType,-18} {ms,8:F3} ms {rate}  {NodeWork.Describe(node)}"));
            }
        }
        return 0;
    }
}
