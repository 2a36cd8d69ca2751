using System.Buffers.Binary;
using System.IO.Hashing;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Runtime.CompilerServices;
using System.Text;

namespace Squash.Runtime.Weights;

/// <summary>One tensor to write: its name, its value, and the type its data is stored in.</summary>
/// <param name="Name">The name the generated code asks for.</param>
/// <param name="Tensor">The value the model runs with.</param>
/// <param name="Storage">The type of the stored data: <see cref="Tensor.DataType"/> itself, or
/// <see cref="DataType.Float16"/> for a float tensor whose every value is a float16 value (it is widened back to float,
/// bit for bit, when the file is read).</param>
public readonly record struct WeightsEntry(string Name, Tensor Tensor, DataType Storage)
{
    /// <summary>An entry stored in the tensor's own type.</summary>
    public WeightsEntry(string name, Tensor tensor) : this(name, tensor, tensor.DataType) { }
}

/// <summary>
/// The constants of a compiled model (<c>.sqw</c>), read once into one pinned buffer; every tensor is a view of it.
/// </summary>
/// <remarks>
/// Layout, version 2, little-endian (docs/weights-format.md):
/// <code>
/// 0   "SQW1"              magic
/// 4   u32 version = 2
/// 8   u32 tensor count
/// 12  u32 table bytes     (entries below)
/// 16  u64 data offset     (from the start of the file; a multiple of 64)
/// 24  u64 data bytes
/// 32  u64 XxHash3 of the data
/// 40  u64 XxHash3 of bytes 0..40 and the table
/// 48  table: per tensor: u16 name length, UTF-8 name, u8 data type (ONNX code), u8 storage type (ONNX code), u8 rank,
///            i32 dims[rank], u64 offset (from the data offset; a multiple of 64; entries in increasing order),
///            u64 stored bytes
///     zero padding to the data offset, then the data
/// </code>
/// The storage type is the data type itself, or float16 (10) for a float (1) tensor: such an entry is widened to float
/// once, while it is read, so the model computes in fp32 from half the bytes (docs/quantization.md, "fp16"). Version 1
/// had no storage type byte.
/// </remarks>
public sealed class WeightsFile
{
    /// <summary>The four bytes every weights file starts with.</summary>
    public static ReadOnlySpan<byte> Magic => "SQW1"u8;

    /// <summary>The format version this runtime reads and the compiler writes.</summary>
    public const int Version = 2;

    /// <summary>Size of the fixed header.</summary>
    public const int HeaderBytes = 48;

    /// <summary>Alignment of the data section and of every tensor in it.</summary>
    public const int Alignment = 64;

    private readonly Dictionary<string, Tensor> _tensors;
    private readonly Dictionary<string, DataType> _storage;

    private WeightsFile(Dictionary<string, Tensor> tensors, Dictionary<string, DataType> storage, ulong checksum, long storedBytes)
    {
        _tensors = tensors;
        _storage = storage;
        Checksum = checksum;
        StoredBytes = storedBytes;
    }

    /// <summary>XxHash3 of the data section; the generated code checks it against the value it was built with.</summary>
    public ulong Checksum { get; }

    /// <summary>Bytes of the data section (as stored: float16 entries count two bytes per value).</summary>
    public long StoredBytes { get; }

    /// <summary>Number of tensors.</summary>
    public int Count => _tensors.Count;

    /// <summary>The tensor stored under <paramref name="name"/>.</summary>
    /// <exception cref="SquashException">There is no such tensor (the weights do not belong to this model).</exception>
    public Tensor this[string name] => _tensors.TryGetValue(name, out var t)
        ? t
        : throw new SquashException(ErrorCodes.FileError, $"The weights file has no tensor '{name}'; it does not belong to this model. Rebuild the project.");

    /// <summary>The type the tensor <paramref name="name"/> was stored in (float16 for a widened float tensor).</summary>
    /// <exception cref="SquashException">There is no such tensor.</exception>
    public DataType StorageType(string name) => _storage.TryGetValue(name, out var t)
        ? t
        : throw new SquashException(ErrorCodes.FileError, $"The weights file has no tensor '{name}'.");

    /// <summary>The names of the tensors, in file order.</summary>
    public IEnumerable<string> Names => _tensors.Keys;

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

    /// <summary>One entry of the table of contents.</summary>
    private readonly record struct Entry(string Name, DataType Type, DataType Storage, int[] Shape, long Offset, long Bytes);

    /// <summary>Reads and verifies a weights file from a stream.</summary>
    /// <exception cref="SquashException">The stream is not a valid weights file of this version, or is damaged (SQ1010);
    /// an entry has a storage type this runtime cannot widen to its data type (SQ1060).</exception>
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

