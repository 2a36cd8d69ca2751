using Squash.Runtime;

namespace Ocr;

/// <summary>
/// Reads one text line with the PP-OCR recogniser (input [1, 3, 48, W], output [1, W / 8, classes] of CTC
/// probabilities): the line is scaled to height 48 keeping its aspect ratio (squeezed when wider than W, as PaddleOCR
/// does for a fixed width), padded right with the normalised 0, and the output decoded greedily.
/// </summary>
public sealed class TextRecognizer
{
    private readonly ModelRunner _runner;
    private readonly CtcDecoder _decoder;
    private readonly int _steps;

    /// <summary>Wraps a recogniser with input [1, 3, H, W] and output [1, T, classes].</summary>
    public TextRecognizer(ISquashModel model, CtcDecoder decoder)
    {
        ArgumentNullException.ThrowIfNull(decoder);
        _runner = new ModelRunner(model, "recognizer");
        if (_runner.OutputShape is not [1, > 0, var classes] || classes != decoder.ClassCount)
            throw new ArgumentException($"The recogniser's output must be [1, T, {decoder.ClassCount}] (blank, the characters, space), not {Shapes.Format(_runner.OutputShape)}.", nameof(model));
        _decoder = decoder;
        _steps = _runner.OutputShape[1];
    }

    /// <summary>Reads <paramref name="line"/>, a crop holding one line of text.</summary>
    public RecognizedText Recognize(RgbImage line)
    {
        ArgumentNullException.ThrowIfNull(line);
        ImageOps.ToTensor(ImageOps.ResizeToHeight(line, _runner.Height, _runner.Width), Normalization.Symmetric, _runner.Input, _runner.Width, _runner.Height);
        return _decoder.Decode(_runner.Run().AsSpan<float>(), _steps);
    }
}
