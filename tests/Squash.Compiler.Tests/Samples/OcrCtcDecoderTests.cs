using Ocr;

namespace Squash.Compiler.Tests.Samples;

/// <summary>The OCR sample's greedy CTC decoder (samples/Ocr/CtcDecoder.cs) on synthetic probability tables.</summary>
public sealed class OcrCtcDecoderTests
{
    // Classes: 0 blank, 1 "a", 2 "b", 3 "字", 4 space.
    private static readonly CtcDecoder s_decoder = new(["a", "b", "字"]);

    /// <summary>A [steps, 5] table whose step t has class <paramref name="best"/>[t] at probability p[t], the rest shared.</summary>
    private static float[] Table(int[] best, float[] p)
    {
        var table = new float[best.Length * 5];
        for (int t = 0; t < best.Length; t++)
            for (int c = 0; c < 5; c++)
                table[t * 5 + c] = c == best[t] ? p[t] : (1 - p[t]) / 4;
        return table;
    }

    [Fact]
    public void MergesRepeatsDropsBlanksAndMapsTheLastClassToSpace()
    {
        int[] best = [0, 1, 1, 0, 1, 2, 2, 4, 3, 3, 0];
        float[] p = [0.9f, 0.8f, 0.6f, 0.7f, 0.5f, 0.9f, 0.9f, 0.7f, 0.6f, 0.9f, 0.99f];
        var result = s_decoder.Decode(Table(best, p), best.Length);
        Assert.Equal("aab 字", result.Text);
        // The kept steps are the first of each run: 0.8, 0.5, 0.9, 0.7, 0.6.
        Assert.Equal((0.8f + 0.5f + 0.9f + 0.7f + 0.6f) / 5, result.Score, 6);
    }

    [Fact]
    public void AllBlankReadsNothingWithScoreZero()
    {
        var result = s_decoder.Decode(Table([0, 0, 0], [0.9f, 0.8f, 0.7f]), 3);
        Assert.Equal(new RecognizedText("", 0), result);
    }

    [Fact]
    public void ATieGoesToTheLowerClass()
    {
        // Blank and "b" tie at step 0 (blank wins, nothing read); "a" and "b" tie at step 1 ("a" wins).
        float[] table = [0.4f, 0.1f, 0.4f, 0.05f, 0.05f, /**/ 0.1f, 0.4f, 0.4f, 0.05f, 0.05f];
        Assert.Equal("a", s_decoder.Decode(table, 2).Text);
    }

    [Fact]
    public void CountsBlankCharactersAndSpaceAsClasses() => Assert.Equal(5, s_decoder.ClassCount);

    [Fact]
    public void RejectsATableOfTheWrongSize() =>
        Assert.Throws<ArgumentException>(() => s_decoder.Decode(new float[4 * 6], 4));
}
