using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Squash.Runtime.IO;

/// <summary>Reads and writes NumPy <c>.npy</c> files (format versions 1 to 3, C order, little-endian), so data
/// can move between Python and Squash.</summary>
public static partial class Npy
{
    private static ReadOnlySpan<byte> Magic => [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>Reads a tensor from a <c>.npy</c> file, or a gzip-compressed one (<c>.npy.gz</c>).</summary>
    /// <exception cref="SquashException">The file is missing, malformed, Fortran-ordered, big-endian or of an unsupported dtype.</exception>
    public static Tensor Read(string path)
    {
        if (!File.Exists(path)) throw new SquashException(ErrorCodes.FileError, $"'{path}' does not exist.");
        using var file = File.OpenRead(path);
        int b0 = file.ReadByte(), b1 = file.ReadByte();
        file.Position = 0;
        if (b0 == 0x1F && b1 == 0x8B)
        {
            try
            {
                using var gzip = new System.IO.Compression.GZipStream(file, System.IO.Compression.CompressionMode.Decompress);
                return Read(gzip, path);
            }
            catch (InvalidDataException e)
            {
                throw new SquashException(ErrorCodes.FileError, $"'{path}' cannot be read as gzip-compressed .npy: {e.Message}");
            }
        }
        return Read(file, path);
    }

    /// <summary>Reads a tensor from a stream holding a <c>.npy</c> file.</summary>
    public static Tensor Read(Stream stream, string displayName = "stream")
    {
        Span<byte> prefix = stackalloc byte[8];
        if (stream.ReadAtLeast(prefix, 8, throwOnEndOfStream: false) < 8 || !prefix[..6].SequenceEqual(Magic))
            throw Bad(displayName, "it is not a .npy file (no \\x93NUMPY header)");
        int major = prefix[6];
        int headerLength;
        if (major == 1)
        {
            Span<byte> len = stackalloc byte[2];
            ReadHeaderLength(stream, len, displayName);
            headerLength = len[0] | (len[1] << 8);
        }
        else if (major is 2 or 3)
        {
            Span<byte> len = stackalloc byte[4];
            ReadHeaderLength(stream, len, displayName);
            headerLength = BitConverter.ToInt32(len);
            if (headerLength is < 0 or > 1 << 20) throw Bad(displayName, "its header length is invalid");
        }
        else
        {
            throw Bad(displayName, $"format version {major} is not supported");
        }
        var headerBytes = new byte[headerLength];
        if (stream.ReadAtLeast(headerBytes, headerLength, throwOnEndOfStream: false) < headerLength)
            throw Bad(displayName, "the header is truncated");
        string header = (major == 3 ? Encoding.UTF8 : Encoding.Latin1).GetString(headerBytes);

        var descr = DescrRegex().Match(header);
        var order = FortranRegex().Match(header);
        var shapeMatch = ShapeRegex().Match(header);
        if (!descr.Success || !order.Success || !shapeMatch.Success) throw Bad(displayName, "its header is malformed");
        if (order.Groups[1].Value == "True")
            throw Bad(displayName, "it is in Fortran order; save it with numpy.ascontiguousarray first");
        var type = ParseDescr(descr.Groups[1].Value, displayName);
        var dims = new List<int>();
        foreach (var part in shapeMatch.Groups[1].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part.TrimEnd('L'), NumberStyles.None, CultureInfo.InvariantCulture, out int d))
                throw Bad(displayName, $"its shape has an invalid dimension '{part}'");
            dims.Add(d);
        }
        int[] shape = [.. dims];
        long count;
        try { count = Shapes.ElementCount(shape); }
        catch (ArgumentException e) { throw Bad(displayName, e.Message); }
        long bytes = count * DataTypes.SizeOf(type);
        if (stream.CanSeek && stream.Length - stream.Position < bytes)
            throw Bad(displayName, $"it holds fewer bytes than shape {Shapes.Format(shape)} of {DataTypes.Name(type)} needs");
        if (bytes > Array.MaxLength) throw Bad(displayName, "it is too large");
        return ReadData(stream, type, shape, (int)bytes, displayName);
    }

    private static void ReadHeaderLength(Stream stream, Span<byte> length, string displayName)
    {
        if (stream.ReadAtLeast(length, length.Length, throwOnEndOfStream: false) < length.Length)
            throw Bad(displayName, "the header is truncated");
    }

    /// <summary>
    /// Reads the data of a tensor of <paramref name="bytes"/> bytes. The length of a seekable stream was checked
    /// already; one whose length is unknown (a gzip-compressed file) is read in chunks before the tensor is allocated,
    /// so a small file whose header claims gigabytes fails as truncated without allocating them.
    /// </summary>
    private static Tensor ReadData(Stream stream, DataType type, int[] shape, int bytes, string displayName)
    {
        const int Chunk = 1 << 20;
        Tensor tensor;
        if (stream.CanSeek || bytes <= Chunk)
        {
            tensor = new Tensor(type, shape);
            if (stream.ReadAtLeast(tensor.Bytes, bytes, throwOnEndOfStream: false) < bytes)
                throw Bad(displayName, "its data is truncated");
            return tensor;
        }
        var chunks = new List<byte[]>();
        for (int left = bytes; left > 0; left -= Chunk)
        {
            var chunk = new byte[Math.Min(left, Chunk)];
            if (stream.ReadAtLeast(chunk, chunk.Length, throwOnEndOfStream: false) < chunk.Length)
                throw Bad(displayName, $"its data is truncated (its header claims {bytes} bytes)");
            chunks.Add(chunk);
        }
        tensor = new Tensor(type, shape);
        var target = tensor.Bytes;
        foreach (var chunk in chunks)
        {
            chunk.CopyTo(target);
            target = target[chunk.Length..];
        }
        return tensor;
    }

    /// <summary>Writes <paramref name="tensor"/> as a version 1 <c>.npy</c> file.</summary>
    public static void Write(string path, Tensor tensor)
    {
        using var stream = File.Create(path);
        Write(stream, tensor);
    }

    /// <summary>Writes <paramref name="tensor"/> in <c>.npy</c> format to a stream.</summary>
    public static void Write(Stream stream, Tensor tensor)
    {
        string shape = tensor.Rank == 1
            ? $"({tensor.Shape[0]},)"
            : "(" + string.Join(", ", tensor.Shape.Select(d => d.ToString(CultureInfo.InvariantCulture))) + ")";
        string header = $"{{'descr': '{Descr(tensor.DataType)}', 'fortran_order': False, 'shape': {shape}, }}";
        // Pad so that the data starts on a 64-byte boundary, ending the header with a newline.
        int total = 10 + header.Length + 1;
        int pad = (64 - total % 64) % 64;
        header = header + new string(' ', pad) + "\n";
        stream.Write(Magic);
        stream.WriteByte(1);
        stream.WriteByte(0);
        stream.WriteByte((byte)(header.Length & 0xFF));
        stream.WriteByte((byte)(header.Length >> 8));
        stream.Write(Encoding.Latin1.GetBytes(header));
        stream.Write(tensor.Bytes);
    }

    private static string Descr(DataType type) => type switch
    {
        DataType.Float => "<f4",
        DataType.Double => "<f8",
        DataType.Float16 => "<f2",
        DataType.Int8 => "|i1",
        DataType.UInt8 => "|u1",
        DataType.Int16 => "<i2",
        DataType.UInt16 => "<u2",
        DataType.Int32 => "<i4",
        DataType.UInt32 => "<u4",
        DataType.Int64 => "<i8",
        DataType.UInt64 => "<u8",
        DataType.Bool => "|b1",
        // NumPy has no bfloat16; ml_dtypes writes it as a 2-byte void. Write the raw bits as uint16.
        DataType.BFloat16 => "<u2",
        _ => throw new NotSupportedException(DataTypes.Name(type)),
    };

    private static DataType ParseDescr(string descr, string displayName)
    {
        if (descr.Length >= 2 && descr[0] == '>' && descr[^1] != '1')
            throw Bad(displayName, $"it is big-endian ({descr}); save it little-endian (array.astype('<{descr[1..]}'))");
        string core = descr.TrimStart('<', '|', '=');
        return core switch
        {
            "f4" => DataType.Float,
            "f8" => DataType.Double,
            "f2" => DataType.Float16,
            "i1" => DataType.Int8,
            "u1" => DataType.UInt8,
            "i2" => DataType.Int16,
            "u2" => DataType.UInt16,
            "i4" => DataType.Int32,
            "u4" => DataType.UInt32,
            "i8" => DataType.Int64,
            "u8" => DataType.UInt64,
            "b1" or "?" => DataType.Bool,
            _ => throw Bad(displayName, $"its dtype '{descr}' is not supported (use float32, float16, float64, int8-64, uint8-64 or bool)"),
        };
    }

    private static SquashException Bad(string name, string why) =>
        new(ErrorCodes.FileError, $"'{name}' cannot be read as .npy: {why}.");

    [GeneratedRegex(@"'descr'\s*:\s*'([^']*)'")]
    private static partial Regex DescrRegex();

    [GeneratedRegex(@"'fortran_order'\s*:\s*(True|False)")]
    private static partial Regex FortranRegex();

    [GeneratedRegex(@"'shape'\s*:\s*\(([^)]*)\)")]
    private static partial Regex ShapeRegex();
}
