using Squash.Runtime;

namespace Ocr;

/// <summary>
/// Runs a model with one float input of fixed shape [1, 3, H, W] and one float output through <see cref="ISquashModel"/>,
/// the interface every class Squash.Build generates implements (and which an ONNX Runtime session can be wrapped in), so
/// the pipeline works with any of them.
/// </summary>
internal sealed class ModelRunner
{
    private readonly ISquashModel _model;
    private readonly Tensor _input;
    private readonly Dictionary<string, Tensor> _inputs;
    private readonly string _outputName;

    public ModelRunner(ISquashModel model, string role)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.Inputs.Count != 1 || model.Outputs.Count != 1)
            throw new ArgumentException($"The {role} model must have one input and one output, not {model.Inputs.Count} and {model.Outputs.Count}.", nameof(model));
        var input = model.Inputs[0];
        var output = model.Outputs[0];
        if (input.DataType != DataType.Float || output.DataType != DataType.Float)
            throw new ArgumentException($"The {role} model must take and return float tensors.", nameof(model));
        if (input.Shape is not [1, 3, > 0, > 0])
            throw new ArgumentException($"The {role} model's input must be [1, 3, H, W] with H and W fixed, not {input}; compile it with InputShapes.", nameof(model));
        _model = model;
        Height = input.Shape[2];
        Width = input.Shape[3];
        _input = new Tensor(DataType.Float, input.Shape);
        _inputs = new Dictionary<string, Tensor>(StringComparer.Ordinal) { [input.Name] = _input };
        _outputName = output.Name;
        OutputShape = output.Shape;
    }

    /// <summary>Input height H.</summary>
    public int Height { get; }

    /// <summary>Input width W.</summary>
    public int Width { get; }

    /// <summary>The output's declared shape (-1 where set per call).</summary>
    public int[] OutputShape { get; }

    /// <summary>The input, [3, H, W] row-major, for the caller to fill before <see cref="Run"/>.</summary>
    public Span<float> Input => _input.AsSpan<float>();

    /// <summary>Runs the model on <see cref="Input"/>.</summary>
    public Tensor Run() => _model.Run(_inputs)[_outputName];
}
