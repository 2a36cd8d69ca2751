using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Quantization;

/// <summary>
/// A structural copy of a graph: new nodes and values with the same names, types and shapes, sharing the constant
/// tensors and attributes (neither is modified by the passes or the int8 rewrite, which make new ones). The sensitivity
/// profile and the mixed-precision search rewrite one copy per candidate plan instead of loading and optimizing the
/// model again.
/// </summary>
internal static class GraphCopy
{
    /// <exception cref="SquashException">The graph has control flow (subgraphs name outer values, which a copy would
    /// have to rebind), SQ1003.</exception>
    public static Graph Of(Graph graph)
    {
        var copy = new Graph(graph.Name);
        foreach (var (domain, version) in graph.OpsetImports) copy.OpsetImports[domain] = version;
        var values = new Dictionary<Value, Value>();
        Value Map(Value v)
        {
            if (values.TryGetValue(v, out var mapped)) return mapped;
            mapped = v.Constant is { } c ? new Value(v.Name, c) : new Value(v.Name, v.Type, (int[]?)v.Shape?.Clone());
            mapped.DimNames = v.DimNames;
            values[v] = mapped;
            return mapped;
        }
        foreach (var v in graph.Inputs) copy.Inputs.Add(Map(v));
        foreach (var v in graph.Initializers) copy.Initializers.Add(Map(v));
        foreach (var node in graph.Nodes)
        {
            if (node.Subgraphs.Any())
                throw new SquashException(ErrorCodes.UnsupportedOperator,
                    $"{node.Describe()} has a subgraph: int8 sensitivity and mixed precision do not support control flow yet; use Precision=fp32.");
            var n = new Node(node.OpType, node.Name, node.Domain, node.OpsetVersion);
            foreach (var (name, value) in node.Attributes) n.Attributes[name] = value;
            foreach (var input in node.Inputs) n.AddInput(input is null ? null : Map(input));
            foreach (var output in node.Outputs) n.AddOutput(Map(output));
            copy.Nodes.Add(n);
        }
        foreach (var v in graph.Outputs) copy.Outputs.Add(Map(v));
        return copy;
    }
}
