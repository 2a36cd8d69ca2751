using System.Diagnostics;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Passes;

/// <summary>Runs a list of passes over a graph and its subgraphs until none changes anything (at most
/// <see cref="MaxIterations"/> rounds).</summary>
public sealed class PassManager(IReadOnlyList<IGraphPass> passes)
{
    /// <summary>Upper bound on rounds, so a pair of passes that undo each other cannot loop forever.</summary>
    public const int MaxIterations = 16;

    /// <summary>The passes, in order.</summary>
    public IReadOnlyList<IGraphPass> Passes => passes;

    /// <summary>Runs the passes; returns true when anything changed.</summary>
    public bool Run(Graph graph, PassContext context)
    {
        bool any = false;
        for (int round = 0; round < MaxIterations; round++)
        {
            bool changed = false;
            foreach (var pass in passes)
            {
                if (context.DisabledPasses.Contains(pass.Name)) continue;
                var watch = Stopwatch.StartNew();
                bool passChanged = RunRecursive(pass, graph, context);
                if (passChanged) context.Log?.Invoke($"{pass.Name}: changed the graph ({graph.Nodes.Count} nodes, {watch.ElapsedMilliseconds} ms)");
                changed |= passChanged;
            }
            any |= changed;
            if (!changed) break;
        }
        return any;
    }

    private static bool RunRecursive(IGraphPass pass, Graph graph, PassContext context)
    {
        bool changed = false;
        foreach (var node in graph.Nodes.ToArray())
            foreach (var sub in node.Subgraphs)
                changed |= RunRecursive(pass, sub, context);
        changed |= pass.Run(graph, context);
        return changed;
    }
}
