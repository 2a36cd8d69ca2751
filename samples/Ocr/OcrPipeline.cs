namespace Ocr;

/// <summary>One line of text read from an image.</summary>
/// <param name="Text">What the recogniser read.</param>
/// <param name="Score">The recogniser's confidence (mean probability of the characters).</param>
/// <param name="Box">Where the line is in the image.</param>
public readonly record struct OcrLine(string Text, float Score, PixelRect Box);

/// <summary>
/// PaddleOCR's <c>TextSystem</c>: detect lines, crop each from the original image, turn tall crops a quarter turn, turn
/// upside-down ones (when a classifier is given), recognise, and keep the lines read with enough confidence.
/// </summary>
/// <param name="detector">Finds the lines.</param>
/// <param name="classifier">Turns upside-down lines; null skips the step (PaddleOCR's default for level text).</param>
/// <param name="recognizer">Reads each line.</param>
/// <param name="dropScore">Lines read with a lower confidence are dropped (PaddleOCR's <c>drop_score</c>).</param>
public sealed class OcrPipeline(TextDetector detector, TextClassifier? classifier, TextRecognizer recognizer, float dropScore = 0.5f)
{
    /// <summary>The text lines of <paramref name="image"/> in reading order.</summary>
    public List<OcrLine> Read(RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var lines = new List<OcrLine>();
        foreach (var box in detector.Detect(image))
        {
            var crop = ImageOps.Crop(image, box.Rect);
            // A crop at least 1.5 times taller than wide is vertical text; the recogniser reads left to right.
            if (crop.Height >= 1.5 * crop.Width) crop = ImageOps.Rotate90CounterClockwise(crop);
            if (classifier is not null) crop = classifier.Upright(crop);
            var text = recognizer.Recognize(crop);
            if (text.Score >= dropScore) lines.Add(new OcrLine(text.Text, text.Score, box.Rect));
        }
        return lines;
    }
}
