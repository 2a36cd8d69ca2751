using System.Globalization;
using Squash.Compiler.Tests.Support;

namespace Squash.Compiler.Tests.Conformance;

/// <summary>Reads testassets/onnx-node/exclusions.txt and tolerances.txt.</summary>
internal static class ConformanceLists
{
    /// <summary>Excluded cases and why: lines of <c>test_name  reason</c>; '#' starts a comment line.</summary>
    public static Dictionary<string, string> Exclusions()
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, rest) in Lines("exclusions.txt")) result[name] = rest;
        return result;
    }

    /// <summary>Per-case tolerances: lines of <c>test_name rtol atol reason</c>.</summary>
    public static Dictionary<string, (double Rtol, double Atol)> Tolerances()
    {
        var result = new Dictionary<string, (double, double)>(StringComparer.Ordinal);
        foreach (var (name, rest) in Lines("tolerances.txt"))
        {
            var parts = rest.Split(' ', 3, StringSplitOptions.RemoveEmptyEntries);
            result[name] = (double.Parse(parts[0], CultureInfo.InvariantCulture), double.Parse(parts[1], CultureInfo.InvariantCulture));
        }
        return result;
    }

    private static IEnumerable<(string Name, string Remainder)> Lines(string file)
    {
        string path = TestPaths.Asset("onnx-node", file);
        if (!File.Exists(path)) yield break;
        foreach (var raw in File.ReadLines(path))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            int space = line.IndexOfAny([' ', '\t']);
            yield return space < 0 ? (line, "") : (line[..space], line[(space + 1)..].Trim());
        }
    }
}
