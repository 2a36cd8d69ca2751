namespace Ocr;

/// <summary>An 8-bit RGB image: rows top to bottom, pixels interleaved R, G, B.</summary>
public sealed class RgbImage
{
    /// <summary>Wraps <paramref name="pixels"/> (not copied).</summary>
    /// <exception cref="ArgumentException">The size is not positive or the buffer is not width × height × 3 bytes.</exception>
    public RgbImage(int width, int height, byte[] pixels)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        if (width <= 0 || height <= 0) throw new ArgumentException($"The image size must be positive, not {width}x{height}.");
        if (pixels.Length != (long)width * height * 3)
            throw new ArgumentException($"A {width}x{height} RGB image needs {(long)width * height * 3} bytes, not {pixels.Length}.", nameof(pixels));
        Width = width;
        Height = height;
        Pixels = pixels;
    }

    /// <summary>A black image.</summary>
    public RgbImage(int width, int height) : this(width, height, new byte[checked(width * height * 3)]) { }

    /// <summary>Width in pixels.</summary>
    public int Width { get; }

    /// <summary>Height in pixels.</summary>
    public int Height { get; }

    /// <summary>The pixels, <see cref="Width"/> × 3 bytes per row.</summary>
    public byte[] Pixels { get; }

    /// <summary>One row of pixels.</summary>
    public Span<byte> Row(int y) => Pixels.AsSpan(y * Width * 3, Width * 3);

    /// <summary>An image of one colour.</summary>
    public static RgbImage Filled(int width, int height, byte r, byte g, byte b)
    {
        var image = new RgbImage(width, height);
        var p = image.Pixels;
        for (int i = 0; i < p.Length; i += 3)
        {
            p[i] = r;
            p[i + 1] = g;
            p[i + 2] = b;
        }
        return image;
    }
}

/// <summary>A rectangle of whole pixels: columns [X, X + Width), rows [Y, Y + Height).</summary>
/// <param name="X">Left column.</param>
/// <param name="Y">Top row.</param>
/// <param name="Width">Number of columns.</param>
/// <param name="Height">Number of rows.</param>
public readonly record struct PixelRect(int X, int Y, int Width, int Height)
{
    /// <summary>The column just right of the rectangle.</summary>
    public int Right => X + Width;

    /// <summary>The row just below the rectangle.</summary>
    public int Bottom => Y + Height;

    /// <summary>Whether the rectangle covers no pixel.</summary>
    public bool IsEmpty => Width <= 0 || Height <= 0;

    /// <summary>The part of this rectangle inside a <paramref name="width"/> × <paramref name="height"/> image (maybe empty).</summary>
    public PixelRect ClampTo(int width, int height)
    {
        int x0 = Math.Clamp(X, 0, width), y0 = Math.Clamp(Y, 0, height);
        int x1 = Math.Clamp(Right, 0, width), y1 = Math.Clamp(Bottom, 0, height);
        return new PixelRect(x0, y0, Math.Max(0, x1 - x0), Math.Max(0, y1 - y0));
    }
}