        var entries = ReadTable(table, count, dataBytes, displayName);
        long skip = dataOffset - HeaderBytes - tableBytes;
        Skip(stream, skip, null, displayName);

        // The tensors as the model uses them (float16 entries widened to float), each aligned, in one pinned buffer.
        var loadedOffsets = new long[entries.Length];
        long loadedBytes = 0;
        for (int i = 0; i < entries.Length; i++)
        {
            loadedOffsets[i] = loadedBytes;
            loadedBytes = Align(loadedBytes + Shapes.ElementCount(entries[i].Shape) * DataTypes.SizeOf(entries[i].Type));
            if (loadedBytes > Array.MaxLength - Alignment) throw Bad(displayName, "its tensors are too large to load");
        }
        var data = GC.AllocateUninitializedArray<byte>((int)loadedBytes + Alignment, pinned: true);
        int baseOffset = AlignedBase(data);

        // The data section is read once, in order, and hashed as it goes; the tensors are handed out only once the hash
        // matches.
        var dataHasher = new XxHash3();
        long position = 0;
        byte[]? scratch = null;
        for (int i = 0; i < entries.Length; i++)
        {
            var e = entries[i];
            Skip(stream, e.Offset - position, dataHasher, displayName);
            var target = data.AsSpan(baseOffset + (int)loadedOffsets[i], (int)(e.Bytes / DataTypes.SizeOf(e.Storage) * DataTypes.SizeOf(e.Type)));
            if (e.Storage == e.Type)
            {
                ReadExactly(stream, target, displayName);
                dataHasher.Append(target);
            }
            else
            {
                if (scratch is null || scratch.Length < e.Bytes) scratch = new byte[e.Bytes];
                var stored = scratch.AsSpan(0, (int)e.Bytes);
                ReadExactly(stream, stored, displayName);
                dataHasher.Append(stored);
                // Half to float is exact (every float16 value is a float), so the widened tensor is the compiler's.
                Kernels.FloatConversions.ToSingle(MemoryMarshal.Cast<byte, Half>(stored), MemoryMarshal.Cast<byte, float>(target));
            }
            position = e.Offset + e.Bytes;
        }
        Skip(stream, dataBytes - position, dataHasher, displayName);
        if (dataHasher.GetCurrentHashAsUInt64() != dataHash) throw Bad(displayName, "its data is damaged (checksum mismatch)");

