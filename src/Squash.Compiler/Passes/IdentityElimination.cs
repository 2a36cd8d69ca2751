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
        bool changed = false;
        var consumers = graph.Consumers();
        foreach (var node in graph.Nodes.ToArray())
        {
            if (node.Domain.Length != 0 || node.Input(0) is not { } input) continue;
            bool removable = node.OpType switch
            {
                "Identity" => true,
                "Dropout" => IsInferenceDropout(node, consumers),
                _ => false,
            };
            if (!removable) continue;
            var output = node.Outputs[0];
            int outputIndex = graph.Outputs.IndexOf(output);
            if (outputIndex >= 0)
            {
                bool canRename = input.Producer is not null && graph.Nodes.Contains(input.Producer)
                    && !graph.Outputs.Contains(input) && !graph.Inputs.Contains(input);
                if (!canRename) continue;
                input.Name = output.Name;
                graph.Outputs[outputIndex] = input;
            }
            graph.ReplaceUses(output, input);
            graph.Nodes.Remove(node);
            changed = true;
        }
        return changed;
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
