using System.Text;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.IO;

namespace Squash.Compiler.Tests.Models;

/// <summary>The vendored PP-OCR models, their inputs and CTC decoding (testassets/models/ppocr, testassets/data/ppocr).</summary>
internal static class PpOcr
{
    public const string Det = "ch_PP-OCRv4_det_infer.onnx";
    public const string Rec = "ch_PP-OCRv4_rec_infer.onnx";
    public const string Cls = "ch_ppocr_mobile_v2.0_cls_infer.onnx";

    public static string ModelPath(string file) => TestPaths.Asset("models", "ppocr", file);

    /// <summary>The sample files of a split ("eval"/"calib") and task ("rec"/"cls"/"det"), sorted.</summary>
    public static string[] Samples(string split, string task) =>
        [.. Directory.GetFiles(TestPaths.Asset("data", "ppocr", split, task), "*.npy.gz").Order(StringComparer.Ordinal)];

    public static Tensor Load(string path) => Npy.Read(path);

    /// <summary>Ground-truth labels by sample file name (without .gz).</summary>
    public static Dictionary<string, string> Labels(string split, string task, string file = "labels.tsv")
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(TestPaths.Asset("data", "ppocr", split, task, file)))
        {
            int tab = line.IndexOf('\t');
            if (tab > 0) result[line[..tab]] = line[(tab + 1)..];
        }
        return result;
    }

    private static readonly Lazy<string[]> s_keys = new(() => File.ReadAllLines(TestPaths.Asset("models", "ppocr", "ppocr_keys_v1.txt")));

    /// <summary>Greedy CTC: argmax per step, merge repeats, drop blank 0; class k is line k of the key file (1-based),
    /// the last class is a space.</summary>
    public static string DecodeCtc(Tensor probabilities)
    {
        int steps = probabilities.Shape[1], classes = probabilities.Shape[2];
        var p = probabilities.AsSpan<float>();
        var text = new StringBuilder();
        int previous = -1;
        for (int t = 0; t < steps; t++)
        {
            var row = p.Slice(t * classes, classes);
            int best = 0;
            for (int c = 1; c < classes; c++) if (row[c] > row[best]) best = c;
            if (best != 0 && best != previous)
                text.Append(best == classes - 1 ? " " : best - 1 < s_keys.Value.Length ? s_keys.Value[best - 1] : "?");
            previous = best;
        }
        return text.ToString();
    }
}
