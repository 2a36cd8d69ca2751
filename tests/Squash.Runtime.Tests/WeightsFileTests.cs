using System.Buffers.Binary;
using System.IO.Hashing;
using Squash.Runtime.Weights;

namespace Squash.Runtime.Tests;

/// <summary>The weights file (format version 2): entries stored in their own type or, for float tensors of float16
/// values, as float16, widened back bit for bit; damaged and unknown storage types are coded errors.</summary>
public sealed class WeightsFileTests
{
    /// <summary>Float16 values across the range: zeros, the smallest subnormal 2^-24, the largest subnormal, the smallest
    /// normal 2^-14, ordinary values, and ±65504 (the largest finite).</summary>
    private static readonly float[] s_halfValues =
    [
        0f, -0f, MathF.Pow(2, -24), -MathF.Pow(2, -24), 1023 * MathF.Pow(2, -24), MathF.Pow(2, -14), 1f, -1.5f, 0.333251953125f,
        1 + MathF.Pow(2, -10), 2048f, 65504f, -65504f, 3.140625f,
    ];

    private static (string, Tensor, DataType)[] Entries()
    {
        var halves = Tensor.From<float>(s_halfValues, 2, 7);
        var plain = Tensor.From<float>([0.1f, 1e-30f, 1e30f], 3);
        var indices = Tensor.From<long>([1, -2, long.MaxValue], 3);
        var scales = Tensor.From<Half>([(Half)0.5f, (Half)(-2f)], 2);
        return [("w", halves, DataType.Float16), ("b", plain, DataType.Float), ("i", indices, DataType.Int64), ("h", scales, DataType.Float16)];
    }

    private static byte[] Write() => WeightsFile.Write([.. Entries().Select(e => new WeightsEntry(e.Item1, e.Item2, e.Item3))]);

    [Fact]
    public void Float16EntriesWidenBitForBitAndHalveTheirBytes()
    {
        var file = Write();
        var read = WeightsFile.Read(new MemoryStream(file));
        foreach (var (name, tensor, storage) in Entries())
        {
            Assert.Equal(tensor.DataType, read[name].DataType);
            Assert.Equal(tensor.Shape, read[name].Shape);
            Assert.True(tensor.Bytes.SequenceEqual(read[name].Bytes), name);
            Assert.Equal(storage, read.StorageType(name));
        }
        // Every tensor starts at a multiple of 64 bytes in the file: w (14 values) takes 28 bytes as float16 against 56.
        Assert.Equal(64 * 4, read.StoredBytes);
        var allFloat = WeightsFile.Write([.. Entries().Select(e => (e.Item1, e.Item2))]);
        Assert.Equal(64 * 4, WeightsFile.Read(new MemoryStream(allFloat)).StoredBytes);
        var big = Tensor.From<float>([.. Enumerable.Range(0, 1024).Select(i => (float)(Half)(i * 0.37f))], 1024);
        long asFloat = WeightsFile.Read(new MemoryStream(WeightsFile.Write([new WeightsEntry("big", big)]))).StoredBytes;
        long asHalf = WeightsFile.Read(new MemoryStream(WeightsFile.Write([new WeightsEntry("big", big, DataType.Float16)]))).StoredBytes;
        Assert.Equal((4096, 2048), (asFloat, asHalf));
        // Deterministic: the same entries give the same bytes.
        Assert.Equal(file, Write());
    }

    [Fact]
    public void TheWriterRefusesValuesFloat16CannotHold()
    {
        var inexact = Tensor.From<float>([0.1f], 1);
        Assert.Throws<ArgumentException>(() => WeightsFile.Write([new WeightsEntry("w", inexact, DataType.Float16)]));
        var beyond = Tensor.From<float>([65520f], 1);
        Assert.Throws<ArgumentException>(() => WeightsFile.Write([new WeightsEntry("w", beyond, DataType.Float16)]));
        var ints = Tensor.From<long>([1], 1);
        Assert.Throws<ArgumentException>(() => WeightsFile.Write([new WeightsEntry("i", ints, DataType.Float16)]));
    }

    [Theory]
    [InlineData(7)] // int64: not a type float can be stored as
    [InlineData(0)] // undefined
    [InlineData(200)] // no ONNX type
    public void AnUnknownStorageTypeIsCodedError(byte storage)
    {
        var file = Write();
        // The first entry: u16 name length, "w", u8 type, then the storage type; the table checksum is made valid again,
        // as a writer of another version would have written it.
        int at = WeightsFile.HeaderBytes + 2 + 1 + 1;
        Assert.Equal((byte)DataType.Float16, file[at]);
        file[at] = storage;
        Rehash(file);
        var error = Assert.Throws<SquashException>(() => WeightsFile.Read(new MemoryStream(file), "model.sqw"));
        Assert.Equal(ErrorCodes.WeightsStorageType, error.Code);
        Assert.Contains("tensor 'w' is float stored as", error.Message);
        Assert.Contains("model.sqw", error.Message);
    }

    [Fact]
    public void DamageAndOlderVersionsAreFileErrors()
    {
        var file = Write();
        var damaged = (byte[])file.Clone();
        damaged[^64] ^= 1; // inside the last tensor's data
        Assert.Contains("data is damaged", Assert.Throws<SquashException>(() => WeightsFile.Read(new MemoryStream(damaged))).Message);
        var table = (byte[])file.Clone();
        table[WeightsFile.HeaderBytes + 4] ^= 1;
        Assert.Equal(ErrorCodes.FileError, Assert.Throws<SquashException>(() => WeightsFile.Read(new MemoryStream(table))).Code);
        var version1 = (byte[])file.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(version1.AsSpan(4), 1);
        var error = Assert.Throws<SquashException>(() => WeightsFile.Read(new MemoryStream(version1)));
        Assert.Equal(ErrorCodes.FileError, error.Code);
        Assert.Contains("format version 1", error.Message);
        var truncated = file[..^10];
        Assert.Contains("truncated", Assert.Throws<SquashException>(() => WeightsFile.Read(new MemoryStream(truncated))).Message);
    }

    [Fact]
    public void StoredBytesThatDoNotMatchTheStorageTypeAreRefused()
    {
        var file = Write();
        // Entry "w": after name (2 + 1), type, storage, rank (3), dims (2 x 4), offset (8): its byte count, 28 as float16.
        int at = WeightsFile.HeaderBytes + 3 + 3 + 8 + 8;
        Assert.Equal(28, BinaryPrimitives.ReadInt64LittleEndian(file.AsSpan(at)));
        BinaryPrimitives.WriteInt64LittleEndian(file.AsSpan(at), 56);
        Rehash(file);
        var error = Assert.Throws<SquashException>(() => WeightsFile.Read(new MemoryStream(file)));
        Assert.Equal(ErrorCodes.FileError, error.Code);
        Assert.Contains("tensor 'w'", error.Message);
    }

    /// <summary>Recomputes the table checksum (header bytes 40..48) after an edit of the table.</summary>
    private static void Rehash(byte[] file)
    {
        int tableBytes = BinaryPrimitives.ReadInt32LittleEndian(file.AsSpan(12));
        var hasher = new XxHash3();
        hasher.Append(file.AsSpan(0, 40));
        hasher.Append(file.AsSpan(WeightsFile.HeaderBytes, tableBytes));
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(40), hasher.GetCurrentHashAsUInt64());
    }
}
