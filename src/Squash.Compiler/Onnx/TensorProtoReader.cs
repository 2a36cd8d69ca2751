using System.Runtime.InteropServices;
using Google.Protobuf;
using Squash.Runtime;

namespace Squash.Compiler.Onnx;

/// <summary>Converts ONNX <c>TensorProto</c> messages to <see cref="Tensor"/>s, reading external data safely.</summary>
internal static class TensorProtoReader
{
    /// <summary>Reads a tensor; <paramref name="baseDirectory"/> resolves external data (null forbids it).</summary>
    /// <exception cref="SquashException">The tensor is malformed, of an unsupported type, or its external data is invalid.</exception>
    public static Tensor Read(global::Onnx.TensorProto proto, string? baseDirectory, string context)
    {
        var tensor = ReadData(proto, baseDirectory, context);
        if (tensor.DataType == DataType.Bool)
        {
            // Kernels compare bools as bytes: a stored 2 must read as the same true as 1.
            foreach (ref byte b in tensor.Bytes) b = b == 0 ? (byte)0 : (byte)1;
        }
        return tensor;
    }

    private static Tensor ReadData(global::Onnx.TensorProto proto, string? baseDirectory, string context)
    {
        var type = ElementType(proto.DataType);
        if (!DataTypes.IsSupported(type))
            throw new SquashException(ErrorCodes.UnsupportedDataType,
                $"{context}: tensor '{proto.Name}' has element type {DataTypeName(proto.DataType)}, which Squash does not support.");
        var shape = new int[proto.Dims.Count];
        for (int i = 0; i < shape.Length; i++)
        {
            long d = proto.Dims[i];
            if (d < 0 || d > int.MaxValue)
                throw new SquashException(ErrorCodes.InvalidModel, $"{context}: tensor '{proto.Name}' has an invalid dimension {d}.");
            shape[i] = (int)d;
        }
        long count;
        try { count = Shapes.ElementCount(shape); }
        catch (ArgumentException e) { throw new SquashException(ErrorCodes.TooLarge, $"{context}: tensor '{proto.Name}': {e.Message}"); }
        long byteCount = count * DataTypes.SizeOf(type);
        if (byteCount > Array.MaxLength)
            throw new SquashException(ErrorCodes.TooLarge, $"{context}: tensor '{proto.Name}' needs {byteCount} bytes, more than Squash supports in one tensor (2 GB).");

        if (proto.HasDataLocation && proto.DataLocation == global::Onnx.TensorProto.Types.DataLocation.External)
        {
            var bytes = ReadExternal(proto, baseDirectory, byteCount, context);
            return new Tensor(type, shape, bytes, 0);
        }
        if (proto.HasRawData)
        {
            if (proto.RawData.Length != byteCount)
                throw new SquashException(ErrorCodes.InvalidModel,
                    $"{context}: tensor '{proto.Name}' has {proto.RawData.Length} bytes of data but shape {Shapes.Format(shape)} of {DataTypes.Name(type)} needs {byteCount}.");
            return new Tensor(type, shape, proto.RawData.ToByteArray(), 0);
        }
        // The typed lists must hold exactly the shape's element count: checked before the tensor is allocated, so a
        // huge shape with no data costs nothing.
        Check(type switch
        {
            DataType.Float => proto.FloatData.Count,
            DataType.Double => proto.DoubleData.Count,
            DataType.Int64 => proto.Int64Data.Count,
            DataType.UInt32 or DataType.UInt64 => proto.Uint64Data.Count,
            _ => proto.Int32Data.Count,
        });
        var tensor = new Tensor(type, shape);
        int n = tensor.ElementCount;
        switch (type)
        {
            case DataType.Float:
                for (int i = 0; i < n; i++) tensor.AsSpan<float>()[i] = proto.FloatData[i];
                break;
            case DataType.Double:
                for (int i = 0; i < n; i++) tensor.AsSpan<double>()[i] = proto.DoubleData[i];
                break;
            case DataType.Int64:
                for (int i = 0; i < n; i++) tensor.AsSpan<long>()[i] = proto.Int64Data[i];
                break;
            case DataType.UInt32:
                for (int i = 0; i < n; i++) tensor.AsSpan<uint>()[i] = (uint)proto.Uint64Data[i];
                break;
            case DataType.UInt64:
                for (int i = 0; i < n; i++) tensor.AsSpan<ulong>()[i] = proto.Uint64Data[i];
                break;
            default:
                // int32_data carries int32, int16, int8, uint16, uint8, bool, and the bits of float16 and bfloat16.
                var bytes = tensor.Bytes;
                int size = DataTypes.SizeOf(type);
                for (int i = 0; i < n; i++)
                {
                    int v = proto.Int32Data[i];
                    switch (size)
                    {
                        case 1: bytes[i] = (byte)v; break;
                        case 2: MemoryMarshal.Write(bytes[(i * 2)..], (ushort)v); break;
                        default: MemoryMarshal.Write(bytes[(i * 4)..], v); break;
                    }
                }
                break;
        }
        return tensor;

        void Check(int have)
        {
            if (have != count)
                throw new SquashException(ErrorCodes.InvalidModel,
                    $"{context}: tensor '{proto.Name}' has {have} values but shape {Shapes.Format(shape)} needs {count}.");
        }
    }

