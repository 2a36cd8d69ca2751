using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Quantization;

/// <summary>
/// The calibration samples in a folder, checked against the model's inputs. Two layouts, never mixed:
/// <list type="bullet">
/// <item>one <c>.npy</c> (or <c>.npy.gz</c>) file per sample, for models with one input;</item>
/// <item>one sub-folder per sample holding <c>&lt;input name&gt;.npy</c> (or <c>.npy.gz</c>) for each input
/// (<see cref="FileStem"/> gives the file name of input names that are not valid file names).</item>
/// </list>
/// Other files (labels, READMEs) and names starting with '.' are ignored. Samples are in ordinal order of their names;
/// their tensors are read one sample at a time (<see cref="CalibrationSample.Load"/>), so memory does not grow with
/// the number of samples. Opening lists and checks the layout; type, shape and values are checked as each sample loads.
/// </summary>
public sealed class CalibrationDataSet
{
    private readonly CalibrationSample[] _samples;

    private CalibrationDataSet(string folder, CalibrationSplit split, CalibrationSample[] samples)
    {
        Folder = folder;
        Split = split;
        _samples = samples;
    }

    /// <summary>The folder the samples are in.</summary>
    public string Folder { get; }

    /// <summary>How samples are divided between calibration and held out.</summary>
    public CalibrationSplit Split { get; }

    /// <summary>Every sample, in ordinal order of their names.</summary>
    public IReadOnlyList<CalibrationSample> Samples => _samples;

    /// <summary>The samples that calibrate (not held out), in order.</summary>
    public IEnumerable<CalibrationSample> CalibrationSamples => _samples.Where(s => !s.IsHeldOut);

    /// <summary>The samples held out to check the quantized model's accuracy, in order.</summary>
    public IEnumerable<CalibrationSample> HeldOutSamples => _samples.Where(s => s.IsHeldOut);

    /// <summary>Lists the samples in <paramref name="folder"/> for a model with inputs <paramref name="modelInputs"/>.</summary>
    /// <param name="folder">The calibration folder.</param>
    /// <param name="modelInputs">The model's runtime inputs (<c>Graph.Inputs</c>); a dimension below 0 accepts any size.
    /// Their names, types and shapes are copied: pinning shapes later does not change what this data set accepts.</param>
    /// <param name="split">Which samples are held out; none by default.</param>
    /// <exception cref="SquashException">The folder is missing, empty or unreadable, mixes layouts, uses the one-file
    /// layout for a model with several inputs, or a sample folder lacks an input or holds an unknown one (SQ1016).</exception>
    public static CalibrationDataSet Open(string folder, IReadOnlyList<Value> modelInputs, CalibrationSplit split = default)
    {
        split.Validate();
        var inputs = modelInputs.Select(v => new CalibrationInput(v.Name, v.Type, (int[]?)v.Shape?.Clone())).ToArray();
        if (inputs.Length == 0)
            throw Error("The model has no runtime inputs, so there is nothing to calibrate with.");
        var stems = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var input in inputs)
            if (!stems.TryAdd(FileStem(input.Name), input.Name))
                throw Error($"Model inputs '{stems[FileStem(input.Name)]}' and '{input.Name}' both map to calibration file "
                    + $"'{FileStem(input.Name)}.npy'; rename one of them in the model.");
        if (!Directory.Exists(folder))
            throw Error($"Calibration folder '{folder}' does not exist; create it with one .npy file per sample.");

        var (files, folders) = List(folder);
        files.RemoveAll(f => !IsNpy(f));
        string Layouts() => inputs.Length == 1
            ? $"one .npy (or .npy.gz) file per sample, or one sub-folder per sample holding {FileStem(inputs[0].Name)}.npy"
            : $"one sub-folder per sample holding {string.Join(", ", inputs.Select(i => FileStem(i.Name) + ".npy"))}";
        if (files.Count == 0 && folders.Count == 0)
            throw Error($"Calibration folder '{folder}' holds no samples; put {Layouts()} there.");
        if (files.Count > 0 && folders.Count > 0)
            throw Error($"Calibration folder '{folder}' mixes sample files ('{Path.GetFileName(files[0])}') and sample "
                + $"sub-folders ('{Path.GetFileName(folders[0])}'); use one layout: {Layouts()}.");

