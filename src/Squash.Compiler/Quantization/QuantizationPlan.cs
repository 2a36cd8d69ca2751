using Squash.Runtime;
using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Compiler.Quantization;

/// <summary>The precision a node runs in.</summary>
public enum NodePrecision
{
    /// <summary>Float, as in the source model.</summary>
    Fp32,
    /// <summary>Int8: uint8 activations, int8 weights.</summary>
    Int8,
    /// <summary>Float compute with the weights rounded to float16 values and stored as float16 (<see cref="Fp16Weights"/>):
    /// a fallback from int8 that keeps half of fp32's weight bytes.</summary>
    Fp16,
}

/// <summary>Nodes to keep in float whatever the plan's defaults, by node name or by operator type, each with the float
/// precision it runs in (the fallback, <c>Int8Fallback</c>, unless the entry names one).</summary>
public sealed record QuantizationExclusions
{
    /// <summary>No exclusions.</summary>
    public static QuantizationExclusions None { get; } = new();

    /// <summary>Node names (the names after the fp32 optimization passes; a unit is named after its first node).</summary>
    public IReadOnlySet<string> Nodes { get; init; } = new HashSet<string>(StringComparer.Ordinal);

    /// <summary>Operator types (Conv, MatMul, HardSwish ...); a unit is excluded when any of its nodes has one.</summary>
    public IReadOnlySet<string> Operators { get; init; } = new HashSet<string>(StringComparer.Ordinal);

    /// <summary>The precision an entry names (<c>NAME=fp16</c>, <c>op:Type=fp32</c>), by the entry as in
    /// <see cref="Nodes"/> (a node name) or <c>op:Type</c>; entries without one run in the fallback precision.</summary>
    public IReadOnlyDictionary<string, NodePrecision> Precisions { get; init; } = new Dictionary<string, NodePrecision>(StringComparer.Ordinal);

