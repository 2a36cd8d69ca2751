using Squash.Runtime;
using Squash.Runtime.IO;

namespace Squash.Runtime.Tests;

public sealed class NpyTests
{
    [Theory]
    [InlineData(DataType.Float)]
    [InlineData(DataType.Float16)]
    [InlineData(DataType.Int64)]
    [InlineData(DataType.UInt8)]
    [InlineData(DataType.Bool)]
    [InlineData(DataType.Int32)]
    public void RoundTripKeepsTypeShapeAndBytes(DataType type)
    {
        var tensor = new Tensor(type, 2, 3, 4);
        var bytes = tensor.Bytes;
        for (int i = 0; i < bytes.Length; i++) bytes[i] = (byte)(type == DataType.Bool ? i % 2 : i * 7);
        using var stream = new MemoryStream();
        Npy.Write(stream, tensor);
        // NumPy requires the data to start at a multiple of 64 bytes for version 1 files written by it; we do the same.
        Assert.Equal(0, (stream.Length - tensor.ByteLength) % 64);
        stream.Position = 0;
        var back = Npy.Read(stream);
        Assert.Equal(type, back.DataType);
        Assert.Equal(tensor.Shape, back.Shape);
        Assert.True(tensor.Bytes.SequenceEqual(back.Bytes));
    }

    [Fact]
    public void ReadsScalarAndOneDimensionalShapes()
    {
        foreach (var shape in new[] { Array.Empty<int>(), [5] })
        {
            using var stream = new MemoryStream();
            Npy.Write(stream, new Tensor(DataType.Float, shape));
            stream.Position = 0;
            Assert.Equal(shape, Npy.Read(stream).Shape);
        }
    }

    [Fact]
    public void RejectsFortranOrderWithAnExplanation()
    {
        using var stream = new MemoryStream();
        Npy.Write(stream, new Tensor(DataType.Float, 2, 2));
        var bytes = stream.ToArray();
        var text = System.Text.Encoding.Latin1.GetString(bytes).Replace("'fortran_order': False", "'fortran_order': True ");
        var ex = Assert.Throws<SquashException>(() => Npy.Read(new MemoryStream(System.Text.Encoding.Latin1.GetBytes(text))));
        Assert.Equal(ErrorCodes.FileError, ex.Code);
        Assert.Contains("Fortran", ex.Message);
    }

    [Fact]
    public void RejectsTruncatedData()
    {
        using var stream = new MemoryStream();
        Npy.Write(stream, new Tensor(DataType.Float, 4, 4));
        var bytes = stream.ToArray()[..^4];
        var ex = Assert.Throws<SquashException>(() => Npy.Read(new MemoryStream(bytes)));
        Assert.Contains("fewer bytes", ex.Message);
    }
}
