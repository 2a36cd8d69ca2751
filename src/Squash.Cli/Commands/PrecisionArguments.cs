using Squash.Compiler;
using Squash.Compiler.Quantization;
using Squash.Runtime;
using Squash.Runtime.Kernels;

namespace Squash.Cli.Commands;

/// <summary>The precision options <c>squash run</c>, <c>compile</c>, <c>export</c> and <c>profile</c> share, named as the
/// <c>SquashModel</c> metadata they mirror; the int8 ones are kept as text and checked by
/// <see cref="QuantizationOptions.FromText"/>, as the build's are.</summary>
/// <param name="Precision">fp32, fp16, int4, int8 or auto (lower case).</param>
/// <param name="Int4">Int4 settings.</param>
/// <param name="CalibrationFolder">Calibration samples (int4 with GPTQ, or null for round-to-nearest; int8 and auto,
/// required).</param>
internal sealed record PrecisionArguments(string Precision, Int4QuantizationOptions Int4, string? CalibrationFolder)
{
    /// <summary>Int8 units kept in float (<see cref="QuantizationExclusions.Parse"/>).</summary>
    public string? Int8Exclusions { get; init; }

    /// <summary>fp32 or fp16: the precision of the units that do not run in int8; null for fp32.</summary>
    public string? Int8Fallback { get; init; }

    /// <summary>Where int8 caches its calibration, or null.</summary>
    public string? CalibrationCache { get; init; }

    /// <summary>minmax, percentile, entropy or mse; null for minmax.</summary>
    public string? CalibrationMethod { get; init; }

    /// <summary>on or off; null for on.</summary>
    public string? BiasCorrection { get; init; }

    /// <summary>Every K-th calibration sample held out; null for 5.</summary>
    public int? HoldOutEvery { get; init; }

    /// <summary><c>sqnr:DB</c> or <c>cos:VALUE</c>, or null.</summary>
    public string? AccuracyTarget { get; init; }

    /// <summary>error or warn; null for error.</summary>
    public string? AccuracyTargetAction { get; init; }

    /// <summary>A committed sensitivity profile, or null.</summary>
    public string? SensitivityProfile { get; init; }

    /// <summary>True for int8 and auto.</summary>
    public bool IsInt8 => Precision is "int8" or "auto";

    /// <summary>The usage lines of the options.</summary>
    public const string Usage =
        "  --precision fp32|fp16|int4|int8|auto\n" +
        "                                   fp16: Conv/MatMul/Gemm weights rounded to and stored as float16, computed in fp32;\n" +
        "                                   int4: weight-only 4-bit MatMul/Gemm/Gather weights (docs/int4.md); int8: post-training\n" +
        "                                   quantization; auto: int8 with the most sensitive layers in float to meet\n" +
        "                                   --accuracy-target (docs/quantization.md)\n" +
        "  --int4-exclude PATTERN           keep a node or weight in fp32 (by name, * is a wildcard; repeatable)\n" +
        "  --int4-block-size 32|64|128|256  values per block (default 32)\n" +
        "  --int4-asymmetric                a zero point per block (default symmetric)\n" +
        "  --int4-min-elements N            weights with fewer values stay fp32 (default 65536)\n" +
        "  --int4-no-embeddings             keep Gather embedding tables in fp32\n" +
        "  --int4-activations fp32|int8     a decode step's activations: fp32 (default) or int8 per block (faster, less exact)\n" +
        "  --calibration DIR                int4 by GPTQ from these samples' activations (default round-to-nearest);\n" +
        "                                   int8/auto (required): one .npy per sample, or one folder per sample of <input>.npy\n" +
        "  --calibration-method M           int8: minmax (default), percentile, entropy or mse\n" +
        "  --bias-correction on|off         int8: correct the shift weight rounding gives each channel's mean (default on)\n" +
        "  --hold-out-every K               int8: hold out every K-th sample to measure accuracy on (default 5; 0: none)\n" +
        "  --accuracy-target T              int8: sqnr:DB or cos:VALUE on the held-out samples (auto's default: sqnr:30)\n" +
        "  --accuracy-target-action A       int8: error (default) or warn, when the target is missed\n" +
        "  --int8-exclude NODE;op:TYPE      int8 layers kept in float (NODE=fp16 or NODE=fp32 names the precision)\n" +
        "  --int8-fallback fp32|fp16        int8: the precision of the layers that do not run in int8 (default fp32)\n" +
        "  --sensitivity-profile FILE       int8: a committed profile to use (written there when it does not exist)\n" +
        "  --calibration-cache FILE         int8: cache the calibration (and the profile) beside FILE";

