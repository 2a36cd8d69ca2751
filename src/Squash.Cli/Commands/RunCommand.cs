using System.Text;
using Squash.Compiler;
using Squash.Compiler.Quantization;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.IO;

namespace Squash.Cli.Commands;

/// <summary><c>squash run MODEL --input NAME=PATH ... --output-dir DIR [--threads N] [--precision fp32|fp16|int8|auto
/// --calibration DIR ...]</c>: with int8 or auto, the model goes through the same quantization pipeline as the build.</summary>
internal static class RunCommand
{
    public static int Run(Arguments args, TextWriter output)
    {
        if (args.Help)
        {
            output.WriteLine("usage: squash run MODEL.onnx --input NAME=PATH [--input NAME=PATH ...] --output-dir DIR [--threads N]");
            output.WriteLine("PATH is a .npy (or .npy.gz) file, or a folder of them: one run per file, matched by file name across");
            output.WriteLine("folders, outputs into DIR/<file stem>/. Each output is written as DIR/<output name>.npy.");
            output.WriteLine(PrecisionArguments.Usage);
            output.WriteLine("  --input-shape NAME=D0,D1,...     pin an input's shape (int8 default: the first calibration sample's)");
            output.WriteLine("  --report-dir DIR                 int8: write the quantization report (NAME.quantization.json, .md) there");
            return 0;
        }
        string modelPath = args.Positional(0, "the model file (squash run MODEL.onnx --input NAME=PATH --output-dir DIR)");
        var inputSpecs = args.All("input");
        string outputDir = args.Optional("output-dir") ?? throw new UsageException("--output-dir DIR is required.");
        int threads = args.Int("threads", 1, min: 0);
        var precision = PrecisionArguments.Parse(args);
        var shapeSpecs = args.All("input-shape");
        string? reportDir = args.Optional("report-dir");
        args.CheckNoneLeft(1);
        if (inputSpecs.Count == 0) throw new UsageException("give at least one --input NAME=PATH.");
        if (!precision.IsInt8 && reportDir is not null) throw new UsageException("--report-dir goes with --precision int8 or auto.");

        // The build's pipeline: pinned shapes, the fp32 passes, then the precision (for int8: calibration, profile,
        // plan and rewrite).
        var model = Squash.Compiler.Onnx.OnnxLoader.Load(modelPath);
        if (precision.IsInt8)
        {
            // Int8 plans one shape: the given ones, or the first calibration sample's.
            ModelPreparation.PinInputShapes(model, Int8Preparation.PlannedShapes(model, ParseShapes(shapeSpecs), precision.CalibrationFolder!));
        }
        else if (shapeSpecs.Count > 0) ModelPreparation.PinInputShapes(model, ParseShapes(shapeSpecs));
        ModelPreparation.Optimize(model);
        // The per-layer profile is measured for plain int8 only when the report will show it.
        var int8 = precision.Int8(threads) is { } q ? q with { Sensitivity = reportDir is not null || q.Precision == PrecisionMode.Auto } : null;
        var outcome = ModelPreparation.ApplyPrecision(model, precision.Precision, precision.Int4, precision.CalibrationFolder, output.WriteLine, int8, modelPath);
        if (outcome is not null)
        {
            output.WriteLine(QuantizationArguments.Summary(outcome));
            if (reportDir is not null)
            {
                var (json, markdown) = QuantizationReportWriter.Write(outcome, reportDir, Path.GetFileNameWithoutExtension(modelPath));
                output.WriteLine($"wrote {json} and {markdown}");
            }
        }
        ModelPreparation.Fuse(model);
        var graph = model.Graph;
        var files = new Dictionary<string, string>(StringComparer.Ordinal);
        var folders = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var spec in inputSpecs)
        {
            int eq = spec.IndexOf('=');
            if (eq <= 0 || eq == spec.Length - 1) throw new UsageException($"--input takes NAME=PATH, not '{spec}'.");
            string name = spec[..eq], path = spec[(eq + 1)..];
            if (!graph.Inputs.Any(i => i.Name == name))
                throw new SquashException(ErrorCodes.BadInput,
                    $"'{Path.GetFileName(modelPath)}' has no input named '{name}'. Its inputs are: {string.Join(", ", graph.Inputs.Select(i => i.Name))}.");
            if (files.ContainsKey(name) || folders.ContainsKey(name)) throw new UsageException($"input '{name}' is given twice.");
            if (Directory.Exists(path)) folders[name] = path;
            else if (File.Exists(path)) files[name] = path;
            else throw new SquashException(ErrorCodes.FileError, $"input '{name}': '{path}' is neither a file nor a folder.");
        }

