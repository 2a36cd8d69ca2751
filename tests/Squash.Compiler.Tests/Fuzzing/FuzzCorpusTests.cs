using Squash.Compiler.Tests.Support;
using Squash.Tools.OnnxFuzzer;

namespace Squash.Compiler.Tests.Fuzzing;

/// <summary>Every file of testassets/fuzz-corpus ends as its name says: the diagnostic code, or <c>ok</c> for success;
/// never a crash, a hang or a huge allocation.</summary>
public sealed class FuzzCorpusTests(FuzzSandbox sandbox) : IClassFixture<FuzzSandbox>
{
    private static string CorpusDirectory => TestPaths.Asset("fuzz-corpus");

    public static TheoryData<string> Files()
    {
        var data = new TheoryData<string>();
        foreach (string path in Directory.GetFiles(CorpusDirectory, "*.onnx").Order(StringComparer.Ordinal)) data.Add(Path.GetFileName(path));
        return data;
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void EndsAsItsNameSays(string file)
    {
        string expected = Expected(file);
        var target = FuzzTests.Target(sandbox);
        var outcome = target.Run(File.ReadAllBytes(Path.Combine(CorpusDirectory, file)));
        string detail = $"{outcome.Kind} {outcome.Signature} in {outcome.Stage}: {outcome.Message}\n{outcome.Error}";
        if (expected == "ok") Assert.True(outcome.Kind == OutcomeKind.Accepted, detail);
        else
        {
            Assert.True(outcome.Kind == OutcomeKind.Refused, detail);
            Assert.Equal(expected, outcome.Code);
        }
    }

    [Fact]
    public void EveryFileIsNamedWithItsExpectedOutcome()
    {
        var files = Directory.GetFiles(CorpusDirectory).Select(f => Path.GetFileName(f)).ToList();
        Assert.Contains("README.md", files);
        foreach (string file in files.Where(f => f != "README.md"))
        {
            Assert.EndsWith(".onnx", file, StringComparison.Ordinal);
            Assert.Matches("^(ok|SQ[0-9]{4})$", Expected(file));
        }
    }

    [Fact]
    public void GeneratedCasesAreUpToDate()
    {
        // The corpus holds what CorpusCases writes: a change to a case must regenerate the file (see the README).
        foreach (var (name, bytes) in CorpusCases.All())
        {
            string path = Path.Combine(CorpusDirectory, name + ".onnx");
            Assert.True(File.Exists(path), $"{name}.onnx is missing: regenerate with OnnxFuzzer --write-corpus testassets/fuzz-corpus");
            Assert.True(bytes.AsSpan().SequenceEqual(File.ReadAllBytes(path)), $"{name}.onnx is out of date: regenerate with OnnxFuzzer --write-corpus testassets/fuzz-corpus");
        }
    }

    private static string Expected(string file)
    {
        string name = Path.GetFileNameWithoutExtension(file);
        return name[(name.LastIndexOf('.') + 1)..];
    }
}
