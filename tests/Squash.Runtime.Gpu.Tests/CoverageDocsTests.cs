using System.Text.RegularExpressions;
using Squash.Runtime.Gpu.Lowering;
using Squash.Runtime.Operators;

namespace Squash.Runtime.Gpu.Tests;

/// <summary>docs/gpu.md lists exactly the CPU operators that have no device kernel (they run on the host, per node).</summary>
public partial class CoverageDocsTests
{
    private const string Heading = "### Operators without a device kernel";

    [Fact]
    public void DocsListEveryOperatorWithoutADeviceKernel()
    {
        var covered = DeviceOperators.Covered.ToHashSet();
        var expected = OperatorRegistry.All.Select(e => (e.Domain, e.OpType)).Where(k => !covered.Contains(k)).Select(Name).Order(StringComparer.Ordinal).ToArray();
        // Every operator with a device kernel also has a CPU one (the host fallback and the reference).
        Assert.DoesNotContain(covered, k => OperatorRegistry.Find(k.Domain, k.OpType) is null);

        string text = File.ReadAllText(Path.Combine(PpOcrTests.Root, "docs", "gpu.md"));
        int start = text.IndexOf(Heading, StringComparison.Ordinal);
        Assert.True(start >= 0, $"docs/gpu.md has no section '{Heading}'");
        int end = text.IndexOf("\n#", start + Heading.Length, StringComparison.Ordinal);
        string section = text[start..(end < 0 ? text.Length : end)];
        var listed = new List<string>();
        foreach (string line in section.Split('\n').Where(l => l.StartsWith("| ", StringComparison.Ordinal) && !l.StartsWith("| domain", StringComparison.Ordinal)))
        {
            var cells = line.Split('|');
            string domain = cells[1].Trim() == "(default)" ? "" : cells[1].Trim().Trim('`');
            listed.AddRange(Code().Matches(cells[2]).Select(m => Name((domain, m.Groups[1].Value))));
        }
        Assert.True(expected.SequenceEqual(listed.Order(StringComparer.Ordinal)),
            $"docs/gpu.md, '{Heading}', should list:\n{string.Join(", ", expected)}\nmissing: {string.Join(", ", expected.Except(listed))}\nextra: {string.Join(", ", listed.Except(expected))}");
    }

    private static string Name((string Domain, string OpType) k) => k.Domain.Length == 0 ? k.OpType : $"{k.Domain}.{k.OpType}";

    [GeneratedRegex("`([A-Za-z0-9_]+)`")]
    private static partial Regex Code();
}
