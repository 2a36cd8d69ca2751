using Squash.Cli;
using Squash.Compiler.Onnx;
using Squash.Compiler.Tests.Models;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.IO;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Tests.Cli;

/// <summary><c>squash inspect</c> and <c>squash run</c>, in process: outputs, files written, and one-line errors with
/// exit codes for bad input.</summary>
public sealed class CliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("squash-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private (int Code, string Out, string Err) Squash(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CommandLine.Execute(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    private string SaveModel(Graph graph, string name = "model.onnx")
    {
        string path = Path.Combine(_dir, name);
        OnnxWriter.Save(new Model(graph), path);
        return path;
    }

    private string SaveNpy(Tensor t, string name)
    {
        string path = Path.Combine(_dir, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        Npy.Write(path, t);
        return path;
    }

    private static Graph IdentityModel(DataType type, int[] shape, string inputName = "x", string outputName = "y:0")
    {
        var b = new GraphBuilder();
        var x = b.Input(inputName, type, shape);
        var y = b.Node("Identity", x);
        y.Name = outputName;
        b.Output(y);
        return b.Graph;
    }

    [Fact]
    public void InspectListsInputsOperatorsAndParameters()
    {
        var (code, output, _) = Squash("inspect", PpOcr.ModelPath(PpOcr.Cls));
        Assert.Equal(0, code);
        Assert.Contains("Conv", output);
        Assert.Contains("53", output); // 53 Conv nodes
        Assert.Contains("softmax_0.tmp_0", output);
        Assert.Contains("parameters", output);
        Assert.Contains("ai.onnx 9", output);
    }

    [Theory]
    [InlineData(DataType.Float)]
    [InlineData(DataType.Float16)]
    [InlineData(DataType.Int64)]
    [InlineData(DataType.Int32)]
    [InlineData(DataType.UInt8)]
    [InlineData(DataType.Bool)]
    public void RunWritesEachOutputAsNpyForEveryInputType(DataType type)
    {
        var model = SaveModel(IdentityModel(type, [2, 3]));
        var input = new Tensor(type, 2, 3);
        var bytes = input.Bytes;
        for (int i = 0; i < bytes.Length; i++) bytes[i] = (byte)(type == DataType.Bool ? i % 2 : i + 1);
        var (code, _, err) = Squash("run", model, "--input", "x=" + SaveNpy(input, "x.npy"), "--output-dir", Path.Combine(_dir, "out"));
        Assert.True(code == 0, err);
        // ':' is outside [A-Za-z0-9_.-], so the file name has '_' instead.
        var output = Npy.Read(Path.Combine(_dir, "out", "y_0.npy"));
        Assert.Equal(type, output.DataType);
        Assert.True(input.Bytes.SequenceEqual(output.Bytes));
    }

    [Fact]
    public void RunAcceptsZeroDimensionalScalars()
    {
        var model = SaveModel(IdentityModel(DataType.Float, []));
        var (code, _, err) = Squash("run", model, "--input", "x=" + SaveNpy(Tensor.Scalar(2.5f), "s.npy"), "--output-dir", Path.Combine(_dir, "o"));
        Assert.True(code == 0, err);
        var output = Npy.Read(Path.Combine(_dir, "o", "y_0.npy"));
        Assert.Empty(output.Shape);
        Assert.Equal(2.5f, output.AsSpan<float>()[0]);
    }

    [Fact]
    public void RunOverAFolderWritesOneFolderPerSample()
    {
        var model = SaveModel(IdentityModel(DataType.Float, [-1]));
        SaveNpy(Tensor.From<float>([1f, 2f], 2), "in/a.npy");
        SaveNpy(Tensor.From<float>([3f], 1), "in/b.npy");
        var (code, _, err) = Squash("run", model, "--input", "x=" + Path.Combine(_dir, "in"), "--output-dir", Path.Combine(_dir, "out"), "--threads", "2");
        Assert.True(code == 0, err);
        Assert.Equal([1f, 2f], Npy.Read(Path.Combine(_dir, "out", "a", "y_0.npy")).AsSpan<float>().ToArray());
        Assert.Equal([3f], Npy.Read(Path.Combine(_dir, "out", "b", "y_0.npy")).AsSpan<float>().ToArray());
    }

    [Fact]
    public void UnknownInputNameIsOneLineNamingTheInputs()
    {
        var model = SaveModel(IdentityModel(DataType.Float, [2]));
        var (code, _, err) = Squash("run", model, "--input", "nope=" + SaveNpy(new Tensor(DataType.Float, 2), "x.npy"), "--output-dir", _dir);
        Assert.Equal(1, code);
        AssertOneLine(err, ErrorCodes.BadInput, "nope", "x");
    }

    [Fact]
    public void WrongShapeAndWrongTypeAreOneLineErrors()
    {
        var model = SaveModel(IdentityModel(DataType.Float, [2]));
        var (code, _, err) = Squash("run", model, "--input", "x=" + SaveNpy(new Tensor(DataType.Float, 3), "x.npy"), "--output-dir", _dir);
        Assert.Equal(1, code);
        AssertOneLine(err, ErrorCodes.BadInput, "[2]", "[3]");
        (code, _, err) = Squash("run", model, "--input", "x=" + SaveNpy(new Tensor(DataType.Int64, 2), "i.npy"), "--output-dir", _dir);
        Assert.Equal(1, code);
        AssertOneLine(err, ErrorCodes.BadInput, "int64", "float");
    }

    [Fact]
    public void UnreadableInputFileIsOneLineError()
    {
        var model = SaveModel(IdentityModel(DataType.Float, [2]));
        string bad = Path.Combine(_dir, "bad.npy");
        File.WriteAllText(bad, "not numpy");
        var (code, _, err) = Squash("run", model, "--input", "x=" + bad, "--output-dir", _dir);
        Assert.Equal(1, code);
        AssertOneLine(err, ErrorCodes.FileError, "bad.npy");
    }

    [Fact]
    public void UnsupportedOperatorNamesTheOperatorAndNode()
    {
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 2);
        var y = b.Node("FancyNewOp", x);
        b.Output(y);
        var model = SaveModel(b.Graph);
        var (code, _, err) = Squash("run", model, "--input", "x=" + SaveNpy(new Tensor(DataType.Float, 2), "x.npy"), "--output-dir", _dir);
        Assert.Equal(1, code);
        AssertOneLine(err, ErrorCodes.UnsupportedOperator, "FancyNewOp", "docs/operators.md");
    }

    /// <summary>
    /// <c>squash run --precision int8</c> on PP-OCR cls: pinned to the calibration samples' shape, calibrated on calib,
    /// and its outputs are the int8 model's: the label of every eval sample it runs is fp32's (the PpOcrInt8Tests bar),
    /// and they differ from fp32's probabilities (so int8 did run).
    /// </summary>
    [Fact]
    public void RunInt8CalibratesAndKeepsTheLabels()
    {
        string model = PpOcr.ModelPath(PpOcr.Cls);
        string inputs = Path.Combine(_dir, "in");
        Directory.CreateDirectory(inputs);
        foreach (var sample in PpOcr.Samples("eval", "cls").Take(4)) File.Copy(sample, Path.Combine(inputs, Path.GetFileName(sample)));
        string calibration = TestPaths.Asset("data", "ppocr", "calib", "cls");
        var (code, output, err) = Squash("run", model, "--input", "x=" + inputs, "--output-dir", Path.Combine(_dir, "int8"), "--precision", "int8", "--calibration", calibration);
        Assert.True(code == 0, err);
        Assert.Contains("units run in int8", output);
        Assert.Equal(0, Squash("run", model, "--input", "x=" + inputs, "--output-dir", Path.Combine(_dir, "fp32")).Code);
        bool differs = false;
        foreach (var stem in Directory.GetDirectories(Path.Combine(_dir, "fp32")).Select(Path.GetFileName))
        {
            var fp32 = Npy.Read(Path.Combine(_dir, "fp32", stem!, "softmax_0.tmp_0.npy")).AsSpan<float>().ToArray();
            var int8 = Npy.Read(Path.Combine(_dir, "int8", stem!, "softmax_0.tmp_0.npy")).AsSpan<float>().ToArray();
            Assert.Equal(fp32[0] > fp32[1], int8[0] > int8[1]);
            differs |= !fp32.SequenceEqual(int8);
        }
        Assert.True(differs);
    }

    /// <summary>
    /// <c>squash bench --precision int8</c> prepares the model as the build does (the int8 summary line, uint8 tensors and
    /// QConv nodes in the profile), and <c>--top</c> limits the slowest-node list; fp32 shows float convolutions.
    /// </summary>
    [Fact]
    public void BenchRunsTheInt8ModelAndProfilesIt()
    {
        string model = PpOcr.ModelPath(PpOcr.Cls);
        string x = PpOcr.Samples("eval", "cls").First();
        string calibration = TestPaths.Asset("data", "ppocr", "calib", "cls");
        var (code, output, err) = Squash("bench", model, "--input", "x=" + x, "--precision", "int8", "--calibration", calibration,
            "--iters", "2", "--warmup", "1", "--profile", "--top", "3");
        Assert.True(code == 0, err);
        Assert.Contains("layers in int8", output);
        Assert.Contains("the 3 slowest nodes", output);
        Assert.Contains("first runs ", output);
        var nodes = output.Split('\n').SkipWhile(l => !l.Contains("slowest nodes")).Skip(1).Where(l => l.Trim().Length > 0).ToArray();
        Assert.Equal(3, nodes.Length);
        Assert.Contains(nodes, l => l.Contains(" QConv ") && l.Contains("u8[") && l.Contains("GFLOP/s"));
        (code, output, err) = Squash("bench", model, "--input", "x=" + x, "--iters", "2", "--warmup", "1", "--profile");
        Assert.True(code == 0, err);
        Assert.DoesNotContain("QConv", output);
        Assert.Contains(output.Split('\n'), l => l.Contains(" FusedConv ") && l.Contains("f32[") && l.Contains("GFLOP/s"));
        (code, _, err) = Squash("bench", model, "--input", "x=" + x, "--precision", "int8");
        Assert.Equal(1, code);
        AssertOneLine(err, ErrorCodes.QuantizationSetup, "--calibration DIR");
    }

    [Fact]
    public void Int8WithoutGoodCalibrationIsOneLineError()
    {
        string model = PpOcr.ModelPath(PpOcr.Cls);
        string x = SaveNpy(new Tensor(DataType.Float, 1, 3, 48, 192), "x.npy");
        string[] run = ["run", model, "--input", "x=" + x, "--output-dir", _dir];
        var (code, _, err) = Squash([.. run, "--precision", "int8"]);
        Assert.Equal(1, code);
        AssertOneLine(err, ErrorCodes.QuantizationSetup, "--calibration DIR");
        (code, _, err) = Squash([.. run, "--calibration", _dir]);
        Assert.Equal(1, code);
        AssertOneLine(err, ErrorCodes.InvalidOption, "--precision int4, int8 or auto");
        (code, _, err) = Squash([.. run, "--precision", "int3"]);
        Assert.Equal(1, code);
        AssertOneLine(err, ErrorCodes.InvalidOption, "int3");
        (code, _, err) = Squash([.. run, "--precision", "int8", "--calibration", Path.Combine(_dir, "missing")]);
        Assert.Equal(1, code);
        AssertOneLine(err, ErrorCodes.CalibrationData, "missing");
        Directory.CreateDirectory(Path.Combine(_dir, "empty"));
        (code, _, err) = Squash([.. run, "--precision", "int8", "--calibration", Path.Combine(_dir, "empty")]);
        Assert.Equal(1, code);
        AssertOneLine(err, ErrorCodes.CalibrationData, "empty");
        // A sample of another type than the model's input.
        SaveNpy(new Tensor(DataType.Double, 1, 3, 48, 192), Path.Combine("bad", "000.npy"));
        (code, _, err) = Squash([.. run, "--precision", "int8", "--calibration", Path.Combine(_dir, "bad")]);
        Assert.Equal(1, code);
        AssertOneLine(err, ErrorCodes.CalibrationData, "000.npy");
    }

    [Fact]
    public void UsageErrorsExitWithTwo()
    {
        Assert.Equal(2, Squash("run").Code);
        Assert.Equal(2, Squash("run", "m.onnx", "--input", "x=1.npy").Code); // no --output-dir
        Assert.Equal(2, Squash("frobnicate").Code);
        Assert.Equal(2, Squash("inspect", "m.onnx", "--bogus").Code);
    }

    private static void AssertOneLine(string stderr, string code, params string[] contains)
    {
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, "expected one line, got:\n" + stderr);
        Assert.Contains(code, lines[0]);
        Assert.DoesNotContain("   at ", stderr);
        foreach (var s in contains) Assert.Contains(s, lines[0]);
    }
}
