using System.Diagnostics;
using System.Globalization;
using Squash.Compiler.Passes;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Quantization;

/// <summary>The precision a model is compiled in.</summary>
public enum PrecisionMode
{
    /// <summary>Float, as the source model.</summary>
    Fp32,
    /// <summary>Every unit int8 but the exclusions and the small products; an accuracy target is checked, not sought.</summary>
    Int8,
    /// <summary>Int8 with the most sensitive units in fp32 until the accuracy target is met (mixed precision).</summary>
    Auto,
}

/// <summary>How to quantize a model (the <c>SquashModel</c> metadata, or the CLI's options).</summary>
public sealed record QuantizationOptions
{
    /// <summary>int8 or auto.</summary>
    public PrecisionMode Precision { get; init; } = PrecisionMode.Int8;

    /// <summary>The calibration folder (<c>Calibration</c> metadata, <c>--calibration</c>).</summary>
    public required string CalibrationFolder { get; init; }

    /// <summary>How ranges are calibrated.</summary>
    public CalibrationSettings Calibration { get; init; } = new();

    /// <summary>Which samples are held out to measure accuracy (every 5th by default: 20%).</summary>
    public CalibrationSplit Split { get; init; } = new(5);

    /// <summary>The accuracy to keep on the held-out samples; null for none (auto then uses sqnr:30).</summary>
    public AccuracyTarget? Target { get; init; }

    /// <summary>True to report a missed target as warning SQ2010 instead of error SQ1041 (<c>AccuracyTargetAction="warn"</c>).</summary>
    public bool TargetMissIsWarning { get; init; }

    /// <summary>Units kept in float whatever the target (<c>QuantizationExclusions</c>).</summary>
    public QuantizationExclusions Exclusions { get; init; } = QuantizationExclusions.None;

    /// <summary>The float precision of the units that do not run in int8 (<c>Int8Fallback</c>): fp32 (default), or fp16
    /// weights (stored as float16, computed in fp32). Exclusions that name a precision keep theirs.</summary>
    public NodePrecision Fallback { get; init; } = NodePrecision.Fp32;

    /// <summary>A committed profile (<c>SensitivityProfile</c> metadata): read when it exists and matches the model,
    /// written there when it does not exist.</summary>
    public string? SensitivityProfilePath { get; init; }

    /// <summary>True to measure (or read) the sensitivity profile even when the plan does not need it, for the report's
    /// chart. Auto, a <see cref="SensitivityProfilePath"/> and a missed target always use one; plain int8 skips it
    /// otherwise, since it costs a run of the held-out samples per layer.</summary>
    public bool Sensitivity { get; init; } = true;

    /// <summary>A folder for the calibration and profile caches (the build's intermediate folder); null for none.</summary>
    public string? CacheDirectory { get; init; }

    /// <summary>Anything else that shapes the graph (pinned shapes, baked inputs), part of the cache keys.</summary>
    public string CacheContext { get; init; } = "";

    /// <summary>Kernel threads for calibration and measurement (results do not depend on them).</summary>
    public int Threads { get; init; } = 1;

    /// <summary>The target auto mode seeks when none is given.</summary>
    public static AccuracyTarget DefaultAutoTarget => new(AccuracyMetric.Sqnr, 30);

    /// <summary>The base name of the cache files in <see cref="CacheDirectory"/> (<c>NAME.calibration.json</c>,
    /// <c>NAME.sensitivity.json</c>); null for the model file's name without extension.</summary>
    public string? CacheName { get; init; }

