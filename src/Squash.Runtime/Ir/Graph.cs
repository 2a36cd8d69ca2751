namespace Squash.Runtime.Ir;

/// <summary>
/// A dataflow graph: inputs, constants (initializers), nodes in topological order, and outputs.
/// A subgraph (an If branch) may read values of enclosing graphs directly.
/// </summary>
public sealed class Graph
{
    /// <summary>Creates an empty graph.</summary>
    public Graph(string name = "main") => Name = name;

    /// <summary>Graph name.</summary>
    public string Name { get; set; }

    /// <summary>Runtime inputs, in order.</summary>
    public List<Value> Inputs { get; } = [];

    /// <summary>Outputs, in order.</summary>
    public List<Value> Outputs { get; } = [];

    /// <summary>Constant values (ONNX initializers and folded constants).</summary>
    public List<Value> Initializers { get; } = [];

    /// <summary>Nodes, kept in topological order by every pass.</summary>
    public List<Node> Nodes { get; } = [];

    /// <summary>Imported opset versions by domain ("" is the default ONNX domain).</summary>
    public Dictionary<string, int> OpsetImports { get; } = new(StringComparer.Ordinal);

    /// <summary>The default-domain opset version.</summary>
    public int DefaultOpset => OpsetImports.GetValueOrDefault("", 0);

    /// <summary>For each value, the (node, input index) pairs that read it, including reads from subgraphs
    /// (attributed to the node that owns the subgraph, input index -1).</summary>
    public Dictionary<Value, List<(Node Node, int Index)>> Consumers()
    {
        var result = new Dictionary<Value, List<(Node, int)>>();
        foreach (var node in Nodes)
        {
            for (int i = 0; i < node.Inputs.Count; i++)
            {
                var v = node.Inputs[i];
                if (v is null) continue;
                Add(result, v, node, i);
            }
            foreach (var sub in node.Subgraphs)
                foreach (var v in sub.OuterValues())
                    Add(result, v, node, -1);
        }
        return result;

        static void Add(Dictionary<Value, List<(Node, int)>> map, Value v, Node node, int index)
        {
            if (!map.TryGetValue(v, out var list)) map[v] = list = [];
            list.Add((node, index));
        }
    }

    /// <summary>Values this graph (and its nested subgraphs) read that it does not define itself.</summary>
    public HashSet<Value> OuterValues()
    {
        var defined = new HashSet<Value>(Inputs);
        defined.UnionWith(Initializers);
        foreach (var n in Nodes) defined.UnionWith(n.Outputs);
        var outer = new HashSet<Value>();
        foreach (var n in Nodes)
        {
            foreach (var v in n.Inputs)
                if (v is not null && !defined.Contains(v) && v.Constant is null) outer.Add(v);
            foreach (var sub in n.Subgraphs)
                foreach (var v in sub.OuterValues())
                    if (!defined.Contains(v)) outer.Add(v);
        }
        foreach (var v in Outputs)
            if (!defined.Contains(v) && v.Constant is null) outer.Add(v);
        return outer;
    }

