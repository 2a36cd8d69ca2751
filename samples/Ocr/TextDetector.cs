using Squash.Runtime;

namespace Ocr;

/// <summary>A detected text line: where it is in the image and the detector's mean probability over it.</summary>
/// <param name="Rect">Axis-aligned box in image pixels.</param>
/// <param name="Score">Mean text probability inside the box before it was expanded.</param>
public readonly record struct TextBox(PixelRect Rect, float Score);

/// <summary>A box found in a probability map, in map coordinates of pixel centres (inclusive on both sides).</summary>
/// <param name="X0">Left edge.</param>
/// <param name="Y0">Top edge.</param>
/// <param name="X1">Right edge.</param>
/// <param name="Y1">Bottom edge.</param>
/// <param name="Score">Mean probability over the component's bounding box.</param>
public readonly record struct MapBox(float X0, float Y0, float X1, float Y1, float Score);

/// <summary>The DB post-processing settings; the defaults are PaddleOCR's for PP-OCRv4.</summary>
public sealed record DetectorOptions
{
    /// <summary>A pixel is text when its probability is above this.</summary>
    public float Threshold { get; init; } = 0.3f;

    /// <summary>A region is kept when the mean probability over its box is at least this.</summary>
    public float BoxThreshold { get; init; } = 0.6f;

    /// <summary>DB shrinks text regions in training; boxes are grown back by area × ratio / perimeter on each side.</summary>
    public float UnclipRatio { get; init; } = 1.5f;

    /// <summary>Regions whose shorter side is below this many map pixels are noise.</summary>
    public int MinSize { get; init; } = 3;

    /// <summary>At most this many regions are examined.</summary>
    public int MaxCandidates { get; init; } = 1000;

    /// <summary>Lines whose tops are closer than this many image pixels count as one row when sorting.</summary>
    public int RowTolerance { get; init; } = 10;
}

/// <summary>
/// Finds text lines with the PP-OCR DB detector. The model has a fixed input (e.g. 640 × 640): a larger image is scaled
/// down to fit, keeping its aspect ratio, and every image is padded right and below to the input size. The probability map is thresholded, each connected region
/// becomes a box, and the box is grown back (DB's "unclip"). Boxes are axis-aligned: PaddleOCR fits a rotated
/// rectangle; for level text the two agree, for tilted text this sample's boxes are looser.
/// </summary>
public sealed class TextDetector
{
    private readonly ModelRunner _runner;
    private readonly DetectorOptions _options;

    /// <summary>Wraps a detector with input [1, 3, H, W] and output [1, 1, H, W].</summary>
    public TextDetector(ISquashModel model, DetectorOptions? options = null)
    {
        _runner = new ModelRunner(model, "detector");
        if (_runner.OutputShape is not [1, 1, var h, var w] || h != _runner.Height || w != _runner.Width)
            throw new ArgumentException($"The detector's output must be [1, 1, {_runner.Height}, {_runner.Width}], not {Shapes.Format(_runner.OutputShape)}.", nameof(model));
        _options = options ?? new DetectorOptions();
    }

    /// <summary>The text lines in <paramref name="image"/>, in reading order (top to bottom, left to right).</summary>
    public List<TextBox> Detect(RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        int width = _runner.Width, height = _runner.Height;
        // As PaddleOCR (limit_type "max"): larger images are scaled down to fit, smaller ones keep their size. Scaling
        // small images up changes the margins DB leaves around text and costs recognition accuracy (docs/samples.md).
        double scale = Math.Min(1, Math.Min((double)width / image.Width, (double)height / image.Height));
        int resizedWidth = Math.Clamp((int)Math.Round(image.Width * scale), 1, width);
        int resizedHeight = Math.Clamp((int)Math.Round(image.Height * scale), 1, height);
        var resized = resizedWidth == image.Width && resizedHeight == image.Height ? image : ImageOps.Resize(image, resizedWidth, resizedHeight);
        ImageOps.ToTensor(resized, Normalization.ImageNet, _runner.Input, width, height);
        var map = _runner.Run().AsSpan<float>();

        // Only the image part of the map: the padding is not searched.
        var boxes = new List<TextBox>();
        double sx = (double)image.Width / resizedWidth, sy = (double)image.Height / resizedHeight;
        foreach (var b in FindBoxes(map, width, new PixelRect(0, 0, resizedWidth, resizedHeight), _options))
        {
            int x0 = Math.Clamp((int)Math.Round(b.X0 * sx), 0, image.Width), x1 = Math.Clamp((int)Math.Round(b.X1 * sx), 0, image.Width);
            int y0 = Math.Clamp((int)Math.Round(b.Y0 * sy), 0, image.Height), y1 = Math.Clamp((int)Math.Round(b.Y1 * sy), 0, image.Height);
            // PaddleOCR drops boxes of 3 pixels or less on a side.
            if (x1 - x0 > 3 && y1 - y0 > 3) boxes.Add(new TextBox(new PixelRect(x0, y0, x1 - x0, y1 - y0), b.Score));
        }
        SortReadingOrder(boxes, _options.RowTolerance);
        return boxes;
    }