    /// <summary>The options as the <c>SquashModel</c> metadata and the CLI give them, as text, checked.</summary>
    /// <param name="precision">int8 or auto.</param>
    /// <param name="calibrationFolder">The calibration folder (required: SQ1020 without).</param>
    /// <param name="method">minmax (default), percentile, entropy or mse.</param>
    /// <param name="holdOutEvery">Every K-th sample held out (default 5; 0: none).</param>
    /// <param name="target">sqnr:DB or cos:VALUE, or null.</param>
    /// <param name="targetAction">error (default) or warn.</param>
    /// <param name="exclusions">Node names and op:Type, separated by ; or ,.</param>
    /// <param name="sensitivityProfile">A committed profile, or null.</param>
    /// <param name="calibrationCache">The calibration cache file (<c>DIR/NAME.calibration.json</c>): its folder and name
    /// place the caches; null for none.</param>
    /// <param name="fallback">fp32 (default) or fp16: the precision of the units that do not run in int8.</param>
    /// <param name="biasCorrection">on (default) or off: bias correction of the int8 products.</param>
    /// <exception cref="SquashException">A value is invalid (SQ1012), or no calibration folder (SQ1020).</exception>
    public static QuantizationOptions FromText(string precision, string? calibrationFolder, string? method = null, int? holdOutEvery = null,
        string? target = null, string? targetAction = null, string? exclusions = null, string? sensitivityProfile = null, string? calibrationCache = null,
        string? fallback = null, string? biasCorrection = null)
    {
        var folder = Int8Preparation.RequireCalibration(calibrationFolder);
        var mode = precision.Trim().ToLowerInvariant() switch
        {
            "int8" => PrecisionMode.Int8,
            "auto" => PrecisionMode.Auto,
            _ => throw new SquashException(ErrorCodes.InvalidOption, $"Precision '{precision}' does not quantize to int8; use int8 or auto."),
        };
        method ??= "minmax";
        if (Enum.GetValues<CalibrationMethod>().Where(m => string.Equals(m.ToString(), method, StringComparison.OrdinalIgnoreCase)).ToArray() is not [var parsedMethod])
            throw new SquashException(ErrorCodes.InvalidOption, $"CalibrationMethod '{method}' is not supported; use minmax, percentile, entropy or mse.");
        if (holdOutEvery is < 0)
            throw new SquashException(ErrorCodes.InvalidOption, $"CalibrationHoldOutEvery must be 0 (hold out nothing) or more, not {holdOutEvery}.");
        targetAction ??= "error";
        if (!targetAction.Equals("error", StringComparison.OrdinalIgnoreCase) && !targetAction.Equals("warn", StringComparison.OrdinalIgnoreCase))
            throw new SquashException(ErrorCodes.InvalidOption, $"AccuracyTargetAction '{targetAction}' is not supported; use error or warn.");
        string? cacheFile = string.IsNullOrEmpty(calibrationCache) ? null : Path.GetFullPath(calibrationCache);
        const string CacheSuffix = ".calibration.json";
        return new QuantizationOptions
        {
            Precision = mode,
            CalibrationFolder = folder,
            Calibration = new CalibrationSettings { Method = parsedMethod, BiasCorrection = ParseBiasCorrection(biasCorrection) },
            Split = new CalibrationSplit(holdOutEvery ?? 5),
            Target = string.IsNullOrWhiteSpace(target) ? null : AccuracyTarget.Parse(target),
            TargetMissIsWarning = targetAction.Equals("warn", StringComparison.OrdinalIgnoreCase),
            Exclusions = QuantizationExclusions.Parse(exclusions),
            Fallback = string.IsNullOrWhiteSpace(fallback) ? NodePrecision.Fp32 : QuantizationExclusions.ParseFallback(fallback, "Int8Fallback"),
            SensitivityProfilePath = string.IsNullOrWhiteSpace(sensitivityProfile) ? null : sensitivityProfile,
            // A profile costs a run of the held-out samples per layer: plain int8 measures one only when it needs it
            // (a missed target), so the build stays fast; the report's chart then comes from a committed profile.
            Sensitivity = false,
            CacheDirectory = cacheFile is null ? null : Path.GetDirectoryName(cacheFile),
            CacheName = cacheFile is null ? null
                : Path.GetFileName(cacheFile) is var f && f.EndsWith(CacheSuffix, StringComparison.OrdinalIgnoreCase) ? f[..^CacheSuffix.Length] : Path.GetFileNameWithoutExtension(f),
        };
    }

