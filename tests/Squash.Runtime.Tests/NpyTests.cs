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

    [Fact]
    public void AHeaderCutBeforeItsLengthIsAnError()
    {
        byte[] bytes = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 2, 0, 0x10, 0];
        var ex = Assert.Throws<SquashException>(() => Npy.Read(new MemoryStream(bytes), "cut.npy"));
        Assert.Equal(ErrorCodes.FileError, ex.Code);
        Assert.Contains("'cut.npy'", ex.Message);
        Assert.Contains("header is truncated", ex.Message);
    }

    [Fact]
    public void ACompressedFileClaimingAGigabyteFailsWithoutAllocatingIt()
    {
        // A version 1 header for 16,000 x 16,000 float32 (1 GB) followed by 10 bytes, gzip-compressed: the length of
        // the data is unknown until it is read.
        string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (16000, 16000), }";
        header = header.PadRight(118) + "\n";
        using var compressed = new MemoryStream();
        using (var gzip = new System.IO.Compression.GZipStream(compressed, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true))
        {
            gzip.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0, (byte)header.Length, 0]);
            gzip.Write(System.Text.Encoding.Latin1.GetBytes(header));
            gzip.Write(new byte[10]);
        }
        compressed.Position = 0;
        using var reader = new System.IO.Compression.GZipStream(compressed, System.IO.Compression.CompressionMode.Decompress);

        long before = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<SquashException>(() => Npy.Read(reader, "big.npy.gz"));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Contains("truncated", ex.Message);
        // One 1 MiB chunk and the decompressor's buffers, not the gigabyte the header claims.
        Assert.True(allocated < 8 << 20, $"{allocated} bytes allocated");
    }
}
