using Squash.Compiler;
using Squash.Compiler.Onnx;
using Squash.Compiler.Quantization;
using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Cli.Commands;

/// <summary>The options the commands that quantize share (<c>squash run --precision int8|auto</c>, <c>squash profile</c>),
/// named as the <c>SquashModel</c> metadata they mirror.</summary>
internal static class QuantizationArguments
{
    public const string Usage =
        "  --calibration DIR              calibration samples: one .npy per sample, or one folder per sample of <input>.npy\n" +
        "  --calibration-method M         minmax (default), percentile, entropy or mse\n" +
        "  --hold-out-every K             hold out every K-th sample to measure accuracy on (default 5; 0: none, measure on all)\n" +
        "  --accuracy-target T            sqnr:DB or cos:VALUE on the held-out samples (auto's default: sqnr:30)\n" +
        "  --accuracy-target-action A     error (default) or warn, when int8 misses the target\n" +
        "  --int8-exclude LIST            layers to keep in fp32: node names and op:Type, separated by ; or ,\n" +
        "  --sensitivity-profile FILE     a committed profile to use (written there when it does not exist)\n" +
        "  --input-shape NAME=D0,D1,...   pin an input's shape (default: the first calibration sample's)\n" +
        "  --threads N                    kernel threads (results do not depend on them)";

    /// <summary>The precision, checked as <see cref="Int8Preparation.Options"/> checks it for the build: an unknown name,
    /// int8 or auto without calibration data, or calibration data with fp32 are SQ1020.</summary>
    public static PrecisionMode Precision(string? text, string? calibration)
    {
        text ??= "fp32";
        if (Enum.GetValues<PrecisionMode>().Where(p => string.Equals(p.ToString(), text, StringComparison.OrdinalIgnoreCase)).ToArray() is not [var precision])
            throw new SquashException(ErrorCodes.QuantizationSetup, $"Precision '{text}' is not supported; use fp32, int8 or auto.");
        // fp32 and int8 get the build's own checks and messages.
        if (precision != PrecisionMode.Auto) Int8Preparation.Options(text, calibration);
        else if (string.IsNullOrWhiteSpace(calibration))
            throw new SquashException(ErrorCodes.QuantizationSetup,
                "Precision auto needs calibration data: give a folder of representative inputs (--calibration DIR; layouts in docs/quantization.md).");
        return precision;
    }

    /// <summary>Reads the options (not <c>--precision</c>); <paramref name="precision"/> says which are allowed.</summary>
    public static QuantizationOptions Parse(Arguments args, PrecisionMode precision)
    {
        string calibration = args.Optional("calibration") ?? throw new UsageException("--calibration DIR is required to quantize.");
        string method = args.Optional("calibration-method") ?? "minmax";
        if (Enum.GetValues<CalibrationMethod>().Where(m => string.Equals(m.ToString(), method, StringComparison.OrdinalIgnoreCase)).ToArray() is not [var parsedMethod])
            throw new UsageException($"--calibration-method must be minmax, percentile, entropy or mse, not '{method}'.");
        int holdOut = args.Int("hold-out-every", 5, min: 0);
        string? target = args.Optional("accuracy-target");
        string action = args.Optional("accuracy-target-action") ?? "error";
        if (action is not ("error" or "warn")) throw new UsageException($"--accuracy-target-action must be error or warn, not '{action}'.");
        return new QuantizationOptions
        {
            Precision = precision,
            CalibrationFolder = calibration,
            Calibration = new CalibrationSettings { Method = parsedMethod },
            Split = new CalibrationSplit(holdOut),
            Target = target is null ? null : AccuracyTarget.Parse(target),
            TargetMissIsWarning = action == "warn",
            Exclusions = QuantizationExclusions.Parse(args.Optional("int8-exclude")),
            SensitivityProfilePath = args.Optional("sensitivity-profile"),
            Threads = args.Int("threads", 1, min: 0),
        };
    }

    /// <summary>Loads the model, pins its input shapes (given ones, else the first calibration sample's) and optimizes it.</summary>
    public static Model Load(string modelPath, IReadOnlyList<string> inputShapes, string calibrationFolder)
    {
        var model = OnnxLoader.Load(modelPath);
        var shapes = CompileCommand.ParseAssignments(inputShapes, "--input-shape")
            .ToDictionary(p => p.Key, p => CompileCommand.ParseShape(p.Key, p.Value), StringComparer.Ordinal);
        if (model.Graph.Inputs.Any(i => !shapes.ContainsKey(i.Name) && !i.HasKnownShape))
        {
            var first = CalibrationDataSet.Open(calibrationFolder, model.Graph.Inputs).Samples[0].Load();
            foreach (var input in model.Graph.Inputs)
                if (!shapes.ContainsKey(input.Name) && !input.HasKnownShape && first.TryGetValue(input.Name, out var t)) shapes[input.Name] = t.Shape;
        }
        ModelPreparation.PinInputShapes(model, shapes);
        ModelPreparation.Optimize(model);
        return model;
    }

    /// <summary>One line on what quantizing did.</summary>
    public static string Summary(QuantizationOutcome o)
    {
        int int8 = o.Rewrite.Int8Count;
        string target = o.Target is { } t ? $"; target {t} {(o.TargetMet ? "met" : "MISSED")}" : "";
        string fallbacks = o.Fallbacks.Count > 0 ? $"; fp32 fallbacks: {string.Join(", ", o.Fallbacks.Select(f => f.Node))}" : "";
        return string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"{o.Model}: {o.Options.Precision.ToString().ToLowerInvariant()}: {int8} of {o.Rewrite.Units.Count} layers in int8, "
            + $"{o.Rewrite.Quantizes + o.Rewrite.Dequantizes} borders; on {o.Samples.HeldOut} held-out samples SQNR "
            + $"{AccuracyTarget.FormatDb(o.Evaluation.Output.SqnrDb)}, cosine {o.Evaluation.Output.Cosine:0.######}{target}{fallbacks}");
    }
}
