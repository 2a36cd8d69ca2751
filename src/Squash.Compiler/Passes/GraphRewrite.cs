using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Passes;

/// <summary>
/// The rewrites of one walk of a pattern pass, collected and applied to the node list at once. Applying each rewrite
/// as it is found (remove nodes from the list, insert the fused node, sort, recompute consumers, scan every value for
/// a free name) costs a walk of the graph per match: a hostile model with thousands of matches took minutes.
/// </summary>
/// <remarks>Matches found in one walk must not share nodes (<see cref="IsRemoved"/> tells). Consumers are those of the
/// graph when the walk began; a match asks about its own intermediate values, which no other match changes.</remarks>
internal sealed class GraphRewrite
{
    private readonly Graph _graph;
    private readonly HashSet<Node> _nodes;
    private readonly HashSet<Value> _outputs;
    private readonly HashSet<Node> _removed = [];
    private readonly Dictionary<Node, Node> _placedAt = [];
    private readonly Dictionary<Node, List<Node>> _insertedAt = [];
    private HashSet<string>? _names;

    /// <summary>Starts a walk over <paramref name="graph"/>.</summary>
    public GraphRewrite(Graph graph)
    {
        _graph = graph;
        _nodes = [.. graph.Nodes];
        _outputs = [.. graph.Outputs];
        Consumers = graph.Consumers();
    }

    /// <summary>Readers of each value when the walk began.</summary>
    public Dictionary<Value, List<(Node Node, int Index)>> Consumers { get; }

    /// <summary>True when the walk changed something.</summary>
    public bool Changed { get; private set; }

    /// <summary>True when <paramref name="node"/> is in the graph and no rewrite of this walk removed it.</summary>
    public bool IsLive(Node node) => _nodes.Contains(node) && !_removed.Contains(node);

    /// <summary>True when a rewrite of this walk removed <paramref name="node"/>.</summary>
    public bool IsRemoved(Node node) => _removed.Contains(node);

    /// <summary>The only node reading <paramref name="value"/>, or null when several (or none, or a subgraph, or a
    /// graph output) do.</summary>
    public Node? SoleConsumer(Value value)
    {
        if (_outputs.Contains(value)) return null;
        if (!Consumers.TryGetValue(value, out var list) || list.Count != 1 || list[0].Index < 0) return null;
        return list[0].Node;
    }

    /// <summary>Removes <paramref name="removed"/> and puts <paramref name="replacement"/> where
    /// <paramref name="anchor"/> (one of them) was.</summary>
    public void Replace(IEnumerable<Node> removed, Node anchor, Node replacement)
    {
        _removed.UnionWith(removed);
        _removed.Add(anchor);
        _placedAt[anchor] = replacement;
        Changed = true;
    }

    /// <summary>Makes <paramref name="keep"/> produce what <paramref name="replaced"/> produced (its output value and
    /// name) and removes <paramref name="replaced"/>: a node absorbs its single consumer.</summary>
    public void Absorb(Node keep, Node replaced)
    {
        keep.SetOutput(0, replaced.Outputs[0]);
        _removed.Add(replaced);
        Changed = true;
    }

    /// <summary>Puts the new node <paramref name="node"/> into the graph before <paramref name="anchor"/> (a live node or
    /// one this walk replaces); the sort that follows orders it.</summary>
    public void Insert(Node node, Node anchor)
    {
        if (!_insertedAt.TryGetValue(anchor, out var list)) _insertedAt[anchor] = list = [];
        list.Add(node);
        Changed = true;
    }

    /// <summary><paramref name="name"/>, or it with a suffix: a name no value of the graph has.</summary>
    public string UniqueName(string name)
    {
        _names ??= new HashSet<string>(_graph.AllValues().Select(v => v.Name), StringComparer.Ordinal);
        string unique = name;
        for (int i = 1; _names.Contains(unique); i++) unique = $"{name}_{i}";
        _names.Add(unique);
        return unique;
    }

    /// <summary>Adds a constant with a name no value of the graph has (<paramref name="name"/>, or it with a suffix).</summary>
    public Value AddConstant(string name, Tensor tensor)
    {
        var value = new Value(UniqueName(name), tensor);
        _graph.Initializers.Add(value);
        Changed = true;
        return value;
    }

    /// <summary>Applies the rewrites to the node list (one pass, then one sort); returns <see cref="Changed"/>.</summary>
    public bool Apply()
    {
        if (_removed.Count == 0 && _placedAt.Count == 0 && _insertedAt.Count == 0) return Changed;
        var nodes = new List<Node>(_graph.Nodes.Count);
        foreach (var node in _graph.Nodes)
        {
            if (_insertedAt.TryGetValue(node, out var inserted)) nodes.AddRange(inserted);
            if (_placedAt.TryGetValue(node, out var replacement)) nodes.Add(replacement);
            else if (!_removed.Contains(node)) nodes.Add(node);
        }
        _graph.Nodes.Clear();
        _graph.Nodes.AddRange(nodes);
        if (_placedAt.Count > 0 || _insertedAt.Count > 0) _graph.SortTopologically();
        return Changed;
    }
}
