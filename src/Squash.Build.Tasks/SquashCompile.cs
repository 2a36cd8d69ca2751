using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

namespace Squash.Build.Tasks;

/// <summary>
/// Compiles ONNX models by running the Squash compiler out of process, once per model:
/// <c>dotnet squash.dll @response.rsp</c> (the ILLink pattern). The compiler loads Google.Protobuf and large models;
/// in its own process it neither conflicts with what MSBuild has loaded nor keeps memory or file locks in a reused
/// build node. It prints MSBuild canonical errors (<c>model.onnx : error SQ1003: ...</c>), which
/// <see cref="ToolTask"/> logs as errors without any parsing of ours.
/// </summary>
/// <remarks>
/// Each model item carries its options as metadata (see <see cref="SquashPrepareModels"/>, which fills them in).
/// Every model is compiled even when an earlier one fails, so one build reports all broken models; the task fails if
/// any did. After a model compiles, its stamp files are touched (dated when the compiler started): they are the outputs
/// of the incremental check, because the compiler leaves unchanged outputs (and their timestamps) alone. A compiler
/// that fails, crashes or is killed leaves the stamps as they were, older than what changed, so the next build runs it
/// again whatever it left behind.
/// </remarks>
public class SquashCompile : ToolTask
{
    private ITaskItem? _current;
    private int _errorsInRun;
    private bool _validated;
    private volatile bool _canceled;

    /// <summary>Creates the task; the node is yielded to other projects while the compiler runs.</summary>
    public SquashCompile() => YieldDuringToolExecution = true;

    /// <summary>The models. Metadata (all required unless noted): <c>ClassName</c>, <c>Namespace</c> (may be
    /// empty), <c>Visibility</c>, <c>WeightsStorage</c>, <c>Precision</c>, <c>InputShapes</c> and
    /// <c>ConstantInputs</c>, <c>Int4Exclude</c> and <c>Int4Activations</c> (may be empty), <c>OutputDirectory</c>, <c>OutputName</c>, <c>WeightsName</c>
    /// (optional), <c>StampFile</c> and <c>ApiStampFile</c> (optional).</summary>
    [Required]
    public ITaskItem[] Models { get; set; } = [];

    /// <summary>The compiler: <c>squash.dll</c>, run with <see cref="DotNetHostPath"/>, or an executable run directly
    /// (tests use a fake one). The build takes it from <c>$(Squash_CompilerPath)</c> or the <c>SQUASH_COMPILER</c>
    /// environment variable, else from the package.</summary>
    [Required]
    public string CompilerPath { get; set; } = "";

    /// <summary>The <c>dotnet</c> host that runs a <c>.dll</c> compiler: <c>$(DOTNET_HOST_PATH)</c>, else
    /// <c>$(NetCoreRoot)dotnet</c>. When empty, <c>dotnet</c> is looked up on the PATH.</summary>
    public string? DotNetHostPath { get; set; }

    /// <summary>Design-time build: write only the class's API (<c>--api-only</c>), which is cheap, and no weights.</summary>
    public bool ApiOnly { get; set; }

    /// <summary>The models that compiled.</summary>
    [Output]
    public ITaskItem[] CompiledModels { get; private set; } = [];

    private bool CompilerIsAssembly => CompilerPath.EndsWith(".dll", StringComparison.OrdinalIgnoreCase);

    /// <inheritdoc/>
    protected override string ToolName => CompilerIsAssembly
        ? (Path.DirectorySeparatorChar == '\\' ? "dotnet.exe" : "dotnet")
        : Path.GetFileName(CompilerPath);

    /// <inheritdoc/>
    protected override MessageImportance StandardErrorLoggingImportance => MessageImportance.High;

    /// <inheritdoc/>
    protected override Encoding ResponseFileEncoding => new UTF8Encoding(false);

    /// <summary>Errors logged while compiling the current model only, so that one model's failure does not mark the
    /// next one as failed too (ToolTask consults this to tell success from failure).</summary>
    protected override bool HasLoggedErrors => _errorsInRun > 0;

    /// <inheritdoc/>
    public override bool Execute()
    {
        if (!ValidateParameters()) return false;
        _validated = true;
        var compiled = new List<ITaskItem>();
        foreach (var model in Models)
        {
            if (_canceled) break;
            _current = model;
            _errorsInRun = 0;
            if (ApiOnly) DeleteStaleSource(model);
            // Stamps get the time the compiler started: a model saved while it compiles is newer than its stamp, so
            // the next build compiles it again.
            var started = DateTime.UtcNow;
            if (base.Execute() && _errorsInRun == 0)
            {
                TouchStamps(model, started);
                compiled.Add(model);
            }
        }
        _current = null;
        CompiledModels = [.. compiled];
        return compiled.Count == Models.Length;
    }