    /// <summary>Parses a comma- or semicolon-separated list in which operator types are written <c>op:Type</c> and
    /// anything else is a node name, each optionally followed by <c>=fp16</c> or <c>=fp32</c>, e.g.
    /// <c>op:MatMul;p2o.Conv.0=fp16</c>.</summary>
    /// <exception cref="SquashException">An entry names another precision (SQ1012).</exception>
    public static QuantizationExclusions Parse(string? text)
    {
        var nodes = new HashSet<string>(StringComparer.Ordinal);
        var operators = new HashSet<string>(StringComparer.Ordinal);
        var precisions = new Dictionary<string, NodePrecision>(StringComparer.Ordinal);
        foreach (var raw in (text ?? "").Split([',', ';'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            string part = raw;
            NodePrecision? precision = null;
            int eq = raw.LastIndexOf('=');
            if (eq >= 0)
            {
                part = raw[..eq].Trim();
                precision = ParseFallback(raw[(eq + 1)..], $"QuantizationExclusions entry '{raw}'");
                if (part.Length == 0)
                    throw new SquashException(ErrorCodes.InvalidOption, $"QuantizationExclusions entry '{raw}' names no node; write NAME=fp16 or op:Type=fp32.");
            }
            if (part.StartsWith("op:", StringComparison.Ordinal)) operators.Add(part[3..]);
            else nodes.Add(part);
            if (precision is { } p) precisions[part] = p;
        }
        return new QuantizationExclusions { Nodes = nodes, Operators = operators, Precisions = precisions };
    }

    /// <summary>Reads a fallback precision: fp16 or fp32 (case-insensitive).</summary>
    /// <param name="text">The value.</param>
    /// <param name="what">What it is, for the message (<c>Int8Fallback</c>).</param>
    /// <exception cref="SquashException">Another value (SQ1012).</exception>
    public static NodePrecision ParseFallback(string text, string what) => text.Trim().ToLowerInvariant() switch
    {
        "fp32" => NodePrecision.Fp32,
        "fp16" => NodePrecision.Fp16,
        _ => throw new SquashException(ErrorCodes.InvalidOption, $"{what}: '{text.Trim()}' is not a fallback precision; use fp16 or fp32."),
    };

    /// <summary>The float precision of an excluded unit (anchor <paramref name="node"/>, operators
    /// <paramref name="opTypes"/>), or null when the unit is not excluded. A node entry wins over an operator entry.</summary>
    public NodePrecision? PrecisionOf(string node, IEnumerable<string> opTypes, NodePrecision fallback)
    {
        if (Nodes.Contains(node)) return Precisions.GetValueOrDefault(node, fallback);
        foreach (var op in opTypes)
            if (Operators.Contains(op)) return Precisions.GetValueOrDefault("op:" + op, fallback);
        return null;
    }
}

/// <summary>
/// Which nodes of a float graph run in int8 and which in fp32: one entry per <em>unit</em> (a node that can run in int8
/// with the nodes it absorbs: a bias Add, a fused Relu or Clip, the rest of a chain of element-wise nodes), keyed by the
/// name of its first node. Nodes that cannot run in int8 are fp32 and have no entry. The default plan runs every unit
/// in int8 except the exclusions, the products of fewer than <see cref="SmallProductMacs"/> multiply-adds
/// (squeeze-and-excitation branches, a classifier's last layer: int8 saves nothing there and costs accuracy) and the
/// convolutions fp32 runs faster (Winograd); a mixed-precision planner may set any entry (<see cref="With"/>).
/// </summary>
/// <remarks>A unit planned int8 may still run in fp32: a unit that only moves bytes, sums or looks up runs in int8 only
/// when its inputs arrive in uint8 and its output feeds another int8 unit, so that only region borders convert
/// (see <see cref="Int8Quantization"/>). Products (Conv, MatMul, Gemm) run in int8 whenever planned.</remarks>
public sealed class QuantizationPlan
{
    private readonly Dictionary<string, NodePrecision> _precisions;
    private readonly Dictionary<string, Int8UnitKind> _kinds;

    private QuantizationPlan(Dictionary<string, NodePrecision> precisions, Dictionary<string, Int8UnitKind> kinds)
    {
        _precisions = precisions;
        _kinds = kinds;
    }

    /// <summary>The precision of every unit, by the name of its first node.</summary>
    public IReadOnlyDictionary<string, NodePrecision> Precisions => _precisions;

    /// <summary>What each unit becomes in int8, by the name of its first node.</summary>
    public IReadOnlyDictionary<string, Int8UnitKind> Kinds => _kinds;

    /// <summary>The precision of the unit named <paramref name="node"/>; fp32 for nodes that are no unit. A non-product
    /// unit (no weights) planned fp16 computes as fp32.</summary>
    public NodePrecision this[string node] => _precisions.GetValueOrDefault(node, NodePrecision.Fp32);

    /// <summary>The default plan for <paramref name="graph"/> (float, optimized, shapes known).</summary>
    /// <param name="graph">The graph.</param>
    /// <param name="exclusions">Units kept in float.</param>
    /// <param name="fallback">The float precision of the units that do not run in int8 (the exclusions that name none, the
    /// small products): fp32 (default) or fp16.</param>
    public static QuantizationPlan Create(Graph graph, QuantizationExclusions? exclusions = null, NodePrecision fallback = NodePrecision.Fp32)
    {
        if (fallback == NodePrecision.Int8) throw new ArgumentException("The fallback precision is a float one.", nameof(fallback));
        exclusions ??= QuantizationExclusions.None;
        var precisions = new Dictionary<string, NodePrecision>(StringComparer.Ordinal);
        var kinds = new Dictionary<string, Int8UnitKind>(StringComparer.Ordinal);
        var units = Int8Units.Find(graph);
        var excludedUnits = new HashSet<string>(StringComparer.Ordinal);
        foreach (var unit in units)
        {
            var excluded = exclusions.PrecisionOf(unit.Anchor.Name, unit.Nodes.Select(n => n.OpType), fallback);
            if (excluded is not null) excludedUnits.Add(unit.Anchor.Name);
            precisions[unit.Anchor.Name] = excluded ?? (IsSmallProduct(unit) || IsFasterInFp32(unit) ? fallback : NodePrecision.Int8);
            kinds[unit.Anchor.Name] = unit.Kind;
        }
        foreach (var name in ComposedIntoFloatConvolutions(units, precisions))
            if (!excludedUnits.Contains(name)) precisions[name] = fallback;
        return new QuantizationPlan(precisions, kinds);
    }

    /// <summary>
    /// The pointwise convolutions (bias-free, widening) that <see cref="Passes.PyramidConvFusion"/> composes into a 3x3
    /// convolution planned in float: RSE-FPN's 1x1 convolutions from 12, 18 and 42 channels to 96, which DBNet's
    /// feature pyramid adds, gates and upsamples into its fp32 Winograd convolutions. In int8 their 96-channel outputs
    /// would be quantized, dequantized, then convolved at 96 channels; in fp32 they compose into the convolution, which
    /// then reads 12, 18 or 42 channels (det int8 at 640x640: about 9 ms less), and one rounding step fewer reaches it.
    /// </summary>
    internal static HashSet<string> ComposedIntoFloatConvolutions(IReadOnlyList<Int8Unit> units, IReadOnlyDictionary<string, NodePrecision> precisions)
    {
        var composed = new HashSet<string>(StringComparer.Ordinal);
        var anchors = units.Select(u => u.Anchor.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var unit in units)
        {
            if (precisions[unit.Anchor.Name] == NodePrecision.Int8 || !Passes.PyramidConvFusion.IsPaddedThreeByThree(unit.Anchor)) continue;
            if (Passes.PyramidTerms.Expand(unit.Anchor.Inputs[0]!) is not { } terms || !Passes.PyramidTerms.Pays(terms)) continue;
            foreach (var term in terms)
                if (term.Projection is { } projection && anchors.Contains(projection.Name)) composed.Add(projection.Name);
        }
        return composed;
    }

    /// <summary>A plan with every unit in fp32 (the start of a one-layer-at-a-time sensitivity run).</summary>
    public QuantizationPlan AllFp32() =>
        new(_precisions.ToDictionary(p => p.Key, _ => NodePrecision.Fp32, StringComparer.Ordinal), _kinds);

    /// <summary>This plan with unit <paramref name="node"/> set to <paramref name="precision"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="node"/> names no unit.</exception>
    public QuantizationPlan With(string node, NodePrecision precision)
    {
        if (!_precisions.ContainsKey(node)) throw new ArgumentException($"'{node}' is not a node that can run in int8.", nameof(node));
        return new QuantizationPlan(new Dictionary<string, NodePrecision>(_precisions, StringComparer.Ordinal) { [node] = precision }, _kinds);
    }

    /// <summary>Products below this many multiply-adds run in fp32 by default.</summary>
    public const long SmallProductMacs = 1 << 16;

    /// <summary>A product too small for int8 to pay for its conversions (a squeeze-and-excitation convolution of one pixel,
    /// a classifier's last MatMul), where quantization costs accuracy and saves nothing.</summary>
    private static bool IsSmallProduct(Int8Unit unit)
    {
        if (!unit.IsProduct || unit.Anchor.Outputs[0].Shape is not { } output) return false;
        var w = unit.Anchor.Inputs[1]!.Shape!;
        long depth = unit.Kind == Int8UnitKind.Conv ? Runtime.Shapes.Product(w, 1, w.Length) : w[unit.Anchor.OpType == "Gemm" && IsTransposed(unit.Anchor) ? 1 : 0];
        return Runtime.Shapes.ElementCount(output) * depth < SmallProductMacs;
    }

    /// <summary>
    /// A 3x3 convolution the fp32 runtime computes by Winograd F(4x4, 3x3): four times fewer multiplications outrun the
    /// int8 GEMM's two times faster ones (PP-OCR det's 96-to-24 head convolutions at 120x120: 2.9 ms fp32, 4.2 ms int8),
    /// so int8 would cost accuracy and time. Decided by shape alone, so that a build does not depend on the machine it
    /// runs on (Winograd needs AVX-512; elsewhere such a convolution runs as an fp32 GEMM).
    /// </summary>
    internal static bool IsFasterInFp32(Int8Unit unit)
    {
        var conv = unit.Anchor;
        if (unit.Kind != Int8UnitKind.Conv || conv.Outputs[0].Shape is not [_, _, _, int width] || conv.Inputs[1]!.Shape is not [int m, int cg, int kh, int kw])
            return false;
        long group = conv.Attributes.TryGetValue("group", out var g) ? g.IntValue : 1;
        int Attribute(string name, int index) =>
            conv.Attributes.TryGetValue(name, out var a) && a.Ints is { Count: 2 } values ? (int)values[index] : 1;
        return group >= 1 && m % group == 0
            && WinogradConv.Pays(width, kh, kw, Attribute("strides", 0), Attribute("strides", 1), Attribute("dilations", 0), Attribute("dilations", 1),
                cg, (int)(m / group));
    }

    private static bool IsTransposed(Node gemm) => gemm.Attributes.TryGetValue("transB", out var t) && t.IntValue != 0;
}
