using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Build.Framework;

namespace Squash.Build.Tasks;

/// <summary>
/// Diagnostic codes the tasks report. They are the same numbers as <c>Squash.Runtime.ErrorCodes</c>, which this
/// netstandard2.0 assembly cannot reference; docs/diagnostics.md lists them all.
/// </summary>
internal static class DiagnosticCodes
{
    /// <summary>The model file does not exist.</summary>
    public const string ModelNotFound = "SQ1001";

    /// <summary>A SquashModel metadata value (a compiler option) is invalid.</summary>
    public const string InvalidOption = "SQ1012";

    /// <summary>The compiler failed without reporting a diagnostic (it crashed or could not start).</summary>
    public const string CompilerFailed = "SQ1013";

    /// <summary>The compiler or the dotnet host that runs it cannot be found.</summary>
    public const string CompilerNotFound = "SQ1014";
}

/// <summary>Names of the metadata of <c>SquashModel</c> items: the user's, then those the build computes.</summary>
internal static class Metadata
{
    public const string ClassName = nameof(ClassName);
    public const string Namespace = nameof(Namespace);
    public const string Precision = nameof(Precision);
    public const string InputShapes = nameof(InputShapes);
    public const string ConstantInputs = nameof(ConstantInputs);
    public const string Int4Exclude = nameof(Int4Exclude);
    public const string Int4Activations = nameof(Int4Activations);
    public const string WeightsStorage = nameof(WeightsStorage);
    public const string Visibility = nameof(Visibility);
    public const string Calibration = nameof(Calibration);
    public const string Device = nameof(Device);
    public const string CalibrationMethod = nameof(CalibrationMethod);
    public const string BiasCorrection = nameof(BiasCorrection);
    public const string CalibrationHoldOutEvery = nameof(CalibrationHoldOutEvery);
    public const string AccuracyTarget = nameof(AccuracyTarget);
    public const string AccuracyTargetAction = nameof(AccuracyTargetAction);
    public const string SensitivityProfile = nameof(SensitivityProfile);
    public const string QuantizationExclusions = nameof(QuantizationExclusions);
    public const string Int8Fallback = nameof(Int8Fallback);

    // Computed by SquashPrepareModels.
    public const string OutputDirectory = nameof(OutputDirectory);
    public const string OutputName = nameof(OutputName);
    public const string WeightsName = nameof(WeightsName);
    public const string GeneratedSource = nameof(GeneratedSource);
    public const string Weights = nameof(Weights);
    public const string OptionsFile = nameof(OptionsFile);
    public const string StampFile = nameof(StampFile);
    public const string ApiStampFile = nameof(ApiStampFile);
    public const string CalibrationInputs = nameof(CalibrationInputs);
    public const string CalibrationCache = nameof(CalibrationCache);

    /// <summary>The metadata the user sets, in the order the options file lists them.</summary>
    public static readonly string[] User = [ClassName, Namespace, Visibility, WeightsStorage, Precision, InputShapes, ConstantInputs, Int4Exclude, Int4Activations, Device, Calibration,
        CalibrationMethod, BiasCorrection, CalibrationHoldOutEvery, AccuracyTarget, AccuracyTargetAction, SensitivityProfile, QuantizationExclusions, Int8Fallback];
}

/// <summary>
/// Defaults, checks and file names for <c>SquashModel</c> items. The checks mirror what <c>squash compile</c> accepts,
/// so bad metadata is reported by the build, all problems at once, before any compiler starts.
/// </summary>
internal static class ModelOptions
{
    private static readonly HashSet<string> s_keywords = new(StringComparer.Ordinal)
    {
        "abstract", "as", "base", "bool", "break", "byte", "case", "catch", "char", "checked", "class", "const",
        "continue", "decimal", "default", "delegate", "do", "double", "else", "enum", "event", "explicit", "extern",
        "false", "finally", "fixed", "float", "for", "foreach", "goto", "if", "implicit", "in", "int", "interface",
        "internal", "is", "lock", "long", "namespace", "new", "null", "object", "operator", "out", "override",
        "params", "private", "protected", "public", "readonly", "ref", "return", "sbyte", "sealed", "short",
        "sizeof", "stackalloc", "static", "string", "struct", "switch", "this", "throw", "true", "try", "typeof",
        "uint", "ulong", "unchecked", "unsafe", "ushort", "using", "virtual", "void", "volatile", "while",
    };

    /// <summary>The values of <c>WeightsStorage</c>, spelled as the compiler expects them.</summary>
    public static readonly string[] WeightsStorages = ["EmbeddedResource", "File"];