    /// <summary>on (default) or off; true and false are accepted too.</summary>
    private static bool ParseBiasCorrection(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" or "on" or "true" => true,
        "off" or "false" => false,
        _ => throw new SquashException(ErrorCodes.InvalidOption, $"BiasCorrection '{value}' is not supported; use on or off."),
    };
}

/// <summary>What quantizing a model did; <see cref="QuantizationReportWriter"/> turns it into the report.</summary>
public sealed record QuantizationOutcome
{
    /// <summary>The model's file name.</summary>
    public required string Model { get; init; }

    /// <summary>The options used.</summary>
    public required QuantizationOptions Options { get; init; }

    /// <summary>The target in force (auto's default when none was given), or null.</summary>
    public required AccuracyTarget? Target { get; init; }

    /// <summary>The fp32 graph that was quantized (after the passes and gamma migration), unchanged.</summary>
    public required Graph Fp32Graph { get; init; }

    /// <summary>The calibrated ranges.</summary>
    public required CalibrationResult Calibration { get; init; }

    /// <summary>Samples calibrated on and held out.</summary>
    public required (int Calibration, int HeldOut) Samples { get; init; }

    /// <summary>The sensitivity profile used.</summary>
    public required SensitivityProfile Profile { get; init; }

    /// <summary>The chosen plan.</summary>
    public required QuantizationPlan Plan { get; init; }

    /// <summary>The chosen plan on the held-out samples.</summary>
    public required PlanEvaluation Evaluation { get; init; }

    /// <summary>Units auto mode ran in the fallback precision, in order (empty for int8).</summary>
    public required IReadOnlyList<FallbackStep> Fallbacks { get; init; }

    /// <summary>True when the target is met (or there is none).</summary>
    public required bool TargetMet { get; init; }

    /// <summary>What the rewrite of the model's graph did.</summary>
    public required Int8QuantizationReport Rewrite { get; init; }

    /// <summary>Bytes of the constants (weights, biases, quantization parameters) before and after the rewrite, as stored
    /// (fp16 weights count two bytes a value).</summary>
    public required (long Fp32, long Quantized) WeightBytes { get; init; }

    /// <summary>Wall-clock seconds by stage (calibrate, profile, plan, rewrite); not deterministic, kept out of the report files.</summary>
    public required IReadOnlyDictionary<string, double> Seconds { get; init; }
}

