using System.IO.Compression;
using Squash.Compiler.Quantization;
using Squash.Runtime;
using Squash.Runtime.IO;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Tests.Quantization;

/// <summary>Calibration folders: both layouts, their order and split, and every error with its code and file.</summary>
public sealed class CalibrationDataSetTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("squash-calib-data-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static readonly Value[] s_image = [new Value("x", DataType.Float, [1, 3, -1, -1])];
    private static readonly Value[] s_pair = [new Value("ids:0", DataType.Int64, [1, -1]), new Value("scale", DataType.Float, [1])];

    [Fact]
    public void OneFilePerSampleInOrdinalOrderIgnoringOtherFiles()
    {
        WriteNpy("b.npy", Image(2));
        WriteNpy("a.npy.gz", Image(1), gzip: true);
        WriteNpy("B.npy", Image(0));
        File.WriteAllText(Path.Combine(_dir, "labels.tsv"), "a.npy\t0\n");
        WriteNpy(".hidden.npy", Image(9));
        var data = CalibrationDataSet.Open(_dir, s_image);
        Assert.Equal(["B", "a", "b"], data.Samples.Select(s => s.Name));
        Assert.Equal([0, 1, 2], data.Samples.Select(s => s.Index));
        var a = data.Samples[1].Load();
        Assert.Equal(1f, a["x"].AsSpan<float>()[0]);
        Assert.Equal([1, 3, 4, 5], a["x"].Shape);
    }

    [Fact]
    public void OneSubFolderPerSampleWithAFilePerInput()
    {
        foreach (var sample in new[] { "s1", "s0" })
        {
            WriteNpy(Path.Combine(sample, "ids_0.npy"), Tensor.From<long>([1, 2, 3], 1, 3));
            WriteNpy(Path.Combine(sample, "scale.npy"), Tensor.From<float>([0.5f], 1));
        }
        var data = CalibrationDataSet.Open(_dir, s_pair);
        Assert.Equal(["s0", "s1"], data.Samples.Select(s => s.Name));
        Assert.Equal(Path.Combine(_dir, "s0", "scale.npy"), data.Samples[0].Files[1]);
        var tensors = data.Samples[1].Load();
        Assert.Equal([1L, 2, 3], tensors["ids:0"].AsSpan<long>().ToArray());
        Assert.Equal("ids_0", CalibrationDataSet.FileStem("ids:0"));
    }

    [Fact]
    public void EveryKthSampleIsHeldOut()
    {
        for (int i = 0; i < 7; i++) WriteNpy($"{i:D3}.npy", Image(i));
        var data = CalibrationDataSet.Open(_dir, s_image, new CalibrationSplit(3));
        Assert.Equal(["002", "005"], data.HeldOutSamples.Select(s => s.Name));
        Assert.Equal(["000", "001", "003", "004", "006"], data.CalibrationSamples.Select(s => s.Name));
        Assert.Equal(7, CalibrationDataSet.Open(_dir, s_image).CalibrationSamples.Count());
        AssertError(() => CalibrationDataSet.Open(_dir, s_image, new CalibrationSplit(1)), "every 1th");
        AssertError(() => CalibrationDataSet.Open(_dir, s_image, new CalibrationSplit(-2)), "every -2th");
    }

    [Fact]
    public void FolderErrorsNameTheFolderOrFile()
    {
        string missing = Path.Combine(_dir, "missing");
        AssertError(() => CalibrationDataSet.Open(missing, s_image), missing);
        AssertError(() => CalibrationDataSet.Open(_dir, s_image), _dir, "holds no samples");
        File.WriteAllText(Path.Combine(_dir, "README.md"), "no samples here");
        AssertError(() => CalibrationDataSet.Open(_dir, s_image), _dir, "holds no samples");
        WriteNpy("a.npy", Image(0));
        Directory.CreateDirectory(Path.Combine(_dir, "s0"));
        AssertError(() => CalibrationDataSet.Open(_dir, s_image), "'a.npy'", "'s0'", "mixes");
        Directory.Delete(Path.Combine(_dir, "s0"));
        AssertError(() => CalibrationDataSet.Open(_dir, s_pair), Path.Combine(_dir, "a.npy"), "2 inputs");
        WriteNpy("a.npy.gz", Image(0), gzip: true);
        AssertError(() => CalibrationDataSet.Open(_dir, s_image), Path.Combine(_dir, "a.npy.gz"), "same sample");
    }

    [Fact]
    public void SampleFolderErrorsNameTheFile()
    {
        WriteNpy(Path.Combine("s0", "ids_0.npy"), Tensor.From<long>([1], 1, 1));
        AssertError(() => CalibrationDataSet.Open(_dir, s_pair), Path.Combine(_dir, "s0", "scale.npy"), "missing");
        WriteNpy(Path.Combine("s0", "scale.npy"), Tensor.From<float>([1f], 1));
        WriteNpy(Path.Combine("s0", "scales.npy"), Tensor.From<float>([1f], 1));
        AssertError(() => CalibrationDataSet.Open(_dir, s_pair), Path.Combine(_dir, "s0", "scales.npy"), "matches no model input");
    }

    [Fact]
    public void LoadErrorsNameTheFile()
    {
        File.WriteAllText(Path.Combine(_dir, "0-garbage.npy"), "not numpy");
        WriteNpy("1-double.npy", new Tensor(DataType.Double, 1, 3, 4, 5));
        WriteNpy("2-rank.npy", new Tensor(DataType.Float, 3, 4, 5));
        WriteNpy("3-channels.npy", new Tensor(DataType.Float, 1, 4, 4, 5));
        var nan = Image(0);
        nan.AsSpan<float>()[7] = float.NaN;
        WriteNpy("4-nan.npy", nan);
        var inf = Image(0);
        inf.AsSpan<float>()[59] = float.NegativeInfinity;
        WriteNpy("5-inf.npy", inf);
        WriteNpy("6-dynamic.npy", new Tensor(DataType.Float, 1, 3, 7, 2));
        var samples = CalibrationDataSet.Open(_dir, s_image).Samples;
        AssertError(() => samples[0].Load(), samples[0].Files[0], "unreadable");
        AssertError(() => samples[1].Load(), samples[1].Files[0], "holds double data", "float32");
        AssertError(() => samples[2].Load(), samples[2].Files[0], "[3,4,5]", "[1,3,?,?]");
        AssertError(() => samples[3].Load(), samples[3].Files[0], "[1,4,4,5]");
        AssertError(() => samples[4].Load(), samples[4].Files[0], "NaN at [0,0,1,2]");
        AssertError(() => samples[5].Load(), samples[5].Files[0], "-Infinity at [0,2,3,4]");
        Assert.Equal([1, 3, 7, 2], samples[6].Load()["x"].Shape); // dynamic dimensions take any size
    }

    [Fact]
    public void PinnedDimensionsAreChecked()
    {
        WriteNpy("a.npy", new Tensor(DataType.Float, 1, 3, 7, 2));
        var pinned = new[] { new Value("x", DataType.Float, [1, 3, 4, 5]) };
        var sample = CalibrationDataSet.Open(_dir, pinned).Samples[0];
        AssertError(() => sample.Load(), sample.Files[0], "[1,3,7,2]", "[1,3,4,5]");
    }

    private static void AssertError(Action action, params string[] fragments)
    {
        var e = Assert.Throws<SquashException>(action);
        Assert.Equal(ErrorCodes.CalibrationData, e.Code);
        foreach (var f in fragments) Assert.Contains(f, e.Message);
    }

    private static Tensor Image(int value)
    {
        var t = new Tensor(DataType.Float, 1, 3, 4, 5);
        t.AsSpan<float>().Fill(value);
        return t;
    }

    private void WriteNpy(string relative, Tensor tensor, bool gzip = false)
    {
        string path = Path.Combine(_dir, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var file = File.Create(path);
        if (!gzip)
        {
            Npy.Write(file, tensor);
            return;
        }
        using var zip = new GZipStream(file, CompressionLevel.Fastest);
        Npy.Write(zip, tensor);
    }
}
