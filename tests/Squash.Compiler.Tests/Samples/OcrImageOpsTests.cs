using System.Buffers.Binary;
using System.IO.Compression;
using System.IO.Hashing;
using System.Text;
using Ocr;
using Squash.Compiler.Tests.Support;
using Squash.Runtime.IO;

namespace Squash.Compiler.Tests.Samples;

/// <summary>The OCR sample's image operations (samples/Ocr/ImageOps.cs) against closed forms.</summary>
public sealed class OcrImageOpsTests
{
    [Theory]
    [InlineData(7, 5, 7, 5)]
    [InlineData(7, 5, 640, 3)]
    [InlineData(480, 480, 640, 640)]
    [InlineData(480, 480, 17, 229)]
    [InlineData(1, 1, 9, 4)]
    public void ResizingAConstantImageGivesTheConstant(int width, int height, int targetWidth, int targetHeight)
    {
        var resized = ImageOps.Resize(RgbImage.Filled(width, height, 201, 3, 77), targetWidth, targetHeight);
        Assert.Equal((targetWidth, targetHeight), (resized.Width, resized.Height));
        for (int i = 0; i < resized.Pixels.Length; i += 3)
            Assert.Equal((201, 3, 77), (resized.Pixels[i], resized.Pixels[i + 1], resized.Pixels[i + 2]));
    }

    [Fact]
    public void ResizingToTheSameSizeCopies()
    {
        var image = Noise(13, 9, seed: 1);
        Assert.Equal(image.Pixels, ImageOps.Resize(image, 13, 9).Pixels);
    }

    [Fact]
    public void UpscalingSamplesAtAlignedPixelCentres()
    {
        // Target x samples source (x + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25; outside [0, 1] it clamps to the edge.
        var resized = ImageOps.Resize(Row(0, 100), 4, 1);
        Assert.Equal(new byte[] { 0, 25, 75, 100 }, Red(resized));
    }

    [Fact]
    public void DownscalingByTwoAveragesPairs()
    {
        // Target x samples source 2x + 0.5: the mean of pixels 2x and 2x + 1 (no wider filter, as OpenCV's INTER_LINEAR).
        var resized = ImageOps.Resize(Row(0, 100, 40, 60, 10, 11), 3, 1);
        Assert.Equal(new byte[] { 50, 50, 11 }, Red(resized)); // 10.5 rounds up
    }

    [Fact]
    public void ResizingVerticallyInterpolatesRows()
    {
        var column = new RgbImage(1, 2, [0, 0, 0, 200, 200, 200]);
        var resized = ImageOps.Resize(column, 1, 4);
        Assert.Equal(new byte[] { 0, 50, 150, 200 }, Red(resized));
    }

    [Theory]
    [InlineData(100, 20, 48, 320, 240)]
    [InlineData(300, 10, 48, 320, 320)] // wider than 320 at height 48: squeezed
    [InlineData(10, 30, 48, 192, 16)]
    [InlineData(1000, 1, 48, 192, 192)]
    public void ResizingToHeightKeepsTheAspectRatioUpToTheMaximumWidth(int width, int height, int targetHeight, int maxWidth, int expectedWidth)
    {
        var resized = ImageOps.ResizeToHeight(new RgbImage(width, height), targetHeight, maxWidth);
        Assert.Equal((expectedWidth, targetHeight), (resized.Width, resized.Height));
    }

    [Fact]
    public void CropCopiesTheRectangle()
    {
        var image = Noise(10, 8, seed: 2);
        var crop = ImageOps.Crop(image, new PixelRect(3, 2, 4, 5));
        Assert.Equal((4, 5), (crop.Width, crop.Height));
        for (int y = 0; y < 5; y++)
            for (int x = 0; x < 4; x++)
                Assert.Equal(Pixel(image, x + 3, y + 2), Pixel(crop, x, y));
    }

