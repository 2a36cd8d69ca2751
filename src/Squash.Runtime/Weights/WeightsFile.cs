using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.CompilerServices;
using System.Text;

namespace Squash.Runtime.Weights;

/// <summary>
/// The constants of a compiled model (<c>.sqw</c>), read once into one pinned buffer; every tensor is a view of it.
/// </summary>
/// <remarks>
/// Layout, version 1, little-endian (see docs/weights-format.md):
/// <code>
/// 0   "SQW1"              magic
/// 4   u32 version = 1
/// 8   u32 tensor count
/// 12  u32 table bytes     (entries below)
/// 16  u64 data offset     (from the start of the file; a multiple of 64)
/// 24  u64 data bytes
/// 32  u64 XxHash3 of the data
/// 40  u64 XxHash3 of bytes 0..40 and the table
/// 48  table: per tensor: u16 name length, UTF-8 name, u8 data type (ONNX code), u8 rank, i32 dims[rank],
///            u64 offset (from the data offset; a multiple of 64), u64 bytes
///     zero padding to the data offset, then the data
/// </code>
/// </remarks>
public sealed class WeightsFile
{
    /// <summary>The four bytes every weights file starts with.</summary>
    public static ReadOnlySpan<byte> Magic => "SQW1"u8;

    /// <summary>The format version this runtime reads and the compiler writes.</summary>
    public const int Version = 1;

    /// <summary>Size of the fixed header.</summary>
    public const int HeaderBytes = 48;

    /// <summary>Alignment of the data section and of every tensor in it.</summary>
    public const int Alignment = 64;

    private readonly Dictionary<string, Tensor> _tensors;

    private WeightsFile(Dictionary<string, Tensor> tensors, ulong checksum)
    {
        _tensors = tensors;
        Checksum = checksum;
    }

    /// <summary>XxHash3 of the data section; the generated code checks it against the value it was built with.</summary>
    public ulong Checksum { get; }

    /// <summary>Number of tensors.</summary>
    public int Count => _tensors.Count;

    /// <summary>The tensor stored under <paramref name="name"/>.</summary>
    /// <exception cref="SquashException">There is no such tensor (the weights do not belong to this model).</exception>
    public Tensor this[string name] => _tensors.TryGetValue(name, out var t)
        ? t
        : throw new SquashException(ErrorCodes.FileError, $"The weights file has no tensor '{name}'; it does not belong to this model. Rebuild the project.");

    /// <summary>Reads a weights file embedded as a manifest resource of <paramref name="assembly"/>.</summary>
    /// <exception cref="SquashException">The resource is missing or damaged.</exception>
    public static WeightsFile FromResource(System.Reflection.Assembly assembly, string resourceName)
    {
        using var stream = assembly.GetManifestResourceStream(resourceName)
            ?? throw new SquashException(ErrorCodes.FileError,
                $"Assembly '{assembly.GetName().Name}' has no embedded weights '{resourceName}'. Rebuild the project; if the model uses WeightsStorage=File, load it from the file instead.");
        return Read(stream, resourceName);
    }

    /// <summary>Reads a weights file from disk.</summary>
    public static WeightsFile FromFile(string path)
    {
        if (!File.Exists(path))
            throw new SquashException(ErrorCodes.FileError, $"Weights file '{path}' does not exist. It is written next to the app by the build (WeightsStorage=File); deploy it with the app.");
        using var stream = File.OpenRead(path);
        return Read(stream, path);
    }

