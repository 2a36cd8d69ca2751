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
    /// <summary>The options of <c>squash profile</c>: the int8 ones that shape a profile.</summary>
    public const string ProfileUsage =
        "  --calibration DIR              calibration samples: one .npy per sample, or one folder per sample of <input>.npy\n" +
        "  --calibration-method M         minmax (default), percentile, entropy or mse\n" +
        "  --bias-correction on|off       correct the shift weight rounding gives each channel's mean (default on)\n" +
        "  --hold-out-every K             hold out every K-th sample to measure accuracy on (default 5; 0: none, measure on all)\n" +
        "  --input-shape NAME=D0,D1,...   pin an input's shape (default: the first calibration sample's)\n" +
        "  --threads N                    kernel threads (results do not depend on them)";

    /// <summary>Loads the model, pins its input shapes (given ones, else the first calibration sample's) and optimizes it.</summary>
    public static Model Load(string modelPath, IReadOnlyList<string> inputShapes, string calibrationFolder)
    {
        var model = OnnxLoader.Load(modelPath);
        var given = CompileCommand.ParseAssignments(inputShapes, "--input-shape")
            .ToDictionary(p => p.Key, p => CompileCommand.ParseShape(p.Key, p.Value), StringComparer.Ordinal);
        ModelPreparation.PinInputShapes(model, Int8Preparation.PlannedShapes(model, given, calibrationFolder));
        ModelPreparation.Optimize(model);
        return model;
    }

    /// <summary>One line on what quantizing did.</summary>
    public static string Summary(QuantizationOutcome o)
    {
        int int8 = o.Rewrite.Int8Count;
        string target = o.Target is { } t ? $"; target {t} {(o.TargetMet ? "met" : "MISSED")}" : "";
        string fallbacks = o.Fallbacks.Count > 0
            ? $"; {o.Options.Fallback.ToString().ToLowerInvariant()} fallbacks: {string.Join(", ", o.Fallbacks.Select(f => f.Node))}" : "";
        return string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"{o.Model}: {o.Options.Precision.ToString().ToLowerInvariant()}: {int8} of {o.Rewrite.Units.Count} layers in int8, "
            + $"{o.Rewrite.Quantizes + o.Rewrite.Dequantizes} borders; on {o.Samples.HeldOut} held-out samples SQNR "
            + $"{AccuracyTarget.FormatDb(o.Evaluation.Output.SqnrDb)}, cosine {o.Evaluation.Output.Cosine:0.######}{target}{fallbacks}");
    }
}
