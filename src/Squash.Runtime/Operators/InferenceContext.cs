using Squash.Runtime.Ir;

namespace Squash.Runtime.Operators;

/// <summary>What <see cref="Operator.InferOutputs"/> knows about the inputs, and where it writes the outputs.</summary>
public sealed class InferenceContext
{
    private readonly Node _node;
    private readonly DataType[] _inputTypes;
    private readonly int[]?[] _inputShapes;
    private readonly Tensor?[] _inputValues;
    private readonly bool[] _present;

    /// <summary>Creates a context for a node with the given input facts.</summary>
    public InferenceContext(Node node, int inputCount, int outputCount)
    {
        _node = node;
        _inputTypes = new DataType[inputCount];
        _inputShapes = new int[]?[inputCount];
        _inputValues = new Tensor?[inputCount];
        _present = new bool[inputCount];
        OutputTypes = new DataType[outputCount];
        OutputShapes = new int[]?[outputCount];
    }

    /// <summary>Describes input <paramref name="index"/>.</summary>
    public void SetInput(int index, DataType type, int[]? shape, Tensor? value)
    {
        _present[index] = true;
        _inputTypes[index] = type;
        _inputShapes[index] = shape;
        _inputValues[index] = value;
    }

    /// <summary>Number of inputs (regular and implicit).</summary>
    public int InputCount => _present.Length;

    /// <summary>Number of outputs.</summary>
    public int OutputCount => OutputTypes.Length;

    /// <summary>True when input <paramref name="index"/> is given (not omitted).</summary>
    public bool HasInput(int index) => index < _present.Length && _present[index];

    /// <summary>Element type of input <paramref name="index"/>.</summary>
    public DataType InputType(int index) => RequirePresent(index)._inputTypes[index];

    /// <summary>Shape of input <paramref name="index"/> (-1 for unknown dimensions), or null if the rank is unknown.</summary>
    public int[]? InputShape(int index) => RequirePresent(index)._inputShapes[index];

    /// <summary>The value of input <paramref name="index"/> when known (always at run time; for constants at build time).</summary>
    public Tensor? InputValue(int index) => HasInput(index) ? _inputValues[index] : null;

    /// <summary>Inferred output element types.</summary>
    public DataType[] OutputTypes { get; }

    /// <summary>Inferred output shapes.</summary>
    public int[]?[] OutputShapes { get; }

    /// <summary>Sets output <paramref name="index"/> (outputs beyond those the node has are ignored).</summary>
    public void SetOutput(int index, DataType type, int[]? shape)
    {
        if (index >= OutputTypes.Length) return;
        if (shape is { Length: > Shapes.MaxRank })
            throw Invalid($"output {index} would have {shape.Length} dimensions, more than the {Shapes.MaxRank} Squash supports.");
        OutputTypes[index] = type;
        OutputShapes[index] = shape;
    }

    /// <summary>An exception for a model that breaks the operator's specification.</summary>
    public SquashException Invalid(string message) =>
        new(ErrorCodes.InvalidModel, $"{_node.Describe()}: {message}", _node.Name);

    private InferenceContext RequirePresent(int index)
    {
        if (!HasInput(index)) throw Invalid($"input {index} is required.");
        return this;
    }
}