/// <summary>
/// The int8 pipeline the build and <c>squash run --precision int8|auto</c> share: gamma migration, calibration
/// (cached), the sensitivity profile (committed or cached), the plan (default or mixed precision), the accuracy check,
/// and the rewrite of the graph.
/// </summary>
public static class QuantizationPipeline
{
    /// <summary>Quantizes <paramref name="model"/> in place (its graph optimized by <see cref="ModelPreparation.Optimize"/>
    /// with input shapes pinned).</summary>
    /// <param name="model">The model; its graph is rewritten.</param>
    /// <param name="modelPath">The model file (its bytes are part of the cache keys).</param>
    /// <param name="options">How.</param>
    /// <param name="log">Receives progress lines and warnings (<c>warning SQ2010: ...</c>).</param>
    /// <exception cref="SquashException">Bad calibration data (SQ1016), a bad profile (SQ1040), or the accuracy target
    /// missed (SQ1041, unless <see cref="QuantizationOptions.TargetMissIsWarning"/>).</exception>
    public static QuantizationOutcome Quantize(Model model, string modelPath, QuantizationOptions options, Action<string>? log = null)
    {
        if (options.Precision == PrecisionMode.Fp32) throw new ArgumentException("fp32 needs no quantization.", nameof(options));
        Int8Preparation.RequireFixedShapes(model.Graph);
        options.Calibration.Validate();
        options.Split.Validate();
        var seconds = new Dictionary<string, double>(StringComparer.Ordinal);
        var clock = Stopwatch.StartNew();
        string name = Path.GetFileName(modelPath);
        var graph = model.Graph;
        using var context = new KernelContext(options.Threads);
        var (dataSet, calibration, evaluator) = Prepare(graph, modelPath, options, context, log);
        seconds["calibrate"] = Lap(clock);
        int heldOut = dataSet.HeldOutSamples.Count();
        bool needProfile = options.Sensitivity || options.Precision == PrecisionMode.Auto || options.SensitivityProfilePath is not null;
        var profile = needProfile ? LoadOrComputeProfile(evaluator, modelPath, dataSet, options, log) : null;
        seconds["profile"] = Lap(clock);

        var start = evaluator.DefaultPlan(options.Exclusions, options.Fallback);
        var target = options.Target ?? (options.Precision == PrecisionMode.Auto ? QuantizationOptions.DefaultAutoTarget : null);
        QuantizationPlan plan;
        PlanEvaluation evaluation;
        IReadOnlyList<FallbackStep> steps = [];
        bool met;
        if (options.Precision == PrecisionMode.Auto)
        {
            var search = MixedPrecisionSearch.Run(evaluator, profile!, start, target!.Value, log is null ? null : line => log($"{name}: {line}"), options.Fallback);
            (plan, evaluation, steps, met) = (search.Plan, search.Evaluation, search.Steps, search.Met);
        }
        else
        {
            plan = start;
            evaluation = evaluator.Evaluate(plan);
            met = target is not { } t || t.IsMetBy(evaluation.Output);
        }
        seconds["plan"] = Lap(clock);
        if (!met)
        {
            // The message names the most sensitive layers: measure them if nothing has yet.
            profile ??= LoadOrComputeProfile(evaluator, modelPath, dataSet, options, log);
            Miss(name, options, target!.Value, profile, plan, evaluation, evaluator.SampleCount, log);
        }
        // Without a profile the report has no per-layer numbers; all-int8 is the plan measured.
        profile ??= new SensitivityProfile(name, evaluator.SampleCount, options.Calibration, evaluation.Output, []);

        var fp32 = GraphCopy.Of(graph);
        var rewrite = Int8Quantization.Apply(graph, calibration, plan);
        log?.Invoke($"int8: {rewrite.Int8Count} of {rewrite.Units.Count} units run in int8 ({rewrite.Quantizes} quantize, {rewrite.Dequantizes} dequantize nodes)");
        if (rewrite.Fp16Weights.Count > 0 && log is not null) Fp16Weights.Log(rewrite.Fp16Weights, log);
        seconds["rewrite"] = Lap(clock);
        return new QuantizationOutcome
        {
            Model = name,
            Options = options,
            Target = target,
            Fp32Graph = fp32,
            Calibration = calibration,
            Samples = (dataSet.Samples.Count - heldOut, heldOut),
            Profile = profile,
            Plan = plan,
            Evaluation = evaluation,
            Fallbacks = steps,
            TargetMet = met,
            Rewrite = rewrite,
            WeightBytes = (ConstantBytes(fp32), ConstantBytes(graph, UsesFp16(options))),
            Seconds = seconds,
        };
    }

    /// <summary>Reports a missed target: error SQ1041, or warning SQ2010 when the user opted for a warning. The message
    /// names the measurement and the most sensitive units still in int8 with their solo numbers.</summary>
    private static void Miss(string model, QuantizationOptions options, AccuracyTarget target, SensitivityProfile profile,
        QuantizationPlan plan, PlanEvaluation evaluation, int samples, Action<string>? log)
    {
        var int8 = MixedPrecisionSearch.Int8Products(plan).ToHashSet(StringComparer.Ordinal);
        var worst = profile.Units.Where(u => int8.Contains(u.Node) && u.Output is not null)
            .OrderBy(u => u.Output!.Value.SqnrDb).Take(5).ToList();
        string what = options.Precision == PrecisionMode.Auto
            ? $"meeting it needs every layer in fp32; with only {string.Join(", ", int8)} in int8 the output measures {target.Format(evaluation.Output)}"
            : $"int8 measures SQNR {AccuracyTarget.FormatDb(evaluation.Output.SqnrDb)}, cosine {evaluation.Output.Cosine.ToString("0.######", CultureInfo.InvariantCulture)}";
        string message = $"{model} misses AccuracyTarget {target} on {samples} held-out calibration samples: {what}. "
            + $"Most sensitive int8 layers (output SQNR when quantized alone): {string.Join(", ", worst.Select(SensitivityProfile.Describe))}. "
            + (options.Precision == PrecisionMode.Auto
                ? "Lower the target, or keep the model in fp32."
                : $"Set Precision=auto to run the most sensitive layers in fp32, list them in QuantizationExclusions (e.g. \"{string.Join(";", worst.Take(2).Select(u => u.Node))}\"), or lower the target.");
        if (!options.TargetMissIsWarning) throw new SquashException(ErrorCodes.AccuracyTargetMissed, message);
        log?.Invoke($"warning {ErrorCodes.AccuracyTargetMissedWarning}: {message}");
    }