    /// <summary>Reads the options.</summary>
    /// <exception cref="SquashException">A value is invalid (SQ1012) or int8 lacks calibration data (SQ1020).</exception>
    public static PrecisionArguments Parse(Arguments args)
    {
        string precision = ModelPreparation.ParsePrecision(args.Optional("precision") ?? "fp32");
        var options = new Int4QuantizationOptions
        {
            BlockSize = args.Int("int4-block-size", 32, min: 1),
            Symmetric = !args.Flag("int4-asymmetric"),
            MinElements = args.Int("int4-min-elements", 1 << 16, min: 0),
            QuantizeEmbeddings = !args.Flag("int4-no-embeddings"),
            ActivationPrecision = ParseInt4Activations(args.Optional("int4-activations")),
            Exclude = [.. args.All("int4-exclude").SelectMany(v => v.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))],
        };
        string? holdOut = args.Optional("hold-out-every");
        var parsed = new PrecisionArguments(precision, options, args.Optional("calibration"))
        {
            Int8Exclusions = args.Optional("int8-exclude"),
            Int8Fallback = args.Optional("int8-fallback"),
            CalibrationCache = args.Optional("calibration-cache"),
            CalibrationMethod = args.Optional("calibration-method"),
            BiasCorrection = args.Optional("bias-correction"),
            HoldOutEvery = holdOut is null ? null : args.Int("hold-out-every", 5, min: 0),
            AccuracyTarget = args.Optional("accuracy-target"),
            AccuracyTargetAction = args.Optional("accuracy-target-action"),
            SensitivityProfile = args.Optional("sensitivity-profile"),
        };
        bool int4OptionGiven = options != new Int4QuantizationOptions { Exclude = options.Exclude } || options.Exclude.Count > 0;
        if (precision != "int4" && int4OptionGiven)
            throw new SquashException(ErrorCodes.InvalidOption, "The --int4-* options need --precision int4.");
        bool int8OptionGiven = parsed with { Precision = "fp32", Int4 = options, CalibrationFolder = null } != new PrecisionArguments("fp32", options, null);
        if (!parsed.IsInt8 && int8OptionGiven)
            throw new SquashException(ErrorCodes.InvalidOption,
                "The int8 options (--int8-exclude, --int8-fallback, --calibration-cache, --calibration-method, --bias-correction, --hold-out-every, --accuracy-target, "
                + "--accuracy-target-action, --sensitivity-profile) need --precision int8 or auto.");
        if (precision is "fp32" or "fp16" && parsed.CalibrationFolder is not null)
            throw new SquashException(ErrorCodes.InvalidOption, "--calibration needs --precision int4, int8 or auto.");
        if (parsed.IsInt8) parsed.Int8();
        return parsed;
    }

    private static Int4ActivationPrecision ParseInt4Activations(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "fp32" => Int4ActivationPrecision.Fp32,
        "int8" => Int4ActivationPrecision.Int8,
        _ => throw new SquashException(ErrorCodes.InvalidOption, $"--int4-activations '{value}' is not fp32 or int8."),
    };

    /// <summary>The int8 options (checked), or null for fp32, fp16 and int4.</summary>
    public QuantizationOptions? Int8(int threads = 1) => !IsInt8 ? null
        : QuantizationOptions.FromText(Precision, CalibrationFolder, CalibrationMethod, HoldOutEvery, AccuracyTarget, AccuracyTargetAction,
            Int8Exclusions, SensitivityProfile, CalibrationCache, Int8Fallback, BiasCorrection) with { Threads = threads };
}
