using Squash.Runtime.Ir;

namespace Squash.Compiler.Passes;

/// <summary>
/// Removes Identity nodes, and Dropout nodes in inference mode whose mask nobody reads:
/// <code>
///   x -> Identity -> y -> consumers     becomes     x -> consumers
/// </code>
/// When y is a graph output, x takes y's name instead, provided x is computed by a node of this graph and is not
/// itself a graph input or output; otherwise the node stays.
/// </summary>
public sealed class IdentityElimination : IGraphPass
{
    /// <inheritdoc/>
    public string Name => "IdentityElimination";

    /// <inheritdoc/>
    public bool Run(Graph graph, PassContext context)
    {
        // One walk to decide, one to rewire: linear, so a long Identity chain costs no more than its length.
        var consumers = graph.Consumers();
        var replacements = new Dictionary<Value, Value>();
        var removed = new HashSet<Node>();
        var nodes = new HashSet<Node>(graph.Nodes);
        var inputs = new HashSet<Value>(graph.Inputs);
        var outputs = new HashSet<Value>(graph.Outputs);
        foreach (var node in graph.Nodes)
        {
            if (node.Domain.Length != 0 || node.Input(0) is not { } input) continue;
            bool removable = node.OpType switch
            {
                "Identity" => true,
                "Dropout" => IsInferenceDropout(node, consumers),
                _ => false,
            };
            if (!removable) continue;
            while (replacements.TryGetValue(input, out var earlier)) input = earlier;
            var output = node.Outputs[0];
            if (outputs.Contains(output))
            {
                bool canRename = input.Producer is { } producer && nodes.Contains(producer) && !removed.Contains(producer)
                    && !outputs.Contains(input) && !inputs.Contains(input);
                if (!canRename) continue;
                input.Name = output.Name;
                outputs.Remove(output);
                outputs.Add(input);
            }
            replacements[output] = input;
            removed.Add(node);
        }
        if (removed.Count == 0) return false;
        graph.ReplaceUses(replacements);
        for (int i = 0; i < graph.Outputs.Count; i++)
            if (replacements.TryGetValue(graph.Outputs[i], out var renamed)) graph.Outputs[i] = renamed;
        graph.Nodes.RemoveAll(removed.Contains);
        return true;
    }

    private static bool IsInferenceDropout(Node node, Dictionary<Value, List<(Node Node, int Index)>> consumers)
    {
        if (node.Outputs.Count > 1 && node.Outputs[1].Name.Length > 0 && consumers.ContainsKey(node.Outputs[1])) return false;
        // training_mode (opset 12+) must be absent or a constant false.
        if (node.Input(2) is { } training)
            return training.Constant is { } t && t.GetAsDouble(0) == 0;
        return true;
    }
}