    /// <summary>
    /// DB post-processing on a row-major probability map <paramref name="mapWidth"/> wide, searching
    /// <paramref name="region"/> only: regions of 8-connected pixels above the threshold, each one's bounding box scored by
    /// its mean probability, then grown by area × ratio / perimeter on every side.
    /// </summary>
    public static List<MapBox> FindBoxes(ReadOnlySpan<float> map, int mapWidth, PixelRect region, DetectorOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (mapWidth <= 0 || map.Length % mapWidth != 0) throw new ArgumentException($"The map's length {map.Length} is not a multiple of its width {mapWidth}.", nameof(map));
        var r = region.ClampTo(mapWidth, map.Length / mapWidth);
        var boxes = new List<MapBox>();
        if (r.IsEmpty) return boxes;

        var seen = new bool[r.Width * r.Height];
        var stack = new Stack<int>();
        int candidates = 0;
        for (int y = 0; y < r.Height && candidates < options.MaxCandidates; y++)
            for (int x = 0; x < r.Width && candidates < options.MaxCandidates; x++)
            {
                if (seen[y * r.Width + x] || !(map[(r.Y + y) * mapWidth + r.X + x] > options.Threshold)) continue;
                candidates++;
                var (minX, minY, maxX, maxY) = Fill(map, mapWidth, r, options.Threshold, seen, stack, x, y);
                float w = maxX - minX, h = maxY - minY;
                if (Math.Min(w, h) < options.MinSize) continue;
                float score = MeanOver(map, mapWidth, r.X + minX, r.Y + minY, r.X + maxX, r.Y + maxY);
                if (score < options.BoxThreshold) continue;
                float d = w * h * options.UnclipRatio / (2 * (w + h));
                if (Math.Min(w, h) + 2 * d < options.MinSize + 2) continue;
                boxes.Add(new MapBox(r.X + minX - d, r.Y + minY - d, r.X + maxX + d, r.Y + maxY + d, score));
            }
        return boxes;
    }

    /// <summary>Marks the 8-connected region of text pixels holding (x, y); returns its bounding box in region coordinates.</summary>
    private static (int MinX, int MinY, int MaxX, int MaxY) Fill(ReadOnlySpan<float> map, int mapWidth, PixelRect r, float threshold, bool[] seen, Stack<int> stack, int x, int y)
    {
        int minX = x, maxX = x, minY = y, maxY = y;
        seen[y * r.Width + x] = true;
        stack.Push(y * r.Width + x);
        while (stack.TryPop(out int p))
        {
            int px = p % r.Width, py = p / r.Width;
            minX = Math.Min(minX, px);
            maxX = Math.Max(maxX, px);
            minY = Math.Min(minY, py);
            maxY = Math.Max(maxY, py);
            for (int ny = Math.Max(py - 1, 0); ny <= Math.Min(py + 1, r.Height - 1); ny++)
                for (int nx = Math.Max(px - 1, 0); nx <= Math.Min(px + 1, r.Width - 1); nx++)
                {
                    int q = ny * r.Width + nx;
                    if (seen[q] || !(map[(r.Y + ny) * mapWidth + r.X + nx] > threshold)) continue;
                    seen[q] = true;
                    stack.Push(q);
                }
        }
        return (minX, minY, maxX, maxY);
    }

    private static float MeanOver(ReadOnlySpan<float> map, int mapWidth, int x0, int y0, int x1, int y1)
    {
        double sum = 0;
        for (int y = y0; y <= y1; y++)
            foreach (float v in map.Slice(y * mapWidth + x0, x1 - x0 + 1)) sum += v;
        return (float)(sum / ((double)(x1 - x0 + 1) * (y1 - y0 + 1)));
    }

    /// <summary>
    /// PaddleOCR's reading order: by top, then left; then a box whose top is within <paramref name="rowTolerance"/> pixels
    /// of the previous one's but which starts further left moves before it (one row of text).
    /// </summary>
    public static void SortReadingOrder(List<TextBox> boxes, int rowTolerance)
    {
        ArgumentNullException.ThrowIfNull(boxes);
        boxes.Sort((a, b) => a.Rect.Y != b.Rect.Y ? a.Rect.Y.CompareTo(b.Rect.Y) : a.Rect.X.CompareTo(b.Rect.X));
        for (int i = 0; i < boxes.Count - 1; i++)
            for (int j = i; j >= 0; j--)
            {
                var (upper, lower) = (boxes[j].Rect, boxes[j + 1].Rect);
                if (Math.Abs(lower.Y - upper.Y) >= rowTolerance || lower.X >= upper.X) break;
                (boxes[j], boxes[j + 1]) = (boxes[j + 1], boxes[j]);
            }
    }
}
