using Squash.Runtime.Ir;

namespace Squash.Runtime.Operators;

/// <summary>Creates the <see cref="Operator"/> for a node.</summary>
public delegate Operator OperatorFactory(Node node);

/// <summary>
/// The supported operators. Each operator family registers itself in <see cref="Build"/>, one line per family;
/// generated code constructs operators directly and never needs this table.
/// </summary>
public static class OperatorRegistry
{
    /// <summary>A supported operator.</summary>
    /// <param name="Domain">Domain ("" for ONNX's default domain).</param>
    /// <param name="OpType">Operator type.</param>
    /// <param name="MinOpset">Oldest supported opset version of the domain.</param>
    /// <param name="MaxOpset">Newest supported opset version of the domain.</param>
    /// <param name="Factory">Creates the operator for a node.</param>
    public sealed record Entry(string Domain, string OpType, int MinOpset, int MaxOpset, OperatorFactory Factory);

    /// <summary>Collects registrations.</summary>
    public sealed class Builder
    {
        internal readonly Dictionary<(string, string), Entry> Entries = [];

        /// <summary>Registers <paramref name="opType"/> of the default domain for opsets 7 to 23 (or the given range).</summary>
        public Builder Add(string opType, OperatorFactory factory, int minOpset = 7, int maxOpset = MaxSupportedOpset) =>
            Add("", opType, factory, minOpset, maxOpset);

        /// <summary>Registers <paramref name="opType"/> of <paramref name="domain"/>.</summary>
        public Builder Add(string domain, string opType, OperatorFactory factory, int minOpset, int maxOpset)
        {
            Entries[(domain, opType)] = new Entry(domain, opType, minOpset, maxOpset, factory);
            return this;
        }
    }

    /// <summary>The newest default-domain opset Squash knows.</summary>
    public const int MaxSupportedOpset = 25;

    /// <summary>The domain of Squash's own fused operators.</summary>
    public const string SquashDomain = "com.squash";

    private static readonly Dictionary<(string, string), Entry> s_entries = Build();

    private static Dictionary<(string, string), Entry> Build()
    {
        var b = new Builder();
        BasicOperators.Register(b);
        UnaryOperators.Register(b);
        ActivationOperators.Register(b);
        BinaryOperators.Register(b);
        CastOperators.Register(b);
        ConvOperators.Register(b);
        MatMulOperators.Register(b);
        FusedOperators.Register(b);
        PoolingOperators.Register(b);
        NormalizationOperators.Register(b);
        ReduceOperators.Register(b);
        SoftmaxOperators.Register(b);
        ShapeOperators.Register(b);
        MovementOperators.Register(b);
        IndexingOperators.Register(b);
        ResizeOperators.Register(b);
        RecurrentOperators.Register(b);
        ControlFlowOperators.Register(b);
        Int4Operators.Register(b);
        AttentionOperators.Register(b);
        QuantizedOperators.Register(b);
        return b.Entries;
    }

    /// <summary>Every supported operator, ordered by domain and name.</summary>
    public static IEnumerable<Entry> All =>
        s_entries.Values.OrderBy(e => e.Domain, StringComparer.Ordinal).ThenBy(e => e.OpType, StringComparer.Ordinal);

    /// <summary>Looks up an operator.</summary>
    public static Entry? Find(string domain, string opType) =>
        s_entries.GetValueOrDefault((NormalizeDomain(domain), opType));

    /// <summary>Creates and checks the operator for <paramref name="node"/>.</summary>
    /// <exception cref="SquashException">The operator, its opset or one of its attributes is not supported.</exception>
    public static Operator Create(Node node)
    {
        var entry = Find(node.Domain, node.OpType);
        if (entry is null)
            throw new SquashException(ErrorCodes.UnsupportedOperator,
                $"{node.Describe()}: operator {node.OpType}{(node.Domain.Length > 0 ? " of domain " + node.Domain : "")} is not supported. " +
                "See docs/operators.md for the supported operators; replace it in the model or open an issue.", node.Name);
        if (node.OpsetVersion != 0 && (node.OpsetVersion < entry.MinOpset || node.OpsetVersion > entry.MaxOpset))
            throw new SquashException(ErrorCodes.UnsupportedOperator,
                $"{node.Describe()}: {node.OpType} at opset {node.OpsetVersion} is not supported (supported: opsets {entry.MinOpset} to {entry.MaxOpset}). " +
                "Convert the model to a supported opset (for example with onnx.version_converter).", node.Name);
        var op = entry.Factory(node);
        op.CheckAttributesRead();
        return op;
    }

    private static string NormalizeDomain(string domain) => domain == "ai.onnx" ? "" : domain;
}
