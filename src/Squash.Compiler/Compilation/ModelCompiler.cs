using System.Diagnostics;
using System.Security.Cryptography;
using Squash.Compiler.CodeGen;
using Squash.Compiler.Onnx;
using Squash.Runtime;
using Squash.Runtime.Weights;

namespace Squash.Compiler.Compilation;

/// <summary>What to compile and how.</summary>
public sealed record CompileRequest
{
    /// <summary>The ONNX model.</summary>
    public required string ModelPath { get; init; }

    /// <summary>Folder for the outputs.</summary>
    public required string OutputDirectory { get; init; }

    /// <summary>Base name of the output files: <c>NAME.g.cs</c>, <c>NAME.sqw</c>.</summary>
    public required string OutputName { get; init; }

    /// <summary>Class shape.</summary>
    public required ModelClassOptions Class { get; init; }

    /// <summary>Dimensions to pin, by input name.</summary>
    public IReadOnlyDictionary<string, int[]> InputShapes { get; init; } = new Dictionary<string, int[]>();

    /// <summary>Inputs to bake as constants, by name (comma-separated values).</summary>
    public IReadOnlyDictionary<string, string> ConstantInputs { get; init; } = new Dictionary<string, string>();

    /// <summary>Int4 settings (block size, exclusions...) when <see cref="ModelClassOptions.Precision"/> is int4; null for
    /// the defaults.</summary>
    public Quantization.Int4QuantizationOptions? Int4 { get; init; }

    /// <summary>Calibration samples for int4 (GPTQ; null for round-to-nearest) and int8 (required).</summary>
    public string? CalibrationFolder { get; init; }

    /// <summary>Int8: where to cache the calibration (a JSON file, reused while the model, the data, the settings and
    /// the compiler are the same); null: calibrate on every compilation.</summary>
    public string? CalibrationCache { get; init; }

    /// <summary>Int8 units to keep in fp32 (<see cref="Quantization.QuantizationExclusions.Parse"/>: node names, <c>op:Type</c>).</summary>
    public string? Int8Exclusions { get; init; }

    /// <summary>Int8/auto: the calibration method (minmax, percentile, entropy, mse); null for minmax.</summary>
    public string? CalibrationMethod { get; init; }

    /// <summary>on (default) or off: bias correction of the int8 products.</summary>
    public string? BiasCorrection { get; init; }

    /// <summary>Int8/auto: every K-th calibration sample is held out to measure accuracy on; null for 5.</summary>
    public int? CalibrationHoldOutEvery { get; init; }

    /// <summary>Int8/auto: the accuracy to keep on the held-out samples (<c>sqnr:DB</c>, <c>cos:VALUE</c>), or null.</summary>
    public string? AccuracyTarget { get; init; }

    /// <summary>Int8/auto: <c>error</c> (default) or <c>warn</c> when the target is missed.</summary>
    public string? AccuracyTargetAction { get; init; }

    /// <summary>Int8/auto: a committed sensitivity profile, or null to measure (and cache) one when needed.</summary>
    public string? SensitivityProfile { get; init; }

    /// <summary>Int8/auto: the precision of the units that do not run in int8, <c>fp32</c> (null, the default) or
    /// <c>fp16</c>.</summary>
    public string? Int8Fallback { get; init; }
}

/// <summary>The files a compilation wrote (or found unchanged).</summary>
/// <param name="SourcePath">The generated C#.</param>
/// <param name="WeightsPath">The weights file, or null in API-only mode.</param>
/// <param name="Changed">True when some output's content changed.</param>
public sealed record CompileResult(string SourcePath, string? WeightsPath, bool Changed);

/// <summary>
/// Compiles one model: load, pin input shapes, simplify, plan, generate the class and its weights. Outputs are written
/// atomically and only when their content changed, so an unchanged model leaves timestamps alone.
/// </summary>
public static class ModelCompiler
{
    /// <summary>Test seam: with this environment variable set to <c>1</c>, the compiler kills its own process right
    /// after writing the weights and before writing the source, the way an interrupted build would leave them. Only the
    /// build's tests set it.</summary>
    internal const string CrashAfterWeightsVariable = "SQUASH_TEST_CRASH_AFTER_WEIGHTS";

