namespace Squash.Runtime.Ir;

/// <summary>
/// A named tensor in a <see cref="Graph"/>: a graph input, a node output, or a constant (initializer).
/// Values are compared by reference; names are unique within a model.
/// </summary>
public sealed class Value
{
    /// <summary>Creates a value.</summary>
    public Value(string name, DataType type = DataType.Undefined, int[]? shape = null)
    {
        Name = name;
        Type = type;
        Shape = shape;
    }

    /// <summary>Creates a constant value.</summary>
    public Value(string name, Tensor constant)
        : this(name, constant.DataType, constant.Shape)
    {
        Constant = constant;
    }

    /// <summary>Unique name (the ONNX name).</summary>
    public string Name { get; set; }

    /// <summary>Element type; <see cref="DataType.Undefined"/> until inferred.</summary>
    public DataType Type { get; set; }

    /// <summary>Dimensions (-1 where unknown); null when even the rank is unknown.</summary>
    public int[]? Shape { get; set; }

    /// <summary>Names of symbolic dimensions from the model (<c>batch</c>, <c>width</c>), where it gave them.</summary>
    public string?[]? DimNames { get; set; }

    /// <summary>The value when it is known at build time (initializers, folded constants); otherwise null.</summary>
    public Tensor? Constant
    {
        get => _constant;
        set
        {
            _constant = value;
            if (value is not null)
            {
                Type = value.DataType;
                Shape = value.Shape;
            }
        }
    }
    private Tensor? _constant;

    /// <summary>The node that computes this value; null for graph inputs and constants.</summary>
    public Node? Producer { get; internal set; }

    /// <summary>True when every dimension is known.</summary>
    public bool HasKnownShape => Shape is not null && Shapes.IsKnown(Shape);

    /// <inheritdoc/>
    public override string ToString() =>
        $"{Name}: {DataTypes.Name(Type)}{(Shape is null ? "[?]" : Shapes.Format(Shape))}{(Constant is null ? "" : " const")}";
}
