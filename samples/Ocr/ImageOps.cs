using StbImageSharp;

namespace Ocr;

/// <summary>
/// Per-channel normalisation of 8-bit pixels to model input: <c>(v / 255 - mean) / std</c>, through a 256-entry table
/// per channel so converting an image costs one lookup per value.
/// </summary>
public sealed class Normalization
{
    private readonly float[] _table = new float[3 * 256];

    /// <summary>Creates the tables for RGB means and standard deviations (on the 0..1 scale).</summary>
    public Normalization(ReadOnlySpan<float> mean, ReadOnlySpan<float> std)
    {
        if (mean.Length != 3 || std.Length != 3) throw new ArgumentException("Give one mean and one standard deviation per RGB channel.");
        for (int c = 0; c < 3; c++)
            for (int v = 0; v < 256; v++)
                _table[c * 256 + v] = (v / 255f - mean[c]) / std[c];
    }

    /// <summary>ImageNet statistics, which the PP-OCR detector was trained with.</summary>
    public static Normalization ImageNet { get; } = new([0.485f, 0.456f, 0.406f], [0.229f, 0.224f, 0.225f]);

    /// <summary><c>(v / 255 - 0.5) / 0.5</c>, the range [-1, 1] the PP-OCR classifier and recogniser take.</summary>
    public static Normalization Symmetric { get; } = new([0.5f, 0.5f, 0.5f], [0.5f, 0.5f, 0.5f]);

    /// <summary>The normalised value of <paramref name="value"/> in <paramref name="channel"/> (0 = R, 1 = G, 2 = B).</summary>
    public float Apply(int channel, byte value) => _table[channel * 256 + value];

    internal ReadOnlySpan<float> Table(int channel) => _table.AsSpan(channel * 256, 256);
}

/// <summary>The image operations the OCR pipeline needs: decode, resize, crop, rotate, and conversion to a tensor.</summary>
public static class ImageOps
{
    /// <summary>
    /// Decodes a PNG, JPEG, BMP, TGA, GIF or PSD file with StbImageSharp. Transparent pixels are composited over white,
    /// as a viewer shows them, so text on a transparent background stays readable.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is not an image StbImageSharp can decode.</exception>
    public static RgbImage Load(string path)
    {
        using var stream = File.OpenRead(path);
        ImageResult decoded;
        try
        {
            decoded = ImageResult.FromStream(stream, ColorComponents.RedGreenBlueAlpha);
        }
        catch (Exception e) when (e is InvalidOperationException or IndexOutOfRangeException or ArgumentException)
        {
            throw new InvalidDataException($"{path}: not an image this sample can decode ({e.Message}).", e);
        }
        var rgba = decoded.Data;
        var image = new RgbImage(decoded.Width, decoded.Height);
        var rgb = image.Pixels;
        for (int i = 0, j = 0; j < rgb.Length; i += 4, j += 3)
        {
            int alpha = rgba[i + 3], white = 255 * (255 - alpha);
            rgb[j] = (byte)((rgba[i] * alpha + white + 127) / 255);
            rgb[j + 1] = (byte)((rgba[i + 1] * alpha + white + 127) / 255);
            rgb[j + 2] = (byte)((rgba[i + 2] * alpha + white + 127) / 255);
        }
        return image;
    }

    /// <summary>
    /// Bilinear resize with pixel centres aligned (OpenCV's <c>INTER_LINEAR</c>, which PaddleOCR uses): destination
    /// pixel x samples the source at <c>(x + 0.5) * srcWidth / width - 0.5</c>, clamped to the edge pixels.
    /// </summary>
    public static RgbImage Resize(RgbImage source, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (width <= 0 || height <= 0) throw new ArgumentException($"The target size must be positive, not {width}x{height}.");
        var target = new RgbImage(width, height);
        Span<int> x0 = width <= 2048 ? stackalloc int[width] : new int[width];
        Span<int> x1 = width <= 2048 ? stackalloc int[width] : new int[width];
        Span<float> wx = width <= 2048 ? stackalloc float[width] : new float[width];
        for (int x = 0; x < width; x++)
        {
            (int i0, int i1, float w) = SourcePosition(x, width, source.Width);
            x0[x] = i0 * 3;
            x1[x] = i1 * 3;
            wx[x] = w;
        }
        for (int y = 0; y < height; y++)
        {
            (int y0, int y1, float wy) = SourcePosition(y, height, source.Height);
            ReadOnlySpan<byte> top = source.Row(y0), bottom = source.Row(y1);
            var row = target.Row(y);
            for (int x = 0, o = 0; x < width; x++, o += 3)
            {
                int a = x0[x], b = x1[x];
                float w = wx[x];
                for (int c = 0; c < 3; c++)
                {
                    float t = top[a + c] + (top[b + c] - top[a + c]) * w;
                    float d = bottom[a + c] + (bottom[b + c] - bottom[a + c]) * w;
                    row[o + c] = (byte)Math.Clamp((int)(t + (d - t) * wy + 0.5f), 0, 255);
                }
            }
        }
        return target;
    }

