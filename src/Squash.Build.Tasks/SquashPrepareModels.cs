using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

namespace Squash.Build.Tasks;

/// <summary>
/// The cheap, in-process first step of every build: fills in the default metadata of each <c>SquashModel</c>, checks all
/// of it (every problem of every model is reported before any compiler runs), names each model's outputs, writes the
/// per-model options file the incremental check uses, and deletes the outputs of models no longer in the project.
/// </summary>
/// <remarks>
/// Per model <c>NAME</c> (see <see cref="ModelOptions.OutputName"/>) the intermediate folder holds <c>NAME.g.cs</c>,
/// <c>NAME.sqw</c>, <c>NAME.options</c> (the options the model is compiled with; it changes only when they change),
/// <c>NAME.stamp</c> (touched after a full compilation) and <c>NAME.api.stamp</c> (touched after any compilation,
/// design-time ones included). <c>squash.manifest</c> lists them all, so files of removed models can be pruned and
/// <c>dotnet clean</c> knows what to delete.
/// </remarks>
public class SquashPrepareModels : Microsoft.Build.Utilities.Task
{
    /// <summary>The name of the manifest in the intermediate folder.</summary>
    public const string ManifestName = "squash.manifest";

    private static readonly string[] s_suffixes = [".g.cs", ".sqw", ".options", ".stamp", ".api.stamp"];

    /// <summary>The project's <c>SquashModel</c> items.</summary>
    public ITaskItem[] Models { get; set; } = [];

    /// <summary>Folder for the outputs (<c>$(Squash_IntermediateOutputPath)</c>).</summary>
    [Required]
    public string IntermediateDirectory { get; set; } = "";

    /// <summary>The compiler; part of the options file so that a different compiler recompiles every model.</summary>
    [Required]
    public string CompilerPath { get; set; } = "";

    /// <summary>The project's <c>$(RootNamespace)</c>, the default <c>Namespace</c>.</summary>
    public string? RootNamespace { get; set; }

    /// <summary>The models with every metadata set: the user's (defaults filled in, values normalized) and
    /// <c>OutputDirectory</c>, <c>OutputName</c>, <c>WeightsName</c>, <c>GeneratedSource</c>, <c>Weights</c>,
    /// <c>OptionsFile</c>, <c>StampFile</c>, <c>ApiStampFile</c>.</summary>
    [Output]
    public ITaskItem[] PreparedModels { get; private set; } = [];

    /// <summary>Every file the models own, whether or not this build writes it, for <c>@(FileWrites)</c>.</summary>
    [Output]
    public ITaskItem[] FileWrites { get; private set; } = [];

    /// <inheritdoc/>
    public override bool Execute()
    {
        string dir = Path.GetFullPath(IntermediateDirectory);
        if (!dir.EndsWith(Path.DirectorySeparatorChar.ToString(), StringComparison.Ordinal)) dir += Path.DirectorySeparatorChar;
        string manifest = Path.Combine(dir, ManifestName);

        var prepared = new List<ITaskItem>();
        var byPath = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var byClass = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var model in Models)
        {
            string path = model.GetMetadata("FullPath");
            if (!byPath.Add(path))
            {
                Error(DiagnosticCodes.InvalidOption, path, $"The model is included twice as a SquashModel item; remove one of the items.");
                continue;
            }
            var item = Prepare(model, path, dir);
            foreach (var problem in ModelOptions.Check(item)) Error(DiagnosticCodes.InvalidOption, path, problem);
            if (!File.Exists(path))
                Error(DiagnosticCodes.ModelNotFound, path, $"Model file '{path}' does not exist. Check the Include of the SquashModel item (relative paths start at the project folder).");
            string fullClass = Join(item.GetMetadata(Metadata.Namespace), item.GetMetadata(Metadata.ClassName));
            if (byClass.TryGetValue(fullClass, out var other))
                Error(DiagnosticCodes.InvalidOption, path, $"The class {fullClass} is also generated for '{other}'; give one of the two SquashModel items another ClassName or Namespace.");
            else
                byClass[fullClass] = path;
            prepared.Add(item);
        }
        // Nothing is written or deleted unless every model is fine: a typo must not prune anyone's outputs.
        if (Log.HasLoggedErrors) return false;

