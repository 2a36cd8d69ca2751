using System.Buffers.Binary;
using System.Text;

namespace TinyStories;

/// <summary>
/// llama2.c's tokenizer file (tokenizer.bin, or tok512.bin for stories260K), for decoding only: int32 max token length,
/// then per token a float32 score, an int32 byte length and the UTF-8 bytes of its piece. Pieces of the form
/// <c>&lt;0xHH&gt;</c> stand for one raw byte, as in run.c's decode.
/// </summary>
public sealed class Tokenizer
{
    private readonly byte[][] _pieces;

    private Tokenizer(byte[][] pieces) => _pieces = pieces;

    /// <summary>Tokens in the vocabulary.</summary>
    public int Count => _pieces.Length;

    /// <summary>Reads a tokenizer file of <paramref name="vocabularySize"/> tokens.</summary>
    /// <exception cref="InvalidDataException">The file is truncated or malformed.</exception>
    public static Tokenizer Read(byte[] file, int vocabularySize)
    {
        ArgumentNullException.ThrowIfNull(file);
        var pieces = new byte[vocabularySize][];
        int at = 4;
        for (int i = 0; i < vocabularySize; i++)
        {
            if (at + 8 > file.Length) throw new InvalidDataException($"The tokenizer file ends at token {i} of {vocabularySize}.");
            int length = BinaryPrimitives.ReadInt32LittleEndian(file.AsSpan(at + 4));
            at += 8;
            if (length < 0 || at + length > file.Length) throw new InvalidDataException($"Token {i} has an invalid length {length}.");
            pieces[i] = file.AsSpan(at, length).ToArray();
            at += length;
        }
        return new Tokenizer(pieces);
    }

    /// <summary>The text of <paramref name="tokens"/> generated after <paramref name="previous"/> (BOS is 1: the piece after
    /// it loses its leading space, as in run.c).</summary>
    public string Decode(IEnumerable<long> tokens, long previous = 1)
    {
        var bytes = new List<byte>();
        foreach (long token in tokens)
        {
            if (token < 0 || token >= _pieces.Length) throw new ArgumentOutOfRangeException(nameof(tokens), token, "Token outside the vocabulary.");
            var piece = _pieces[token];
            if (previous == 1 && piece.Length > 0 && piece[0] == (byte)' ') piece = piece[1..];
            if (piece is [(byte)'<', (byte)'0', (byte)'x', var h, var l, (byte)'>'] && IsHex(h) && IsHex(l))
                bytes.Add(Convert.ToByte(Encoding.ASCII.GetString([h, l]), 16));
            else bytes.AddRange(piece);
            previous = token;
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    private static bool IsHex(byte c) => c is >= (byte)'0' and <= (byte)'9' or >= (byte)'A' and <= (byte)'F' or >= (byte)'a' and <= (byte)'f';
}
