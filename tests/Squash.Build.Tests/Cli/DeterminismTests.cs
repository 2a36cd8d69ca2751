using System.Globalization;
using Squash.Build.Tests.Support;
using Squash.Cli;

namespace Squash.Build.Tests.Cli;

/// <summary>
/// <c>squash compile</c> gives the same bytes for the same model and options whatever the run: twice in one process,
/// in two processes, from two folders (no absolute path in what it writes), under a culture that writes numbers
/// differently, with one processor or more.
/// </summary>
public sealed class DeterminismTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("squash-determinism-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>The same model in two folders, so that absolute paths differ.</summary>
    private (string A, string B) TwoCopies()
    {
        string a = Path.Combine(_dir, "a", "net.onnx");
        string b = Path.Combine(_dir, "elsewhere", "deeper", "net.onnx");
        TestModels.SmallConvNet(a);
        Directory.CreateDirectory(Path.GetDirectoryName(b)!);
        File.Copy(a, b);
        return (a, b);
    }

    private static string[] Arguments(string model, string outputDir) =>
        ["compile", model, "--output-dir=" + outputDir, "--output-name=net", "--class-name=Net", "--namespace=Demo.Models", "--msbuild"];

    private static void CompileInProcess(string model, string outputDir)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CommandLine.Execute(Arguments(model, outputDir), stdout, stderr);
        Assert.True(code == 0, $"{stdout}{stderr}");
    }

    private static void CompileInProcess(string model, string outputDir, CultureInfo culture)
    {
        var saved = (CultureInfo.CurrentCulture, CultureInfo.CurrentUICulture);
        CultureInfo.CurrentCulture = culture;
        CultureInfo.CurrentUICulture = culture;
        try
        {
            CompileInProcess(model, outputDir);
        }
        finally
        {
            (CultureInfo.CurrentCulture, CultureInfo.CurrentUICulture) = saved;
        }
    }

    /// <summary>Swedish writes minus as U+2212 and decimals with a comma: any culture-sensitive formatting shows.</summary>
    private static CultureInfo Swedish()
    {
        var culture = new CultureInfo("sv-SE");
        Assert.NotEqual("-1.5", (-1.5).ToString(culture));
        return culture;
    }

    [Fact]
    public void TwiceInOneProcessFromTwoFoldersAndCulturesGivesTheSameFiles()
    {
        var (a, b) = TwoCopies();
        string first = Path.Combine(_dir, "out1"), second = Path.Combine(_dir, "out2"), third = Path.Combine(_dir, "out3");

        CompileInProcess(a, first, CultureInfo.InvariantCulture);
        CompileInProcess(b, second, Swedish());
        CompileInProcess(a, third, Swedish());

        var expected = FileSets.Read(first);
        Assert.Equal(["net.g.cs", "net.sqw"], expected.Keys);
        Assert.True(expected["net.sqw"].Length > 4 * 512 * 10, "the Gemm weights should be in the weights file");
        FileSets.AssertSame(expected, FileSets.Read(second), "between two folders and cultures");
        FileSets.AssertSame(expected, FileSets.Read(third), "between two cultures");
        string source = File.ReadAllText(Path.Combine(first, "net.g.cs"));
        Assert.DoesNotContain(_dir, source, StringComparison.Ordinal);
        Assert.DoesNotContain("\u2212", source, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TwoProcessesGiveTheSameFilesAsOne()
    {
        var (a, b) = TwoCopies();
        string inProcess = Path.Combine(_dir, "in-process");
        CompileInProcess(a, inProcess);
        // The compiler this test project built (squash.dll is copied beside the tests), run as the build runs it. It
        // runs with invariant globalization, so the culture its environment names should not matter either way.
        string compiler = Path.Combine(AppContext.BaseDirectory, "squash.dll");
        var runs = new[]
        {
            (Model: a, Out: Path.Combine(_dir, "process1"), Environment: new Dictionary<string, string?>
            {
                ["LC_ALL"] = "sv_SE.UTF-8", ["LANG"] = "sv_SE.UTF-8", ["DOTNET_PROCESSOR_COUNT"] = "1",
            }),
            (Model: b, Out: Path.Combine(_dir, "process2"), Environment: new Dictionary<string, string?>
            {
                ["LC_ALL"] = "C.UTF-8", ["LANG"] = "C.UTF-8", ["DOTNET_PROCESSOR_COUNT"] = "4",
            }),
        };

        // Both at once: they share nothing but the model's content.
        var results = runs.Select(r => Task.Run(() =>
        {
            string rsp = Path.Combine(_dir, Path.GetFileName(r.Out) + ".rsp");
            File.WriteAllLines(rsp, Arguments(r.Model, r.Out));
            return DotNet.Run(_dir, r.Environment, compiler, "@" + rsp);
        })).ToArray();
        var finished = await Task.WhenAll(results);

        var expected = FileSets.Read(inProcess);
        foreach (var (run, result) in runs.Zip(finished))
        {
            Assert.True(result.ExitCode == 0, result.Output);
            FileSets.AssertSame(expected, FileSets.Read(run.Out), $"between the test process and a compiler process ({run.Out})");
        }
    }
}
