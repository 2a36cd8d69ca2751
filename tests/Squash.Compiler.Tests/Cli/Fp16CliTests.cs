using Squash.Compiler.Quantization;
using Squash.Compiler.Tests.Quantization;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.IO;

namespace Squash.Compiler.Tests.Cli;

/// <summary><c>--precision fp16</c> and <c>--int8-fallback</c> in the CLI, on <see cref="ChainModel"/>.</summary>
public sealed class Fp16CliTests : IDisposable
{
    private readonly ChainModel _chain = new();

    public void Dispose() => _chain.Dispose();

    private static (int Code, string Out, string Err) Squash(params string[] args) => QuantizationCliTests.Squash(args);

    [Fact]
    public void RunFp16GivesTheLibrarysFp16Outputs()
    {
        string output = Path.Combine(_chain.Folder, "out");
        string input = Path.Combine(_chain.Calibration, "003.npy");
        var (code, stdout, err) = Squash("run", _chain.ModelPath, "--precision", "FP16", "--input", "x=" + input, "--output-dir", output);
        Assert.True(code == 0, err);
        Assert.Contains("fp16: 5 of 5 weights rounded to float16", stdout);
        var model = _chain.Load();
        ModelPreparation.ApplyPrecision(model, "fp16");
        ModelPreparation.Fuse(model);
        var want = new GraphExecutor(model.Graph).Run(new Dictionary<string, Tensor> { ["x"] = Npy.Read(input) }).Values.Single();
        var got = Npy.Read(Directory.GetFiles(output, "*.npy").Single());
        Assert.Equal(want.AsSpan<float>().ToArray(), got.AsSpan<float>().ToArray());
        // Channel 0 goes through 12 x 1/12 x 10 x 1/10 in fp32, with 1/12 and 1/10 rounded in fp16: not x itself.
        var x = Npy.Read(input).AsSpan<float>();
        Assert.NotEqual(x[0], got.AsSpan<float>()[0]);
        Assert.Equal(x[1], got.AsSpan<float>()[1]);
    }

    [Fact]
    public void ExportFp16WritesTheRoundedWeights()
    {
        string file = Path.Combine(_chain.Folder, "chain.fp16.onnx");
        var (code, stdout, err) = Squash("export", _chain.ModelPath, "--output", file, "--precision", "fp16");
        Assert.True(code == 0, err);
        Assert.Contains("(fp16 weights)", stdout);
        var exported = global::Squash.Compiler.Onnx.OnnxLoader.Load(file);
        var weights = exported.Graph.Nodes.Where(n => n.OpType == "MatMul").Select(n => n.Inputs[1]!.Constant!).ToList();
        Assert.Equal(5, weights.Count);
        Assert.All(weights, w => Assert.True(Fp16Weights.IsExactlyFp16(w)));
        Assert.Contains(weights, w => w.AsSpan<float>()[0] == Fp16Weights.Round(1f / 12));
    }

    [Fact]
    public void RunAutoWithFp16FallbackReportsIt()
    {
        string reports = Path.Combine(_chain.Folder, "report");
        var (code, stdout, err) = Squash("run", _chain.ModelPath, "--precision", "auto", "--calibration", _chain.Calibration,
            "--accuracy-target", "sqnr:26", "--int8-fallback", "fp16", "--input", "x=" + Path.Combine(_chain.Calibration, "004.npy"),
            "--output-dir", Path.Combine(_chain.Folder, "out"), "--report-dir", reports);
        Assert.True(code == 0, err);
        Assert.Contains($"fp16 fallbacks: {_chain.Units[4]}", stdout);
        var outcome = QuantizationPipeline.Quantize(_chain.Load(), _chain.ModelPath,
            _chain.Options(PrecisionMode.Auto, "sqnr:26") with { Fallback = NodePrecision.Fp16 });
        Assert.Equal(QuantizationReportWriter.ToJson(outcome), File.ReadAllBytes(Path.Combine(reports, "chain.quantization.json")));
    }

    [Theory]
    [InlineData(1, "SQ1012", "--precision", "int8", "--int8-fallback", "fp8")]
    [InlineData(1, "SQ1012", "--precision", "int8", "--int8-fallback", "int8")]
    [InlineData(1, "SQ1012", "--precision", "int8", "--int8-exclude", "p2o.MatMul.0=fp64")]
    [InlineData(1, "SQ1012", "--precision", "fp16", "--int8-fallback", "fp16", "--no-calibration")]
    [InlineData(1, "SQ1012", "--precision", "fp32", "--int8-fallback", "fp32", "--no-calibration")]
    [InlineData(1, "SQ1012", "--precision", "fp16")]
    [InlineData(1, "SQ1012", "--precision", "fp16", "--int4-block-size", "64", "--no-calibration")]
    [InlineData(2, "", "--precision", "fp16", "--report-dir", "r", "--no-calibration")]
    public void BadOptionsAreOneLineErrors(int exitCode, string code, params string[] options)
    {
        // --precision fp16 with calibration data is refused: fp16 needs none (SQ1012, like fp32's).
        string[] calibration = options.Contains("--no-calibration") ? [] : ["--calibration", _chain.Calibration];
        var (exit, _, err) = Squash(["run", _chain.ModelPath, "--input", "x=" + Path.Combine(_chain.Calibration, "000.npy"), "--output-dir", _chain.Folder,
            .. calibration, .. options.Where(o => o != "--no-calibration")]);
        Assert.True(exit == exitCode, err);
        Assert.StartsWith(exitCode == 1 ? $"squash run: error {code}: " : "squash run: ", err);
        Assert.Single(err.Trim().Split('\n'));
    }

    [Fact]
    public void UsageNamesTheNewOptions()
    {
        foreach (var command in new[] { "run", "compile", "export", "bench" })
        {
            var (code, stdout, _) = Squash(command, "--help");
            Assert.Equal(0, code);
            Assert.Contains("--precision fp32|fp16|int4|int8|auto", stdout);
            Assert.Contains("--int8-fallback fp32|fp16", stdout);
        }
    }
}