    [Theory]
    [InlineData(-3, -2, 6, 5, 0, 0, 3, 3)]
    [InlineData(8, 6, 10, 10, 8, 6, 2, 2)]
    [InlineData(-1, 3, 12, 1, 0, 3, 10, 1)]
    public void CropIsClampedToTheImage(int x, int y, int w, int h, int ex, int ey, int ew, int eh)
    {
        var image = Noise(10, 8, seed: 3);
        var crop = ImageOps.Crop(image, new PixelRect(x, y, w, h));
        Assert.Equal((ew, eh), (crop.Width, crop.Height));
        Assert.Equal(Pixel(image, ex, ey), Pixel(crop, 0, 0));
        Assert.Equal(Pixel(image, ex + ew - 1, ey + eh - 1), Pixel(crop, ew - 1, eh - 1));
    }

    [Theory]
    [InlineData(10, 0, 3, 3)]
    [InlineData(-5, 0, 5, 3)]
    [InlineData(2, 2, 0, 3)]
    public void CropOutsideTheImageThrows(int x, int y, int w, int h) =>
        Assert.Throws<ArgumentException>(() => ImageOps.Crop(Noise(10, 8, seed: 4), new PixelRect(x, y, w, h)));

    [Fact]
    public void Rotating180TwiceIsTheIdentity()
    {
        var image = Noise(7, 4, seed: 5);
        var once = ImageOps.Rotate180(image);
        Assert.NotEqual(image.Pixels, once.Pixels);
        Assert.Equal(Pixel(image, 0, 0), Pixel(once, 6, 3));
        Assert.Equal(Pixel(image, 6, 0), Pixel(once, 0, 3));
        Assert.Equal(image.Pixels, ImageOps.Rotate180(once).Pixels);
    }

