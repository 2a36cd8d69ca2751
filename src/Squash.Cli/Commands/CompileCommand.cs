using System.Globalization;
using Squash.Compiler.CodeGen;
using Squash.Compiler.Compilation;
using Squash.Runtime;
using Squash.Runtime.Execution;

namespace Squash.Cli.Commands;

/// <summary>
/// <c>squash compile MODEL ...</c>: the build's compiler. Writes <c>NAME.g.cs</c> and <c>NAME.sqw</c>. With
/// <c>--msbuild</c>, problems are printed as MSBuild canonical errors (<c>model.onnx : error SQ1003: ...</c>).
/// </summary>
internal static class CompileCommand
{
    public static int Run(Arguments args, TextWriter output)
    {
        if (args.Help)
        {
            output.WriteLine("usage: squash compile MODEL.onnx --output-dir DIR --class-name NAME [--namespace NS] [--output-name FILE]");
            output.WriteLine("         [--input-shape NAME=D0,D1,...]... [--constant-input NAME=V0,V1,...]... [--visibility public|internal]");
            output.WriteLine("         [--weights-storage EmbeddedResource|File] [--weights-name NAME] [--device Cpu|Gpu|Auto] [--api-only] [--msbuild]");
            output.WriteLine(PrecisionArguments.Usage);
            return 0;
        }
        string model = args.Positional(0, "the model file (squash compile MODEL.onnx --output-dir DIR --class-name NAME)");
        string outputDir = args.Optional("output-dir") ?? throw new UsageException("--output-dir DIR is required.");
        string className = args.Optional("class-name") ?? throw new UsageException("--class-name NAME is required.");
        string ns = args.Optional("namespace") ?? "";
        string outputName = args.Optional("output-name") ?? className;
        string visibility = args.Optional("visibility") ?? "public";
        string storage = args.Optional("weights-storage") ?? "EmbeddedResource";
        var precision = PrecisionArguments.Parse(args);
        string device = args.Optional("device") ?? "Cpu";
        string? weightsName = args.Optional("weights-name");
        bool apiOnly = args.Flag("api-only");
        bool msbuild = args.Flag("msbuild");
        var shapes = ParseAssignments(args.All("input-shape"), "--input-shape").ToDictionary(p => p.Key, p => ParseShape(p.Key, p.Value));
        var constants = ParseAssignments(args.All("constant-input"), "--constant-input");
        args.CheckNoneLeft(1);

        // A one-part namespace is exactly an identifier that is not a keyword, which is what a class name must be.
        if (!CSharpSyntax.IsNamespace(className))
            throw new SquashException(ErrorCodes.InvalidOption, $"ClassName '{className}' is not a valid C# class name; set ClassName on the SquashModel item.");
        if (ns.Length > 0 && !CSharpSyntax.IsNamespace(ns))
            throw new SquashException(ErrorCodes.InvalidOption, $"Namespace '{ns}' is not a valid C# namespace; set Namespace on the SquashModel item.");
        if (visibility is not ("public" or "internal"))
            throw new SquashException(ErrorCodes.InvalidOption, $"Visibility '{visibility}' is not supported; use public or internal.");
        // By name only: Enum.TryParse would also take "1".
        if (Enum.GetValues<WeightsStorage>().Where(v => string.Equals(v.ToString(), storage, StringComparison.OrdinalIgnoreCase)).ToArray() is not [var weightsStorage])
            throw new SquashException(ErrorCodes.InvalidOption, $"WeightsStorage '{storage}' is not supported; use EmbeddedResource or File.");
        if (Enum.GetValues<SquashDevice>().Where(v => string.Equals(v.ToString(), device, StringComparison.OrdinalIgnoreCase)).ToArray() is not [var squashDevice])
            throw new SquashException(ErrorCodes.InvalidOption, $"Device '{device}' is not supported; use Cpu, Gpu or Auto.");

        var request = new CompileRequest
        {
            ModelPath = model,
            OutputDirectory = outputDir,
            OutputName = outputName,
            InputShapes = shapes,
            ConstantInputs = constants,
            Int4 = precision.Int4,
            CalibrationFolder = precision.CalibrationFolder,
            CalibrationCache = precision.CalibrationCache,
            Int8Exclusions = precision.Int8Exclusions,
            CalibrationMethod = precision.CalibrationMethod,
            BiasCorrection = precision.BiasCorrection,
            CalibrationHoldOutEvery = precision.HoldOutEvery,
            AccuracyTarget = precision.AccuracyTarget,
            AccuracyTargetAction = precision.AccuracyTargetAction,
            SensitivityProfile = precision.SensitivityProfile,
            Int8Fallback = precision.Int8Fallback,
            Class = new ModelClassOptions
            {
                ClassName = className,
                Namespace = ns,
                Visibility = visibility,
                WeightsStorage = weightsStorage,
                WeightsName = weightsName ?? (ns.Length > 0 ? $"{ns}.{className}.sqw" : $"{className}.sqw"),
                SourceFileName = Path.GetFileName(model),
                SourceSha256 = "",
                Precision = precision.Precision,
                ApiOnly = apiOnly,
                Device = squashDevice,
            },
        };
        // With --msbuild only warnings go out, in MSBuild's canonical form so the build shows them.
        string origin = Path.GetFullPath(model);
        Action<string> log = msbuild
            ? line => { if (line.StartsWith("warning SQ", StringComparison.Ordinal)) output.WriteLine($"{origin} : {line}"); }
            : output.WriteLine;
        var result = ModelCompiler.Compile(request, log);
        output.WriteLine(result.Changed ? $"wrote {result.SourcePath}" : $"unchanged {result.SourcePath}");
        return 0;
    }

    internal static Dictionary<string, string> ParseAssignments(IReadOnlyList<string> values, string option)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var value in values)
            foreach (var part in value.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                int eq = part.IndexOf('=');
                if (eq <= 0 || eq == part.Length - 1) throw new SquashException(ErrorCodes.InvalidOption, $"{option} takes NAME=VALUES, not '{part}'.");
                string name = part[..eq].Trim();
                if (!result.TryAdd(name, part[(eq + 1)..].Trim()))
                    throw new SquashException(ErrorCodes.InvalidOption, $"{option} names '{name}' twice.");
            }
        return result;
    }

    internal static int[] ParseShape(string name, string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var dims = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out dims[i]))
                throw new SquashException(ErrorCodes.InvalidOption,
                    $"InputShapes for '{name}' must be comma-separated non-negative integers such as {name}=1,3,224,224, not '{text}'.");
        return dims;
    }
}