    /// <summary>The values of <c>Device</c> (Squash.Runtime's <c>SquashDevice</c>).</summary>
    public static readonly string[] Devices = ["Cpu", "Gpu", "Auto"];

    /// <summary>The values of <c>Visibility</c>.</summary>
    public static readonly string[] Visibilities = ["public", "internal"];

    /// <summary>True for a C# identifier that is not a keyword (what a class name may be).</summary>
    public static bool IsIdentifier(string name)
    {
        if (name.Length == 0 || !(char.IsLetter(name[0]) || name[0] == '_') || s_keywords.Contains(name)) return false;
        foreach (char c in name)
            if (!(char.IsLetterOrDigit(c) || c == '_')) return false;
        return true;
    }

    /// <summary>True for dotted identifiers such as <c>Contoso.Models</c>.</summary>
    public static bool IsNamespace(string name) => name.Split('.').All(IsIdentifier);

    /// <summary>
    /// The class name for a model file: its name without extension in PascalCase, every character that cannot be in
    /// an identifier acting as a word break (<c>ch_PP-OCRv4_det_infer.onnx</c> gives <c>ChPPOCRv4DetInfer</c>).
    /// </summary>
    public static string DefaultClassName(string modelPath)
    {
        var sb = new StringBuilder();
        bool wordStart = true;
        foreach (char c in Path.GetFileNameWithoutExtension(modelPath))
        {
            if (!char.IsLetterOrDigit(c))
            {
                wordStart = true;
                continue;
            }
            sb.Append(wordStart ? char.ToUpperInvariant(c) : c);
            wordStart = false;
        }
        if (sb.Length == 0) return "Model";
        // A file name that starts with a digit (2stage.onnx) still needs an identifier.
        return char.IsDigit(sb[0]) ? "_" + sb : sb.ToString();
    }

    /// <summary>
    /// The namespace for a project: its <c>RootNamespace</c> with each part made an identifier (a project called
    /// <c>my-app</c> gives <c>my_app</c>, as Visual Studio does for new files).
    /// </summary>
    public static string DefaultNamespace(string? rootNamespace)
    {
        var parts = new List<string>();
        foreach (var raw in (rootNamespace ?? "").Split('.'))
        {
            var sb = new StringBuilder();
            foreach (char c in raw.Trim()) sb.Append(char.IsLetterOrDigit(c) || c == '_' ? c : '_');
            if (sb.Length == 0) continue;
            string part = sb.ToString();
            parts.Add(char.IsDigit(part[0]) || s_keywords.Contains(part) ? "_" + part : part);
        }
        return string.Join(".", parts);
    }

    /// <summary>
    /// The base name of a model's outputs: its file name plus a hash of its full path, so that two
    /// <c>model.onnx</c> in different folders never share outputs (the idea of Grpc.Tools' DepFileUtil).
    /// </summary>
    public static string OutputName(string modelFullPath)
    {
        string stem = Path.GetFileNameWithoutExtension(modelFullPath);
        var sb = new StringBuilder();
        // Only characters that are safe in every file system and that MSBuild's AssignCulture does not read as a
        // culture suffix (a dot would turn model.en.onnx into an "en" satellite resource).
        foreach (char c in stem.Length > 40 ? stem.Substring(0, 40) : stem)
            sb.Append(c is >= 'a' and <= 'z' or >= 'A' and <= 'Z' or >= '0' and <= '9' or '-' or '_' ? c : '_');
        using var sha = SHA256.Create();
        byte[] hash = sha.ComputeHash(Encoding.UTF8.GetBytes(modelFullPath));
        sb.Append('_');
        for (int i = 0; i < 8; i++) sb.Append(hash[i].ToString("x2", CultureInfo.InvariantCulture));
        return sb.ToString();
    }

    /// <summary>The manifest resource name (EmbeddedResource) or file name (File) of a model's weights.</summary>
    public static string WeightsName(string ns, string className) =>
        ns.Length == 0 ? className + ".sqw" : ns + "." + className + ".sqw";

