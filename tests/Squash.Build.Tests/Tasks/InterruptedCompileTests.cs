using System.Text.RegularExpressions;
using Microsoft.Build.Utilities;
using Squash.Build.Tasks;
using Squash.Build.Tests.Support;
using Squash.Runtime.Weights;

namespace Squash.Build.Tests.Tasks;

/// <summary>
/// The real compiler, run by <c>SquashCompile</c>, dying between writing the weights and writing the class (the
/// compiler's test seam <c>SQUASH_TEST_CRASH_AFTER_WEIGHTS</c>, a kill of its own process): the stamps stay older than the
/// model, so the next build compiles it again, and that compilation leaves a consistent class and no temporary files.
/// </summary>
public sealed class InterruptedCompileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("squash-interrupted-").FullName;
    private readonly MockBuildEngine _engine = new();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private TaskItem Model(string path)
    {
        var item = new TaskItem(path);
        string name = ModelOptions.OutputName(path);
        string outDir = Path.Combine(_dir, "out") + Path.DirectorySeparatorChar;
        foreach (var (key, value) in new[]
        {
            ("ClassName", "Dense"), ("Namespace", "Demo"), ("Visibility", "public"), ("WeightsStorage", "EmbeddedResource"),
            ("Precision", "fp32"), ("OutputDirectory", outDir), ("OutputName", name), ("WeightsName", "Demo.Dense.sqw"),
            ("StampFile", outDir + name + ".stamp"), ("ApiStampFile", outDir + name + ".api.stamp"),
        })
        {
            item.SetMetadata(key, value);
        }
        Directory.CreateDirectory(outDir);
        return item;
    }

    private SquashCompile Task(TaskItem model, bool crashAfterWeights) => new()
    {
        BuildEngine = _engine,
        Models = [model],
        CompilerPath = Path.Combine(Repository.Root, "src", "Squash.Cli", "bin", Repository.Configuration, "net10.0", "squash.dll"),
        DotNetHostPath = DotNet.Host == "dotnet" ? null : DotNet.Host,
        EnvironmentVariables = crashAfterWeights ? ["SQUASH_TEST_CRASH_AFTER_WEIGHTS=1"] : [],
    };

    /// <summary>The checksum the generated class expects of its weights.</summary>
    private static ulong ExpectedChecksum(string source)
    {
        var m = Regex.Match(source, "WeightsChecksum = 0x([0-9A-F]{16})UL");
        Assert.True(m.Success, "the class has no weights checksum");
        return Convert.ToUInt64(m.Groups[1].Value, 16);
    }

    private static ulong Checksum(string weights)
    {
        using var stream = File.OpenRead(weights);
        return WeightsFile.Read(stream).Checksum;
    }

    [Fact]
    public void ACompilerKilledBetweenWeightsAndClassLeavesTheStampsForTheNextBuild()
    {
        string path = Path.Combine(_dir, "dense.onnx");
        TestModels.Dense(path, width: 8, layers: 2);
        var model = Model(path);
        string outputs = Path.Combine(model.GetMetadata("OutputDirectory"), model.GetMetadata("OutputName"));
        string stamp = model.GetMetadata("StampFile"), apiStamp = model.GetMetadata("ApiStampFile");
        Assert.True(Task(model, crashAfterWeights: false).Execute(), _engine.ErrorText);
        string oldSource = File.ReadAllText(outputs + ".g.cs");
        var stampTime = File.GetLastWriteTimeUtc(stamp);

        // The model changes (other weights) and its compilation dies after writing the new weights.
        TestModels.Dense(path, width: 8, layers: 2, seed: 99);
        Assert.True(File.GetLastWriteTimeUtc(path) > stampTime);
        Assert.False(Task(model, crashAfterWeights: true).Execute());

        Assert.Equal("SQ1013", Assert.Single(_engine.Errors).Code);
        Assert.Equal(oldSource, File.ReadAllText(outputs + ".g.cs"));
        Assert.NotEqual(ExpectedChecksum(oldSource), Checksum(outputs + ".sqw"));
        // What the incremental check compares: both stamps are still older than the model.
        Assert.Equal(stampTime, File.GetLastWriteTimeUtc(stamp));
        Assert.True(File.GetLastWriteTimeUtc(apiStamp) < File.GetLastWriteTimeUtc(path));

        // The next build compiles it again: the class matches its weights, the stamps are newer than the model.
        _engine.Errors.Clear();
        Assert.True(Task(model, crashAfterWeights: false).Execute(), _engine.ErrorText);
        Assert.Equal(ExpectedChecksum(File.ReadAllText(outputs + ".g.cs")), Checksum(outputs + ".sqw"));
        Assert.True(File.GetLastWriteTimeUtc(stamp) >= File.GetLastWriteTimeUtc(path));
        Assert.Empty(Directory.GetFiles(model.GetMetadata("OutputDirectory"), "*.tmp"));
    }

    [Fact]
    public void TheNextWriteDeletesTheTemporaryFilesOfAKilledWriter()
    {
        string path = Path.Combine(_dir, "m.sqw");
        // A writer killed before its move (a process id no system gives out), one still writing (this process), and
        // another file's.
        string dead = Path.Combine(_dir, ".m.sqw.2147483647.0123456789abcdef0123456789abcdef.tmp");
        string live = Path.Combine(_dir, $".m.sqw.{Environment.ProcessId}.0123456789abcdef0123456789abcdef.tmp");
        string other = Path.Combine(_dir, ".n.sqw.2147483647.0123456789abcdef0123456789abcdef.tmp");
        foreach (var f in new[] { dead, live, other }) File.WriteAllBytes(f, [1, 2]);

        Assert.True(Squash.Compiler.AtomicFile.WriteIfChanged(path, [1, 2, 3]));
        Assert.False(File.Exists(dead));
        Assert.True(File.Exists(live) && File.Exists(other));

        // Also when the content is unchanged and nothing is written.
        File.WriteAllBytes(dead, [1, 2]);
        Assert.False(Squash.Compiler.AtomicFile.WriteIfChanged(path, [1, 2, 3]));
        Assert.False(File.Exists(dead));
    }
}