    /// <summary>The element type an ONNX <c>data_type</c> or <c>elem_type</c> number names; values outside the enum's
    /// range map to <see cref="DataType.Undefined"/> instead of wrapping into a valid type.</summary>
    public static DataType ElementType(long onnxType) =>
        onnxType is > 0 and <= byte.MaxValue ? (DataType)onnxType : DataType.Undefined;

    /// <summary>A name for an ONNX type number in messages.</summary>
    public static string DataTypeName(long onnxType) =>
        onnxType is > 0 and <= byte.MaxValue ? DataTypes.Name((DataType)onnxType) : $"number {onnxType}";

    private static byte[] ReadExternal(global::Onnx.TensorProto proto, string? baseDirectory, long byteCount, string context)
    {
        string? location = null;
        long offset = 0, length = -1;
        foreach (var entry in proto.ExternalData)
        {
            switch (entry.Key)
            {
                case "location": location = entry.Value; break;
                case "offset": offset = ParseLong(entry.Value); break;
                case "length": length = ParseLong(entry.Value); break;
            }
        }
        string name = proto.Name;
        if (baseDirectory is null)
            throw new SquashException(ErrorCodes.ExternalData, $"{context}: tensor '{name}' keeps its data in an external file, which is not allowed here.");
        if (string.IsNullOrEmpty(location))
            throw new SquashException(ErrorCodes.ExternalData, $"{context}: tensor '{name}' has external data without a location.");
        string path = ExternalDataPath.Resolve(baseDirectory, location, $"{context}: tensor '{name}'");
        if (offset < 0 || length < -1)
            throw new SquashException(ErrorCodes.ExternalData, $"{context}: tensor '{name}' has a negative external data offset or length.");
        if (length >= 0 && length != byteCount)
            throw new SquashException(ErrorCodes.ExternalData,
                $"{context}: tensor '{name}' declares {length} bytes of external data but its shape needs {byteCount}.");
        // Sizes are checked against the file before anything is opened or allocated; the subtraction cannot overflow
        // (both are non-negative), unlike offset + byteCount.
        long fileLength = ExternalDataPath.Length(path, $"{context}: tensor '{name}'");
        if (offset > fileLength - byteCount)
            throw new SquashException(ErrorCodes.ExternalData,
                $"{context}: tensor '{name}' reads {byteCount} bytes from offset {offset} of '{location}', which has only {fileLength} bytes.");
        var bytes = new byte[byteCount];
        if (byteCount == 0) return bytes;
        try
        {
            using var stream = File.OpenRead(path);
            stream.Position = offset;
            stream.ReadExactly(bytes);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Also a file that shrank since it was measured (EndOfStreamException is an IOException).
            throw new SquashException(ErrorCodes.ExternalData, $"{context}: tensor '{name}': external data file '{location}' cannot be read: {e.Message}", inner: e);
        }
        return bytes;

        long ParseLong(string s) => long.TryParse(s, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out long v)
            ? v
            : throw new SquashException(ErrorCodes.ExternalData, $"{context}: tensor '{proto.Name}' has a non-numeric external data field '{s}'.");
    }
}

/// <summary>Resolves ONNX external-data locations, refusing any that leave the model's folder.</summary>
internal static class ExternalDataPath
{
    /// <summary>Longest location accepted; longer ones are no file name any system accepts.</summary>
    private const int MaxLocationLength = 4096;

    /// <summary>Most links followed while resolving one location (as Linux's limit).</summary>
    private const int MaxLinks = 40;