    private static SensitivityProfile LoadOrComputeProfile(Int8Evaluator evaluator, string modelPath, CalibrationDataSet dataSet,
        QuantizationOptions options, Action<string>? log)
    {
        string name = Path.GetFileName(modelPath);
        if (options.SensitivityProfilePath is { } committed && File.Exists(committed))
        {
            var profile = SensitivityProfile.Read(committed, out _);
            var (missing, extra) = profile.Compare(evaluator.Graph);
            if (missing.Count == 0 && extra.Count == 0) return profile;
            log?.Invoke($"warning {ErrorCodes.StaleSensitivityProfile}: the sensitivity profile '{committed}' does not match {name} "
                + $"({missing.Count} layers missing{(missing.Count > 0 ? $", e.g. {missing[0]}" : "")}; {extra.Count} unknown{(extra.Count > 0 ? $", e.g. {extra[0]}" : "")}): "
                + "it was made for another version of the model or other input shapes. It is measured again for this build; run 'squash profile' to update the committed file.");
            return Compute(evaluator, modelPath, dataSet, options, cachePath: CachePath(options, modelPath), log);
        }
        return Compute(evaluator, modelPath, dataSet, options, options.SensitivityProfilePath ?? CachePath(options, modelPath), log);
    }

    private static string? CachePath(QuantizationOptions options, string modelPath) =>
        options.CacheDirectory is { } cache ? Path.Combine(cache, (options.CacheName ?? Path.GetFileNameWithoutExtension(modelPath)) + ".sensitivity.json") : null;