        var executor = new GraphExecutor(graph);
        using var context = new KernelContext(threads);
        if (folders.Count == 0)
        {
            RunOnce(executor, context, files, outputDir);
            output.WriteLine($"wrote {graph.Outputs.Count} output(s) to {outputDir}");
            return 0;
        }
        // One run per sample: files with the same name in every input folder.
        var stems = folders.Select(f => ListSamples(f.Value).Keys.ToHashSet(StringComparer.Ordinal))
            .Aggregate((a, b) => { a.IntersectWith(b); return a; })
            .Order(StringComparer.Ordinal).ToList();
        if (stems.Count == 0)
            throw new SquashException(ErrorCodes.FileError, $"no .npy file name appears in every input folder ({string.Join(", ", folders.Values)}).");
        foreach (var stem in stems)
        {
            var runFiles = new Dictionary<string, string>(files, StringComparer.Ordinal);
            foreach (var (name, folder) in folders) runFiles[name] = ListSamples(folder)[stem];
            RunOnce(executor, context, runFiles, Path.Combine(outputDir, stem));
        }
        output.WriteLine($"ran {stems.Count} sample(s); outputs in {outputDir}/<sample>/");
        return 0;
    }

    internal static Dictionary<string, int[]> ParseShapes(IReadOnlyList<string> specs)
    {
        var result = new Dictionary<string, int[]>(StringComparer.Ordinal);
        foreach (var spec in specs)
        {
            int eq = spec.IndexOf('=');
            if (eq <= 0) throw new UsageException($"--input-shape takes NAME=D0,D1,..., not '{spec}'.");
            var dims = spec[(eq + 1)..].Split(',');
            var shape = new int[dims.Length];
            for (int i = 0; i < dims.Length; i++)
                if (!int.TryParse(dims[i], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out shape[i]))
                    throw new UsageException($"--input-shape takes NAME=D0,D1,... with non-negative integers, not '{spec}'.");
            result[spec[..eq]] = shape;
        }
        return result;
    }

    private static Dictionary<string, string> ListSamples(string folder)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var f in Directory.GetFiles(folder))
        {
            string name = Path.GetFileName(f);
            if (name.EndsWith(".npy.gz", StringComparison.Ordinal)) result[name[..^7]] = f;
            else if (name.EndsWith(".npy", StringComparison.Ordinal)) result[name[..^4]] = f;
        }
        return result;
    }

    private static void RunOnce(GraphExecutor executor, KernelContext context, Dictionary<string, string> files, string outputDir)
    {
        var inputs = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, path) in files)
        {
            var tensor = Npy.Read(path);
            var declared = executor.Graph.Inputs.First(i => i.Name == name);
            if (declared.Type != DataType.Undefined && declared.Type != tensor.DataType)
                throw new SquashException(ErrorCodes.BadInput,
                    $"input '{name}' ('{path}') is {DataTypes.Name(tensor.DataType)} but the model takes {DataTypes.Name(declared.Type)}; convert it (array.astype).");
            inputs[name] = tensor;
        }
        var outputs = executor.Run(inputs, context);
        Directory.CreateDirectory(outputDir);
        foreach (var (name, tensor) in outputs)
        {
            string file = Path.Combine(outputDir, SafeFileName(name) + ".npy");
            using var stream = new MemoryStream();
            Npy.Write(stream, tensor);
            Squash.Compiler.AtomicFile.Write(file, stream.ToArray());
        }
    }

    /// <summary>Output names become file names: characters outside [A-Za-z0-9_.-] become '_'.</summary>
    internal static string SafeFileName(string name)
    {
        var sb = new StringBuilder(name.Length);
        foreach (char c in name) sb.Append(char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-' ? c : '_');
        string s = sb.ToString();
        return s is "" or "." or ".." ? "_" + s : s;
    }
}
