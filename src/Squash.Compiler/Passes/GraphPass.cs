using Squash.Runtime.Ir;

namespace Squash.Compiler.Passes;

/// <summary>
/// A whole-graph transformation. A pass that finds nothing to do changes nothing and returns false; a pattern that
/// does not match is never an error. Passes keep <see cref="Graph.Nodes"/> topologically sorted.
/// </summary>
public interface IGraphPass
{
    /// <summary>Name used in logs, reports and to disable the pass.</summary>
    string Name { get; }

    /// <summary>Applies the pass to <paramref name="graph"/> (not its subgraphs; the manager recurses). Returns
    /// true when it changed the graph.</summary>
    bool Run(Graph graph, PassContext context);
}

/// <summary>Settings and services passes share.</summary>
public sealed class PassContext
{
    /// <summary>Largest constant (in bytes) that folding may create beyond the size of the constants it replaces.</summary>
    public long MaxFoldedBytes { get; init; } = 1 << 22;

    /// <summary>Most that all folds of one compilation together may grow the constants by, in bytes (so that many
    /// folds, each within <see cref="MaxFoldedBytes"/>, cannot add up to gigabytes).</summary>
    public long MaxTotalFoldedBytes { get; init; } = 256L << 20;

    /// <summary>Bytes the folds so far grew the constants by.</summary>
    public long FoldedGrowth { get; internal set; }

    /// <summary>Names of passes not to run.</summary>
    public IReadOnlySet<string> DisabledPasses { get; init; } = new HashSet<string>();

    /// <summary>Receives one line per pass that changed something (for --verbose and reports).</summary>
    public Action<string>? Log { get; init; }
}
