using Squash.Compiler.Onnx;
using Squash.Compiler.Passes;
using Squash.Compiler.Quantization;
using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Compiler;

/// <summary>The front of every compilation: load, then optimize with <see cref="Pipeline.Optimize"/> (and, for the CPU's
/// fp32 code, fuse with <see cref="Pipeline.Fuse"/>). The CLI, the build and the tests all start here, so they run the
/// same graph.</summary>
public static class ModelPreparation
{
    /// <summary>Loads <paramref name="path"/> and optimizes its graph (<see cref="Optimize"/>; precision and
    /// <see cref="Fuse"/> come after, as the caller needs).</summary>
    public static Model LoadAndOptimize(string path, Action<string>? log = null)
    {
        var model = OnnxLoader.Load(path);
        Optimize(model, log);
        return model;
    }

    /// <summary>
    /// Fixes the dimensions of graph inputs (InputShapes metadata, or the shapes of the data at hand) so that shape
    /// arithmetic folds and every tensor gets a static place in the memory plan.
    /// </summary>
    /// <exception cref="SquashException">An input does not exist, or the shape contradicts the model (SQ1005).</exception>
    public static void PinInputShapes(Model model, IReadOnlyDictionary<string, int[]> shapes)
    {
        var graph = model.Graph;
        foreach (var (name, shape) in shapes)
        {
            var input = graph.Inputs.FirstOrDefault(i => i.Name == name)
                ?? throw new SquashException(ErrorCodes.InvalidModel,
                    $"Cannot pin the shape of '{name}': the model has no such input. Its inputs are: {string.Join(", ", graph.Inputs.Select(i => i.Name))}.");
            if (shape.Any(d => d < 0))
                throw new SquashException(ErrorCodes.InvalidModel, $"Cannot pin '{name}' to {Shapes.Format(shape)}: dimensions must be 0 or more.");
            if (input.Shape is { } declared)
            {
                if (declared.Length != shape.Length)
                    throw new SquashException(ErrorCodes.InvalidModel,
                        $"Cannot pin '{name}' to {Shapes.Format(shape)}: the model declares rank {declared.Length} ({Shapes.Format(declared)}).");
                for (int d = 0; d < shape.Length; d++)
                    if (declared[d] >= 0 && declared[d] != shape[d])
                        throw new SquashException(ErrorCodes.InvalidModel,
                            $"Cannot pin '{name}' to {Shapes.Format(shape)}: dimension {d} is fixed to {declared[d]} by the model.");
            }
            input.Shape = (int[])shape.Clone();
        }
    }

    /// <summary>
    /// Replaces inputs whose values are known at build time (ConstantInputs metadata, e.g. <c>sr=16000</c>) by constants,
    /// so branches and shape arithmetic that depend on them fold away. Values are comma-separated; the input's declared
    /// type and shape decide how they are read (a scalar when the input is 0-d or has no declared shape and one value).
    /// </summary>
    /// <exception cref="SquashException">The input does not exist, or the values do not fit its type or shape.</exception>
    public static void BakeConstantInputs(Model model, IReadOnlyDictionary<string, string> values)
    {
        var graph = model.Graph;
        foreach (var (name, text) in values)
        {
            var input = graph.Inputs.FirstOrDefault(i => i.Name == name)
                ?? throw new SquashException(ErrorCodes.InvalidModel,
                    $"Cannot bake input '{name}': the model has no such input. Its inputs are: {string.Join(", ", graph.Inputs.Select(i => i.Name))}.");
            var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            var numbers = new double[parts.Length];
            for (int i = 0; i < parts.Length; i++)
                if (!double.TryParse(parts[i], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out numbers[i]))
                    throw new SquashException(ErrorCodes.InvalidModel, $"Cannot bake input '{name}': '{parts[i]}' is not a number.");
            int[] shape = input.Shape is { } declared && Shapes.IsKnown(declared) ? declared
                : numbers.Length == 1 && (input.Shape is null || input.Shape.Length == 0) ? [] : [numbers.Length];
            if (Shapes.ElementCount(shape) != numbers.Length)
                throw new SquashException(ErrorCodes.InvalidModel,
                    $"Cannot bake input '{name}': it has shape {Shapes.Format(shape)} but {numbers.Length} value(s) were given.");
            var type = input.Type == DataType.Undefined ? DataType.Float : input.Type;
            var tensor = new Tensor(type, shape);
            for (int i = 0; i < numbers.Length; i++) SetFromDouble(tensor, i, numbers[i]);
            graph.Inputs.Remove(input);
            input.Constant = tensor;
            graph.Initializers.Add(input);
        }
    }