    /// <summary>Reads and verifies a weights file from a stream.</summary>
    /// <exception cref="SquashException">The stream is not a valid weights file of this version, or is damaged.</exception>
    public static WeightsFile Read(Stream stream, string displayName = "weights")
    {
        var header = new byte[HeaderBytes];
        if (stream.ReadAtLeast(header, HeaderBytes, throwOnEndOfStream: false) < HeaderBytes || !header.AsSpan(0, 4).SequenceEqual(Magic))
            throw Bad(displayName, "it is not a Squash weights file");
        int version = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(4));
        if (version != Version)
            throw Bad(displayName, $"it is format version {version}; this Squash.Runtime reads version {Version}. Use matching Squash.Build and Squash.Runtime versions");
        int count = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(8));
        int tableBytes = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(12));
        long dataOffset = BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(16));
        long dataBytes = BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(24));
        ulong dataHash = BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(32));
        ulong tableHash = BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(40));
        if (count < 0 || tableBytes < 0 || tableBytes > 1 << 28 || dataOffset < HeaderBytes + tableBytes || dataBytes < 0 || dataBytes > Array.MaxLength - Alignment)
            throw Bad(displayName, "its header is damaged");
        var table = new byte[tableBytes];
        if (stream.ReadAtLeast(table, tableBytes, throwOnEndOfStream: false) < tableBytes) throw Bad(displayName, "it is truncated");
        var hasher = new XxHash3();
        hasher.Append(header.AsSpan(0, 40));
        hasher.Append(table);
        if (hasher.GetCurrentHashAsUInt64() != tableHash) throw Bad(displayName, "its table of contents is damaged (checksum mismatch)");

        long skip = dataOffset - HeaderBytes - tableBytes;
        if (skip > 0)
        {
            var pad = new byte[skip];
            if (stream.ReadAtLeast(pad, (int)skip, throwOnEndOfStream: false) < skip) throw Bad(displayName, "it is truncated");
        }
        var data = GC.AllocateUninitializedArray<byte>((int)dataBytes + Alignment, pinned: true);
        int baseOffset = AlignedBase(data);
        var dataSpan = data.AsSpan(baseOffset, (int)dataBytes);
        if (stream.ReadAtLeast(dataSpan, (int)dataBytes, throwOnEndOfStream: false) < dataBytes) throw Bad(displayName, "it is truncated");
        if (XxHash3.HashToUInt64(dataSpan) != dataHash) throw Bad(displayName, "its data is damaged (checksum mismatch)");

        var tensors = new Dictionary<string, Tensor>(count, StringComparer.Ordinal);
        int p = 0;
        try
        {
            for (int i = 0; i < count; i++)
            {
                int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(table.AsSpan(p));
                string name = Encoding.UTF8.GetString(table, p + 2, nameLength);
                p += 2 + nameLength;
                var type = (DataType)table[p];
                int rank = table[p + 1];
                p += 2;
                var shape = new int[rank];
                for (int d = 0; d < rank; d++, p += 4) shape[d] = BinaryPrimitives.ReadInt32LittleEndian(table.AsSpan(p));
                long offset = BinaryPrimitives.ReadInt64LittleEndian(table.AsSpan(p));
                long bytes = BinaryPrimitives.ReadInt64LittleEndian(table.AsSpan(p + 8));
                p += 16;
                if (offset < 0 || bytes < 0 || offset + bytes > dataBytes || bytes != Shapes.ElementCount(shape) * DataTypes.SizeOf(type))
                    throw Bad(displayName, $"tensor '{name}' lies outside the data or does not match its shape");
                tensors[name] = new Tensor(type, shape, data, baseOffset + (int)offset);
            }
        }
        catch (Exception e) when (e is ArgumentException or ArgumentOutOfRangeException or IndexOutOfRangeException)
        {
            throw Bad(displayName, "its table of contents is damaged");
        }
        return new WeightsFile(tensors, dataHash);
    }

    /// <summary>Writes tensors in this format. The order of <paramref name="tensors"/> is kept, so equal inputs give
    /// byte-identical files.</summary>
    public static byte[] Write(IReadOnlyList<(string Name, Tensor Tensor)> tensors)
    {
        var table = new MemoryStream();
        var w = new BinaryWriter(table, Encoding.UTF8, leaveOpen: true);
        long offset = 0;
        var offsets = new long[tensors.Count];
        for (int i = 0; i < tensors.Count; i++)
        {
            var (name, t) = tensors[i];
            var nameBytes = Encoding.UTF8.GetBytes(name);
            if (nameBytes.Length > ushort.MaxValue) throw new ArgumentException($"Tensor name '{name[..64]}...' is too long.");
            w.Write((ushort)nameBytes.Length);
            w.Write(nameBytes);
            w.Write((byte)t.DataType);
            w.Write((byte)t.Rank);
            foreach (int d in t.Shape) w.Write(d);
            offsets[i] = offset;
            w.Write(offset);
            w.Write((long)t.ByteLength);
            offset = Align(offset + t.ByteLength);
        }
        w.Flush();
        long dataOffset = Align(HeaderBytes + table.Length);
        long dataBytes = offset;
        var file = new byte[dataOffset + dataBytes];
        for (int i = 0; i < tensors.Count; i++) tensors[i].Tensor.Bytes.CopyTo(file.AsSpan((int)(dataOffset + offsets[i])));
        var header = file.AsSpan(0, HeaderBytes);
        Magic.CopyTo(header);
        BinaryPrimitives.WriteInt32LittleEndian(header[4..], Version);
        BinaryPrimitives.WriteInt32LittleEndian(header[8..], tensors.Count);
        BinaryPrimitives.WriteInt32LittleEndian(header[12..], (int)table.Length);
        BinaryPrimitives.WriteInt64LittleEndian(header[16..], dataOffset);
        BinaryPrimitives.WriteInt64LittleEndian(header[24..], dataBytes);
        BinaryPrimitives.WriteUInt64LittleEndian(header[32..], XxHash3.HashToUInt64(file.AsSpan((int)dataOffset)));
        table.ToArray().CopyTo(file, HeaderBytes);
        var hasher = new XxHash3();
        hasher.Append(file.AsSpan(0, 40));
        hasher.Append(file.AsSpan(HeaderBytes, (int)table.Length));
        BinaryPrimitives.WriteUInt64LittleEndian(header[40..], hasher.GetCurrentHashAsUInt64());
        return file;
    }

    private static long Align(long x) => (x + Alignment - 1) / Alignment * Alignment;

    private static unsafe int AlignedBase(byte[] pinned)
    {
        nint address = (nint)Unsafe.AsPointer(ref pinned[0]);
        return (int)((Alignment - address % Alignment) % Alignment);
    }

    private static SquashException Bad(string name, string why) =>
        new(ErrorCodes.FileError, $"Weights '{name}' cannot be loaded: {why}.");
}
