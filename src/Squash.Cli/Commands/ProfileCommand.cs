using Squash.Compiler;
using Squash.Compiler.Quantization;

namespace Squash.Cli.Commands;

/// <summary><c>squash profile MODEL --calibration DIR --output FILE</c>: the int8 sensitivity profile the build uses,
/// to commit next to the model (<c>SensitivityProfile</c> metadata).</summary>
internal static class ProfileCommand
{
    public static int Run(Arguments args, TextWriter output)
    {
        if (args.Help)
        {
            output.WriteLine("usage: squash profile MODEL.onnx --calibration DIR --output FILE [options]");
            output.WriteLine("Measures, for each layer that can run in int8, the model's output SQNR and cosine against fp32 when only that");
            output.WriteLine("layer is int8, and the layer's own activation SQNR, on the held-out calibration samples. Options:");
            output.WriteLine(QuantizationArguments.ProfileUsage);
            return 0;
        }
        string modelPath = args.Positional(0, "the model file (squash profile MODEL.onnx --calibration DIR --output FILE)");
        string file = args.Optional("output") ?? throw new UsageException("--output FILE is required.");
        int threads = args.Int("threads", 1, min: 0);
        string? holdOut = args.Optional("hold-out-every");
        var options = QuantizationOptions.FromText("int8", args.Optional("calibration"), args.Optional("calibration-method"),
            holdOut is null ? null : args.Int("hold-out-every", 5, min: 0), biasCorrection: args.Optional("bias-correction")) with { Threads = threads };
        var shapes = args.All("input-shape");
        // With --msbuild (the build's Squash_Profile target), errors come out as canonical lines on the model.
        bool msbuild = args.Flag("msbuild");
        args.CheckNoneLeft(1);
        var model = QuantizationArguments.Load(modelPath, shapes, options.CalibrationFolder);
        var (profile, key) = QuantizationPipeline.Profile(model, modelPath, options, msbuild ? null : output.WriteLine);
        AtomicFile.Write(file, profile.ToJson(key));
        var worst = profile.Units.Where(u => u.Output is not null).OrderBy(u => u.Output!.Value.SqnrDb).Take(3);
        output.WriteLine($"wrote {file}: {profile.Units.Count} layers; all int8 {AccuracyTarget.FormatDb(profile.AllInt8.SqnrDb)}; "
            + $"most sensitive: {string.Join(", ", worst.Select(u => $"{u.Node} {AccuracyTarget.FormatDb(u.Output!.Value.SqnrDb)}"))}");
        return 0;
    }
}