    [Fact]
    public void RotatingAQuarterTurnCounterClockwiseMovesTheRightColumnToTheTop()
    {
        var image = Noise(7, 4, seed: 6);
        var turned = ImageOps.Rotate90CounterClockwise(image);
        Assert.Equal((4, 7), (turned.Width, turned.Height));
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 7; x++)
                Assert.Equal(Pixel(image, x, y), Pixel(turned, y, 6 - x));
        var twice = ImageOps.Rotate90CounterClockwise(turned);
        Assert.Equal(ImageOps.Rotate180(image).Pixels, twice.Pixels);
        Assert.Equal(image.Pixels, ImageOps.Rotate90CounterClockwise(ImageOps.Rotate90CounterClockwise(twice)).Pixels);
    }

    [Fact]
    public void ToTensorNormalisesPlanesInRgbOrderAndPadsWithZero()
    {
        var image = new RgbImage(2, 1, [0, 128, 255, 255, 0, 51]);
        var chw = new float[3 * 2 * 3];
        chw.AsSpan().Fill(float.NaN);
        ImageOps.ToTensor(image, Normalization.Symmetric, chw, width: 3, height: 2);
        float[] expected =
        [
            -1, 1, 0, /**/ 0, 0, 0, // R
            128 / 127.5f - 1, -1, 0, /**/ 0, 0, 0, // G
            1, 51 / 127.5f - 1, 0, /**/ 0, 0, 0, // B
        ];
        Assert.Equal(expected, chw, (a, b) => Math.Abs(a - b) <= 1e-6f);

        ImageOps.ToTensor(image, Normalization.ImageNet, chw, width: 3, height: 2);
        Assert.Equal((0 - 0.485f) / 0.229f, chw[0], 5);
        Assert.Equal((0 - 0.456f) / 0.224f, chw[6 + 1], 5);
        Assert.Equal((51 / 255f - 0.406f) / 0.225f, chw[12 + 1], 5);
    }

    [Fact]
    public void ToTensorRejectsAnImageLargerThanTheTensor() =>
        Assert.Throws<ArgumentException>(() => ImageOps.ToTensor(new RgbImage(4, 2), Normalization.Symmetric, new float[3 * 3 * 2], 3, 2));

    [Fact]
    public void LoadDecodesTheSampleImageAsTheDetectorTensorWasMade()
    {
        // The vendored tensor was made from the same render at 16 bits; the 8-bit decode is within one step of 8 bits.
        var image = ImageOps.Load(SampleImage);
        Assert.Equal((480, 480), (image.Width, image.Height));
        var tensor = new float[3 * 480 * 480];
        ImageOps.ToTensor(image, Normalization.ImageNet, tensor, 480, 480);
        var expected = Npy.Read(TestPaths.Asset("data", "ppocr", "eval", "det", "001.npy.gz")).AsSpan<float>();
        float oneStep = 1 / 255f / 0.224f, worst = 0;
        for (int i = 0; i < tensor.Length; i++) worst = Math.Max(worst, Math.Abs(tensor[i] - expected[i]));
        Assert.True(worst <= 1.5f * oneStep, $"max difference {worst}");
    }

    [Fact]
    public void LoadCompositesTransparentPixelsOverWhite()
    {
        string path = Path.Combine(Path.GetTempPath(), $"squash-ocr-{Guid.NewGuid():N}.png");
        try
        {
            // Opaque red, transparent black, half-transparent black.
            File.WriteAllBytes(path, Png(3, 1, [255, 0, 0, 255, 0, 0, 0, 0, 0, 0, 0, 128]));
            var image = ImageOps.Load(path);
            Assert.Equal(new byte[] { 255, 0, 0, 255, 255, 255, 127, 127, 127 }, image.Pixels);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void LoadRejectsAFileThatIsNotAnImage()
    {
        string path = Path.Combine(Path.GetTempPath(), $"squash-ocr-{Guid.NewGuid():N}.png");
        try
        {
            File.WriteAllText(path, "not an image");
            Assert.Throws<InvalidDataException>(() => ImageOps.Load(path));
        }
        finally
        {
            File.Delete(path);
        }
    }

    internal static string SampleImage => Path.Combine(TestPaths.Root, "samples", "Ocr", "images", "det_001.png");

    private static RgbImage Row(params byte[] red)
    {
        var image = new RgbImage(red.Length, 1);
        for (int x = 0; x < red.Length; x++) image.Pixels[3 * x] = red[x];
        return image;
    }

    private static byte[] Red(RgbImage image) => [.. image.Pixels.Where((_, i) => i % 3 == 0)];

    private static (byte, byte, byte) Pixel(RgbImage image, int x, int y)
    {
        var row = image.Row(y);
        return (row[3 * x], row[3 * x + 1], row[3 * x + 2]);
    }

    private static RgbImage Noise(int width, int height, int seed)
    {
        var image = new RgbImage(width, height);
        new Random(seed).NextBytes(image.Pixels);
        return image;
    }

    /// <summary>A minimal 8-bit RGBA PNG (one IDAT, filter 0 on every row).</summary>
    private static byte[] Png(int width, int height, byte[] rgba)
    {
        var raw = new MemoryStream();
        for (int y = 0; y < height; y++)
        {
            raw.WriteByte(0);
            raw.Write(rgba, y * width * 4, width * 4);
        }
        var compressed = new MemoryStream();
        using (var z = new ZLibStream(compressed, CompressionLevel.Optimal, leaveOpen: true)) raw.WriteTo(z);

        var png = new MemoryStream();
        png.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var header = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, width);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), height);
        header[8] = 8; // bit depth
        header[9] = 6; // RGBA
        Chunk(png, "IHDR", header);
        Chunk(png, "IDAT", compressed.ToArray());
        Chunk(png, "IEND", []);
        return png.ToArray();
    }

    private static void Chunk(Stream png, string type, byte[] data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, data.Length);
        png.Write(word);
        byte[] typeAndData = [.. Encoding.ASCII.GetBytes(type), .. data];
        png.Write(typeAndData);
        BinaryPrimitives.WriteUInt32BigEndian(word, Crc32.HashToUInt32(typeAndData));
        png.Write(word);
    }
}
