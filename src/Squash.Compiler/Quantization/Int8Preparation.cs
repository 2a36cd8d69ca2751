using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Quantization;

/// <summary>
/// The checks and helpers int8 quantization shares between the build, the CLI and the tests; the quantization itself
/// is <see cref="QuantizationPipeline.Quantize"/> (through <see cref="ModelPreparation.ApplyPrecision"/>).
/// </summary>
public static class Int8Preparation
{
    /// <summary>The calibration folder int8 needs, checked to be given.</summary>
    /// <exception cref="SquashException">No calibration folder (SQ1020).</exception>
    public static string RequireCalibration(string? calibrationFolder)
    {
        if (string.IsNullOrWhiteSpace(calibrationFolder))
            throw new SquashException(ErrorCodes.QuantizationSetup,
                "Precision int8 needs calibration data: give a folder of representative inputs (Calibration=\"DIR\" on the SquashModel item, "
                + "--calibration DIR on the command line; layouts in docs/quantization.md).");
        return calibrationFolder;
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

    /// <summary>The shapes an int8 model is planned for: <paramref name="given"/>, and for every other input with dynamic
    /// dimensions the shape of the folder's first sample.</summary>
    /// <exception cref="SquashException">The folder is missing, empty or malformed (SQ1016).</exception>
    public static Dictionary<string, int[]> PlannedShapes(Model model, IReadOnlyDictionary<string, int[]> given, string calibrationFolder)
    {
        var shapes = new Dictionary<string, int[]>(given, StringComparer.Ordinal);
        if (model.Graph.Inputs.Any(i => !shapes.ContainsKey(i.Name) && !i.HasKnownShape))
            foreach (var (name, shape) in SampleShapes(model, calibrationFolder))
                if (!shapes.ContainsKey(name) && model.Graph.Inputs.First(i => i.Name == name) is { HasKnownShape: false }) shapes[name] = shape;
        return shapes;
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
}