    /// <summary>Every problem with the user metadata of <paramref name="model"/>, as messages; empty when all is well.</summary>
    public static List<string> Check(ITaskItem model)
    {
        var problems = new List<string>();
        foreach (var name in Metadata.User)
        {
            string value = model.GetMetadata(name);
            if (value.IndexOf('\n') >= 0 || value.IndexOf('\r') >= 0)
                problems.Add($"SquashModel metadata {name} contains a line break; write it on one line.");
        }
        if (problems.Count > 0) return problems;

        string className = model.GetMetadata(Metadata.ClassName).Trim();
        if (!IsIdentifier(className))
            problems.Add($"SquashModel metadata ClassName='{className}' is not a valid C# class name: use letters, digits and '_', do not start with a digit, and avoid C# keywords (for example ClassName=\"TextDetector\").");
        string ns = model.GetMetadata(Metadata.Namespace).Trim();
        if (ns.Length > 0 && !IsNamespace(ns))
            problems.Add($"SquashModel metadata Namespace='{ns}' is not a valid C# namespace: use identifiers separated by dots (for example Namespace=\"Contoso.Models\").");
        string visibility = model.GetMetadata(Metadata.Visibility).Trim();
        if (Canonical(visibility, Visibilities) is null)
            problems.Add($"SquashModel metadata Visibility='{visibility}' is not supported: use public or internal.");
        string storage = model.GetMetadata(Metadata.WeightsStorage).Trim();
        if (Canonical(storage, WeightsStorages) is null)
            problems.Add($"SquashModel metadata WeightsStorage='{storage}' is not supported: use EmbeddedResource or File.");
        string device = model.GetMetadata(Metadata.Device).Trim();
        // Empty is the default, Cpu (a task call without the item definitions' defaults).
        if (device.Length > 0 && Canonical(device, Devices) is null)
            problems.Add($"SquashModel metadata Device='{device}' is not supported: use Cpu, Gpu or Auto.");
        string precision = model.GetMetadata(Metadata.Precision).Trim();
        if (precision.Length == 0 || !precision.All(c => c is >= 'a' and <= 'z' or >= 'A' and <= 'Z' or >= '0' and <= '9' or '_'))
            problems.Add($"SquashModel metadata Precision='{precision}' is not a precision name such as fp32.");
        CheckAssignments(model.GetMetadata(Metadata.InputShapes), Metadata.InputShapes, problems, CheckShape);
        CheckAssignments(model.GetMetadata(Metadata.ConstantInputs), Metadata.ConstantInputs, problems, CheckNumbers);
        return problems;
    }

    /// <summary>The spelling of <paramref name="value"/> in <paramref name="allowed"/> (case-insensitive), or null.</summary>
    public static string? Canonical(string value, string[] allowed) =>
        allowed.FirstOrDefault(a => string.Equals(a, value.Trim(), StringComparison.OrdinalIgnoreCase));

    /// <summary>Splits <c>a=1,2;b=3</c> into <c>("a", "1,2"), ("b", "3")</c>; entries without '=' come back with a null value.</summary>
    public static IEnumerable<(string Name, string? Value)> Assignments(string text)
    {
        foreach (var raw in text.Split(';'))
        {
            string entry = raw.Trim();
            if (entry.Length == 0) continue;
            int eq = entry.IndexOf('=');
            yield return eq < 0 ? (entry, null) : (entry.Substring(0, eq).Trim(), entry.Substring(eq + 1).Trim());
        }
    }

    private static void CheckAssignments(string text, string metadata, List<string> problems, Func<string, string, string?> checkValue)
    {
        string example = metadata == Metadata.InputShapes ? "x=1,3,640,640;y=1,2" : "sr=16000;scale=0.5,0.5";
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, value) in Assignments(text))
        {
            if (name.Length == 0 || value is null || value.Length == 0)
            {
                problems.Add($"SquashModel metadata {metadata}='{text}': '{name}{(value is null ? "" : "=" + value)}' is not NAME=VALUES; write for example {metadata}=\"{example}\".");
                continue;
            }
            if (!seen.Add(name))
            {
                problems.Add($"SquashModel metadata {metadata}='{text}' names the input '{name}' twice.");
                continue;
            }
            if (checkValue(name, value) is { } problem) problems.Add($"SquashModel metadata {metadata}='{text}': {problem}");
        }
    }

    private static string? CheckShape(string name, string dims)
    {
        foreach (var d in dims.Split(','))
            if (!int.TryParse(d.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out _))
                return $"dimension '{d.Trim()}' of input '{name}' is not a non-negative integer; write the shape as comma-separated numbers, for example {name}=1,3,224,224.";
        return null;
    }

    private static string? CheckNumbers(string name, string values)
    {
        foreach (var v in values.Split(','))
            if (!double.TryParse(v.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out _))
                return $"value '{v.Trim()}' of input '{name}' is not a number; write the values as comma-separated numbers, for example {name}=16000.";
        return null;
    }
}