    /// <summary>Runs the compilation.</summary>
    /// <exception cref="SquashException">The model or the request is invalid, or the model is not supported.</exception>
    public static CompileResult Compile(CompileRequest request, Action<string>? log = null)
    {
        string sha = Sha256(request.ModelPath);
        var model = OnnxLoader.Load(request.ModelPath);
        ModelPreparation.BakeConstantInputs(model, request.ConstantInputs);
        ModelPreparation.PinInputShapes(model, request.InputShapes);
        ModelPreparation.Optimize(model, log);
        // A design-time (API-only) int8 class has the same members as the fp32 one: it skips calibration, the costly part.
        string precision = ModelPreparation.ParsePrecision(request.Class.Precision);
        bool int8 = precision is "int8" or "auto";
        Quantization.QuantizationOutcome? quantized = null;
        var int8Options = int8 && !request.Class.ApiOnly ? Quantization.QuantizationOptions.FromText(precision, request.CalibrationFolder, request.CalibrationMethod,
            request.CalibrationHoldOutEvery, request.AccuracyTarget, request.AccuracyTargetAction, request.Int8Exclusions,
            request.SensitivityProfile, request.CalibrationCache, request.Int8Fallback, request.BiasCorrection) with
        {
            CacheContext = Quantization.Int8Preparation.CacheContext(request.InputShapes, request.ConstantInputs),
        } : null;
        if (!int8 && request.Int8Fallback is not null)
            throw new SquashException(ErrorCodes.InvalidOption, "Int8Fallback goes with Precision int8 or auto.");
        if (int8Options is not null || !int8)
            quantized = ModelPreparation.ApplyPrecision(model, precision, request.Int4, request.CalibrationFolder, log, int8Options, request.ModelPath);
        // The GPU back end has no kernels for the com.squash Fused* nodes (it would run them on the host), so a class
        // whose default device is not the CPU keeps the standard nodes.
        if (request.Class.Device == Squash.Runtime.Execution.SquashDevice.Cpu) ModelPreparation.Fuse(model, log);
        if (!Squash.Runtime.Execution.ExecutionPlan.CanPlan(model.Graph))
            log?.Invoke($"warning SQ2001: {Path.GetFileName(request.ModelPath)} keeps dynamic dimensions ({string.Join(", ", model.Graph.Inputs.Where(i => !i.HasKnownShape).Select(i => $"{i.Name}{Shapes.Format(i.Shape ?? [])}"))}); " +
                "the class runs node by node and allocates per call. Pin them with InputShapes for a static memory plan.");
        var options = request.Class with { SourceSha256 = sha, SourceFileName = Path.GetFileName(request.ModelPath) };
        var result = ModelClassEmitter.Emit(model.Graph, options);

        Directory.CreateDirectory(request.OutputDirectory);
        string sourcePath = Path.Combine(request.OutputDirectory, request.OutputName + ".g.cs");
        if (options.ApiOnly)
        {
            // A full build's class is better than a stub: keep it when it exists.
            bool changedStub = !File.Exists(sourcePath) && AtomicFile.WriteIfChanged(sourcePath, Utf8(result.Source));
            return new CompileResult(sourcePath, null, changedStub);
        }
        // Float constants whose values are all float16 values (the fp16 weights) are stored as float16: exact, half the bytes.
        bool fp16 = ModelPreparation.StoresFp16(precision, int8Options);
        var weights = WeightsFile.Write([.. result.Weights.Select(t => new WeightsEntry(t.Name, t.Tensor, Quantization.Fp16Weights.StorageType(t.Tensor, fp16)))]);
        ulong checksum = WeightsFile.Read(new MemoryStream(weights)).Checksum;
        string weightsPath = Path.Combine(request.OutputDirectory, request.OutputName + ".sqw");
        bool changed = AtomicFile.WriteIfChanged(weightsPath, weights);
        // Test seam (docs/design.md): dies here, as a killed compiler would, between the weights and the source.
        if (Environment.GetEnvironmentVariable(CrashAfterWeightsVariable) == "1") Process.GetCurrentProcess().Kill();
        // The source is written last, so that a class never names weights (their checksum) that are not written yet.
        // A compilation interrupted anywhere before this point leaves new weights beside the old class: the build
        // touches the model's stamp only after the compiler succeeded, so the next build runs it again.
        changed |= AtomicFile.WriteIfChanged(sourcePath, Utf8(ModelClassEmitter.WithWeightsChecksum(result.Source, checksum)));
        // The quantization report goes beside the class (NAME.quantization.json and .md); a class that is not quantized
        // (any more) has none.
        if (quantized is not null) Quantization.QuantizationReportWriter.Write(quantized, request.OutputDirectory, request.OutputName);
        else Quantization.QuantizationReportWriter.Delete(request.OutputDirectory, request.OutputName);
        log?.Invoke($"{Path.GetFileName(request.ModelPath)}: {model.Graph.Nodes.Count} nodes, {result.Weights.Count} weight tensors ({weights.Length} bytes), arena {result.ArenaBytes} bytes");
        return new CompileResult(sourcePath, weightsPath, changed);
    }

    private static byte[] Utf8(string s) => new System.Text.UTF8Encoding(false).GetBytes(s);

    private static string Sha256(string path)
    {
        if (!File.Exists(path))
            throw new SquashException(ErrorCodes.ModelNotFound, $"Model file '{path}' does not exist. Check the path (relative paths start at the project folder).");
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}