    private static void SetFromDouble(Tensor t, int i, double v)
    {
        switch (t.DataType)
        {
            case DataType.Float: t.AsSpan<float>()[i] = (float)v; break;
            case DataType.Double: t.AsSpan<double>()[i] = v; break;
            case DataType.Float16: t.AsSpan<Half>()[i] = (Half)v; break;
            case DataType.Int64: t.AsSpan<long>()[i] = checked((long)v); break;
            case DataType.Int32: t.AsSpan<int>()[i] = checked((int)v); break;
            case DataType.Int16: t.AsSpan<short>()[i] = checked((short)v); break;
            case DataType.Int8: t.AsSpan<sbyte>()[i] = checked((sbyte)v); break;
            case DataType.UInt8: t.AsSpan<byte>()[i] = checked((byte)v); break;
            case DataType.UInt16: t.AsSpan<ushort>()[i] = checked((ushort)v); break;
            case DataType.UInt32: t.AsSpan<uint>()[i] = checked((uint)v); break;
            case DataType.UInt64: t.AsSpan<ulong>()[i] = checked((ulong)v); break;
            case DataType.Bool: t.AsSpan<bool>()[i] = v != 0; break;
            default: throw new SquashException(ErrorCodes.UnsupportedDataType, $"Inputs of type {DataTypes.Name(t.DataType)} cannot be baked.");
        }
    }

    /// <summary>Simplifies <paramref name="model"/>'s graph in place without changing any arithmetic.</summary>
    public static void Simplify(Model model, Action<string>? log = null) =>
        Pipeline.Simplify().Run(model.Graph, new PassContext { Log = log });

    /// <summary>Optimizes <paramref name="model"/>'s graph in place (<see cref="Pipeline.Optimize"/>).</summary>
    public static void Optimize(Model model, Action<string>? log = null) =>
        Pipeline.Optimize().Run(model.Graph, new PassContext { Log = log });

    /// <summary>Optimizes <paramref name="model"/>'s graph in place for the CPU's fp32 kernels: <see cref="Pipeline.Optimize"/>,
    /// then <see cref="Pipeline.Fuse"/>.</summary>
    public static void OptimizeForCpu(Model model, Action<string>? log = null)
    {
        Optimize(model, log);
        Fuse(model, log);
    }

    /// <summary>Runs <see cref="Pipeline.Fuse"/> on an optimized graph, after any precision is applied (the int4 pass
    /// looks for plain MatMul nodes); for the CPU's kernels only.</summary>
    public static void Fuse(Model model, Action<string>? log = null) =>
        Pipeline.Fuse().Run(model.Graph, new PassContext { Log = log });

    /// <summary>The precisions the compiler, <c>squash run</c> and <c>squash export</c> accept.</summary>
    public static IReadOnlyList<string> Precisions { get; } = ["fp32", "fp16", "int4", "int8", "auto"];

    /// <summary>True when a compilation in <paramref name="precision"/> (and, for int8 and auto, <paramref name="int8"/>)
    /// stores the float constants whose values are all float16 values as float16 (<see cref="Fp16Weights.StorageType"/>).</summary>
    public static bool StoresFp16(string precision, QuantizationOptions? int8) =>
        ParsePrecision(precision) == "fp16" || (int8 is not null && QuantizationPipeline.UsesFp16(int8));

