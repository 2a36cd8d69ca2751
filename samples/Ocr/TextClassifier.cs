using Squash.Runtime;

namespace Ocr;

/// <summary>
/// Tells upright text lines from upside-down ones with the PP-OCR direction classifier (input [1, 3, 48, 192], output
/// [1, 2]: upright, rotated 180 degrees) and turns the upside-down ones, as PaddleOCR's <c>TextClassifier</c> does.
/// </summary>
public sealed class TextClassifier
{
    private readonly ModelRunner _runner;

    /// <summary>Wraps a classifier with input [1, 3, H, W] and output [1, 2].</summary>
    /// <param name="model">The model.</param>
    /// <param name="threshold">A line is turned only when the classifier is surer than this that it is upside down.</param>
    public TextClassifier(ISquashModel model, float threshold = 0.9f)
    {
        _runner = new ModelRunner(model, "classifier");
        if (_runner.OutputShape is not [1, 2])
            throw new ArgumentException($"The classifier's output must be [1, 2], not {Shapes.Format(_runner.OutputShape)}.", nameof(model));
        Threshold = threshold;
    }

    /// <summary>The probability above which a line is turned.</summary>
    public float Threshold { get; }

    /// <summary>
    /// Classifies <paramref name="line"/>: whether it is upside down (the rotated class is the more probable one and its
    /// probability is above <see cref="Threshold"/>), and the probability of the more probable class.
    /// </summary>
    public (bool UpsideDown, float Score) Classify(RgbImage line)
    {
        ArgumentNullException.ThrowIfNull(line);
        ImageOps.ToTensor(ImageOps.ResizeToHeight(line, _runner.Height, _runner.Width), Normalization.Symmetric, _runner.Input, _runner.Width, _runner.Height);
        var p = _runner.Run().AsSpan<float>();
        return p[1] > p[0] ? (p[1] > Threshold, p[1]) : (false, p[0]);
    }

    /// <summary><paramref name="line"/> the right way up: turned 180 degrees when the classifier says so.</summary>
    public RgbImage Upright(RgbImage line) => Classify(line).UpsideDown ? ImageOps.Rotate180(line) : line;
}
