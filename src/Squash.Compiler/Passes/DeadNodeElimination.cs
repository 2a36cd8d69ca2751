using Squash.Runtime.Ir;

namespace Squash.Compiler.Passes;

/// <summary>
/// Removes nodes none of whose outputs reach a graph output, and constants nothing reads.
/// Handles reads from subgraphs (an If branch reading an outer value keeps it alive).
/// </summary>
public sealed class DeadNodeElimination : IGraphPass
{
    /// <inheritdoc/>
    public string Name => "DeadNodeElimination";

    /// <inheritdoc/>
    public bool Run(Graph graph, PassContext context)
    {
        var live = new HashSet<Value>(graph.Outputs);
        var keep = new List<Node>(graph.Nodes.Count);
        for (int i = graph.Nodes.Count - 1; i >= 0; i--)
        {
            var node = graph.Nodes[i];
            if (!node.Outputs.Any(live.Contains)) continue;
            keep.Add(node);
            foreach (var v in node.Inputs)
                if (v is not null) live.Add(v);
            foreach (var sub in node.Subgraphs) live.UnionWith(sub.OuterValues());
        }
        keep.Reverse();
        bool changed = keep.Count != graph.Nodes.Count;
        if (changed)
        {
            graph.Nodes.Clear();
            graph.Nodes.AddRange(keep);
        }
        var inputs = new HashSet<Value>(graph.Inputs);
        int removed = graph.Initializers.RemoveAll(v => !live.Contains(v) && !inputs.Contains(v));
        return changed || removed > 0;
    }
}
