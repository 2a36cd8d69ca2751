using Squash.Runtime.Ir;

namespace Squash.Runtime.Operators;

/// <summary>Typed access to a node's attributes that records which ones were read, so that an attribute an
/// operator does not implement is reported instead of silently ignored.</summary>
public sealed class AttributeReader
{
    private readonly Node _node;
    private readonly HashSet<string> _read = new(StringComparer.Ordinal);

    internal AttributeReader(Node node) => _node = node;

    /// <summary>True when the node has the attribute (and marks it read).</summary>
    public bool Has(string name)
    {
        _read.Add(name);
        return _node.Attributes.ContainsKey(name);
    }

    /// <summary>An integer attribute, or <paramref name="defaultValue"/> when absent.</summary>
    public long Int(string name, long defaultValue) => Get(name, AttributeKind.Int)?.IntValue ?? defaultValue;

    /// <summary>A float attribute, or <paramref name="defaultValue"/> when absent.</summary>
    public float Float(string name, float defaultValue) => Get(name, AttributeKind.Float)?.FloatValue ?? defaultValue;

    /// <summary>A string attribute, or <paramref name="defaultValue"/> when absent.</summary>
    public string String(string name, string defaultValue) => Get(name, AttributeKind.String)?.StringValue ?? defaultValue;

    /// <summary>An integer-list attribute, or null when absent.</summary>
    public long[]? Ints(string name) => Get(name, AttributeKind.Ints)?.Ints.ToArray();

    /// <summary>A float-list attribute, or null when absent.</summary>
    public float[]? Floats(string name) => Get(name, AttributeKind.Floats)?.Floats.ToArray();

    /// <summary>A string-list attribute, or null when absent.</summary>
    public string[]? Strings(string name) => Get(name, AttributeKind.Strings)?.Strings.ToArray();

    /// <summary>A tensor attribute, or null when absent.</summary>
    public Tensor? Tensor(string name) => Get(name, AttributeKind.Tensor)?.TensorValue;

    /// <summary>A subgraph attribute, or null when absent.</summary>
    public Graph? Graph(string name) => Get(name, AttributeKind.Graph)?.GraphValue;

    /// <summary>The raw attribute (any kind), or null when absent.</summary>
    public AttributeValue? Raw(string name)
    {
        _read.Add(name);
        return _node.Attributes.GetValueOrDefault(name);
    }

    private AttributeValue? Get(string name, AttributeKind kind)
    {
        _read.Add(name);
        if (!_node.Attributes.TryGetValue(name, out var value)) return null;
        // ONNX writers sometimes store a one-element list where a scalar is expected and vice versa.
        if (value.Kind == kind) return value;
        if (kind == AttributeKind.Ints && value.Kind == AttributeKind.Int) return AttributeValue.IntList(value.IntValue);
        if (kind == AttributeKind.Floats && value.Kind == AttributeKind.Float) return AttributeValue.FloatList(value.FloatValue);
        throw new SquashException(ErrorCodes.InvalidModel,
            $"{_node.Describe()}: attribute '{name}' should be of kind {kind} but is {value.Kind}.", _node.Name);
    }

    internal void CheckAllRead()
    {
        foreach (var name in _node.Attributes.Keys.Order(StringComparer.Ordinal))
        {
            if (!_read.Contains(name))
                throw new SquashException(ErrorCodes.UnsupportedAttribute,
                    $"{_node.Describe()}: attribute '{name}' is not supported by Squash's {_node.OpType} (opset {_node.OpsetVersion}). " +
                    "Re-export the model without it, or see docs/operators.md for what is supported.", _node.Name);
        }
    }
}
