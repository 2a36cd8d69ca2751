using Google.Protobuf.Reflection;
using Squash.Runtime;

namespace Squash.Compiler.Onnx;

/// <summary>
/// A pass over a file's protobuf encoding, before the generated parser reads it, that refuses encodings the parser
/// handles in quadratic time. Protobuf merges repeated occurrences of a singular message field into one message, and
/// the generated C# merges a message field of a <c>oneof</c> (TypeProto's tensor_type, sequence_type, ...) by copying
/// what was read so far into a new message: a 650 KB file repeating a value's <c>type</c> 30 000 times costs a minute
/// and 36 GB of allocations to parse. Writers never repeat a singular field, so a singular message field that occurs
/// twice in one message is refused (SQ1002), and no merge ever happens.
/// </summary>
internal static class ProtobufGuard
{
    /// <summary>The parser's own nesting limit: deeper messages fail in the parser, so the walk stops there.</summary>
    private const int MaxDepth = 100;

    /// <summary>Checks <paramref name="data"/> as a message of type <paramref name="descriptor"/>.</summary>
    /// <exception cref="SquashException">A singular message field occurs more than once in one message (SQ1002).</exception>
    /// <remarks>Malformed encodings pass unchanged: the parser reports them with its own message.</remarks>
    public static void Check(ReadOnlySpan<byte> data, MessageDescriptor descriptor, string displayName) =>
        Walk(data, descriptor, displayName, 0);

    private static void Walk(ReadOnlySpan<byte> data, MessageDescriptor descriptor, string displayName, int depth)
    {
        if (depth > MaxDepth) return;
        // Singular message fields seen so far in this message, by number (a message has few).
        List<int>? seen = null;
        int pos = 0;
        while (pos < data.Length)
        {
            if (!TryReadVarint(data, ref pos, out ulong tag)) return;
            int wireType = (int)(tag & 7);
            ulong number = tag >> 3;
            switch (wireType)
            {
                case 0:
                    if (!TryReadVarint(data, ref pos, out _)) return;
                    continue;
                case 1:
                    pos += 8;
                    continue;
                case 5:
                    pos += 4;
                    continue;
                case 2:
                    break;
                default:
                    return;
            }
            if (!TryReadVarint(data, ref pos, out ulong length) || length > (ulong)(data.Length - pos)) return;
            var payload = data.Slice(pos, (int)length);
            pos += (int)length;
            if (number > int.MaxValue || descriptor.FindFieldByNumber((int)number) is not { FieldType: FieldType.Message } field) continue;
            if (!field.IsRepeated)
            {
                seen ??= [];
                if (seen.Contains(field.FieldNumber))
                    throw new SquashException(ErrorCodes.CorruptModel,
                        $"'{displayName}' is not a valid ONNX model: field '{field.FullName}' occurs more than once in one message. Re-export the model.");
                seen.Add(field.FieldNumber);
            }
            Walk(payload, field.MessageType, displayName, depth + 1);
        }
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