    /// <summary>The profile from <paramref name="cachePath"/> when its key matches, else measured (and written there).</summary>
    private static SensitivityProfile Compute(Int8Evaluator evaluator, string modelPath, CalibrationDataSet dataSet, QuantizationOptions options,
        string? cachePath, Action<string>? log)
    {
        string? key = cachePath is null ? null : ProfileKey(modelPath, dataSet, options);
        if (cachePath is not null && File.Exists(cachePath))
        {
            try
            {
                var cached = SensitivityProfile.FromJson(File.ReadAllBytes(cachePath), out string? stored);
                if (stored == key) return cached;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
            {
                // A cache is only a shortcut: a damaged one is measured again and overwritten.
            }
        }
        log?.Invoke($"{Path.GetFileName(modelPath)}: measuring the int8 sensitivity of each layer on {evaluator.SampleCount} held-out samples");
        var profile = SensitivityProfile.Compute(evaluator, Path.GetFileName(modelPath), options.Calibration);
        if (cachePath is not null)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(cachePath))!);
            AtomicFile.Write(cachePath, profile.ToJson(key));
        }
        return profile;
    }

    /// <summary>The content hash a profile is cached under: the calibration cache's key (model bytes, calibration files,
    /// split, settings, build identities, context) with the profile's own format added.</summary>
    internal static string ProfileKey(string modelPath, CalibrationDataSet dataSet, QuantizationOptions options) =>
        CalibrationCache.ComputeKey(modelPath, dataSet, options.Calibration,
            $"{SensitivityProfile.Format}/{SensitivityProfile.FormatVersion}\n{options.CacheContext}");

    /// <summary>Measures the profile of a model (what <c>squash profile</c> and the build's profile target write).</summary>
    /// <param name="model">The model, optimized with input shapes pinned; its graph gets gamma migration.</param>
    /// <param name="modelPath">The model file.</param>
    /// <param name="options">Calibration folder, settings, split, threads, cache folder.</param>
    /// <param name="log">Progress.</param>
    /// <returns>The profile and its key.</returns>
    public static (SensitivityProfile Profile, string Key) Profile(Model model, string modelPath, QuantizationOptions options, Action<string>? log = null)
    {
        options.Calibration.Validate();
        options.Split.Validate();
        using var context = new KernelContext(options.Threads);
        var (dataSet, _, evaluator) = Prepare(model.Graph, modelPath, options, context, log);
        string key = ProfileKey(modelPath, dataSet, options);
        log?.Invoke($"{Path.GetFileName(modelPath)}: measuring the int8 sensitivity of each layer on {evaluator.SampleCount} held-out samples");
        return (SensitivityProfile.Compute(evaluator, Path.GetFileName(modelPath), options.Calibration), key);
    }

    /// <summary>Gamma migration, the data set, the calibration (cached when there is a cache folder) and an evaluator on
    /// the held-out samples (all samples when none is held out).</summary>
    private static (CalibrationDataSet DataSet, CalibrationResult Calibration, Int8Evaluator Evaluator) Prepare(Graph graph, string modelPath,
        QuantizationOptions options, KernelContext context, Action<string>? log)
    {
        Pipeline.QuantizationPrep().Run(graph, new PassContext());
        var dataSet = CalibrationDataSet.Open(options.CalibrationFolder, graph.Inputs, options.Split);
        var calibrator = new Calibrator(options.Calibration);
        CalibrationResult calibration;
        if (options.CacheDirectory is { } cache)
        {
            string file = Path.Combine(cache, (options.CacheName ?? Path.GetFileNameWithoutExtension(modelPath)) + ".calibration.json");
            (calibration, bool fromCache) = calibrator.CalibrateCached(modelPath, () => ExecutionPlan.Create(GraphCopy.Of(graph)), dataSet, file, options.CacheContext, context);
            log?.Invoke(fromCache ? $"int8: calibration from {file}" : $"int8: calibrated on {calibration.SampleCount} samples, cached in {file}");
        }
        else
        {
            calibration = calibrator.Calibrate(ExecutionPlan.Create(GraphCopy.Of(graph)), dataSet, context);
            log?.Invoke($"int8: calibrated on {calibration.SampleCount} samples");
        }
        var heldOut = dataSet.HeldOutSamples.ToList();
        var measured = heldOut.Count > 0 ? heldOut : [.. dataSet.Samples];
        var evaluator = new Int8Evaluator(GraphCopy.Of(graph), calibration, [.. measured.Select(s => (IReadOnlyDictionary<string, Tensor>)s.Load())], context);
        return (dataSet, calibration, evaluator);
    }

    /// <summary>Bytes of the constants the graph's nodes read, as the weights file stores them (with
    /// <paramref name="fp16Storage"/>, float16 values two bytes each: <see cref="Fp16Weights.StorageType"/>).</summary>
    internal static long ConstantBytes(Graph graph, bool fp16Storage = false)
    {
        var seen = new HashSet<Value>();
        long bytes = 0;
        foreach (var node in graph.Nodes)
            foreach (var v in node.Inputs)
                if (v?.Constant is { } c && seen.Add(v))
                    bytes += Fp16Weights.StorageType(c, fp16Storage) == DataType.Float16 ? c.ElementCount * 2L : c.ByteLength;
        return bytes;
    }

    /// <summary>True when the options put some unit in fp16, so the weights file stores float16 values as such.</summary>
    public static bool UsesFp16(QuantizationOptions options) =>
        options.Fallback == NodePrecision.Fp16 || options.Exclusions.Precisions.Values.Contains(NodePrecision.Fp16);

    private static double Lap(Stopwatch clock)
    {
        double s = clock.Elapsed.TotalSeconds;
        clock.Restart();
        return Math.Round(s, 3);
    }
}
