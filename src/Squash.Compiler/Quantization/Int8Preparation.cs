using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Quantization;

/// <summary>How <see cref="Int8Preparation.Quantize"/> calibrates and plans.</summary>
public sealed record Int8Options
{
    /// <summary>The calibration folder (layouts in docs/quantization.md).</summary>
    public required string CalibrationFolder { get; init; }

    /// <summary>The calibration method (MinMax by default). The activation range must stay uint8.</summary>
    public CalibrationSettings Calibration { get; init; } = new();

    /// <summary>Which samples of the folder are held out (not calibrated on).</summary>
    public CalibrationSplit Split { get; init; }

    /// <summary>Units to keep in fp32.</summary>
    public QuantizationExclusions Exclusions { get; init; } = QuantizationExclusions.None;

    /// <summary>Where to cache the calibration (<see cref="Calibrator.CalibrateCached"/>); null: no cache. Needs
    /// <see cref="ModelPath"/>.</summary>
    public string? CachePath { get; init; }

    /// <summary>The model file, part of the cache key.</summary>
    public string? ModelPath { get; init; }

    /// <summary>Whatever else shaped the graph (pinned shapes, baked inputs), part of the cache key.</summary>
    public string CacheContext { get; init; } = "";

    /// <summary>Replaces the default plan (<see cref="QuantizationPlan.Create"/>) when set: a mixed-precision planner.</summary>
    public Func<Graph, CalibrationResult, QuantizationPlan>? Plan { get; init; }
}

/// <summary>
/// Int8 post-training quantization of a prepared model: calibrate on the fp32-optimized graph (the graph whose value
/// names the ranges are keyed by), then rewrite it with <see cref="Int8Quantization.Apply"/>. The CLI, the build and
/// the tests all quantize through here.
/// </summary>
public static class Int8Preparation
{
    /// <summary>The int8 options for a calibration folder and exclusions as the CLI and the build give them.</summary>
    /// <exception cref="SquashException">No calibration folder (SQ1020).</exception>
    public static Int8Options Options(string? calibrationFolder, string? exclusions = null)
    {
        if (string.IsNullOrWhiteSpace(calibrationFolder))
            throw new SquashException(ErrorCodes.QuantizationSetup,
                "Precision int8 needs calibration data: give a folder of representative inputs (Calibration=\"DIR\" on the SquashModel item, "
                + "--calibration DIR on the command line; layouts in docs/quantization.md).");
        return new Int8Options { CalibrationFolder = calibrationFolder, Exclusions = QuantizationExclusions.Parse(exclusions) };
    }

    /// <summary>The input shapes of the folder's first sample: what a model with dynamic dimensions is pinned to when
    /// no shapes are given (every sample must have them).</summary>
    /// <exception cref="SquashException">The folder is missing, empty or malformed (SQ1016).</exception>
    public static Dictionary<string, int[]> SampleShapes(Model model, string calibrationFolder)
    {
        // Any size per dimension: the samples decide (a model pinned to another shape must not refuse them here).
        var inputs = model.Graph.Inputs.Select(v => new Value(v.Name, v.Type, v.Shape is { } s ? Enumerable.Repeat(-1, s.Length).ToArray() : null)).ToList();
        var data = CalibrationDataSet.Open(calibrationFolder, inputs);
        var first = data.Samples[0].Load();
        return first.ToDictionary(p => p.Key, p => (int[])p.Value.Shape.Clone(), StringComparer.Ordinal);
    }

    /// <summary>The cache context for the graph-shaping options: pinned shapes and baked inputs, in ordinal order.</summary>
    public static string CacheContext(IReadOnlyDictionary<string, int[]> shapes, IReadOnlyDictionary<string, string> constants) =>
        string.Join(";", shapes.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"shape:{p.Key}={string.Join(",", p.Value)}")
            .Concat(constants.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"const:{p.Key}={p.Value}")));

    /// <summary>Throws unless every input of <paramref name="graph"/> has a fixed shape: int8 plans one shape.</summary>
    /// <exception cref="SquashException">An input keeps dynamic dimensions (SQ1020).</exception>
    public static void RequireFixedShapes(Graph graph)
    {
        if (graph.Inputs.FirstOrDefault(i => !i.HasKnownShape) is { } dynamic)
            throw new SquashException(ErrorCodes.QuantizationSetup,
                $"Int8 needs fixed input shapes, but input '{dynamic.Name}' is {Shapes.Format(dynamic.Shape ?? [])}; pin it (InputShapes, "
                + "--input-shape NAME=D0,D1,...) to the shape of the calibration data.");
    }

    /// <summary>Calibrates <paramref name="model"/> (optimized, every input shape pinned) on the folder's samples and
    /// rewrites its graph to int8 in place.</summary>
    /// <exception cref="SquashException">The model keeps dynamic input shapes (SQ1020), or the calibration data is
    /// missing, empty or does not fit the model (SQ1016).</exception>
    public static (Int8QuantizationReport Report, CalibrationResult Calibration) Quantize(Model model, Int8Options options, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        var graph = model.Graph;
        RequireFixedShapes(graph);
        if (options.Calibration.ActivationRange != QuantizationRange.UInt8)
            throw new SquashException(ErrorCodes.QuantizationSetup,
                $"Int8 activations are uint8 [0, 255]; calibrate with that range, not {options.Calibration.ActivationRange}.");
        var data = CalibrationDataSet.Open(options.CalibrationFolder, graph.Inputs, options.Split);
        var calibrator = new Calibrator(options.Calibration);
        CalibrationResult calibration;
        if (options.CachePath is { } cache && options.ModelPath is { } modelPath)
        {
            (calibration, bool fromCache) = calibrator.CalibrateCached(modelPath, () => ExecutionPlan.Create(graph), data, cache, options.CacheContext);
            log?.Invoke(fromCache ? $"int8: calibration from {cache}" : $"int8: calibrated on {calibration.SampleCount} samples, cached in {cache}");
        }
        else
        {
            calibration = calibrator.Calibrate(ExecutionPlan.Create(graph), data);
            log?.Invoke($"int8: calibrated on {calibration.SampleCount} samples");
        }
        var plan = options.Plan?.Invoke(graph, calibration) ?? QuantizationPlan.Create(graph, options.Exclusions);
        var report = Int8Quantization.Apply(graph, calibration, plan);
        log?.Invoke($"int8: {report.Int8Count} of {report.Units.Count} units run in int8 ({report.Quantizes} quantize, {report.Dequantizes} dequantize nodes)");
        return (report, calibration);
    }
}
