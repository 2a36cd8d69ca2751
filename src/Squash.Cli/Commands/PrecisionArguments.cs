using Squash.Compiler;
using Squash.Compiler.Quantization;
using Squash.Runtime;

namespace Squash.Cli.Commands;

/// <summary>The precision options <c>squash run</c>, <c>compile</c> and <c>export</c> share.</summary>
/// <param name="Precision">fp32 or int4 (lower case).</param>
/// <param name="Int4">Int4 settings.</param>
/// <param name="CalibrationFolder">Calibration samples (int4 with GPTQ), or null for round-to-nearest.</param>
internal sealed record PrecisionArguments(string Precision, Int4QuantizationOptions Int4, string? CalibrationFolder)
{
    /// <summary>The usage lines of the options.</summary>
    public const string Usage =
        "  --precision fp32|int4            int4: weight-only 4-bit MatMul/Gemm/Gather weights (docs/int4.md)\n" +
        "  --int4-exclude PATTERN           keep a node or weight in fp32 (by name, * is a wildcard; repeatable)\n" +
        "  --int4-block-size 32|64|128|256  values per block (default 32)\n" +
        "  --int4-asymmetric                a zero point per block (default symmetric)\n" +
        "  --int4-min-elements N            weights with fewer values stay fp32 (default 65536)\n" +
        "  --int4-no-embeddings             keep Gather embedding tables in fp32\n" +
        "  --calibration DIR                int4 by GPTQ from these samples' activations (default round-to-nearest)";

    /// <summary>Reads the options.</summary>
    /// <exception cref="SquashException">A value is invalid (SQ1012).</exception>
    public static PrecisionArguments Parse(Arguments args)
    {
        string precision = ModelPreparation.ParsePrecision(args.Optional("precision") ?? "fp32");
        var options = new Int4QuantizationOptions
        {
            BlockSize = args.Int("int4-block-size", 32, min: 1),
            Symmetric = !args.Flag("int4-asymmetric"),
            MinElements = args.Int("int4-min-elements", 1 << 16, min: 0),
            QuantizeEmbeddings = !args.Flag("int4-no-embeddings"),
            Exclude = [.. args.All("int4-exclude").SelectMany(v => v.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))],
        };
        string? calibration = args.Optional("calibration");
        bool int4OptionGiven = options != new Int4QuantizationOptions { Exclude = options.Exclude } || options.Exclude.Count > 0;
        if (precision != "int4" && (int4OptionGiven || calibration is not null))
            throw new SquashException(ErrorCodes.InvalidOption, "The --int4-* and --calibration options need --precision int4.");
        return new PrecisionArguments(precision, options, calibration);
    }
}
