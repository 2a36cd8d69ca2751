using System.Globalization;

namespace Squash.Runtime.Ir;

/// <summary>The kinds of ONNX node attributes.</summary>
public enum AttributeKind
{
    /// <summary>One float.</summary>
    Float,
    /// <summary>One 64-bit integer.</summary>
    Int,
    /// <summary>One string.</summary>
    String,
    /// <summary>One tensor.</summary>
    Tensor,
    /// <summary>One subgraph.</summary>
    Graph,
    /// <summary>A list of floats.</summary>
    Floats,
    /// <summary>A list of 64-bit integers.</summary>
    Ints,
    /// <summary>A list of strings.</summary>
    Strings,
}

/// <summary>An immutable attribute value of a <see cref="Node"/>.</summary>
public sealed class AttributeValue
{
    private AttributeValue(AttributeKind kind) => Kind = kind;

    /// <summary>Which member holds the value.</summary>
    public AttributeKind Kind { get; }

    /// <summary>The value of a <see cref="AttributeKind.Float"/> attribute.</summary>
    public float FloatValue { get; private init; }

    /// <summary>The value of an <see cref="AttributeKind.Int"/> attribute.</summary>
    public long IntValue { get; private init; }

    /// <summary>The value of a <see cref="AttributeKind.String"/> attribute.</summary>
    public string StringValue { get; private init; } = "";

    /// <summary>The value of a <see cref="AttributeKind.Tensor"/> attribute.</summary>
    public Tensor? TensorValue { get; private init; }

    /// <summary>The value of a <see cref="AttributeKind.Graph"/> attribute.</summary>
    public Graph? GraphValue { get; private init; }

    /// <summary>The value of a <see cref="AttributeKind.Floats"/> attribute.</summary>
    public IReadOnlyList<float> Floats { get; private init; } = [];

    /// <summary>The value of an <see cref="AttributeKind.Ints"/> attribute.</summary>
    public IReadOnlyList<long> Ints { get; private init; } = [];

    /// <summary>The value of a <see cref="AttributeKind.Strings"/> attribute.</summary>
    public IReadOnlyList<string> Strings { get; private init; } = [];

    /// <summary>A float attribute.</summary>
    public static AttributeValue Float(float value) => new(AttributeKind.Float) { FloatValue = value };

    /// <summary>An integer attribute.</summary>
    public static AttributeValue Int(long value) => new(AttributeKind.Int) { IntValue = value };

    /// <summary>A string attribute.</summary>
    public static AttributeValue String(string value) => new(AttributeKind.String) { StringValue = value };

    /// <summary>A tensor attribute.</summary>
    public static AttributeValue FromTensor(Tensor value) => new(AttributeKind.Tensor) { TensorValue = value };

    /// <summary>A subgraph attribute.</summary>
    public static AttributeValue FromGraph(Graph value) => new(AttributeKind.Graph) { GraphValue = value };

    /// <summary>A float-list attribute.</summary>
    public static AttributeValue FloatList(params float[] values) => new(AttributeKind.Floats) { Floats = values };

    /// <summary>An integer-list attribute.</summary>
    public static AttributeValue IntList(params long[] values) => new(AttributeKind.Ints) { Ints = values };

    /// <summary>A string-list attribute.</summary>
    public static AttributeValue StringList(params string[] values) => new(AttributeKind.Strings) { Strings = values };

    /// <inheritdoc/>
    public override string ToString() => Kind switch
    {
        AttributeKind.Float => FloatValue.ToString("R", CultureInfo.InvariantCulture),
        AttributeKind.Int => IntValue.ToString(CultureInfo.InvariantCulture),
        AttributeKind.String => "\"" + StringValue + "\"",
        AttributeKind.Tensor => TensorValue!.ToString(),
        AttributeKind.Graph => "graph " + GraphValue!.Name,
        AttributeKind.Floats => "[" + string.Join(",", Floats.Select(f => f.ToString("R", CultureInfo.InvariantCulture))) + "]",
        AttributeKind.Ints => "[" + string.Join(",", Ints) + "]",
        AttributeKind.Strings => "[" + string.Join(",", Strings.Select(s => "\"" + s + "\"")) + "]",
        _ => Kind.ToString(),
    };
}