    /// <summary>Checks a precision name (case-insensitive) and returns it in lower case.</summary>
    /// <exception cref="SquashException">The precision is not one of <see cref="Precisions"/> (SQ1012).</exception>
    public static string ParsePrecision(string precision)
    {
        string lower = precision.Trim().ToLowerInvariant();
        if (!Precisions.Contains(lower))
            throw new SquashException(ErrorCodes.InvalidOption, $"Precision '{precision}' is not supported; use {string.Join(" or ", Precisions)}.");
        return lower;
    }

    /// <summary>
    /// Applies <paramref name="precision"/> to an optimized model: nothing for fp32; for fp16, <see cref="Fp16Weights.Apply"/>
    /// (the products' weights and large Gather tables rounded to float16 values, stored as float16); for int4, <see cref="Pipeline.Int4"/>
    /// (attention fusion, then weight-only int4). With <paramref name="calibrationFolder"/> the weights are quantized by
    /// GPTQ from the activations of its samples (<see cref="CalibrationDataSet"/> layout, run on the fp32 graph);
    /// without, by round-to-nearest.
    /// </summary>
    /// <exception cref="SquashException">Bad calibration data (SQ1016), or an exclusion that names nothing (SQ1051).</exception>
    /// <remarks>For int8 and auto (<see cref="QuantizationPipeline.Quantize"/>: gamma migration, calibration, the accuracy
    /// check, mixed precision for auto), <paramref name="int8"/> (<see cref="QuantizationOptions.FromText"/>) and
    /// <paramref name="modelPath"/> are required and the model's input shapes must be pinned.</remarks>
    /// <returns>What int8 quantization did (for the report), or null for fp32, fp16 and int4.</returns>
    public static QuantizationOutcome? ApplyPrecision(Model model, string precision, Int4QuantizationOptions? int4 = null, string? calibrationFolder = null,
        Action<string>? log = null, QuantizationOptions? int8 = null, string? modelPath = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        string parsed = ParsePrecision(precision);
        if (parsed is "int8" or "auto")
        {
            var quantization = int8 ?? QuantizationOptions.FromText(parsed, calibrationFolder);
            return QuantizationPipeline.Quantize(model, modelPath ?? throw new ArgumentNullException(nameof(modelPath), "int8 needs the model file (cache keys)."), quantization, log);
        }
        if (parsed != "int4")
        {
            if (calibrationFolder is not null)
                throw new SquashException(ErrorCodes.InvalidOption, "Calibration data is only used with precision int4, int8 or auto.");
            if (parsed == "fp16") Fp16Weights.Apply(model.Graph, log);
            return null;
        }
        var options = Calibrate(model, int4 ?? new Int4QuantizationOptions(), calibrationFolder, log);
        Pipeline.Int4(options).Run(model.Graph, new PassContext { Log = log });
        return null;
    }

    /// <summary>
    /// <paramref name="options"/> as they are without <paramref name="calibrationFolder"/>; with it, switched to GPTQ with
    /// the activation statistics of its samples (<see cref="CalibrationDataSet"/> layout), collected by running
    /// <paramref name="model"/>'s graph in fp32. Run it on the graph that will be quantized: statistics are by weight name.
    /// </summary>
    /// <exception cref="SquashException">Bad calibration data (SQ1016).</exception>
    public static Int4QuantizationOptions Calibrate(Model model, Int4QuantizationOptions options, string? calibrationFolder, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        if (calibrationFolder is null) return options;
        var dataSet = CalibrationDataSet.Open(calibrationFolder, model.Graph.Inputs);
        var statistics = Int4Calibration.Collect(model.Graph, dataSet.CalibrationSamples.Select(s => (IReadOnlyDictionary<string, Tensor>)s.Load()));
        log?.Invoke($"int4 calibration: activations of {statistics.Count} weight(s) from '{calibrationFolder}'; quantizing with GPTQ");
        return options with { Quantizer = GptqQuantizer.Instance, Activations = statistics };
    }
}
