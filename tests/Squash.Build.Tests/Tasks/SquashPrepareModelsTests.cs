using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using Squash.Build.Tasks;
using Squash.Build.Tests.Support;

namespace Squash.Build.Tests.Tasks;

/// <summary>Defaults, checks, output names, options files and pruning, without MSBuild.</summary>
public sealed class SquashPrepareModelsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("squash-prepare-").FullName;
    private readonly MockBuildEngine _engine = new();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Obj => Path.Combine(_dir, "obj", "squash") + Path.DirectorySeparatorChar;

    private TaskItem Model(string file, params (string Name, string Value)[] metadata)
    {
        string path = Path.Combine(_dir, file);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        if (!File.Exists(path)) File.WriteAllText(path, "not read by this task");
        var item = new TaskItem(path);
        foreach (var (n, v) in metadata) item.SetMetadata(n, v);
        return item;
    }

    private SquashPrepareModels Run(params ITaskItem[] models)
    {
        var task = new SquashPrepareModels
        {
            BuildEngine = _engine,
            Models = models,
            IntermediateDirectory = Obj,
            CompilerPath = Path.Combine(_dir, "squash.dll"),
            RootNamespace = "my-app",
        };
        task.Execute();
        return task;
    }

    [Fact]
    public void DefaultsAreFilledInAndOutputsNamed()
    {
        var task = Run(Model("models/ch_PP-OCRv4_det_infer.onnx"));

        Assert.Empty(_engine.Errors);
        var m = Assert.Single(task.PreparedModels);
        Assert.Equal("ChPPOCRv4DetInfer", m.GetMetadata("ClassName"));
        Assert.Equal("my_app", m.GetMetadata("Namespace"));
        Assert.Equal("my_app.ChPPOCRv4DetInfer.sqw", m.GetMetadata("WeightsName"));
        Assert.Equal("fp32", m.GetMetadata("Precision"));
        Assert.Equal("EmbeddedResource", m.GetMetadata("WeightsStorage"));
        Assert.Equal("public", m.GetMetadata("Visibility"));
        string name = m.GetMetadata("OutputName");
        Assert.Matches("^ch_PP-OCRv4_det_infer_[0-9a-f]{16}$", name);
        Assert.Equal(Obj + name + ".g.cs", m.GetMetadata("GeneratedSource"));
        Assert.Equal(Obj + name + ".sqw", m.GetMetadata("Weights"));
        Assert.True(File.Exists(m.GetMetadata("OptionsFile")));
        Assert.Contains(Obj + SquashPrepareModels.ManifestName, task.FileWrites.Select(f => f.ItemSpec));
        Assert.Equal(6, task.FileWrites.Length);
    }

    [Fact]
    public void UserMetadataIsKeptAndNormalized()
    {
        var task = Run(Model("m.onnx", ("ClassName", " Detector "), ("Namespace", "Contoso.Models"),
            ("WeightsStorage", "file"), ("Visibility", "INTERNAL"), ("Precision", "FP32")));

        var m = Assert.Single(task.PreparedModels);
        Assert.Equal("Detector", m.GetMetadata("ClassName"));
        Assert.Equal("Contoso.Models.Detector.sqw", m.GetMetadata("WeightsName"));
        Assert.Equal("File", m.GetMetadata("WeightsStorage"));
        Assert.Equal("internal", m.GetMetadata("Visibility"));
        Assert.Equal("fp32", m.GetMetadata("Precision"));
    }

    [Fact]
    public void TheSameFileNameInTwoFoldersGetsItsOwnOutputs()
    {
        var task = Run(Model("a/model.onnx", ("ClassName", "A")), Model("b/model.onnx", ("ClassName", "B")));

        Assert.Empty(_engine.Errors);
        Assert.NotEqual(task.PreparedModels[0].GetMetadata("OutputName"), task.PreparedModels[1].GetMetadata("OutputName"));
    }

    [Fact]
    public void TheOptionsFileChangesOnlyWhenTheOptionsDo()
    {
        var first = Run(Model("m.onnx", ("InputShapes", "x=1,3,224,224")));
        string options = first.PreparedModels[0].GetMetadata("OptionsFile");
        var old = DateTime.UtcNow.AddHours(-1);
        File.SetLastWriteTimeUtc(options, old);

        Run(Model("m.onnx", ("InputShapes", "x=1,3,224,224")));
        Assert.Equal(old, File.GetLastWriteTimeUtc(options));

        Run(Model("m.onnx", ("InputShapes", "x=1,3,320,320")));
        Assert.NotEqual(old, File.GetLastWriteTimeUtc(options));
        Assert.Contains("InputShapes=x=1,3,320,320", File.ReadAllText(options), StringComparison.Ordinal);
    }

    [Fact]
    public void EveryProblemIsReportedAndNothingIsPruned()
    {
        var kept = Run(Model("kept.onnx"));
        string keptSource = kept.PreparedModels[0].GetMetadata("GeneratedSource");
        File.WriteAllText(keptSource, "// generated");

        var task = Run(
            Model("a/same.onnx", ("ClassName", "Same")),
            Model("b/same.onnx", ("ClassName", "Same")),
            Model("bad.onnx", ("ClassName", "class"), ("ConstantInputs", "sr=fast")),
            new TaskItem(Path.Combine(_dir, "missing.onnx")));

        Assert.Equal(["SQ1001", "SQ1012", "SQ1012", "SQ1012"], _engine.Errors.Select(e => e.Code).Order());
        Assert.Contains(_engine.Errors, e => e.Message!.Contains("The class my_app.Same is also generated", StringComparison.Ordinal));
        Assert.Contains(_engine.Errors, e => e.File == Path.Combine(_dir, "missing.onnx"));
        Assert.True(File.Exists(keptSource), "a failed preparation pruned outputs");
        Assert.Empty(task.PreparedModels);
    }

    [Fact]
    public void AModelIncludedTwiceIsAnError()
    {
        Run(Model("m.onnx"), Model("m.onnx"));

        Assert.Equal("SQ1012", Assert.Single(_engine.Errors).Code);
    }

    [Fact]
    public void OutputsOfRemovedModelsArePruned()
    {
        var both = Run(Model("a.onnx"), Model("b.onnx"));
        foreach (var m in both.PreparedModels)
            foreach (var key in new[] { "GeneratedSource", "Weights", "StampFile", "ApiStampFile" })
                File.WriteAllText(m.GetMetadata(key), "");
        File.WriteAllText(Obj + "unrelated.txt", "not ours");

        Run(Model("a.onnx"));
        foreach (var key in new[] { "GeneratedSource", "Weights", "OptionsFile", "StampFile", "ApiStampFile" })
            Assert.True(File.Exists(both.PreparedModels[0].GetMetadata(key)), $"{key} of the remaining model was deleted");
        foreach (var key in new[] { "GeneratedSource", "Weights", "OptionsFile", "StampFile", "ApiStampFile" })
            Assert.False(File.Exists(both.PreparedModels[1].GetMetadata(key)), $"{key} of the removed model survived");

        // No models left: everything of ours goes, the manifest too; other files stay.
        var none = Run();
        Assert.Empty(none.FileWrites);
        Assert.Equal([Obj + "unrelated.txt"], Directory.GetFiles(Obj));
    }

    [Fact]
    public void DeletedOutputsInvalidateTheStamps()
    {
        var m = Run(Model("m.onnx")).PreparedModels[0];
        foreach (var key in new[] { "GeneratedSource", "StampFile", "ApiStampFile" }) File.WriteAllText(m.GetMetadata(key), "");

        // The weights were deleted (or never written, by a design-time build): only a full compilation restores them.
        Run(Model("m.onnx"));
        Assert.False(File.Exists(m.GetMetadata("StampFile")));
        Assert.True(File.Exists(m.GetMetadata("ApiStampFile")));

        File.Delete(m.GetMetadata("GeneratedSource"));
        Run(Model("m.onnx"));
        Assert.False(File.Exists(m.GetMetadata("ApiStampFile")));
    }

    [Fact]
    public async System.Threading.Tasks.Task BuildsOfOneProjectAtOnceNeverSeeAHalfWrittenFile()
    {
        // Two versions of the project (another class name: an options file of another length), as when an IDE's build
        // and a command line's run at once after an edit. The whole texts each writes, alone:
        ITaskItem Version(int v) => Model("m.onnx", ("ClassName", v == 0 ? "A" : "ALongerClassName"));
        string options = Run(Version(0)).PreparedModels[0].GetMetadata("OptionsFile"), manifest = Obj + SquashPrepareModels.ManifestName;
        string optionsA = File.ReadAllText(options);
        Run(Version(1));
        string[] wholeOptions = [optionsA, File.ReadAllText(options)];
        string wholeManifest = File.ReadAllText(manifest);
        Assert.NotEqual(wholeOptions[0].Length, wholeOptions[1].Length);

        // Four builds writing, 200 times each, while this thread reads what they write.
        var writers = Enumerable.Range(0, 4).Select(t => System.Threading.Tasks.Task.Run(() =>
        {
            var engine = new MockBuildEngine();
            for (int i = 0; i < 200; i++)
            {
                var task = new SquashPrepareModels
                {
                    BuildEngine = engine, Models = [Version((t + i) % 2)], IntermediateDirectory = Obj,
                    CompilerPath = Path.Combine(_dir, "squash.dll"), RootNamespace = "my-app",
                };
                Assert.True(task.Execute(), engine.ErrorText);
            }
        })).ToArray();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        int reads = 0;
        while (!writers.All(w => w.IsCompleted))
        {
            seen.Add("options:" + File.ReadAllText(options));
            seen.Add("manifest:" + File.ReadAllText(manifest));
            reads++;
        }
        await System.Threading.Tasks.Task.WhenAll(writers);

        Assert.True(reads > 10, $"only {reads} reads while the builds ran");
        Assert.Subset(new HashSet<string> { "options:" + wholeOptions[0], "options:" + wholeOptions[1], "manifest:" + wholeManifest }, seen);
        Assert.Empty(Directory.GetFiles(Obj, "*.tmp"));
    }
}
