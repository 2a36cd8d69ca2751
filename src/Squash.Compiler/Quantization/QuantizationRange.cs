namespace Squash.Compiler.Quantization;

/// <summary>
/// The integers a quantized tensor may hold, [<see cref="Min"/>, <see cref="Max"/>]. Activations use
/// <see cref="UInt8"/> unless the int8 kernels need <see cref="UInt7"/>: x86's VPMADDUBSW adds two u8 x s8
/// products into a saturating int16, and 2 x 255 x 127 = 64770 overflows it, while 2 x 127 x 127 = 32258 does not.
/// Weights use <see cref="Int8Symmetric"/> (-128 is left out so that the range is symmetric and negation is exact).
/// </summary>
/// <param name="Min">Smallest integer.</param>
/// <param name="Max">Largest integer.</param>
public readonly record struct QuantizationRange(int Min, int Max)
{
    /// <summary>[0, 255]: uint8 activations.</summary>
    public static QuantizationRange UInt8 => new(0, 255);

    /// <summary>[0, 127]: uint8 activations with 7 bits, safe for VPMADDUBSW (see the type's remarks).</summary>
    public static QuantizationRange UInt7 => new(0, 127);

    /// <summary>[-127, 127]: symmetric int8 weights.</summary>
    public static QuantizationRange Int8Symmetric => new(-127, 127);

    /// <summary>Number of integer levels, <c>Max - Min + 1</c>.</summary>
    public int Levels => Max - Min + 1;

    /// <summary>Throws unless the range has at least two levels and fits an 8-bit integer (signed or unsigned).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The range is empty, a single level, or wider than 8 bits.</exception>
    public void Validate()
    {
        if (Max <= Min || Min < -128 || Max > 255 || (Min < 0 && Max > 127))
            throw new ArgumentOutOfRangeException(nameof(Max),
                $"The quantized range [{Min}, {Max}] must hold at least two levels within int8 [-128, 127] or uint8 [0, 255].");
    }

    /// <inheritdoc/>
    public override string ToString() => $"[{Min}, {Max}]";
}
