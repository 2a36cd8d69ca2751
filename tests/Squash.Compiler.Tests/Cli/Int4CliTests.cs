using Squash.Cli;
using Squash.Compiler.Onnx;
using Squash.Compiler.Tests.Models;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.IO;
using Squash.Tools.Llama2c;

namespace Squash.Compiler.Tests.Cli;

/// <summary><c>--precision int4</c> in <c>squash run</c> and <c>squash export</c>, on stories260K: the export runs in
/// ONNX Runtime and computes what <c>squash run</c> computes; exclusions and calibration take effect; bad options fail
/// with their codes.</summary>
public sealed class Int4CliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("squash-int4-cli-").FullName;
    private readonly string _model;

    public Int4CliTests()
    {
        _model = Path.Combine(_dir, "stories260K.onnx");
        OnnxWriter.Save(Llama2cConverter.Convert(File.ReadAllBytes(TestPaths.Asset("models", "llama2c", "stories260K.bin"))), _model);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int Code, string Out, string Err) Squash(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CommandLine.Execute(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Inputs for one step: <paramref name="tokens"/> with empty caches, as .npy files in a folder.</summary>
    private string WriteInputs(string folder, long[] tokens)
    {
        string dir = Path.Combine(_dir, folder);
        Directory.CreateDirectory(dir);
        Npy.Write(Path.Combine(dir, "input_ids.npy"), Tensor.From<long>(tokens, 1, tokens.Length));
        for (int l = 0; l < 5; l++)
        {
            Npy.Write(Path.Combine(dir, $"past_key_{l}.npy"), new Tensor(DataType.Float, 1, 4, 0, 8));
            Npy.Write(Path.Combine(dir, $"past_value_{l}.npy"), new Tensor(DataType.Float, 1, 4, 0, 8));
        }
        return dir;
    }

    /// <summary>
    /// Round-to-nearest int4 with every matrix of 2048 values or more (the 35 of the layers and the classifier) and the
    /// embedding lookup: the export has 36 com.microsoft MatMulNBits nodes, and ONNX Runtime's logits for a 6-token
    /// prompt equal <c>squash run</c>'s within 2e-4 + 1e-4 |x| (Llama2cTests' bound for two fp32 implementations of one
    /// graph: the same int4 weights, sums in another order; squash run also fuses attention).
    /// </summary>
    [Fact]
    public void ExportRunsInOnnxRuntimeAndMatchesSquashRun()
    {
        string inputs = WriteInputs("inputs", [1, 461, 401, 7, 35, 90]);
        string exported = Path.Combine(_dir, "int4.onnx");
        string[] int4 = ["--precision", "int4", "--int4-min-elements", "2048"];
        var (code, output, error) = Squash(["export", _model, "--output", exported, .. int4]);
        Assert.True(code == 0, error);
        Assert.Contains("37 int4 node(s)", output); // 36 MatMulNBits and the embedding lookup (a Gather over the dequantized table)
        var graph = OnnxLoader.Load(exported).Graph;
        Assert.Equal(36, graph.Nodes.Count(n => n.OpType == "MatMulNBits" && n.Domain == "com.microsoft"));

        string outDir = Path.Combine(_dir, "out");
        var names = new[] { "input_ids" }.Concat(Enumerable.Range(0, 5).SelectMany(l => new[] { $"past_key_{l}", $"past_value_{l}" }));
        (code, _, error) = Squash(["run", _model, .. names.SelectMany(n => new[] { "--input", $"{n}={Path.Combine(inputs, n + ".npy")}" }), "--output-dir", outDir, .. int4]);
        Assert.True(code == 0, error);
        var squash = Npy.Read(Path.Combine(outDir, "logits.npy"));

        using var ort = new OrtReference(exported);
        var feeds = names.ToDictionary(n => n, n => Npy.Read(Path.Combine(inputs, n + ".npy")));
        TensorAssert.Close(ort.Run(feeds)["logits"], squash, 1e-4, 2e-4, "logits");

        // fp32 is a different model: int4 must have changed the logits.
        (code, _, error) = Squash(["run", _model, .. names.SelectMany(n => new[] { "--input", $"{n}={Path.Combine(inputs, n + ".npy")}" }), "--output-dir", Path.Combine(_dir, "fp32")]);
        Assert.True(code == 0, error);
        var fp32 = Npy.Read(Path.Combine(_dir, "fp32", "logits.npy")).AsSpan<float>();
        Assert.True(TensorMaxDifference(fp32, squash.AsSpan<float>()) > 1e-2);
    }

    /// <summary>Exclusions keep the named nodes in fp32; calibration switches to GPTQ, which chooses other codes.</summary>
    [Fact]
    public void ExclusionsAndCalibrationTakeEffect()
    {
        string plain = Path.Combine(_dir, "plain.onnx"), excluded = Path.Combine(_dir, "excluded.onnx"), calibrated = Path.Combine(_dir, "calibrated.onnx");
        string[] int4 = ["--precision", "int4", "--int4-min-elements", "2048", "--int4-no-embeddings"];
        Assert.Equal(0, Squash(["export", _model, "--output", plain, .. int4]).Code);
        Assert.Equal(0, Squash(["export", _model, "--output", excluded, .. int4, "--int4-exclude", "layers.*.ffn.*", "--int4-exclude", "classifier_rows"]).Code);
        var graph = OnnxLoader.Load(excluded).Graph;
        Assert.Equal(20, graph.Nodes.Count(n => n.OpType == "MatMulNBits"));
        Assert.DoesNotContain(graph.Nodes, n => n.OpType == "MatMulNBits" && (n.Name.Contains(".ffn.") || n.Name == "classifier_rows"));

        // One calibration sample folder: a 16-token prompt with empty caches.
        WriteInputs(Path.Combine("calibration", "sample0"), [1, 461, 401, 7, 35, 90, 401, 7, 461, 35, 90, 1, 7, 401, 461, 35]);
        var (code, _, error) = Squash(["export", _model, "--output", calibrated, .. int4, "--calibration", Path.Combine(_dir, "calibration")]);
        Assert.True(code == 0, error);
        var rtn = OnnxLoader.Load(plain).Graph;
        var gptq = OnnxLoader.Load(calibrated).Graph;
        Assert.Equal(36, gptq.Nodes.Count(n => n.OpType == "MatMulNBits"));
        int differing = rtn.Initializers.Count(w => w.Constant!.DataType == DataType.UInt8
            && !w.Constant.AsSpan<byte>().SequenceEqual(gptq.Initializers.First(g => g.Name == w.Name).Constant!.AsSpan<byte>()));
        Assert.True(differing >= 30, $"{differing} of 36 packed weights differ between round-to-nearest and GPTQ");
    }

    [Theory]
    [InlineData("SQ1051", "--precision", "int4", "--int4-exclude", "layers.*.fnn.*")]
    [InlineData("SQ1012", "--int4-block-size", "64")]
    [InlineData("SQ1012", "--int4-activations", "int8")]
    [InlineData("SQ1012", "--precision", "int4", "--int4-activations", "int6")]
    [InlineData("SQ1012", "--precision", "int3")]
    [InlineData("SQ1020", "--precision", "int8")]
    [InlineData("SQ1004", "--precision", "int4", "--int4-block-size", "48")]
    public void BadOptionsFailWithTheirCode(string expectedCode, params string[] options)
    {
        var (code, _, error) = Squash(["export", _model, "--output", Path.Combine(_dir, "x.onnx"), .. options]);
        Assert.Equal(1, code);
        Assert.Contains(expectedCode, error);
        Assert.False(File.Exists(Path.Combine(_dir, "x.onnx")));
    }

    private static float TensorMaxDifference(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        float max = 0;
        for (int i = 0; i < a.Length; i++) max = Math.Max(max, Math.Abs(a[i] - b[i]));
        return max;
    }
}
