using System.Diagnostics;
using Squash.Compiler;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Tensor = Squash.Runtime.Tensor;

namespace Squash.Benchmarks;

/// <summary>
/// Where the benchmark's own plans spend their time, node by node: the plans <see cref="Interleaved"/> times (det at
/// 640x640; int8 calibrated on the stored samples, then pinned), each node's fastest run over the runs, the slowest
/// first. <c>dotnet run -c Release --project bench/Squash.Benchmarks -- nodes det|rec|cls RUNS [int8] [TOP] [THREADS]</c>.
/// </summary>
internal static class NodeProfile
{
    public static void Run(string name, int runs, bool int8, int top, int threads = 1)
    {
        var (file, task, shape) = Interleaved.Models[name];
        ExecutionPlan plan;
        if (int8) plan = Int8Models.Plan(file, task, shape);
        else
        {
            var model = global::Squash.Compiler.Onnx.OnnxLoader.Load(Assets.Model(file));
            ModelPreparation.PinInputShapes(model, new Dictionary<string, int[]> { [model.Graph.Inputs[0].Name] = shape });
            ModelPreparation.OptimizeForCpu(model);
            plan = ExecutionPlan.Create(model.Graph);
        }
        var inputs = new Dictionary<string, Tensor> { [plan.Graph.Inputs[0].Name] = Assets.Input(task, shape) };
        using var context = new KernelContext(threads);
        var warmUp = Stopwatch.StartNew();
        while (warmUp.Elapsed < TimeSpan.FromSeconds(5)) plan.Run(inputs, context);
        int count = plan.Graph.Nodes.Count;
        var step = new long[count];
        var best = Enumerable.Repeat(long.MaxValue, count).ToArray();
        var totals = new List<double>();
        plan.StepTicks = step;
        for (int r = 0; r < runs; r++)
        {
            Array.Clear(step);
            long start = Stopwatch.GetTimestamp();
            plan.Run(inputs, context);
            totals.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            for (int i = 0; i < count; i++) best[i] = Math.Min(best[i], step[i]);
        }
        double Ms(long t) => t * 1000.0 / Stopwatch.Frequency;
        var nodes = plan.Graph.Nodes;
        Console.WriteLine($"{name}{(int8 ? " int8" : "")} {threads} thread(s), {runs} runs: median {Interleaved.Median(totals):F2} ms; sum of fastest node runs {Ms(best.Sum()):F2} ms");
        foreach (var group in Enumerable.Range(0, count).GroupBy(i => nodes[i].OpType).OrderByDescending(g => g.Sum(i => best[i])))
            Console.WriteLine($"  {group.Key,-24} {group.Count(),4} nodes {Ms(group.Sum(i => best[i])),9:F3} ms");
        foreach (int i in Enumerable.Range(0, count).OrderByDescending(i => best[i]).Take(top))
        {
            var n = nodes[i];
            string shapes = string.Join(" x ", n.Inputs.Where(v => v?.Shape is not null).Take(2).Select(v => $"{v!.Type}[{string.Join(",", v.Shape!)}]"));
            Console.WriteLine($"  {n.Name,-32} {n.OpType,-20} {Ms(best[i]),8:F3} ms  {shapes} -> [{string.Join(",", n.Outputs[0].Shape ?? [])}]");
        }
    }
}
