using Ocr;
using Squash.Compiler.Tests.Support;

namespace Squash.Compiler.Tests.Samples;

/// <summary>The OCR sample end to end on its image (samples/Ocr/images), with the models run by ONNX Runtime.</summary>
public sealed class OcrPipelineTests
{
    /// <summary>The ground-truth block of samples/Ocr/images/README.md.</summary>
    private static string[] GroundTruth()
    {
        var lines = File.ReadAllLines(Path.Combine(TestPaths.Root, "samples", "Ocr", "images", "README.md"));
        int start = Array.IndexOf(lines, "```text") + 1;
        int end = Array.IndexOf(lines, "```", start);
        Assert.True(start > 0 && end > start, "README.md has no ```text block");
        return lines[start..end];
    }

    [Fact]
    public void ReadsTheSampleImage()
    {
        using var ocr = new OrtOcr();
        var lines = ocr.Pipeline.Read(ImageOps.Load(OcrImageOpsTests.SampleImage));
        var expected = GroundTruth();
        // Every line is found, in reading order; 7 of the 9 are read exactly. The misses are the model's, not the
        // pipeline's: the longest line is squeezed 2.2 times to fit the recogniser's 320 columns, and one space is lost
        // (docs/samples.md).
        Assert.Equal(expected.Length, lines.Count);
        var misses = expected.Zip(lines, (e, l) => (Expected: e, Read: l.Text)).Where(p => p.Expected != p.Read).ToList();
        Assert.True(misses.Count <= 2, string.Join("\n", misses.Select(m => $"read '{m.Read}', expected '{m.Expected}'")));
        Assert.All(lines, l => Assert.InRange(l.Score, 0.5f, 1f));
    }

    [Fact]
    public void TurnsAnUpsideDownLine()
    {
        using var ocr = new OrtOcr();
        var image = ImageOps.Load(OcrImageOpsTests.SampleImage);
        var line = ImageOps.Crop(image, ocr.Detector.Detect(image)[3].Rect); // "Serial 2003-01-07"
        Assert.False(ocr.Classifier.Classify(line).UpsideDown);
        var turned = ImageOps.Rotate180(line);
        Assert.True(ocr.Classifier.Classify(turned).UpsideDown);
        Assert.NotEqual("Serial 2003-01-07", ocr.Recognizer.Recognize(turned).Text);
        Assert.Equal("Serial 2003-01-07", ocr.Recognizer.Recognize(ocr.Classifier.Upright(turned)).Text);
    }
}