    /// <summary>The full path, with links resolved, of <paramref name="location"/> inside <paramref name="baseDirectory"/>.</summary>
    /// <exception cref="SquashException">The location is absolute, leaves the folder (also through links), is not a
    /// file, or is missing (SQ1007).</exception>
    public static string Resolve(string baseDirectory, string location, string context)
    {
        if (location.Length > MaxLocationLength || location.Contains('\0'))
            throw new SquashException(ErrorCodes.ExternalData,
                $"{context}: external data location '{Shorten(location)}' is not a valid file name.");
        if (Path.IsPathRooted(location))
            throw new SquashException(ErrorCodes.ExternalData,
                $"{context}: external data location '{location}' is absolute; it must be a path relative to the model's folder.");
        string root, full;
        try
        {
            root = Path.GetFullPath(baseDirectory);
            full = Path.GetFullPath(Path.Combine(root, location));
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            throw new SquashException(ErrorCodes.ExternalData, $"{context}: external data location '{location}' is not a valid path: {e.Message}", inner: e);
        }
        if (!IsInside(root, full) && Path.TrimEndingDirectorySeparator(full) != Path.TrimEndingDirectorySeparator(root))
            throw new SquashException(ErrorCodes.ExternalData,
                $"{context}: external data location '{location}' leaves the model's folder; keep external data next to the model.");
        if (Directory.Exists(full))
            throw new SquashException(ErrorCodes.ExternalData, $"{context}: external data location '{location}' is a folder, not a file.");
        if (!File.Exists(full))
            throw new SquashException(ErrorCodes.ExternalData, $"{context}: external data file '{location}' does not exist next to the model.");
        // A link inside the folder may point outside it: check where every link on the way really leads.
        string real, realRoot;
        try
        {
            real = RealPath(full);
            realRoot = RealPath(root);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SquashException(ErrorCodes.ExternalData, $"{context}: external data location '{location}' cannot be resolved: {e.Message}", inner: e);
        }
        if (!IsInside(realRoot, real))
            throw new SquashException(ErrorCodes.ExternalData,
                $"{context}: external data file '{location}' is a link that leaves the model's folder; copy the data next to the model.");
        // The file the links lead to: its length is the data's (a link's own length is that of its target's name).
        return real;
    }

    /// <summary>The size of the file at <paramref name="path"/>, read without opening it (opening a FIFO would block).</summary>
    /// <exception cref="SquashException">The file cannot be examined (SQ1007).</exception>
    public static long Length(string path, string context)
    {
        try
        {
            return new FileInfo(path).Length;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SquashException(ErrorCodes.ExternalData, $"{context}: external data file '{path}' cannot be read: {e.Message}", inner: e);
        }
    }

    private static string Shorten(string s) => (s.Length > 80 ? s[..80] + "..." : s).Replace('\0', '?');

    private static bool IsInside(string root, string path)
    {
        string prefix = root.EndsWith(Path.DirectorySeparatorChar) ? root : root + Path.DirectorySeparatorChar;
        var comparison = OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
        return path.StartsWith(prefix, comparison);
    }

    /// <summary>The path with every link on the way replaced by its target, component by component from the root.</summary>
    /// <remarks>Iterative, with at most <see cref="MaxLinks"/> links followed, so neither a link loop nor a very deep
    /// path can exhaust the stack.</remarks>
    /// <exception cref="IOException">Too many links (a loop).</exception>
    private static string RealPath(string path)
    {
        string full = Path.GetFullPath(path);
        string current = Path.GetPathRoot(full) ?? "";
        var pending = new Stack<string>(Components(full).Reverse());
        int links = 0;
        while (pending.TryPop(out string? part))
        {
            string candidate = Path.Combine(current, part);
            FileSystemInfo info = Directory.Exists(candidate) ? new DirectoryInfo(candidate) : new FileInfo(candidate);
            if (info.LinkTarget is not { } target)
            {
                current = candidate;
                continue;
            }
            if (++links > MaxLinks) throw new IOException($"More than {MaxLinks} links on the way to '{path}' (a loop?).");
            // current holds no link, so resolving '..' in the target by text is exact. The target's own components
            // are checked again from its root.
            string resolved = Path.GetFullPath(Path.IsPathRooted(target) ? target : Path.Combine(current, target));
            foreach (string c in Components(resolved).Reverse()) pending.Push(c);
            current = Path.GetPathRoot(resolved) ?? "";
        }
        return current;
    }

    private static IEnumerable<string> Components(string fullPath)
    {
        string root = Path.GetPathRoot(fullPath) ?? "";
        return fullPath[root.Length..].Split(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);
    }
}
