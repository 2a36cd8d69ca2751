namespace Squash.Tools.OnnxFuzzer;

/// <summary>
/// Mutations that ignore the ONNX schema: truncation, bit flips, and, at the protobuf level, deletion, duplication and
/// corruption of fields anywhere in the message tree (varints set to boundary values, lengths and payloads changed).
/// </summary>
public static class WireMutator
{
    /// <summary>The mutation kinds, for statistics.</summary>
    public static readonly string[] Kinds = ["truncate", "flip", "overwrite", "field"];

    /// <summary>Returns a mutated copy of <paramref name="data"/> and the kind of mutation applied.</summary>
    public static (byte[] Data, string Kind) Mutate(byte[] data, Random rng)
    {
        if (data.Length == 0) return ([0x0A, 0x00], "overwrite");
        switch (rng.Next(8))
        {
            case 0:
                return (data[..rng.Next(data.Length)], "truncate");
            case 1:
            {
                var copy = (byte[])data.Clone();
                for (int k = rng.Next(1, 9); k > 0; k--) copy[rng.Next(copy.Length)] ^= (byte)(1 << rng.Next(8));
                return (copy, "flip");
            }
            case 2:
            {
                var copy = (byte[])data.Clone();
                ReadOnlySpan<byte> bytes = [0x00, 0xFF, 0x7F, 0x80, 0x01, 0x0A, 0x12];
                for (int k = rng.Next(1, 5); k > 0; k--) copy[rng.Next(copy.Length)] = bytes[rng.Next(bytes.Length)];
                return (copy, "overwrite");
            }
            default:
                return (MutateMessage(data, rng, 0) ?? data[..rng.Next(data.Length)], "field");
        }
    }

    /// <summary>Mutates one field somewhere below this message; null when <paramref name="data"/> is no message.</summary>
    private static byte[]? MutateMessage(ReadOnlyMemory<byte> data, Random rng, int depth)
    {
        if (!ProtoWire.TryParse(data, out var fields) || fields.Count == 0) return null;
        // Descend into a nested message most of the time, so deep fields are mutated as often as top-level ones.
        if (depth < 40 && rng.Next(10) < 7)
        {
            for (int attempt = 0; attempt < 4; attempt++)
            {
                int i = rng.Next(fields.Count);
                if (fields[i].WireType != WireField.Length || fields[i].Bytes.Length == 0) continue;
                var child = MutateMessage(fields[i].Bytes, rng, depth + 1);
                if (child is null) continue;
                fields[i] = fields[i] with { Bytes = child };
                return ProtoWire.Write(fields);
            }
        }
        MutateField(fields, rng.Next(fields.Count), rng);
        return ProtoWire.Write(fields);
    }

    private static void MutateField(List<WireField> fields, int i, Random rng)
    {
        var f = fields[i];
        switch (rng.Next(6))
        {
            case 0:
                fields.RemoveAt(i);
                return;
            case 1:
            {
                // Duplicate: usually once, sometimes very many times (huge repeated fields).
                int copies = rng.Next(8) == 0 ? 1 << rng.Next(8, 16) : 1;
                if (f.Bytes.Length * (long)copies > 64 << 20) copies = 1;
                fields.InsertRange(rng.Next(2) == 0 ? i + 1 : fields.Count, Enumerable.Repeat(f, copies));
                return;
            }
            case 2:
            {
                int j = rng.Next(fields.Count);
                (fields[i], fields[j]) = (fields[j], fields[i]);
                return;
            }
            case 3:
                // Another field number: the same payload in a field of another type.
                fields[i] = f with { Number = Math.Max(1, f.Number + rng.Next(-3, 4)) };
                return;
        }
        fields[i] = f.WireType switch
        {
            WireField.Varint => f with { Scalar = (ulong)Interesting.NextInt64(rng) },
            WireField.Fixed32 => f with { Scalar = rng.Next(2) == 0 ? BitConverter.SingleToUInt32Bits(Interesting.Float32[rng.Next(Interesting.Float32.Length)]) : (uint)Interesting.NextInt64(rng) },
            WireField.Fixed64 => f with { Scalar = rng.Next(2) == 0 ? BitConverter.DoubleToUInt64Bits(Interesting.Float32[rng.Next(Interesting.Float32.Length)]) : (ulong)Interesting.NextInt64(rng) },
            _ => f with { Bytes = MutatePayload(f.Bytes, rng) },
        };
    }

    private static byte[] MutatePayload(ReadOnlyMemory<byte> payload, Random rng)
    {
        var bytes = payload.ToArray();
        switch (rng.Next(6))
        {
            case 0:
                return [];
            case 1:
                return bytes[..rng.Next(bytes.Length + 1)];
            case 2:
            {
                // A packed integer list (dims, int64_data, ...): one element set to a boundary value.
                if (!ProtoWire.TryParsePacked(bytes, out var values) || values.Count == 0) goto default;
                values[rng.Next(values.Count)] = (ulong)Interesting.NextInt64(rng);
                return ProtoWire.WritePacked(values);
            }
            case 3:
            {
                if (bytes.Length == 0) return [];
                int repeat = 1 << rng.Next(1, 12);
                if ((long)bytes.Length * repeat > 16 << 20) repeat = 2;
                var result = new byte[bytes.Length * repeat];
                for (int r = 0; r < repeat; r++) bytes.CopyTo(result, r * bytes.Length);
                return result;
            }
            case 4:
                return System.Text.Encoding.UTF8.GetBytes(Interesting.NextString(rng));
            default:
                if (bytes.Length == 0) return [0xFF];
                bytes[rng.Next(bytes.Length)] ^= (byte)(1 << rng.Next(8));
                return bytes;
        }
    }
}
