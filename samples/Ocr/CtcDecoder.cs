using System.Text;

namespace Ocr;

/// <summary>Text read from one line, and the model's confidence in it.</summary>
/// <param name="Text">The characters.</param>
/// <param name="Score">Mean probability of the characters kept (0 when none was).</param>
public readonly record struct RecognizedText(string Text, float Score);

/// <summary>
/// Greedy CTC decoding as PaddleOCR's <c>CTCLabelDecode</c>: the most probable class per time step, repeats merged, the
/// blank class 0 dropped. Class k (1 ≤ k ≤ n) is character k - 1 of the list, class n + 1 is a space.
/// </summary>
public sealed class CtcDecoder
{
    private readonly string[] _characters;

    /// <summary>Creates a decoder for a character list (ppocr_keys_v1.txt: one character per line).</summary>
    public CtcDecoder(IEnumerable<string> characters)
    {
        ArgumentNullException.ThrowIfNull(characters);
        _characters = ["", .. characters, " "];
    }

    /// <summary>Number of classes the recogniser must output: blank, the characters, space.</summary>
    public int ClassCount => _characters.Length;

    /// <summary>Decodes a [steps, classes] row-major table of class probabilities.</summary>
    /// <exception cref="ArgumentException">The table's size does not match <paramref name="steps"/> × <see cref="ClassCount"/>.</exception>
    public RecognizedText Decode(ReadOnlySpan<float> probabilities, int steps)
    {
        int classes = _characters.Length;
        if (steps < 0 || probabilities.Length != (long)steps * classes)
            throw new ArgumentException($"Expected {steps} steps of {classes} classes ({(long)steps * classes} values), got {probabilities.Length} values.", nameof(probabilities));
        var text = new StringBuilder();
        float sum = 0;
        int kept = 0, previous = -1;
        for (int t = 0; t < steps; t++)
        {
            var row = probabilities.Slice(t * classes, classes);
            int best = 0;
            for (int c = 1; c < row.Length; c++)
                if (row[c] > row[best]) best = c;
            if (best != 0 && best != previous)
            {
                text.Append(_characters[best]);
                sum += row[best];
                kept++;
            }
            previous = best;
        }
        return new RecognizedText(text.ToString(), kept == 0 ? 0 : sum / kept);
    }
}
