namespace Squash.Tools.OnnxFuzzer;

/// <summary>Values that tend to break size and index arithmetic: boundaries of the integer types, negative values,
/// zero, and products that overflow.</summary>
public static class Interesting
{
    /// <summary>64-bit integers.</summary>
    public static readonly long[] Int64 =
    [
        0, 1, 2, 3, 7, 16, 255, 256, 65535, 65536, 1 << 20,
        int.MaxValue, (long)int.MaxValue + 1, uint.MaxValue, 1L << 32, 1L << 40, 1L << 62, long.MaxValue,
        -1, -2, -3, -255, int.MinValue, (long)int.MinValue - 1, -(1L << 40), long.MinValue, long.MinValue + 1,
    ];

    /// <summary>32-bit floats.</summary>
    public static readonly float[] Float32 =
    [
        0f, -0f, 1f, -1f, 0.5f, float.NaN, float.PositiveInfinity, float.NegativeInfinity, float.MaxValue, float.MinValue,
        float.Epsilon, 1e-30f, 1e30f, 2147483648f, 4294967296f, 1e20f, -1e20f,
    ];

    /// <summary>Strings for names, locations and attribute values.</summary>
    public static readonly string[] Strings =
    [
        "", " ", ".", "..", "../", "../../etc/passwd", "/etc/passwd", "C:\\Windows\\win.ini", "\\\\server\\share\\x",
        "a\0b", "weights.bin", "sub", "sub/", "sub/w.bin", "link-out.bin", "dir-link/secret.bin", "%s%s%n", "\u202e",
        "\uD800", "ai.onnx", "com.squash", "ai.onnx.ml", "NOTSET", "VALID", "SAME_UPPER", "constant", "nearest",
    ];

    /// <summary>A 64-bit integer: usually one of <see cref="Int64"/>, sometimes random.</summary>
    public static long NextInt64(Random rng) =>
        rng.Next(5) == 0 ? rng.NextInt64(long.MinValue, long.MaxValue) : Int64[rng.Next(Int64.Length)];

    /// <summary>A small or boundary integer as a dimension (positive values more likely).</summary>
    public static long NextDimension(Random rng) => rng.Next(4) switch
    {
        0 => rng.Next(0, 5),
        1 => -rng.Next(1, 3),
        _ => Int64[rng.Next(Int64.Length)],
    };

    /// <summary>A string: usually one of <see cref="Strings"/>, sometimes long.</summary>
    public static string NextString(Random rng) => rng.Next(10) switch
    {
        0 => new string('A', 1 << rng.Next(8, 21)),
        _ => Strings[rng.Next(Strings.Length)],
    };
}
