using Squash.Runtime;
using Squash.Runtime.IO;

namespace Squash.Compiler.Quantization;

/// <summary>
/// One sample of a <see cref="CalibrationDataSet"/>: a tensor per model input, read from disk only when
/// <see cref="Load"/> is called, so a data set of any size is calibrated one sample at a time.
/// </summary>
public sealed class CalibrationSample
{
    private readonly CalibrationInput[] _inputs;
    private readonly string[] _files;

    internal CalibrationSample(int index, string name, string path, string[] files, CalibrationInput[] inputs, bool isHeldOut)
    {
        Index = index;
        Name = name;
        Path = path;
        _files = files;
        _inputs = inputs;
        IsHeldOut = isHeldOut;
    }

    /// <summary>Position in the data set's ordinal order (0-based).</summary>
    public int Index { get; }

    /// <summary>The file name without <c>.npy</c>/<c>.npy.gz</c>, or the sub-folder name.</summary>
    public string Name { get; }

    /// <summary>The sample's file, or its sub-folder.</summary>
    public string Path { get; }

    /// <summary>The file of each model input, in the model's input order.</summary>
    public IReadOnlyList<string> Files => _files;

    /// <summary>True when the data set's <see cref="CalibrationSplit"/> holds this sample out of calibration.</summary>
    public bool IsHeldOut { get; }

    /// <summary>The file holding input <paramref name="inputName"/>, or null when the sample has none.</summary>
    public string? FileOf(string inputName)
    {
        for (int i = 0; i < _inputs.Length; i++)
            if (_inputs[i].Name == inputName) return _files[i];
        return null;
    }

    /// <summary>Reads the sample's tensors, keyed by input name, and checks them against the model's inputs.</summary>
    /// <exception cref="SquashException">A file is unreadable, or its type, shape or values do not fit the input
    /// (SQ1016, naming the file).</exception>
    public Dictionary<string, Tensor> Load()
    {
        var result = new Dictionary<string, Tensor>(_inputs.Length, StringComparer.Ordinal);
        for (int i = 0; i < _inputs.Length; i++) result[_inputs[i].Name] = Read(_files[i], _inputs[i]);
        return result;
    }

    /// <inheritdoc/>
    public override string ToString() => Path;

    private static Tensor Read(string file, CalibrationInput input)
    {
        Tensor tensor;
        try
        {
            tensor = Npy.Read(file);
        }
        catch (SquashException e)
        {
            // Npy's message names the file and what is wrong with it.
            throw new SquashException(ErrorCodes.CalibrationData,
                $"Calibration file unreadable: {e.Message.TrimEnd('.')}; write the sample again with numpy.save.", inner: e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SquashException(ErrorCodes.CalibrationData,
                $"Calibration file '{file}' is unreadable ({e.Message.TrimEnd('.')}); check that it exists and is readable.",
                inner: e);
        }
        if (input.Type != DataType.Undefined && tensor.DataType != input.Type)
            throw new SquashException(ErrorCodes.CalibrationData,
                $"Calibration file '{file}' holds {DataTypes.Name(tensor.DataType)} data but model input '{input.Name}' is "
                + $"{DataTypes.Name(input.Type)}; save it as {DataTypes.Name(input.Type)} "
                + $"(numpy: array.astype(numpy.{NumpyName(input.Type)})).");
        if (input.Shape is { } declared && !Fits(tensor.Shape, declared))
            throw new SquashException(ErrorCodes.CalibrationData,
                $"Calibration file '{file}' has shape {Shapes.Format(tensor.Shape)} but model input '{input.Name}' is "
                + $"{Shapes.Format(declared)} (? is any size); save samples of the input's shape.");
        if (FirstNonFinite(tensor) is int index)
            throw new SquashException(ErrorCodes.CalibrationData,
                $"Calibration file '{file}' holds {Describe(tensor.GetAsDouble(index))} at "
                + $"{Shapes.Format(Position(index, tensor.Shape))}; calibration data must be finite: fix the preprocessing that wrote it.");
        return tensor;
    }

    private static bool Fits(int[] shape, int[] declared)
    {
        if (shape.Length != declared.Length) return false;
        for (int d = 0; d < shape.Length; d++)
            if (declared[d] >= 0 && declared[d] != shape[d]) return false;
        return true;
    }

    private static int? FirstNonFinite(Tensor tensor)
    {
        switch (tensor.DataType)
        {
            case DataType.Float:
                var f = tensor.AsSpan<float>();
                for (int i = 0; i < f.Length; i++) if (!float.IsFinite(f[i])) return i;
                return null;
            case DataType.Double:
                var d = tensor.AsSpan<double>();
                for (int i = 0; i < d.Length; i++) if (!double.IsFinite(d[i])) return i;
                return null;
            case DataType.Float16:
                var h = tensor.AsSpan<Half>();
                for (int i = 0; i < h.Length; i++) if (!Half.IsFinite(h[i])) return i;
                return null;
            case DataType.BFloat16:
                for (int i = 0; i < tensor.ElementCount; i++) if (!double.IsFinite(tensor.GetAsDouble(i))) return i;
                return null;
            default:
                return null;
        }
    }

    private static string Describe(double value) => double.IsNaN(value) ? "NaN" : value > 0 ? "+Infinity" : "-Infinity";

    private static int[] Position(int flat, int[] shape)
    {
        var position = new int[shape.Length];
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            position[d] = flat % shape[d];
            flat /= shape[d];
        }
        return position;
    }

    private static string NumpyName(DataType type) => type switch
    {
        DataType.Float => "float32",
        DataType.Double => "float64",
        DataType.Float16 => "float16",
        DataType.Bool => "bool_",
        _ => DataTypes.Name(type),
    };
}