        var samples = new CalibrationSample[files.Count + folders.Count];
        if (files.Count > 0)
        {
            if (inputs.Length != 1)
                throw Error($"Calibration file '{files[0]}' is a whole sample, but the model has {inputs.Length} inputs; "
                    + $"put {Layouts()}.");
            var names = new Dictionary<string, string>(StringComparer.Ordinal);
            for (int i = 0; i < files.Count; i++)
            {
                string name = Stem(files[i]);
                if (!names.TryAdd(name, files[i]))
                    throw Error($"Calibration files '{names[name]}' and '{files[i]}' are the same sample; keep one.");
                samples[i] = new CalibrationSample(i, name, files[i], [files[i]], inputs, split.IsHeldOut(i));
            }
        }
        else
        {
            for (int i = 0; i < folders.Count; i++)
                samples[i] = new CalibrationSample(i, Path.GetFileName(folders[i]), folders[i],
                    SampleFiles(folders[i], inputs), inputs, split.IsHeldOut(i));
        }
        return new CalibrationDataSet(folder, split, samples);
    }

    /// <summary>The file name (without extension) that holds input <paramref name="inputName"/> in a sample folder:
    /// the name with each character that some file system forbids (<c>&lt;&gt;:"/\|?*</c>, control characters)
    /// replaced by '_'.</summary>
    public static string FileStem(string inputName)
    {
        var chars = inputName.ToCharArray();
        for (int i = 0; i < chars.Length; i++)
            if (chars[i] < ' ' || "<>:\"/\\|?*".Contains(chars[i])) chars[i] = '_';
        return new string(chars);
    }

    private static string[] SampleFiles(string sampleFolder, CalibrationInput[] inputs)
    {
        var (files, _) = List(sampleFolder);
        var byStem = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var file in files.Where(IsNpy))
        {
            string stem = Stem(file);
            if (!byStem.TryAdd(stem, file))
                throw Error($"Calibration files '{byStem[stem]}' and '{file}' hold the same input; keep one.");
        }
        var result = new string[inputs.Length];
        for (int i = 0; i < inputs.Length; i++)
        {
            string stem = FileStem(inputs[i].Name);
            if (!byStem.Remove(stem, out var file))
                throw Error($"Calibration file '{Path.Combine(sampleFolder, stem + ".npy")}' is missing: every sample folder "
                    + $"needs one file per model input ({string.Join(", ", inputs.Select(x => FileStem(x.Name) + ".npy"))}).");
            result[i] = file;
        }
        if (byStem.Count > 0)
        {
            string extra = byStem.Values.Order(StringComparer.Ordinal).First();
            throw Error($"Calibration file '{extra}' matches no model input; the inputs are "
                + $"{string.Join(", ", inputs.Select(x => x.Name))}. Rename or remove it.");
        }
        return result;
    }

    private static (List<string> Files, List<string> Folders) List(string folder)
    {
        try
        {
            var files = Directory.EnumerateFiles(folder).Where(f => !Path.GetFileName(f).StartsWith('.')).ToList();
            var folders = Directory.EnumerateDirectories(folder).Where(f => !Path.GetFileName(f).StartsWith('.')).ToList();
            files.Sort(ByName);
            folders.Sort(ByName);
            return (files, folders);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SquashException(ErrorCodes.CalibrationData,
                $"Calibration folder '{folder}' cannot be listed ({e.Message.TrimEnd('.')}); check that it is readable.", inner: e);
        }
    }

    private static int ByName(string a, string b) => string.CompareOrdinal(Path.GetFileName(a), Path.GetFileName(b));

    private static bool IsNpy(string path) =>
        path.EndsWith(".npy", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".npy.gz", StringComparison.OrdinalIgnoreCase);

    private static string Stem(string path)
    {
        string name = Path.GetFileName(path);
        return name[..^(name.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? 7 : 4)];
    }

    private static SquashException Error(string message) => new(ErrorCodes.CalibrationData, message);
}

/// <summary>What a calibration sample must hold for one model input (a copy of the input's name, type and shape).</summary>
internal sealed record CalibrationInput(string Name, DataType Type, int[]? Shape);