    /// <inheritdoc/>
    public override void Cancel()
    {
        _canceled = true;
        base.Cancel();
    }

    /// <summary>Checks the compiler, the host and the metadata of every model, and reports every problem at once.</summary>
    protected override bool ValidateParameters()
    {
        if (_validated) return true;
        bool ok = true;
        if (!File.Exists(CompilerPath))
        {
            LogError(DiagnosticCodes.CompilerNotFound, null,
                $"The Squash compiler '{CompilerPath}' does not exist. If Squash_CompilerPath or SQUASH_COMPILER is set, point it at squash.dll; otherwise the Squash.Build package is damaged: delete it from the NuGet packages folder and restore again.");
            ok = false;
        }
        if (CompilerIsAssembly && !string.IsNullOrEmpty(DotNetHostPath) && !File.Exists(DotNetHostPath))
        {
            LogError(DiagnosticCodes.CompilerNotFound, null,
                $"The dotnet host '{DotNetHostPath}' that runs the Squash compiler does not exist. Set Squash_DotNetHostPath (or DOTNET_HOST_PATH) to the dotnet executable.");
            ok = false;
        }
        foreach (var model in Models)
        {
            foreach (var problem in ModelOptions.Check(model))
            {
                LogError(DiagnosticCodes.InvalidOption, model.ItemSpec, problem);
                ok = false;
            }
            foreach (var name in new[] { Metadata.OutputDirectory, Metadata.OutputName })
            {
                if (model.GetMetadata(name).Length > 0) continue;
                LogError(DiagnosticCodes.InvalidOption, model.ItemSpec, $"SquashModel metadata {name} is missing; the SquashPrepareModels task sets it.");
                ok = false;
            }
        }
        return ok;
    }

    /// <inheritdoc/>
    protected override string GenerateFullPathToTool() =>
        !CompilerIsAssembly ? CompilerPath
        : !string.IsNullOrEmpty(DotNetHostPath) ? DotNetHostPath!
        : ToolName; // ToolTask looks a bare name up on the PATH

    /// <inheritdoc/>
    protected override string GenerateCommandLineCommands()
    {
        if (!CompilerIsAssembly) return "";
        var builder = new CommandLineBuilder();
        builder.AppendFileNameIfNotNull(CompilerPath);
        return builder.ToString();
    }

    /// <summary>One argument per line (<c>squash compile</c> reads response files that way), so nothing needs quoting.</summary>
    protected override string GenerateResponseFileCommands() => string.Join("\n", Arguments(Current, ApiOnly)) + "\n";

    /// <summary>Response-file lines are exact values; ToolTask's rewriting of backslashes on Unix must not touch them.</summary>
    protected override string AdjustCommandsForOperatingSystem(string input) => input;

    /// <summary>Logs the command with the response file spelled out, quoted so it can be pasted into a shell.</summary>
    protected override void LogToolCommand(string message)
    {
        var parts = new List<string> { GenerateFullPathToTool() };
        if (CompilerIsAssembly) parts.Add(CompilerPath);
        parts.AddRange(Arguments(Current, ApiOnly));
        Log.LogCommandLine(MessageImportance.High, string.Join(" ", parts.Select(ShellQuote)));
    }

    /// <summary>Logs a line of the compiler's output; canonical error lines become errors (and are counted).</summary>
    protected override void LogEventsFromTextOutput(string singleLine, MessageImportance messageImportance)
    {
        if (Log.LogMessageFromText(singleLine, messageImportance)) _errorsInRun++;
    }

    /// <summary>A failure the compiler did not explain (a crash, a usage error) still gets a coded error.</summary>
    protected override bool HandleTaskExecutionErrors()
    {
        if (_errorsInRun == 0)
        {
            LogError(DiagnosticCodes.CompilerFailed, Current.ItemSpec,
                $"The Squash compiler failed (exit code {ExitCode}) without reporting an error for this model. The messages above may say why; to investigate, run the command shown above in a shell. If it crashed, please report it with the model.");
        }
        return false;
    }

    /// <summary>Int8 metadata and the compiler option each becomes.</summary>
    private static readonly (string Metadata, string Option)[] s_int8Options =
    [
        (Metadata.CalibrationMethod, "calibration-method"),
        (Metadata.BiasCorrection, "bias-correction"),
        (Metadata.CalibrationHoldOutEvery, "hold-out-every"),
        (Metadata.AccuracyTarget, "accuracy-target"),
        (Metadata.AccuracyTargetAction, "accuracy-target-action"),
        (Metadata.SensitivityProfile, "sensitivity-profile"),
        (Metadata.QuantizationExclusions, "int8-exclude"),
        (Metadata.Int8Fallback, "int8-fallback"),
    ];

