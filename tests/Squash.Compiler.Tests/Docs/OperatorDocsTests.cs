using System.Text;
using Squash.Compiler.Tests.Conformance;
using Squash.Compiler.Tests.Support;
using Squash.Runtime.Operators;

namespace Squash.Compiler.Tests.Docs;

/// <summary>docs/operators.md is generated from the operator registry and the conformance exclusions; this test fails
/// when it is out of date. Regenerate with <c>SQUASH_UPDATE_DOCS=1 dotnet test --filter OperatorDocs</c>.</summary>
public sealed class OperatorDocsTests
{
    [Fact]
    public void OperatorsDocMatchesTheRegistryAndTheExclusions()
    {
        string path = Path.Combine(TestPaths.Root, "docs", "operators.md");
        string expected = Generate();
        if (Environment.GetEnvironmentVariable("SQUASH_UPDATE_DOCS") == "1") File.WriteAllText(path, expected);
        Assert.True(File.Exists(path) && File.ReadAllText(path).ReplaceLineEndings("\n") == expected,
            "docs/operators.md is out of date: run SQUASH_UPDATE_DOCS=1 dotnet test tests/Squash.Compiler.Tests --filter OperatorDocs");
    }

    [Fact]
    public void EverySupportedOperatorHasAConformanceCaseOrIsListedAsUntested()
    {
        var covered = ConformanceCoverage();
        // Squash's own operators (com.squash) cannot have ONNX cases; their unit tests cover them.
        var untested = OperatorRegistry.All.Where(e => e.Domain != OperatorRegistry.SquashDomain && !covered.Contains(e.OpType)).Select(e => e.OpType).ToList();
        // Operators without a vendored ONNX case are tested by unit tests; the doc says so. Keep the list short.
        Assert.True(untested.Count <= 12, "operators without conformance cases: " + string.Join(", ", untested));
    }

    private static HashSet<string> ConformanceCoverage()
    {
        var excluded = ConformanceLists.Exclusions();
        var ops = new HashSet<string>(StringComparer.Ordinal);
        foreach (var dir in Directory.GetDirectories(TestPaths.Asset("onnx-node")))
        {
            if (excluded.ContainsKey(Path.GetFileName(dir))) continue;
            var model = Squash.Compiler.Onnx.OnnxLoader.Load(Path.Combine(dir, "model.onnx"));
            void Walk(Squash.Runtime.Ir.Graph g)
            {
                foreach (var n in g.Nodes)
                {
                    ops.Add(n.OpType);
                    foreach (var s in n.Subgraphs) Walk(s);
                }
            }
            Walk(model.Graph);
        }
        return ops;
    }

    private static string Generate()
    {
        var covered = ConformanceCoverage();
        var sb = new StringBuilder();
        sb.Append("# Supported operators\n\n");
        sb.Append("Generated from the operator registry (src/Squash.Runtime/Operators) and the conformance lists\n");
        sb.Append("(testassets/onnx-node); `OperatorDocsTests` keeps it in sync. Default-domain opsets 7 to ")
          .Append(OperatorRegistry.MaxSupportedOpset).Append(" load; the table gives each operator's range.\n");
        sb.Append("\"ONNX cases\" tells whether vendored ONNX node conformance cases exercise the operator; the others are\n");
        sb.Append("covered by unit tests in tests/Squash.Runtime.Tests.\n\n");
        sb.Append("| operator | domain | opsets | ONNX cases |\n| --- | --- | --- | --- |\n");
        foreach (var e in OperatorRegistry.All)
            sb.Append($"| {e.OpType} | {(e.Domain.Length == 0 ? "ai.onnx" : e.Domain)} | {e.MinOpset}-{e.MaxOpset} | {(covered.Contains(e.OpType) ? "yes" : "no")} |\n");
        sb.Append("\n## Conformance cases not run\n\n");
        sb.Append("Vendored cases that are expected to fail, with the reason (testassets/onnx-node/exclusions.txt).\n\n");
        sb.Append("| case | reason |\n| --- | --- |\n");
        foreach (var (name, reason) in ConformanceLists.Exclusions().OrderBy(p => p.Key, StringComparer.Ordinal))
            sb.Append($"| {name} | {reason.Replace("|", "\\|")} |\n");
        var tolerances = ConformanceLists.Tolerances();
        if (tolerances.Count > 0)
        {
            sb.Append("\n## Cases with wider tolerances\n\n");
            sb.Append("The default is rtol 1e-3, atol 1e-5 (ONNX Runtime's for this suite); testassets/onnx-node/tolerances.txt gives the reasons.\n\n");
            sb.Append("| case | rtol | atol |\n| --- | --- | --- |\n");
            foreach (var (name, (rtol, atol)) in tolerances.OrderBy(p => p.Key, StringComparer.Ordinal))
                sb.Append($"| {name} | {rtol:G} | {atol:G} |\n");
        }
        return sb.ToString();
    }
}
