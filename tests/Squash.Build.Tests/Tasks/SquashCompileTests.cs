using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using Squash.Build.Tasks;
using Squash.Build.Tests.Support;

namespace Squash.Build.Tests.Tasks;

/// <summary>
/// The <c>SquashCompile</c> task without MSBuild: a mock engine records what it logs, and a subclass stops right before
/// the compiler would start (Grpc.Tools' ProtoCompileBasicTest), capturing the command and response file and playing
/// back a scripted compiler run. One test runs the real compiler.
/// </summary>
public sealed class SquashCompileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("squash-task-").FullName;
    private readonly MockBuildEngine _engine = new();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Records each run instead of starting a process; <see cref="Script"/> gives exit code and output lines.</summary>
    private sealed class CapturingCompile : SquashCompile
    {
        public List<(string Tool, string CommandLine, string ResponseFile)> Runs { get; } = [];

        public Func<int, (int ExitCode, string[] Output)> Script { get; set; } = _ => (0, []);

        public Action? DuringRun { get; set; }

        public Encoding Encoding => ResponseFileEncoding;

        protected override int ExecuteTool(string pathToTool, string responseFileCommands, string commandLineCommands)
        {
            Runs.Add((pathToTool, commandLineCommands, responseFileCommands));
            DuringRun?.Invoke();
            var (exitCode, output) = Script(Runs.Count - 1);
            foreach (var line in output) LogEventsFromTextOutput(line, MessageImportance.Normal);
            return exitCode;
        }
    }

    private string Touch(string name)
    {
        string path = Path.Combine(_dir, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, "");
        return path;
    }

    /// <summary>A model item with the metadata SquashPrepareModels would give it.</summary>
    private TaskItem Model(string file, params (string Name, string Value)[] metadata)
    {
        var item = new TaskItem(Touch(file));
        string name = ModelOptions.OutputName(item.ItemSpec);
        item.SetMetadata("ClassName", "Detector");
        item.SetMetadata("Namespace", "Contoso.Models");
        item.SetMetadata("Visibility", "public");
        item.SetMetadata("WeightsStorage", "EmbeddedResource");
        item.SetMetadata("Precision", "fp32");
        item.SetMetadata("OutputDirectory", Path.Combine(_dir, "out") + Path.DirectorySeparatorChar);
        item.SetMetadata("OutputName", name);
        item.SetMetadata("WeightsName", "Contoso.Models.Detector.sqw");
        item.SetMetadata("StampFile", Path.Combine(_dir, "out", name + ".stamp"));
        item.SetMetadata("ApiStampFile", Path.Combine(_dir, "out", name + ".api.stamp"));
        foreach (var (n, v) in metadata) item.SetMetadata(n, v);
        return item;
    }

    private CapturingCompile Task(params ITaskItem[] models)
    {
        Directory.CreateDirectory(Path.Combine(_dir, "out"));
        return new CapturingCompile
        {
            BuildEngine = _engine,
            Models = models,
            CompilerPath = Touch("tools/squash.dll"),
            DotNetHostPath = Touch("host/dotnet"),
        };
    }

    [Fact]
    public void ResponseFileHasOneArgumentPerLine()
    {
        var model = Model("models/det.onnx", ("Visibility", "Internal"), ("WeightsStorage", "file"),
            ("InputShapes", "x=1,3,640,640; y=1,2"), ("ConstantInputs", "sr=16000"));
        var task = Task(model);

        Assert.True(task.Execute(), _engine.ErrorText);

        var (tool, commandLine, rsp) = Assert.Single(task.Runs);
        Assert.Equal(task.DotNetHostPath, tool);
        Assert.Equal(task.CompilerPath, commandLine.Trim().Trim('"'));
        string[] expected =
        [
            "compile",
            model.ItemSpec,
            "--output-dir=" + model.GetMetadata("OutputDirectory"),
            "--output-name=" + model.GetMetadata("OutputName"),
            "--class-name=Detector",
            "--namespace=Contoso.Models",
            "--visibility=internal",
            "--weights-storage=File",
            "--weights-name=Contoso.Models.Detector.sqw",
            "--precision=fp32",
            "--input-shape=x=1,3,640,640",
            "--input-shape=y=1,2",
            "--constant-input=sr=16000",
            "--msbuild",
        ];
        Assert.Equal(string.Join("\n", expected) + "\n", rsp);
        Assert.Equal([model], task.CompiledModels);
    }

    [Fact]
    public void CalibrationGoesToTheCompilerWithItsCache()
    {
        string calib = Path.Combine(_dir, "calib");
        var model = Model("models/det.onnx", ("Precision", "int8"), ("Calibration", calib),
            ("CalibrationCache", Path.Combine(_dir, "out", "det.calibration.json")));
        var task = Task(model);

        Assert.True(task.Execute(), _engine.ErrorText);

        var lines = Assert.Single(task.Runs).ResponseFile.Split('\n');
        Assert.Contains("--precision=int8", lines);
        Assert.Contains("--calibration=" + calib, lines);
        Assert.Contains("--calibration-cache=" + Path.Combine(_dir, "out", "det.calibration.json"), lines);
    }

    [Fact]
    public void Int8FallbackAndPerEntryPrecisionsGoToTheCompilerAsGiven()
    {
        var model = Model("models/rec.onnx", ("Precision", "auto"), ("Calibration", Path.Combine(_dir, "calib")),
            ("Int8Fallback", "fp16"), ("QuantizationExclusions", "p2o.Conv.0=fp32;op:MatMul"), ("BiasCorrection", "off"));
        var task = Task(model);

        Assert.True(task.Execute(), _engine.ErrorText);

        var lines = Assert.Single(task.Runs).ResponseFile.Split('\n');
        Assert.Contains("--int8-fallback=fp16", lines);
        Assert.Contains("--int8-exclude=p2o.Conv.0=fp32;op:MatMul", lines);
        Assert.Contains("--bias-correction=off", lines);
    }

    [Fact]
    public void Int4ExclusionsBecomeOneArgumentEach()
    {
        var model = Model("models/llm.onnx", ("Precision", "INT4"), ("Int4Exclude", " layers.0.* ;; classifier_rows "), ("Int4Activations", " int8 "));
        var task = Task(model);

        Assert.True(task.Execute(), _engine.ErrorText);

        var lines = Assert.Single(task.Runs).ResponseFile.Split('\n');
        Assert.Contains("--precision=int4", lines);
        Assert.Equal(["--int4-exclude=layers.0.*", "--int4-exclude=classifier_rows", "--int4-activations=int8"],
            lines.Where(l => l.StartsWith("--int4-", StringComparison.Ordinal)));
    }

    [Fact]
    public void ResponseFileIsUtf8WithoutByteOrderMark()
    {
        var task = Task(Model("m.onnx"));
        Assert.Equal(Encoding.UTF8.CodePage, task.Encoding.CodePage);
        Assert.Empty(task.Encoding.GetPreamble());
    }

    [Fact]
    public void AnExecutableCompilerRunsDirectly()
    {
        var task = Task(Model("m.onnx"));
        task.CompilerPath = Touch("fake-squash");

        Assert.True(task.Execute(), _engine.ErrorText);

        var (tool, commandLine, rsp) = Assert.Single(task.Runs);
        Assert.Equal(task.CompilerPath, tool);
        Assert.Equal("", commandLine.Trim());
        Assert.StartsWith("compile\n", rsp, StringComparison.Ordinal);
    }

    [Fact]
    public void TheLoggedCommandCanBePastedIntoAShell()
    {
        var task = Task(Model("folder with space/m.onnx", ("InputShapes", "x=1,2")));

        Assert.True(task.Execute(), _engine.ErrorText);

        string logged = Assert.Single(_engine.CommandLines);
        string model = Path.Combine(_dir, "folder with space", "m.onnx");
        string quoted = OperatingSystem.IsWindows() ? $"\"{model}\"" : $"'{model}'";
        Assert.StartsWith($"{task.DotNetHostPath} {task.CompilerPath} compile {quoted} --output-dir=", logged, StringComparison.Ordinal);
        Assert.EndsWith(" --input-shape=x=1,2 --msbuild", logged, StringComparison.Ordinal);
    }

    [Fact]
    public void AFullCompilationTouchesBothStamps()
    {
        var model = Model("m.onnx");
        var task = Task(model);

        Assert.True(task.Execute(), _engine.ErrorText);

        Assert.True(File.Exists(model.GetMetadata("StampFile")));
        Assert.True(File.Exists(model.GetMetadata("ApiStampFile")));
    }

    [Fact]
    public void AModelSavedWhileItCompilesIsNewerThanItsStamp()
    {
        var model = Model("m.onnx");
        var task = Task(model);
        // The user saves the model while the compiler runs: the compiler may have read the old content.
        task.DuringRun = () =>
        {
            Thread.Sleep(50);
            File.WriteAllText(model.ItemSpec, "saved");
        };

        Assert.True(task.Execute(), _engine.ErrorText);

        Assert.True(File.GetLastWriteTimeUtc(model.GetMetadata("StampFile")) < File.GetLastWriteTimeUtc(model.ItemSpec));
        Assert.True(File.GetLastWriteTimeUtc(model.GetMetadata("ApiStampFile")) < File.GetLastWriteTimeUtc(model.ItemSpec));
    }

    [Fact]
    public void ApiOnlyPassesTheFlagAndReplacesTheStaleClass()
    {
        var model = Model("m.onnx");
        var task = Task(model);
        task.ApiOnly = true;
        string source = Path.Combine(model.GetMetadata("OutputDirectory"), model.GetMetadata("OutputName") + ".g.cs");
        File.WriteAllText(source, "// a class generated from the model before it changed");
        File.WriteAllText(model.GetMetadata("StampFile"), "");
        bool sourceExistedDuringRun = true;
        task.DuringRun = () => sourceExistedDuringRun = File.Exists(source);

        Assert.True(task.Execute(), _engine.ErrorText);

        Assert.EndsWith("--api-only\n--msbuild\n", Assert.Single(task.Runs).ResponseFile, StringComparison.Ordinal);
        // The compiler keeps an existing class in API-only mode, so the stale one must be gone before it runs.
        Assert.False(sourceExistedDuringRun);
        // A design-time build satisfies design-time builds only: the next full build still compiles.
        Assert.True(File.Exists(model.GetMetadata("ApiStampFile")));
        Assert.False(File.Exists(model.GetMetadata("StampFile")));
    }

    [Fact]
    public void ValidateParametersReportsEveryProblemAtOnce()
    {
        var task = Task(
            Model("a.onnx", ("ClassName", "1abc"), ("InputShapes", "x=a,b"), ("Visibility", "friend")),
            Model("b.onnx", ("Namespace", "Contoso..Models"), ("WeightsStorage", "Cloud"), ("ConstantInputs", "sr")));

        Assert.False(task.Execute());

        Assert.Empty(task.Runs);
        Assert.Equal(6, _engine.Errors.Count);
        Assert.All(_engine.Errors, e => Assert.Equal("SQ1012", e.Code));
        Assert.Equal(3, _engine.Errors.Count(e => e.File == Path.Combine(_dir, "a.onnx")));
        Assert.Contains(_engine.Errors, e => e.Message!.Contains("ClassName='1abc'", StringComparison.Ordinal));
        Assert.Contains(_engine.Errors, e => e.Message!.Contains("dimension 'a' of input 'x'", StringComparison.Ordinal));
        Assert.Contains(_engine.Errors, e => e.Message!.Contains("'sr' is not NAME=VALUES", StringComparison.Ordinal));
    }

    [Fact]
    public void AMissingCompilerIsReportedWithItsCode()
    {
        var task = Task(Model("m.onnx"));
        task.CompilerPath = Path.Combine(_dir, "nowhere", "squash.dll");

        Assert.False(task.Execute());

        Assert.Empty(task.Runs);
        Assert.Equal("SQ1014", Assert.Single(_engine.Errors).Code);
    }

    [Fact]
    public void CanonicalErrorsFromTheCompilerKeepTheirCodeAndFile()
    {
        var model = Model("m.onnx");
        var task = Task(model);
        task.Script = _ => (1, [$"{model.ItemSpec} : error SQ1003: Frobnicate node 'f': operator Frobnicate is not supported."]);

        Assert.False(task.Execute());

        var error = Assert.Single(_engine.Errors);
        Assert.Equal("SQ1003", error.Code);
        Assert.Equal(model.ItemSpec, error.File);
        Assert.False(File.Exists(model.GetMetadata("StampFile")));
    }

    [Fact]
    public void AFailureWithoutADiagnosticStillGetsACodedError()
    {
        var model = Model("m.onnx");
        var task = Task(model);
        task.Script = _ => (134, ["Unhandled exception. System.InvalidOperationException: boom"]);

        Assert.False(task.Execute());

        var error = Assert.Single(_engine.Errors);
        Assert.Equal("SQ1013", error.Code);
        Assert.Equal(model.ItemSpec, error.File);
        Assert.Contains("exit code 134", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void EveryModelIsCompiledEvenAfterOneFails()
    {
        var bad = Model("bad.onnx", ("ClassName", "Bad"));
        var good = Model("good.onnx", ("ClassName", "Good"));
        var task = Task(bad, good);
        task.Script = run => run == 0 ? (1, [$"{bad.ItemSpec} : error SQ1002: not an ONNX model."]) : (0, []);

        Assert.False(task.Execute());

        Assert.Equal(2, task.Runs.Count);
        Assert.Equal("SQ1002", Assert.Single(_engine.Errors).Code);
        Assert.Equal([good], task.CompiledModels);
        Assert.False(File.Exists(bad.GetMetadata("StampFile")));
        Assert.True(File.Exists(good.GetMetadata("StampFile")));
    }

    [Fact]
    public void TheRealCompilerCompilesAModelAndReportsABrokenOne()
    {
        // The compiler this repository built, run the way the build runs it.
        string compiler = Path.Combine(Repository.Root, "src", "Squash.Cli", "bin", Repository.Configuration, "net10.0", "squash.dll");
        var good = Model("real/scale_shift.onnx", ("ClassName", "ScaleShift"), ("InputShapes", "x=2,4"));
        TestModels.ScaleShift(good.ItemSpec);
        var broken = Model("real/unsupported.onnx", ("ClassName", "Unsupported"));
        TestModels.Unsupported(broken.ItemSpec);
        var task = new SquashCompile
        {
            BuildEngine = _engine,
            Models = [good, broken],
            CompilerPath = compiler,
            DotNetHostPath = DotNet.Host == "dotnet" ? null : DotNet.Host,
        };
        Directory.CreateDirectory(good.GetMetadata("OutputDirectory"));

        Assert.False(task.Execute());

        string outputs = Path.Combine(good.GetMetadata("OutputDirectory"), good.GetMetadata("OutputName"));
        Assert.True(File.Exists(outputs + ".g.cs"), _engine.ErrorText);
        Assert.True(File.Exists(outputs + ".sqw"));
        var error = Assert.Single(_engine.Errors);
        Assert.Equal("SQ1003", error.Code);
        Assert.Equal(broken.ItemSpec, error.File);
        Assert.Equal([good], task.CompiledModels);
    }
}