    /// <summary>Reorders <see cref="Nodes"/> topologically, keeping the existing order where it is valid.</summary>
    /// <remarks>Linear in the graph's size (Kahn's algorithm, ready nodes taken in their original order), so a long
    /// chain listed backwards sorts as fast as a sorted one.</remarks>
    /// <exception cref="SquashException">The graph has a cycle or reads a value nothing defines.</exception>
    public void SortTopologically(IReadOnlySet<Value>? outerScope = null)
    {
        var available = new HashSet<Value>(Inputs);
        available.UnionWith(Initializers);
        if (outerScope is not null) available.UnionWith(outerScope);
        var producer = new Dictionary<Value, int>();
        for (int i = 0; i < Nodes.Count; i++)
            foreach (var v in Nodes[i].Outputs)
                producer.TryAdd(v, i);

        var dependents = new List<int>?[Nodes.Count];
        var waiting = new int[Nodes.Count];
        var seen = new HashSet<int>();
        for (int i = 0; i < Nodes.Count; i++)
        {
            var node = Nodes[i];
            seen.Clear();
            foreach (var v in node.Inputs)
                if (v is not null && v.Constant is null) Depend(i, v);
            foreach (var sub in node.Subgraphs)
                foreach (var v in sub.OuterValues())
                    Depend(i, v);
        }

        // Ready nodes leave in their original order (a min-heap of indices), so a valid order is kept as it is.
        var ready = new PriorityQueue<int, int>();
        for (int i = 0; i < Nodes.Count; i++)
            if (waiting[i] == 0) ready.Enqueue(i, i);
        var sorted = new List<Node>(Nodes.Count);
        while (ready.TryDequeue(out int i, out _))
        {
            sorted.Add(Nodes[i]);
            if (dependents[i] is not { } list) continue;
            foreach (int d in list)
                if (--waiting[d] == 0) ready.Enqueue(d, d);
        }
        if (sorted.Count < Nodes.Count)
        {
            var stuck = Nodes[Enumerable.Range(0, Nodes.Count).First(i => waiting[i] > 0)];
            throw new SquashException(ErrorCodes.InvalidModel,
                $"{stuck.Describe()} is part of a cycle; ONNX graphs must be acyclic.", stuck.Name);
        }
        Nodes.Clear();
        Nodes.AddRange(sorted);

        void Depend(int reader, Value v)
        {
            if (available.Contains(v)) return;
            if (!producer.TryGetValue(v, out int p))
            {
                var node = Nodes[reader];
                throw new SquashException(ErrorCodes.InvalidModel,
                    $"{node.Describe()} reads '{v.Name}', which no node, input or initializer defines.", node.Name);
            }
            if (!seen.Add(p)) return;
            waiting[reader]++;
            (dependents[p] ??= []).Add(reader);
        }
    }

    /// <summary>Makes every node input (here and in nested subgraphs) that reads <paramref name="old"/> read
    /// <paramref name="replacement"/> instead. Graph outputs are left to the caller.</summary>
    public void ReplaceUses(Value old, Value replacement) =>
        ReplaceUses(new Dictionary<Value, Value> { [old] = replacement });

    /// <summary>Replaces, in one walk, every use of each key of <paramref name="replacements"/> by its value, in node
    /// inputs here and in nested subgraphs (and in those subgraphs' outputs). Graph outputs are left to the caller.</summary>
    public void ReplaceUses(IReadOnlyDictionary<Value, Value> replacements)
    {
        if (replacements.Count == 0) return;
        foreach (var node in Nodes)
        {
            for (int i = 0; i < node.Inputs.Count; i++)
                if (node.Inputs[i] is { } v && replacements.TryGetValue(v, out var r)) node.SetInput(i, r);
            foreach (var sub in node.Subgraphs)
            {
                sub.ReplaceUses(replacements);
                for (int i = 0; i < sub.Outputs.Count; i++)
                    if (replacements.TryGetValue(sub.Outputs[i], out var r)) sub.Outputs[i] = r;
            }
        }
    }

    /// <summary>Every value that this graph (not its subgraphs) defines or reads.</summary>
    public IEnumerable<Value> AllValues()
    {
        var seen = new HashSet<Value>();
        foreach (var v in Inputs.Concat(Initializers))
            if (seen.Add(v)) yield return v;
        foreach (var n in Nodes)
        {
            foreach (var v in n.Inputs)
                if (v is not null && seen.Add(v)) yield return v;
            foreach (var v in n.Outputs)
                if (seen.Add(v)) yield return v;
        }
        foreach (var v in Outputs)
            if (seen.Add(v)) yield return v;
    }
}

/// <summary>A model: its main graph and the metadata ONNX keeps beside it.</summary>
public sealed class Model
{
    /// <summary>Creates a model around a graph.</summary>
    public Model(Graph graph) => Graph = graph;

    /// <summary>The main graph.</summary>
    public Graph Graph { get; }

    /// <summary>ONNX IR version of the file.</summary>
    public long IrVersion { get; set; } = 8;

    /// <summary>Tool that produced the model.</summary>
    public string ProducerName { get; set; } = "";

    /// <summary>Version of that tool.</summary>
    public string ProducerVersion { get; set; } = "";

    /// <summary>Free-form metadata properties.</summary>
    public Dictionary<string, string> Metadata { get; } = new(StringComparer.Ordinal);
}
