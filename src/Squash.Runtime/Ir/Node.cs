namespace Squash.Runtime.Ir;

/// <summary>One operator application in a <see cref="Graph"/>.</summary>
public sealed class Node
{
    private readonly List<Value?> _inputs = [];
    private readonly List<Value> _outputs = [];

    /// <summary>Creates a node. Connect it with <see cref="AddInput"/> and <see cref="AddOutput"/>.</summary>
    public Node(string opType, string name = "", string domain = "", int opsetVersion = 0)
    {
        OpType = opType;
        Name = name;
        Domain = domain;
        OpsetVersion = opsetVersion;
    }

    /// <summary>ONNX operator type, such as <c>Conv</c>.</summary>
    public string OpType { get; set; }

    /// <summary>Node name (may be empty in ONNX; the loader gives every node a unique one).</summary>
    public string Name { get; set; }

    /// <summary>Operator domain; empty for the default ONNX domain.</summary>
    public string Domain { get; set; }

    /// <summary>The opset version of <see cref="Domain"/> the model imports.</summary>
    public int OpsetVersion { get; set; }

    /// <summary>Attributes by name.</summary>
    public Dictionary<string, AttributeValue> Attributes { get; } = new(StringComparer.Ordinal);

    /// <summary>Inputs in order; null marks an omitted optional input.</summary>
    public IReadOnlyList<Value?> Inputs => _inputs;

    /// <summary>Outputs in order.</summary>
    public IReadOnlyList<Value> Outputs => _outputs;

    /// <summary>Appends an input (null for an omitted optional one).</summary>
    public Node AddInput(Value? value)
    {
        _inputs.Add(value);
        return this;
    }

    /// <summary>Replaces input <paramref name="index"/>.</summary>
    public void SetInput(int index, Value? value) => _inputs[index] = value;

    /// <summary>Removes trailing inputs so that <paramref name="count"/> remain.</summary>
    public void TruncateInputs(int count) => _inputs.RemoveRange(count, _inputs.Count - count);

    /// <summary>Appends an output and makes this node its producer.</summary>
    public Node AddOutput(Value value)
    {
        value.Producer = this;
        _outputs.Add(value);
        return this;
    }

    /// <summary>Replaces output <paramref name="index"/> and makes this node its producer.</summary>
    public void SetOutput(int index, Value value)
    {
        value.Producer = this;
        _outputs[index] = value;
    }

    /// <summary>Input <paramref name="index"/>, or null when it is absent or omitted.</summary>
    public Value? Input(int index) => index < _inputs.Count ? _inputs[index] : null;

    /// <summary>Subgraphs held in attributes (If branches), in attribute-name order.</summary>
    public IEnumerable<Graph> Subgraphs
    {
        get
        {
            // Passes ask every node; most have no subgraph, so skip the sort and its allocations for them.
            foreach (var a in Attributes.Values)
                if (a.Kind == AttributeKind.Graph)
                    return Attributes.OrderBy(a => a.Key, StringComparer.Ordinal)
                        .Where(a => a.Value.Kind == AttributeKind.Graph)
                        .Select(a => a.Value.GraphValue!);
            return [];
        }
    }

    /// <summary>A description for messages: <c>Conv node 'conv1'</c>.</summary>
    public string Describe() => $"{(Domain.Length == 0 ? "" : Domain + ".")}{OpType} node '{Name}'";

    /// <inheritdoc/>
    public override string ToString() =>
        $"{Name} = {OpType}({string.Join(", ", _inputs.Select(i => i?.Name ?? ""))}) -> {string.Join(", ", _outputs.Select(o => o.Name))}";
}