    /// <summary>The compiler's arguments for one model.</summary>
    internal static List<string> Arguments(ITaskItem model, bool apiOnly)
    {
        string Get(string name) => model.GetMetadata(name).Trim();
        var args = new List<string> { "compile", Path.GetFullPath(model.ItemSpec) };
        args.Add("--output-dir=" + Get(Metadata.OutputDirectory));
        args.Add("--output-name=" + Get(Metadata.OutputName));
        args.Add("--class-name=" + Get(Metadata.ClassName));
        if (Get(Metadata.Namespace).Length > 0) args.Add("--namespace=" + Get(Metadata.Namespace));
        args.Add("--visibility=" + (ModelOptions.Canonical(Get(Metadata.Visibility), ModelOptions.Visibilities) ?? Get(Metadata.Visibility)));
        args.Add("--weights-storage=" + (ModelOptions.Canonical(Get(Metadata.WeightsStorage), ModelOptions.WeightsStorages) ?? Get(Metadata.WeightsStorage)));
        if (Get(Metadata.WeightsName).Length > 0) args.Add("--weights-name=" + Get(Metadata.WeightsName));
        args.Add("--precision=" + Get(Metadata.Precision).ToLowerInvariant());
        if (Get(Metadata.Device).Length > 0)
            args.Add("--device=" + (ModelOptions.Canonical(Get(Metadata.Device), ModelOptions.Devices) ?? Get(Metadata.Device)));
        foreach (var (name, value) in ModelOptions.Assignments(Get(Metadata.InputShapes))) args.Add($"--input-shape={name}={value}");
        foreach (var (name, value) in ModelOptions.Assignments(Get(Metadata.ConstantInputs))) args.Add($"--constant-input={name}={value}");
        if (Get(Metadata.Calibration).Length > 0)
        {
            args.Add("--calibration=" + Get(Metadata.Calibration));
            if (Get(Metadata.CalibrationCache).Length > 0) args.Add("--calibration-cache=" + Get(Metadata.CalibrationCache));
        }
        // The int8/auto options, passed as given: the compiler checks them (and refuses them with fp32 or int4).
        foreach (var (metadata, option) in s_int8Options)
            if (Get(metadata).Length > 0) args.Add($"--{option}={Get(metadata)}");
        // Nodes or weights that stay fp32 under Precision="int4" (';' between patterns); the compiler checks they exist.
        foreach (var pattern in Get(Metadata.Int4Exclude).Split(';'))
            if (pattern.Trim().Length > 0) args.Add("--int4-exclude=" + pattern.Trim());
        if (Get(Metadata.Int4Activations).Length > 0) args.Add("--int4-activations=" + Get(Metadata.Int4Activations));
        if (apiOnly) args.Add("--api-only");
        args.Add("--msbuild");
        return args;
    }

    private ITaskItem Current => _current ?? throw new InvalidOperationException("No model is being compiled.");

    /// <summary>
    /// <c>--api-only</c> keeps an existing class (a full build's is better than a stub), but a design-time build only
    /// runs for a model whose inputs changed since that class was written: it is stale and must go.
    /// </summary>
    private static void DeleteStaleSource(ITaskItem model)
    {
        // The stamp first: a build killed in between leaves no stamp (a full compilation next), not a stamp without a class.
        if (model.GetMetadata(Metadata.StampFile) is { Length: > 0 } stamp) File.Delete(stamp);
        string dir = model.GetMetadata(Metadata.OutputDirectory);
        File.Delete(Path.Combine(dir, model.GetMetadata(Metadata.OutputName) + ".g.cs"));
    }

    private void TouchStamps(ITaskItem model, DateTime time)
    {
        if (!ApiOnly) Touch(model.GetMetadata(Metadata.StampFile), time);
        Touch(model.GetMetadata(Metadata.ApiStampFile), time);

        static void Touch(string path, DateTime time)
        {
            if (path.Length == 0) return;
            // An existing stamp is only re-dated, in one step: a build killed here leaves the old date or the new one,
            // never the time of the kill (later than the compiler's start, it could hide a model saved meanwhile).
            if (!File.Exists(path)) File.WriteAllBytes(path, []);
            File.SetLastWriteTimeUtc(path, time);
        }
    }

    private void LogError(string code, string? file, string message)
    {
        _errorsInRun++;
        Log.LogError(subcategory: null, errorCode: code, helpKeyword: null, file: file,
            lineNumber: 0, columnNumber: 0, endLineNumber: 0, endColumnNumber: 0, message: message);
    }

    private static string ShellQuote(string arg)
    {
        if (arg.Length > 0 && arg.All(c => char.IsLetterOrDigit(c) || "-_./:=,@+%".IndexOf(c) >= 0)) return arg;
        return Path.DirectorySeparatorChar == '\\'
            ? "\"" + arg.Replace("\"", "\\\"") + "\""
            : "'" + arg.Replace("'", "'\\''") + "'";
    }
}
