using Squash.Cli;
using Squash.Compiler.Quantization;
using Squash.Compiler.Tests.Quantization;
using Squash.Runtime.IO;

namespace Squash.Compiler.Tests.Cli;

/// <summary><c>squash profile</c> and <c>squash run --precision int8|auto</c> on <see cref="ChainModel"/>: the same
/// pipeline, files and errors as the library (and so the build).</summary>
public sealed class QuantizationCliTests(Xunit.Abstractions.ITestOutputHelper log) : IDisposable
{
    private readonly ChainModel _chain = new();

    public void Dispose() => _chain.Dispose();

    /// <summary>Runs the CLI in process.</summary>
    internal static (int Code, string Out, string Err) Squash(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CommandLine.Execute(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void ProfileWritesTheLibrarysProfile()
    {
        string file = Path.Combine(_chain.Folder, "chain.sensitivity.json");
        var (code, stdout, err) = Squash("profile", _chain.ModelPath, "--calibration", _chain.Calibration, "--output", file);
        Assert.True(code == 0, err);
        Assert.Contains($"most sensitive: {_chain.Units[1]} 26.", stdout);
        var (profile, key) = QuantizationPipeline.Profile(_chain.Load(), _chain.ModelPath, _chain.Options(PrecisionMode.Int8));
        Assert.Equal(profile.ToJson(key), File.ReadAllBytes(file));
    }

    [Fact]
    public void RunAutoQuantizesLikeTheLibraryAndWritesTheReport()
    {
        string output = Path.Combine(_chain.Folder, "out");
        string reports = Path.Combine(_chain.Folder, "report");
        string input = Path.Combine(_chain.Calibration, "004.npy");
        var (code, stdout, err) = Squash("run", _chain.ModelPath, "--precision", "auto", "--calibration", _chain.Calibration,
            "--accuracy-target", "sqnr:26", "--input", "x=" + input, "--output-dir", output, "--report-dir", reports);
        Assert.True(code == 0, err);
        log.WriteLine(stdout);
        Assert.Contains($"fp32 fallbacks: {_chain.Units[4]}", stdout);
        Assert.Contains("target sqnr:26 met", stdout);
        var outcome = QuantizationPipeline.Quantize(_chain.Load(), _chain.ModelPath, _chain.Options(PrecisionMode.Auto, "sqnr:26"));
        Assert.Equal(QuantizationReportWriter.ToJson(outcome), File.ReadAllBytes(Path.Combine(reports, "chain.quantization.json")));
        Assert.Equal(QuantizationReportWriter.ToMarkdown(outcome), File.ReadAllText(Path.Combine(reports, "chain.quantization.md")));
        // Sample 4 is held out; its int8 output is x with the plan's noise: within 2 dB of the held-out SQNR (one sample).
        var x = Npy.Read(input).AsSpan<float>();
        var y = Npy.Read(Directory.GetFiles(output, "*.npy").Single()).AsSpan<float>();
        double signal = 0, noise = 0;
        for (int i = 0; i < x.Length; i++)
        {
            signal += (double)x[i] * x[i];
            noise += (double)(y[i] - x[i]) * (y[i] - x[i]);
        }
        Assert.InRange(10 * Math.Log10(signal / noise), outcome.Evaluation.Output.SqnrDb - 2, outcome.Evaluation.Output.SqnrDb + 2);
    }

    /// <summary><c>squash compile</c> (what the build runs) writes the report beside the class while the model is
    /// quantized, and removes it when the same class is compiled in fp32 again.</summary>
    [Fact]
    public void CompileKeepsTheReportOnlyWhileTheModelIsQuantized()
    {
        string output = Path.Combine(_chain.Folder, "compiled");
        string[] common = ["compile", _chain.ModelPath, "--output-dir", output, "--class-name", "Chain"];
        var (code, _, err) = Squash([.. common, "--precision", "int8", "--calibration", _chain.Calibration]);
        Assert.True(code == 0, err);
        string[] reports = [.. new[] { ".quantization.json", ".quantization.md", ".quantization.timing.json" }.Select(s => Path.Combine(output, "Chain" + s))];
        Assert.All(reports, f => Assert.True(File.Exists(f), $"{f} missing after the int8 compilation"));
        (code, _, err) = Squash([.. common, "--precision", "fp32"]);
        Assert.True(code == 0, err);
        Assert.All(reports, f => Assert.False(File.Exists(f), $"{f} left after the fp32 compilation"));
        Assert.True(File.Exists(Path.Combine(output, "Chain.g.cs")));
    }

    [Fact]
    public void AMissedTargetIsAnSQ1041ErrorOrAWarning()
    {
        string input = Path.Combine(_chain.Calibration, "000.npy");
        var (code, _, err) = Squash("run", _chain.ModelPath, "--precision", "int8", "--calibration", _chain.Calibration,
            "--accuracy-target", "sqnr:30", "--input", "x=" + input, "--output-dir", Path.Combine(_chain.Folder, "o1"));
        Assert.Equal(1, code);
        Assert.StartsWith("squash run: error SQ1041: chain.onnx misses AccuracyTarget sqnr:30", err);
        (code, var stdout, err) = Squash("run", _chain.ModelPath, "--precision", "int8", "--calibration", _chain.Calibration,
            "--accuracy-target", "sqnr:30", "--accuracy-target-action", "warn", "--input", "x=" + input, "--output-dir", Path.Combine(_chain.Folder, "o2"));
        Assert.True(code == 0, err);
        Assert.Contains("warning SQ2010: chain.onnx misses AccuracyTarget sqnr:30", stdout);
        Assert.Contains("target sqnr:30 MISSED", stdout);
    }

    [Theory]
    [InlineData(1, "SQ1012", "--precision", "int8", "--calibration-method", "kl")]
    [InlineData(1, "SQ1012", "--precision", "int8", "--bias-correction", "maybe")]
    [InlineData(1, "SQ1012", "--bias-correction", "off")]
    [InlineData(1, "SQ1012", "--precision", "auto", "--accuracy-target-action", "ignore")]
    [InlineData(2, "", "--report-dir", "r")]
    [InlineData(1, "SQ1012", "--precision", "fp8")]
    [InlineData(1, "SQ1020", "--precision", "auto", "--no-calibration")]
    public void BadOptionsAreOneLineErrors(int exitCode, string code, params string[] options)
    {
        // Usage errors exit with 2; a bad value (SQ1012) or a precision that cannot work (SQ1020), coded as the build
        // reports them, with 1.
        string[] calibration = options.Contains("--no-calibration") ? [] : ["--calibration", _chain.Calibration];
        if (options.Contains("--report-dir") || options.Contains("fp8")) calibration = [];
        var (exit, _, err) = Squash(["run", _chain.ModelPath, "--input", "x=" + Path.Combine(_chain.Calibration, "000.npy"), "--output-dir", _chain.Folder,
            .. calibration, .. options.Where(o => o != "--no-calibration")]);
        Assert.True(exit == exitCode, err);
        Assert.StartsWith(exitCode == 1 ? $"squash run: error {code}: " : "squash run: ", err);
        Assert.Single(err.Trim().Split('\n'));
    }
}
