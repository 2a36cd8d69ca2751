using System.Buffers;

namespace Squash.Tools.OnnxFuzzer;

/// <summary>One field of a protobuf message as it appears on the wire: its number, wire type and payload.</summary>
/// <param name="Number">Field number.</param>
/// <param name="WireType">0 varint, 1 fixed64, 2 length-delimited, 5 fixed32.</param>
/// <param name="Scalar">The value of a varint or fixed field.</param>
/// <param name="Bytes">The payload of a length-delimited field.</param>
public readonly record struct WireField(int Number, int WireType, ulong Scalar, ReadOnlyMemory<byte> Bytes)
{
    /// <summary>Varint wire type.</summary>
    public const int Varint = 0;
    /// <summary>Fixed 64-bit wire type.</summary>
    public const int Fixed64 = 1;
    /// <summary>Length-delimited wire type (strings, bytes, messages, packed lists).</summary>
    public const int Length = 2;
    /// <summary>Fixed 32-bit wire type.</summary>
    public const int Fixed32 = 5;
}

/// <summary>
/// A schema-free reader and writer of the protobuf wire format, so mutations can delete, duplicate and corrupt fields
/// of any message without knowing what it is.
/// </summary>
public static class ProtoWire
{
    /// <summary>Splits <paramref name="data"/> into fields; false when it is not a well-formed message (groups count as
    /// malformed: ONNX has none).</summary>
    public static bool TryParse(ReadOnlyMemory<byte> data, out List<WireField> fields)
    {
        fields = [];
        var span = data.Span;
        int pos = 0;
        while (pos < span.Length)
        {
            if (!TryReadVarint(span, ref pos, out ulong tag)) return false;
            int wireType = (int)(tag & 7);
            ulong number = tag >> 3;
            if (number == 0 || number > (1 << 29) - 1) return false;
            switch (wireType)
            {
                case WireField.Varint:
                    if (!TryReadVarint(span, ref pos, out ulong v)) return false;
                    fields.Add(new WireField((int)number, wireType, v, default));
                    break;
                case WireField.Fixed64:
                    if (span.Length - pos < 8) return false;
                    fields.Add(new WireField((int)number, wireType, BitConverter.ToUInt64(span.Slice(pos, 8)), default));
                    pos += 8;
                    break;
                case WireField.Fixed32:
                    if (span.Length - pos < 4) return false;
                    fields.Add(new WireField((int)number, wireType, BitConverter.ToUInt32(span.Slice(pos, 4)), default));
                    pos += 4;
                    break;
                case WireField.Length:
                    if (!TryReadVarint(span, ref pos, out ulong length) || length > (ulong)(span.Length - pos)) return false;
                    fields.Add(new WireField((int)number, wireType, 0, data.Slice(pos, (int)length)));
                    pos += (int)length;
                    break;
                default:
                    return false;
            }
        }
        return true;
    }

    /// <summary>Serializes fields (length prefixes recomputed).</summary>
    public static byte[] Write(IReadOnlyList<WireField> fields)
    {
        var buffer = new ArrayBufferWriter<byte>();
        foreach (var f in fields) Write(buffer, f);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Appends one field.</summary>
    public static void Write(ArrayBufferWriter<byte> buffer, WireField field)
    {
        WriteVarint(buffer, ((ulong)field.Number << 3) | (uint)field.WireType);
        switch (field.WireType)
        {
            case WireField.Varint: WriteVarint(buffer, field.Scalar); break;
            case WireField.Fixed64: BitConverter.TryWriteBytes(buffer.GetSpan(8), field.Scalar); buffer.Advance(8); break;
            case WireField.Fixed32: BitConverter.TryWriteBytes(buffer.GetSpan(4), (uint)field.Scalar); buffer.Advance(4); break;
            default:
                WriteVarint(buffer, (ulong)field.Bytes.Length);
                buffer.Write(field.Bytes.Span);
                break;
        }
    }

    /// <summary>Decodes a list of varints (a packed repeated integer field); false when malformed.</summary>
    public static bool TryParsePacked(ReadOnlySpan<byte> data, out List<ulong> values)
    {
        values = [];
        int pos = 0;
        while (pos < data.Length)
        {
            if (!TryReadVarint(data, ref pos, out ulong v)) return false;
            values.Add(v);
        }
        return true;
    }

    /// <summary>Encodes a list of varints.</summary>
    public static byte[] WritePacked(IEnumerable<ulong> values)
    {
        var buffer = new ArrayBufferWriter<byte>();
        foreach (ulong v in values) WriteVarint(buffer, v);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Appends a varint.</summary>
    public static void WriteVarint(ArrayBufferWriter<byte> buffer, ulong value)
    {
        var span = buffer.GetSpan(10);
        int n = 0;
        while (value >= 0x80)
        {
            span[n++] = (byte)(value | 0x80);
            value >>= 7;
        }
        span[n++] = (byte)value;
        buffer.Advance(n);
    }

    private static bool TryReadVarint(ReadOnlySpan<byte> span, ref int pos, out ulong value)
    {
        value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (pos >= span.Length) return false;
            byte b = span[pos++];
            value |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return true;
        }
        return false;
    }
}