        var tensors = new Dictionary<string, Tensor>(count, StringComparer.Ordinal);
        var storage = new Dictionary<string, DataType>(count, StringComparer.Ordinal);
        for (int i = 0; i < entries.Length; i++)
        {
            tensors[entries[i].Name] = new Tensor(entries[i].Type, entries[i].Shape, data, baseOffset + (int)loadedOffsets[i]);
            storage[entries[i].Name] = entries[i].Storage;
        }
        return new WeightsFile(tensors, storage, dataHash, dataBytes);
    }

    private static Entry[] ReadTable(byte[] table, int count, long dataBytes, string displayName)
    {
        if (count > table.Length / 20) throw Bad(displayName, "its table of contents is damaged");
        var entries = new Entry[count];
        int p = 0;
        long end = 0;
        try
        {
            for (int i = 0; i < count; i++)
            {
                int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(table.AsSpan(p));
                string name = Encoding.UTF8.GetString(table, p + 2, nameLength);
                p += 2 + nameLength;
                var type = (DataType)table[p];
                var storage = (DataType)table[p + 1];
                int rank = table[p + 2];
                p += 3;
                var shape = new int[rank];
                for (int d = 0; d < rank; d++, p += 4) shape[d] = BinaryPrimitives.ReadInt32LittleEndian(table.AsSpan(p));
                long offset = BinaryPrimitives.ReadInt64LittleEndian(table.AsSpan(p));
                long bytes = BinaryPrimitives.ReadInt64LittleEndian(table.AsSpan(p + 8));
                p += 16;
                if (!CanStore(type, storage))
                    throw new SquashException(ErrorCodes.WeightsStorageType,
                        $"Weights '{displayName}' cannot be loaded: tensor '{name}' is {DataTypes.Name(type)} stored as {DataTypes.Name(storage)} (type code {(int)storage}), "
                        + "which this Squash.Runtime cannot read (it reads float stored as float16, and every type stored as itself). Use matching Squash.Build and Squash.Runtime versions, or rebuild the project.");
                if (shape.Any(d => d < 0) || offset < end || bytes < 0 || offset + bytes > dataBytes || bytes != Shapes.ElementCount(shape) * DataTypes.SizeOf(storage))
                    throw Bad(displayName, $"tensor '{name}' lies outside the data, overlaps another, or does not match its shape");
                end = offset + bytes;
                entries[i] = new Entry(name, type, storage, shape, offset, bytes);
            }
        }
        catch (Exception e) when (e is ArgumentException or ArgumentOutOfRangeException or IndexOutOfRangeException or OverflowException)
        {
            throw Bad(displayName, "its table of contents is damaged");
        }
        return entries;
    }

    /// <summary>True when data of type <paramref name="type"/> can be stored as <paramref name="storage"/>.</summary>
    public static bool CanStore(DataType type, DataType storage) =>
        DataTypes.IsSupported(type) && (storage == type || (type == DataType.Float && storage == DataType.Float16));

    private static void ReadExactly(Stream stream, Span<byte> target, string displayName)
    {
        if (stream.ReadAtLeast(target, target.Length, throwOnEndOfStream: false) < target.Length) throw Bad(displayName, "it is truncated");
    }

    /// <summary>Reads and drops <paramref name="count"/> bytes (padding), hashing them when a hasher is given.</summary>
    private static void Skip(Stream stream, long count, XxHash3? hasher, string displayName)
    {
        Span<byte> buffer = stackalloc byte[Alignment * 16];
        while (count > 0)
        {
            var chunk = buffer[..(int)Math.Min(count, buffer.Length)];
            ReadExactly(stream, chunk, displayName);
            hasher?.Append(chunk);
            count -= chunk.Length;
        }
    }

    /// <summary>Writes tensors in this format, each in its own type. The order of <paramref name="tensors"/> is kept, so
    /// equal inputs give byte-identical files.</summary>
    public static byte[] Write(IReadOnlyList<(string Name, Tensor Tensor)> tensors) =>
        Write([.. tensors.Select(t => new WeightsEntry(t.Name, t.Tensor))]);

    /// <summary>Writes tensors in this format, each in its storage type. The order is kept, so equal inputs give
    /// byte-identical files.</summary>
    /// <exception cref="ArgumentException">A storage type cannot hold its tensor: not float to float16, or a value that
    /// float16 does not represent exactly (round the tensor first: the file must load as the values the compiler ran).</exception>
    public static byte[] Write(IReadOnlyList<WeightsEntry> tensors)
    {
        var table = new MemoryStream();
        var w = new BinaryWriter(table, Encoding.UTF8, leaveOpen: true);
        long offset = 0;
        var offsets = new long[tensors.Count];
        var stored = new byte[tensors.Count][];
        for (int i = 0; i < tensors.Count; i++)
        {
            var (name, t, storage) = tensors[i];
            var nameBytes = Encoding.UTF8.GetBytes(name);
            if (nameBytes.Length > ushort.MaxValue) throw new ArgumentException($"Tensor name '{name[..64]}...' is too long.");
            if (!CanStore(t.DataType, storage))
                throw new ArgumentException($"Tensor '{name}' is {DataTypes.Name(t.DataType)}; it cannot be stored as {DataTypes.Name(storage)}.", nameof(tensors));
            if (storage != t.DataType) stored[i] = Narrow(name, t);
            long bytes = stored[i]?.Length ?? t.ByteLength;
            w.Write((ushort)nameBytes.Length);
            w.Write(nameBytes);
            w.Write((byte)t.DataType);
            w.Write((byte)storage);
            w.Write((byte)t.Rank);
            foreach (int d in t.Shape) w.Write(d);
            offsets[i] = offset;
            w.Write(offset);
            w.Write(bytes);
            offset = Align(offset + bytes);
        }
        w.Flush();
        long dataOffset = Align(HeaderBytes + table.Length);
        long dataBytes = offset;
        var file = new byte[dataOffset + dataBytes];
        for (int i = 0; i < tensors.Count; i++)
            (stored[i] ?? tensors[i].Tensor.Bytes).CopyTo(file.AsSpan((int)(dataOffset + offsets[i])));
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

    /// <summary>The float16 bytes of a float tensor whose values are all float16 values.</summary>
    private static byte[] Narrow(string name, Tensor t)
    {
        var source = t.AsSpan<float>();
        var bytes = new byte[source.Length * 2];
        var half = MemoryMarshal.Cast<byte, Half>(bytes.AsSpan());
        TensorPrimitives.ConvertToHalf(source, half);
        for (int i = 0; i < source.Length; i++)
            if (BitConverter.SingleToInt32Bits((float)half[i]) != BitConverter.SingleToInt32Bits(source[i]))
                throw new ArgumentException($"Tensor '{name}' holds {source[i]} at {i}, which float16 does not represent exactly; round it to float16 before storing it so.", nameof(t));
        return bytes;
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
