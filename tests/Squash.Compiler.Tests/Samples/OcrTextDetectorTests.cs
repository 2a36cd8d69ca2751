using Ocr;

namespace Squash.Compiler.Tests.Samples;

/// <summary>The OCR sample's DB post-processing and reading order (samples/Ocr/TextDetector.cs) on synthetic maps.</summary>
public sealed class OcrTextDetectorTests
{
    private const int W = 120, H = 80;
    private static readonly DetectorOptions s_options = new();

    private static void Fill(float[] map, int x0, int y0, int x1, int y1, float p)
    {
        for (int y = y0; y <= y1; y++)
            for (int x = x0; x <= x1; x++) map[y * W + x] = p;
    }

    /// <summary>DB's unclip distance for a box of pixel-centre size w × h: area × 1.5 / perimeter.</summary>
    private static float Grow(float w, float h) => w * h * 1.5f / (2 * (w + h));

    [Fact]
    public void FindsEachRectangleGrownByTheUnclipDistance()
    {
        var map = new float[W * H];
        Fill(map, 10, 20, 59, 29, 0.9f);
        Fill(map, 70, 50, 109, 69, 0.7f);
        var boxes = TextDetector.FindBoxes(map, W, new PixelRect(0, 0, W, H), s_options);
        Assert.Equal(2, boxes.Count);
        float d = Grow(49, 9);
        AssertBox(new MapBox(10 - d, 20 - d, 59 + d, 29 + d, 0.9f), boxes[0]);
        float e = Grow(39, 19);
        AssertBox(new MapBox(70 - e, 50 - e, 109 + e, 69 + e, 0.7f), boxes[1]);
    }

    [Fact]
    public void DropsRegionsWithALowMeanOrASmallSide()
    {
        var map = new float[W * H];
        Fill(map, 10, 10, 50, 20, 0.5f);  // above the pixel threshold 0.3, below the box threshold 0.6
        Fill(map, 10, 40, 50, 42, 0.95f); // 3 rows: pixel-centre height 2 < 3
        Fill(map, 70, 40, 72, 70, 0.95f); // 3 columns
        Fill(map, 80, 10, 80, 10, 1f);    // one pixel
        Assert.Empty(TextDetector.FindBoxes(map, W, new PixelRect(0, 0, W, H), s_options));
    }

    [Fact]
    public void ScoresTheMeanProbabilityOverTheBoundingBox()
    {
        // An L: a 40 × 10 bar and a 5 × 10 bar below its left end, at 1.0; the rest of its bounding box is 0.2 (below
        // the pixel threshold, so not part of the region, but inside the box that is scored).
        var map = new float[W * H];
        Fill(map, 20, 20, 59, 39, 0.2f);
        Fill(map, 20, 20, 59, 29, 1f);
        Fill(map, 20, 30, 24, 39, 1f);
        var box = Assert.Single(TextDetector.FindBoxes(map, W, new PixelRect(0, 0, W, H), s_options));
        float ones = 40 * 10 + 5 * 10, all = 40 * 20;
        Assert.Equal((ones + 0.2f * (all - ones)) / all, box.Score, 5);
        float d = Grow(39, 19);
        AssertBox(new MapBox(20 - d, 20 - d, 59 + d, 39 + d, box.Score), box);
    }

    [Fact]
    public void DiagonalNeighboursAreOneRegion()
    {
        var map = new float[W * H];
        Fill(map, 10, 10, 29, 19, 0.9f);
        Fill(map, 30, 20, 49, 29, 0.9f); // touches the first only at a corner
        // Half the bounding box is text: a lower box threshold keeps the region to look at.
        var box = Assert.Single(TextDetector.FindBoxes(map, W, new PixelRect(0, 0, W, H), s_options with { BoxThreshold = 0.4f }));
        Assert.Equal(0.9f / 2, box.Score, 5); // half the 40 × 20 bounding box is text
        Assert.Equal(10 - Grow(39, 19), box.X0, 4);
    }

    [Fact]
    public void SearchesOnlyTheGivenRegionAndReportsMapCoordinates()
    {
        var map = new float[W * H];
        Fill(map, 10, 10, 39, 29, 0.9f);
        Fill(map, 90, 10, 115, 29, 0.9f); // in the padding right of the image
        var box = Assert.Single(TextDetector.FindBoxes(map, W, new PixelRect(5, 5, 80, 75), s_options));
        float d = Grow(29, 19);
        AssertBox(new MapBox(10 - d, 10 - d, 39 + d, 29 + d, 0.9f), box);
    }

    [Fact]
    public void ReadingOrderIsTopToBottomThenLeftToRightWithinARow()
    {
        static TextBox At(int x, int y) => new(new PixelRect(x, y, 10, 10), 1);
        var boxes = new List<TextBox> { At(50, 100), At(200, 12), At(10, 40), At(5, 18), At(100, 45), At(60, 10) };
        TextDetector.SortReadingOrder(boxes, rowTolerance: 10);
        // Tops 10, 12 and 18 are one row (each within 10 of the previous), so are 40 and 45.
        Assert.Equal([At(5, 18), At(60, 10), At(200, 12), At(10, 40), At(100, 45), At(50, 100)], boxes);
    }

    private static void AssertBox(MapBox expected, MapBox actual)
    {
        Assert.Equal(expected.X0, actual.X0, 4);
        Assert.Equal(expected.Y0, actual.Y0, 4);
        Assert.Equal(expected.X1, actual.X1, 4);
        Assert.Equal(expected.Y1, actual.Y1, 4);
        Assert.Equal(expected.Score, actual.Score, 5);
    }
}
