namespace Squash.Runtime;

/// <summary>Name, element type and shape of a model input or output; -1 marks a dimension set per call.</summary>
/// <param name="Name">The ONNX name.</param>
/// <param name="DataType">Element type.</param>
/// <param name="Shape">Dimensions.</param>
public sealed record TensorSpec(string Name, DataType DataType, int[] Shape)
{
    /// <inheritdoc/>
    public override string ToString() => $"{Name}: {DataTypes.Name(DataType)}{Shapes.Format(Shape)}";
}

/// <summary>
/// What every class Squash.Build generates offers besides its typed API: its inputs and outputs, and a run by name.
/// Tools, tests and benchmarks drive any compiled model through it.
/// </summary>
/// <remarks>Disposing a model stops the worker threads it started for more than one thread (it has none with one
/// thread); later calls throw <see cref="ObjectDisposedException"/>.</remarks>
public interface ISquashModel : IDisposable
{
    /// <summary>The inputs, in the model's order.</summary>
    IReadOnlyList<TensorSpec> Inputs { get; }

    /// <summary>The outputs, in the model's order.</summary>
    IReadOnlyList<TensorSpec> Outputs { get; }

    /// <summary>Runs the model on inputs given by name; returns new tensors the caller owns, by output name.</summary>
    /// <exception cref="SquashException">An input is missing, unknown, or of the wrong type or shape (SQ1009).</exception>
    IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs);
}
