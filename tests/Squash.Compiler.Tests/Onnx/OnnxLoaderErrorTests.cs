using Google.Protobuf;
using Squash.Compiler.Onnx;
using Squash.Runtime;
using P = global::Onnx;

namespace Squash.Compiler.Tests.Onnx;

/// <summary>Bad model files end in a coded <see cref="SquashException"/>, never a crash or a read outside the model's folder.</summary>
public sealed class OnnxLoaderErrorTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("squash-loader-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void MissingFileIsSQ1001()
    {
        var e = Assert.Throws<SquashException>(() => OnnxLoader.Load(Path.Combine(_dir, "nope.onnx")));
        Assert.Equal(ErrorCodes.ModelNotFound, e.Code);
    }

    [Fact]
    public void GarbageIsSQ1002()
    {
        string path = Path.Combine(_dir, "bad.onnx");
        File.WriteAllBytes(path, [0xFF, 0xFF, 0xFF, 0x07, 0x12, 0x34]);
        var e = Assert.Throws<SquashException>(() => OnnxLoader.Load(path));
        Assert.Equal(ErrorCodes.CorruptModel, e.Code);
    }

    [Fact]
    public void TruncatedModelIsSQ1002()
    {
        var bytes = File.ReadAllBytes(Support.TestPaths.Asset("models", "ppocr", "ch_ppocr_mobile_v2.0_cls_infer.onnx"));
        var e = Assert.Throws<SquashException>(() => OnnxLoader.Load(bytes[..(bytes.Length / 2)], null));
        Assert.Equal(ErrorCodes.CorruptModel, e.Code);
    }

    [Theory]
    [InlineData("../outside.bin", "leaves the model's folder")]
    [InlineData("sub/../../outside.bin", "leaves the model's folder")]
    [InlineData("/etc/passwd", "absolute")]
    [InlineData("missing.bin", "does not exist")]
    [InlineData("sub", "is a folder")]
    [InlineData(".", "is a folder")]
    [InlineData("w.bin\0.txt", "not a valid file name")]
    [InlineData("", "without a location")]
    public void ExternalDataOutsideTheFolderIsRefused(string location, string expected)
    {
        Directory.CreateDirectory(Path.Combine(_dir, "sub"));
        File.WriteAllBytes(Path.Combine(_dir, "w.bin"), new byte[16]);
        var e = Assert.Throws<SquashException>(() => LoadWithExternal(location, offset: 0, length: 16));
        Assert.Equal(ErrorCodes.ExternalData, e.Code);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void ExternalDataThroughALinkedParentFolderThatLeavesTheFolderIsRefused()
    {
        string outside = Directory.CreateTempSubdirectory("squash-outside-").FullName;
        try
        {
            File.WriteAllBytes(Path.Combine(outside, "w.bin"), new byte[16]);
            Directory.CreateSymbolicLink(Path.Combine(_dir, "data"), outside);
            var e = Assert.Throws<SquashException>(() => LoadWithExternal("data/w.bin", 0, 16));
            Assert.Equal(ErrorCodes.ExternalData, e.Code);
            Assert.Contains("link", e.Message);
        }
        finally
        {
            Directory.Delete(outside, true);
        }
    }

    [Fact]
    public void ExternalDataThroughALinkThatStaysInsideTheFolderLoads()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "real"));
        File.WriteAllBytes(Path.Combine(_dir, "real", "w.bin"), new byte[16]);
        File.CreateSymbolicLink(Path.Combine(_dir, "alias.bin"), Path.Combine("real", "w.bin"));
        var model = LoadWithExternal("alias.bin", 0, 16);
        Assert.Equal(4, model.Graph.Initializers[0].Constant!.ElementCount);
    }

    [Fact]
    public void ExternalDataThroughALinkLoopIsRefused()
    {
        File.CreateSymbolicLink(Path.Combine(_dir, "a.bin"), "b.bin");
        File.CreateSymbolicLink(Path.Combine(_dir, "b.bin"), "a.bin");
        var e = Assert.Throws<SquashException>(() => LoadWithExternal("a.bin", 0, 16));
        Assert.Equal(ErrorCodes.ExternalData, e.Code);
    }

    [Theory]
    [InlineData("8", "16", "only 20 bytes")]
    [InlineData("20", null, "only 20 bytes")]
    [InlineData("9223372036854775807", "16", "only 20 bytes")] // offset + length overflows a long
    [InlineData("-4", "16", "negative")]
    [InlineData("0", "-2", "negative")]
    [InlineData("abc", "16", "non-numeric")]
    [InlineData("0", "1e3", "non-numeric")]
    [InlineData("99999999999999999999", "16", "non-numeric")]
    [InlineData("0", "12", "declares 12 bytes")]
    public void ExternalDataOffsetsAndLengthsAreChecked(string? offset, string? length, string expected)
    {
        File.WriteAllBytes(Path.Combine(_dir, "w.bin"), new byte[20]);
        var e = Assert.Throws<SquashException>(() => LoadWithExternal("w.bin", offset, length));
        Assert.Equal(ErrorCodes.ExternalData, e.Code);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void ExternalDataIsRefusedWhenLoadingFromBytes()
    {
        LoadWithExternal("w.bin", "0", "16", write: false);
        var e = Assert.Throws<SquashException>(() => OnnxLoader.Load(File.ReadAllBytes(Path.Combine(_dir, "model.onnx")), null));
        Assert.Equal(ErrorCodes.ExternalData, e.Code);
        Assert.Contains("not allowed", e.Message);
    }

    [Fact]
    public void ExternalDataThroughALinkThatLeavesTheFolderIsRefused()
    {
        string outside = Directory.CreateTempSubdirectory("squash-outside-").FullName;
        try
        {
            File.WriteAllBytes(Path.Combine(outside, "w.bin"), new byte[16]);
            File.CreateSymbolicLink(Path.Combine(_dir, "link.bin"), Path.Combine(outside, "w.bin"));
            var e = Assert.Throws<SquashException>(() => LoadWithExternal("link.bin", 0, 16));
            Assert.Contains("link", e.Message);
        }
        finally
        {
            Directory.Delete(outside, true);
        }
    }

    [Fact]
    public void ExternalDataPastTheEndOfTheFileIsAnError()
    {
        File.WriteAllBytes(Path.Combine(_dir, "w.bin"), new byte[20]);
        var e = Assert.Throws<SquashException>(() => LoadWithExternal("w.bin", offset: 8, length: 16));
        Assert.Equal(ErrorCodes.ExternalData, e.Code);
        Assert.Contains("only 20 bytes", e.Message);
    }

    [Fact]
    public void ExternalDataInsideTheFolderLoads()
    {
        var data = new byte[24];
        BitConverter.GetBytes(1.5f).CopyTo(data, 8);
        File.WriteAllBytes(Path.Combine(_dir, "w.bin"), data);
        var model = LoadWithExternal("w.bin", offset: 8, length: 16);
        Assert.Equal(1.5f, model.Graph.Initializers[0].Constant!.AsSpan<float>()[0]);
    }

    [Fact]
    public void CycleIsSQ1005()
    {
        var graph = new P.GraphProto { Name = "g" };
        graph.Node.Add(new P.NodeProto { OpType = "Relu", Name = "a", Input = { "y" }, Output = { "x" } });
        graph.Node.Add(new P.NodeProto { OpType = "Relu", Name = "b", Input = { "x" }, Output = { "y" } });
        graph.Output.Add(new P.ValueInfoProto { Name = "y" });
        var e = Assert.Throws<SquashException>(() => OnnxLoader.Load(Wrap(graph).ToByteArray(), null));
        Assert.Equal(ErrorCodes.InvalidModel, e.Code);
        Assert.Contains("cycle", e.Message);
    }

    [Fact]
    public void UndefinedInputIsSQ1005AndNamesIt()
    {
        var graph = new P.GraphProto { Name = "g" };
        graph.Node.Add(new P.NodeProto { OpType = "Relu", Name = "a", Input = { "ghost" }, Output = { "y" } });
        graph.Output.Add(new P.ValueInfoProto { Name = "y" });
        var e = Assert.Throws<SquashException>(() => OnnxLoader.Load(Wrap(graph).ToByteArray(), null));
        Assert.Equal(ErrorCodes.InvalidModel, e.Code);
        Assert.Contains("ghost", e.Message);
    }

    private Squash.Runtime.Ir.Model LoadWithExternal(string location, long offset, long length) =>
        LoadWithExternal(location, offset.ToString(System.Globalization.CultureInfo.InvariantCulture), length.ToString(System.Globalization.CultureInfo.InvariantCulture))!;

    /// <summary>Writes model.onnx with a float[4] initializer in external data (fields left out where null) and, unless
    /// <paramref name="write"/> is false only writes it, loads it.</summary>
    private Squash.Runtime.Ir.Model? LoadWithExternal(string location, string? offset, string? length, bool write = true)
    {
        var tensor = new P.TensorProto { Name = "w", DataType = (int)DataType.Float, Dims = { 4 }, DataLocation = P.TensorProto.Types.DataLocation.External };
        tensor.ExternalData.Add(new P.StringStringEntryProto { Key = "location", Value = location });
        if (offset is not null) tensor.ExternalData.Add(new P.StringStringEntryProto { Key = "offset", Value = offset });
        if (length is not null) tensor.ExternalData.Add(new P.StringStringEntryProto { Key = "length", Value = length });
        var graph = new P.GraphProto { Name = "g", Initializer = { tensor } };
        graph.Node.Add(new P.NodeProto { OpType = "Identity", Name = "id", Input = { "w" }, Output = { "y" } });
        graph.Output.Add(new P.ValueInfoProto { Name = "y" });
        string path = Path.Combine(_dir, "model.onnx");
        File.WriteAllBytes(path, Wrap(graph).ToByteArray());
        return write ? OnnxLoader.Load(path) : null;
    }

    private static P.ModelProto Wrap(P.GraphProto graph) => new()
    {
        IrVersion = 8,
        Graph = graph,
        OpsetImport = { new P.OperatorSetIdProto { Domain = "", Version = 17 } },
    };
}