    /// <summary>The two source indices and the weight of the second for destination index <paramref name="i"/>.</summary>
    private static (int I0, int I1, float Weight) SourcePosition(int i, int targetSize, int sourceSize)
    {
        float f = (i + 0.5f) * sourceSize / targetSize - 0.5f;
        int i0 = (int)MathF.Floor(f);
        float w = f - i0;
        if (i0 < 0) (i0, w) = (0, 0f);
        if (i0 >= sourceSize - 1) (i0, w) = (sourceSize - 1, 0f);
        return (i0, Math.Min(i0 + 1, sourceSize - 1), w);
    }

    /// <summary>Resizes to <paramref name="height"/> rows keeping the aspect ratio, at most <paramref name="maxWidth"/> columns
    /// (wider images are squeezed, as PaddleOCR does for a fixed input width).</summary>
    public static RgbImage ResizeToHeight(RgbImage source, int height, int maxWidth)
    {
        ArgumentNullException.ThrowIfNull(source);
        int width = (int)Math.Ceiling(height * (double)source.Width / source.Height);
        return Resize(source, Math.Clamp(width, 1, maxWidth), height);
    }

    /// <summary>Copies the part of <paramref name="source"/> inside <paramref name="rect"/>, clamped to the image.</summary>
    /// <exception cref="ArgumentException">The rectangle does not overlap the image.</exception>
    public static RgbImage Crop(RgbImage source, PixelRect rect)
    {
        ArgumentNullException.ThrowIfNull(source);
        var r = rect.ClampTo(source.Width, source.Height);
        if (r.IsEmpty) throw new ArgumentException($"The rectangle {rect} does not overlap the {source.Width}x{source.Height} image.", nameof(rect));
        var target = new RgbImage(r.Width, r.Height);
        for (int y = 0; y < r.Height; y++)
            source.Row(r.Y + y).Slice(r.X * 3, r.Width * 3).CopyTo(target.Row(y));
        return target;
    }

    /// <summary>Turns the image upside down (180 degrees).</summary>
    public static RgbImage Rotate180(RgbImage source)
    {
        ArgumentNullException.ThrowIfNull(source);
        var target = new RgbImage(source.Width, source.Height);
        ReadOnlySpan<byte> s = source.Pixels;
        var t = target.Pixels.AsSpan();
        for (int i = 0, j = s.Length - 3; i < s.Length; i += 3, j -= 3)
            s.Slice(j, 3).CopyTo(t.Slice(i, 3));
        return target;
    }

    /// <summary>Rotates a quarter turn counter-clockwise (NumPy's <c>rot90</c>, which PaddleOCR applies to tall crops):
    /// the right column becomes the top row.</summary>
    public static RgbImage Rotate90CounterClockwise(RgbImage source)
    {
        ArgumentNullException.ThrowIfNull(source);
        int w = source.Width, h = source.Height;
        var target = new RgbImage(h, w);
        for (int y = 0; y < w; y++)
        {
            var row = target.Row(y);
            int sx = (w - 1 - y) * 3;
            for (int x = 0; x < h; x++)
                source.Row(x).Slice(sx, 3).CopyTo(row.Slice(x * 3, 3));
        }
        return target;
    }

    /// <summary>
    /// Writes the image as a normalised [3, height, width] tensor (planes R, G, B), top-left aligned; the area right of
    /// and below the image is 0, the normalised mean, as PaddleOCR pads.
    /// </summary>
    /// <exception cref="ArgumentException">The image is larger than the tensor, or the span has the wrong length.</exception>
    public static void ToTensor(RgbImage image, Normalization normalization, Span<float> chw, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(normalization);
        if (image.Width > width || image.Height > height)
            throw new ArgumentException($"A {image.Width}x{image.Height} image does not fit a {width}x{height} tensor.", nameof(image));
        if (chw.Length != 3 * width * height)
            throw new ArgumentException($"A 3x{height}x{width} tensor has {3 * width * height} elements, not {chw.Length}.", nameof(chw));
        int plane = width * height;
        for (int c = 0; c < 3; c++)
        {
            var table = normalization.Table(c);
            var output = chw.Slice(c * plane, plane);
            for (int y = 0; y < image.Height; y++)
            {
                ReadOnlySpan<byte> row = image.Row(y);
                var line = output.Slice(y * width, width);
                for (int x = 0; x < image.Width; x++) line[x] = table[row[x * 3 + c]];
                line[image.Width..].Clear();
            }
            output[(image.Height * width)..].Clear();
        }
    }
}