        var owned = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var item in prepared)
        {
            string name = item.GetMetadata(Metadata.OutputName);
            foreach (var suffix in s_suffixes) owned.Add(name + suffix);
        }
        if (prepared.Count > 0) Directory.CreateDirectory(dir);
        foreach (var item in prepared)
        {
            WriteIfChanged(item.GetMetadata(Metadata.OptionsFile), OptionsText(item));
            InvalidateStamps(item);
        }
        Prune(dir, manifest, owned);
        if (owned.Count > 0) WriteIfChanged(manifest, string.Join("\n", owned) + "\n");
        else if (File.Exists(manifest)) File.Delete(manifest);

        PreparedModels = [.. prepared];
        FileWrites = [.. owned.Select(n => new TaskItem(Path.Combine(dir, n))), .. owned.Count > 0 ? [new TaskItem(manifest)] : Array.Empty<ITaskItem>()];
        return true;
    }

    private TaskItem Prepare(ITaskItem model, string path, string dir)
    {
        var item = new TaskItem(path);
        model.CopyMetadataTo(item);
        if (item.GetMetadata(Metadata.ClassName).Trim().Length == 0)
            item.SetMetadata(Metadata.ClassName, ModelOptions.DefaultClassName(path));
        if (item.GetMetadata(Metadata.Namespace).Trim().Length == 0)
            item.SetMetadata(Metadata.Namespace, ModelOptions.DefaultNamespace(RootNamespace));
        foreach (var key in Metadata.User) item.SetMetadata(key, item.GetMetadata(key).Trim());
        // Item definitions give these defaults in a project; a task call without them gets the same ones.
        if (item.GetMetadata(Metadata.Precision).Length == 0) item.SetMetadata(Metadata.Precision, "fp32");
        if (item.GetMetadata(Metadata.WeightsStorage).Length == 0) item.SetMetadata(Metadata.WeightsStorage, "EmbeddedResource");
        if (item.GetMetadata(Metadata.Visibility).Length == 0) item.SetMetadata(Metadata.Visibility, "public");
        if (item.GetMetadata(Metadata.Device).Length == 0) item.SetMetadata(Metadata.Device, "Cpu");
        Normalize(item, Metadata.Device, ModelOptions.Devices);
        Normalize(item, Metadata.WeightsStorage, ModelOptions.WeightsStorages);
        Normalize(item, Metadata.Visibility, ModelOptions.Visibilities);
        item.SetMetadata(Metadata.Precision, item.GetMetadata(Metadata.Precision).ToLowerInvariant());

        string name = ModelOptions.OutputName(path);
        string ns = item.GetMetadata(Metadata.Namespace);
        item.SetMetadata(Metadata.OutputDirectory, dir);
        item.SetMetadata(Metadata.OutputName, name);
        item.SetMetadata(Metadata.WeightsName, ModelOptions.WeightsName(ns, item.GetMetadata(Metadata.ClassName)));
        item.SetMetadata(Metadata.GeneratedSource, dir + name + ".g.cs");
        item.SetMetadata(Metadata.Weights, dir + name + ".sqw");
        item.SetMetadata(Metadata.OptionsFile, dir + name + ".options");
        item.SetMetadata(Metadata.StampFile, dir + name + ".stamp");
        item.SetMetadata(Metadata.ApiStampFile, dir + name + ".api.stamp");
        return item;
    }

    private static void Normalize(TaskItem item, string name, string[] allowed)
    {
        if (ModelOptions.Canonical(item.GetMetadata(name), allowed) is { } canonical) item.SetMetadata(name, canonical);
    }

    private string OptionsText(ITaskItem item)
    {
        var sb = new StringBuilder();
        sb.Append("# The options Squash.Build compiles this model with; the model is recompiled when they change.\n");
        sb.Append("Model=").Append(item.ItemSpec).Append('\n');
        sb.Append("Compiler=").Append(Path.GetFullPath(CompilerPath)).Append('\n');
        foreach (var name in Metadata.User) sb.Append(name).Append('=').Append(item.GetMetadata(name)).Append('\n');
        sb.Append(Metadata.WeightsName).Append('=').Append(item.GetMetadata(Metadata.WeightsName)).Append('\n');
        return sb.ToString();
    }

    /// <summary>An output deleted by hand must be rebuilt even though the stamps say the model is up to date.</summary>
    private static void InvalidateStamps(ITaskItem item)
    {
        if (!File.Exists(item.GetMetadata(Metadata.GeneratedSource)))
        {
            File.Delete(item.GetMetadata(Metadata.StampFile));
            File.Delete(item.GetMetadata(Metadata.ApiStampFile));
        }
        else if (!File.Exists(item.GetMetadata(Metadata.Weights)))
        {
            File.Delete(item.GetMetadata(Metadata.StampFile));
        }
    }

    /// <summary>Deletes the files the previous build's manifest lists that no current model owns.</summary>
    private void Prune(string dir, string manifest, SortedSet<string> owned)
    {
        if (!File.Exists(manifest)) return;
        foreach (var line in File.ReadAllLines(manifest))
        {
            string name = line.Trim();
            // Only plain file names: a damaged manifest must not point the build at files elsewhere.
            if (name.Length == 0 || owned.Contains(name) || name.IndexOfAny(['/', '\\', ':']) >= 0 || name.StartsWith(".", StringComparison.Ordinal))
                continue;
            string path = Path.Combine(dir, name);
            if (!File.Exists(path)) continue;
            File.Delete(path);
            Log.LogMessage(MessageImportance.Low, $"Deleted '{path}': its model is no longer a SquashModel item.");
        }
    }

    private static void WriteIfChanged(string path, string text) => BuildFile.WriteIfChanged(path, new UTF8Encoding(false).GetBytes(text));

    private static string Join(string ns, string className) => ns.Length == 0 ? className : ns + "." + className;

    private void Error(string code, string file, string message) =>
        Log.LogError(subcategory: null, errorCode: code, helpKeyword: null, file: file,
            lineNumber: 0, columnNumber: 0, endLineNumber: 0, endColumnNumber: 0, message: message);
}
