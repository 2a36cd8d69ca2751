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
        var type = (DataType)proto.DataType;
        if (!DataTypes.IsSupported(type))
            throw new SquashException(ErrorCodes.UnsupportedDataType,
                $"{context}: tensor '{proto.Name}' has element type {DataTypes.Name(type)}, which Squash does not support.");
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
        var tensor = new Tensor(type, shape);
        int n = tensor.ElementCount;
        switch (type)
        {
            case DataType.Float:
                Check(proto.FloatData.Count);
                for (int i = 0; i < n; i++) tensor.AsSpan<float>()[i] = proto.FloatData[i];
                break;
            case DataType.Double:
                Check(proto.DoubleData.Count);
                for (int i = 0; i < n; i++) tensor.AsSpan<double>()[i] = proto.DoubleData[i];
                break;
            case DataType.Int64:
                Check(proto.Int64Data.Count);
                for (int i = 0; i < n; i++) tensor.AsSpan<long>()[i] = proto.Int64Data[i];
                break;
            case DataType.UInt32:
                Check(proto.Uint64Data.Count);
                for (int i = 0; i < n; i++) tensor.AsSpan<uint>()[i] = (uint)proto.Uint64Data[i];
                break;
            case DataType.UInt64:
                Check(proto.Uint64Data.Count);
                for (int i = 0; i < n; i++) tensor.AsSpan<ulong>()[i] = proto.Uint64Data[i];
                break;
            default:
                // int32_data carries int32, int16, int8, uint16, uint8, bool, and the bits of float16 and bfloat16.
                Check(proto.Int32Data.Count);
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
        using var stream = File.OpenRead(path);
        if (offset + byteCount > stream.Length)
            throw new SquashException(ErrorCodes.ExternalData,
                $"{context}: tensor '{name}' reads bytes {offset} to {offset + byteCount} of '{location}', which has only {stream.Length} bytes.");
        stream.Position = offset;
        var bytes = new byte[byteCount];
        stream.ReadExactly(bytes);
        return bytes;

        long ParseLong(string s) => long.TryParse(s, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out long v)
            ? v
            : throw new SquashException(ErrorCodes.ExternalData, $"{context}: tensor '{proto.Name}' has a non-numeric external data field '{s}'.");
    }
}

/// <summary>Resolves ONNX external-data locations, refusing any that leave the model's folder.</summary>
internal static class ExternalDataPath
{
    /// <summary>The full path of <paramref name="location"/> inside <paramref name="baseDirectory"/>.</summary>
    /// <exception cref="SquashException">The location is absolute, leaves the folder (also through links), or is missing.</exception>
    public static string Resolve(string baseDirectory, string location, string context)
    {
        string root = Path.GetFullPath(baseDirectory);
        if (Path.IsPathRooted(location) || location.Contains('\0'))
            throw new SquashException(ErrorCodes.ExternalData,
                $"{context}: external data location '{location}' is absolute; it must be a path relative to the model's folder.");
        string full = Path.GetFullPath(Path.Combine(root, location));
        if (!IsInside(root, full))
            throw new SquashException(ErrorCodes.ExternalData,
                $"{context}: external data location '{location}' leaves the model's folder; keep external data next to the model.");
        if (!File.Exists(full))
            throw new SquashException(ErrorCodes.ExternalData, $"{context}: external data file '{location}' does not exist next to the model.");
        // A link inside the folder may point outside it: check where every link on the way really leads.
        string real = RealPath(full);
        string realRoot = RealPath(root);
        if (!IsInside(realRoot, real))
            throw new SquashException(ErrorCodes.ExternalData,
                $"{context}: external data file '{location}' is a link that leaves the model's folder; copy the data next to the model.");
        return full;
    }

    private static bool IsInside(string root, string path)
    {
        string prefix = root.EndsWith(Path.DirectorySeparatorChar) ? root : root + Path.DirectorySeparatorChar;
        var comparison = OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
        return path.StartsWith(prefix, comparison);
    }

    private static string RealPath(string path)
    {
        // Resolve links component by component, from the root down.
        string full = Path.GetFullPath(path);
        string? parent = Path.GetDirectoryName(full);
        string current = parent is null ? full : Path.Combine(RealPath(parent), Path.GetFileName(full));
        FileSystemInfo info = Directory.Exists(current) ? new DirectoryInfo(current) : new FileInfo(current);
        if (info.LinkTarget is not null)
        {
            var target = info.ResolveLinkTarget(returnFinalTarget: true);
            if (target is not null) return RealPath(target.FullName);
        }
        return current;
    }
}
