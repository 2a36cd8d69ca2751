using Squash.Compiler.Passes;
using Squash.Runtime;
using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;
using Squash.Runtime.Operators;

namespace Squash.Compiler.Quantization;

/// <summary>Settings of weight-only int4 quantization.</summary>
public sealed record Int4QuantizationOptions
{
    /// <summary>Values per block along the reduction axis: 32, 64, 128 or 256.</summary>
    public int BlockSize { get; init; } = 32;

    /// <summary>Symmetric blocks (scale only, zero point 8) or a zero point per block.</summary>
    public bool Symmetric { get; init; } = true;

    /// <summary>Weights with fewer values stay fp32: small matrices cost little to read, and their quantization error
    /// buys nothing. The default (2^16) keeps a 256 x 256 matrix in fp32 and quantizes anything larger.</summary>
    public long MinElements { get; init; } = 1 << 16;

    /// <summary>The activations' arithmetic in a decode step: fp32 (the default), or int8 per block, about twice as fast
    /// and less accurate (written as accuracy_level 4 on each MatMulNBits node, as ONNX Runtime spells it).</summary>
    public Int4ActivationPrecision ActivationPrecision { get; init; } = Int4ActivationPrecision.Fp32;

    /// <summary>Also pack constant embedding tables read by Gather along axis 0 (a tied embedding and classifier then
    /// share one packed tensor).</summary>
    public bool QuantizeEmbeddings { get; init; } = true;

    /// <summary>Chooses codes and scales; round-to-nearest unless an activation-aware method is plugged in.</summary>
    public IInt4Quantizer Quantizer { get; init; } = RoundToNearestQuantizer.Instance;

    /// <summary>Calibration statistics by weight name (<see cref="Int4Calibration.Collect"/>), read by activation-aware
    /// quantizers; null or a missing name gives that weight none.</summary>
    public IReadOnlyDictionary<string, Int4ActivationStatistics>? Activations { get; init; }

    /// <summary>Per-layer overrides: nodes or weights that stay fp32, by name, where <c>*</c> matches any run of
    /// characters (<c>layers.*.attention.wq_t</c>, <c>classifier_rows</c>). A pattern that matches no MatMul, Gemm or
    /// Gather node with a constant weight, or that weight, is an error (SQ1051), so a misspelled exclusion does not pass silently.</summary>
    public IReadOnlyList<string> Exclude { get; init; } = [];
}

/// <summary>
/// Weight-only int4: rewrites MatMul and Gemm nodes whose right operand is a constant float matrix of at least
/// <see cref="Int4QuantizationOptions.MinElements"/> values into <c>com.squash</c> MatMulNBits nodes, and (optionally)
/// Gather nodes that look up rows of such a table into GatherNBits, packing each weight once
/// (<see cref="Int4WeightPacking"/>). Outputs change by the quantization error of the weights; everything else stays fp32.
/// </summary>
/// <remarks>
/// Gemm is rewritten when it is a plain product: transA = 0 and alpha = 1, with C absent or a constant [N] or [1, N]
/// bias (beta folded into it). Weights whose rows along K are shorter than one block stay fp32 (mostly padding). A weight read by several eligible nodes is packed once; one that any other node also
/// reads as a float tensor keeps its float copy too.
/// </remarks>
public sealed class Int4MatMulQuantization(Int4QuantizationOptions? options = null) : IGraphPass
{
    private readonly Int4QuantizationOptions _options = options ?? new Int4QuantizationOptions();

    /// <inheritdoc/>
    public string Name => "Int4MatMulQuantization";

    /// <summary>The opset version of the <c>com.squash</c> domain the rewritten nodes use.</summary>
    public const int SquashOpset = 1;

    /// <inheritdoc/>
    public bool Run(Graph graph, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        if (!Int4Layout.IsSupportedBlockSize(_options.BlockSize))
            throw new SquashException(ErrorCodes.UnsupportedAttribute, $"Int4 block size {_options.BlockSize} is not supported; use 32, 64, 128 or 256.");
        var packed = new Dictionary<(Value, bool), PackedValues>();
        var unused = new HashSet<string>(_options.Exclude, StringComparer.Ordinal);
        bool changed = false;
        for (int i = 0; i < graph.Nodes.Count; i++)
        {
            var node = graph.Nodes[i];
            if (IsExcluded(node, unused)) continue;
            var replacement = Rewrite(graph, node, packed);
            if (replacement is null) continue;
            graph.Nodes[i] = replacement;
            changed = true;
        }
        if (unused.Count > 0)
            throw new SquashException(ErrorCodes.Int4Exclusion,
                $"Int4 exclusion(s) {string.Join(", ", unused.Order(StringComparer.Ordinal).Select(p => $"'{p}'"))} match no MatMul, Gemm or Gather node of the model, nor its weight; check the names (squash inspect lists the nodes).");
        if (!changed) return false;
        graph.OpsetImports.TryAdd(OperatorRegistry.SquashDomain, SquashOpset);
        // The float weights nothing reads any more.
        var consumers = graph.Consumers();
        foreach (var (weight, _) in packed.Keys)
            if (!consumers.ContainsKey(weight) && !graph.Outputs.Contains(weight) && !graph.Inputs.Contains(weight))
                graph.Initializers.Remove(weight);
        context?.Log?.Invoke($"{Name}: {packed.Count} weight(s) packed to int4 ({packed.Values.Sum(p => p.Bytes)} bytes)");
        return true;
    }

    /// <summary>True when an exclusion pattern names the node or its weight (a MatMul or Gemm's input 1, a Gather's
    /// input 0); the patterns that match are removed from <paramref name="unused"/>.</summary>
    private bool IsExcluded(Node node, HashSet<string> unused)
    {
        if (_options.Exclude.Count == 0) return false;
        var value = GraphQueries.Is(node, "MatMul") || GraphQueries.Is(node, "Gemm") ? node.Input(1)
            : GraphQueries.Is(node, "Gather") ? node.Input(0) : null;
        if (value?.Constant is null) return false;
        string weight = value.Name;
        bool excluded = false;
        foreach (var pattern in _options.Exclude)
            if (Matches(pattern, node.Name) || Matches(pattern, weight))
            {
                excluded = true;
                unused.Remove(pattern);
            }
        return excluded;
    }

    /// <summary>Whole-name match where <c>*</c> stands for any run of characters.</summary>
    internal static bool Matches(string pattern, string name)
    {
        var parts = pattern.Split('*');
        if (parts.Length == 1) return pattern == name;
        if (!name.StartsWith(parts[0], StringComparison.Ordinal) || !name.EndsWith(parts[^1], StringComparison.Ordinal)
            || name.Length < parts[0].Length + parts[^1].Length) return false;
        int at = parts[0].Length, end = name.Length - parts[^1].Length;
        for (int i = 1; i < parts.Length - 1; i++)
        {
            int found = name.IndexOf(parts[i], at, end - at, StringComparison.Ordinal);
            if (found < 0) return false;
            at = found + parts[i].Length;
        }
        return true;
    }

    private sealed record PackedValues(Squash.Runtime.Kernels.Int4Layout Layout, Value Data, Value Scales, Value? ZeroPoints, long Bytes);

    private Node? Rewrite(Graph graph, Node node, Dictionary<(Value, bool), PackedValues> packed)
    {
        if (GraphQueries.Is(node, "MatMul") && node.Inputs.Count == 2 && node.Input(0) is { } a && Weight(node.Input(1)) is { } b)
        {
            int k = b.Constant!.Shape[0], n = b.Constant.Shape[1];
            if (a.Shape is { Length: 0 } || k < _options.BlockSize) return null;
            return MatMul(node, a, Pack(graph, packed, b, k, n, transposed: false), bias: null);
        }
        if (GraphQueries.Is(node, "Gemm") && node.Input(0) is { } ga && Weight(node.Input(1)) is { } gb)
        {
            if (node.Attributes.TryGetValue("transA", out var ta) && ta.IntValue != 0) return null;
            if (node.Attributes.TryGetValue("alpha", out var alpha) && alpha.FloatValue != 1f) return null;
            bool transB = node.Attributes.TryGetValue("transB", out var tb) && tb.IntValue != 0;
            float beta = node.Attributes.TryGetValue("beta", out var be) ? be.FloatValue : 1f;
            int k = gb.Constant!.Shape[transB ? 1 : 0], n = gb.Constant.Shape[transB ? 0 : 1];
            if (k < _options.BlockSize) return null;
            Value? bias = null;
            if (node.Input(2) is { } c)
            {
                if (c.Constant is not { DataType: DataType.Float } ct || ct.ElementCount != n || ct.Shape is not ([_] or [1, _])) return null;
                // MatMulNBits adds a [N] bias; beta is folded into it (one fp32 rounding, as Gemm's own beta * C).
                bias = beta == 1f && ct.Rank == 1 ? c
                    : WeightMath.AddConstant(graph, c.Name + "_bias", WeightMath.Map(ct.Reshape([n]), (_, v) => beta * v));
            }
            return MatMul(node, ga, Pack(graph, packed, gb, k, n, transB), bias);
        }
        if (_options.QuantizeEmbeddings && GraphQueries.Is(node, "Gather") && Weight(node.Input(0)) is { } table && node.Input(1) is { } indices)
        {
            if (node.Attributes.TryGetValue("axis", out var axis) && axis.IntValue != 0) return null;
            // Row i of the [N, K] table is column i of the packed weight, as for Gemm's transB.
            int n = table.Constant!.Shape[0], k = table.Constant.Shape[1];
            if (k < _options.BlockSize) return null; // short rows (rotary tables) would be mostly padding
            var p = Pack(graph, packed, table, k, n, transposed: true);
            var gather = NewNode("GatherNBits", node, p);
            gather.AddInput(p.Data).AddInput(indices).AddInput(p.Scales);
            if (p.ZeroPoints is not null) gather.AddInput(p.ZeroPoints);
            gather.AddOutput(node.Outputs[0]);
            return gather;
        }
        return null;
    }

    /// <summary>A constant float matrix large enough to pack, or null.</summary>
    private Value? Weight(Value? v) =>
        v?.Constant is { DataType: DataType.Float, Rank: 2 } t && t.ElementCount >= _options.MinElements ? v : null;

    private Node MatMul(Node old, Value a, PackedValues p, Value? bias)
    {
        var node = NewNode("MatMulNBits", old, p);
        if (_options.ActivationPrecision != Int4ActivationPrecision.Fp32) node.Attributes["accuracy_level"] = AttributeValue.Int((int)_options.ActivationPrecision);
        node.AddInput(a).AddInput(p.Data).AddInput(p.Scales).AddInput(p.ZeroPoints);
        if (bias is not null) node.AddInput(bias);
        else if (p.ZeroPoints is null) node.TruncateInputs(3);
        node.AddOutput(old.Outputs[0]);
        return node;
    }

    private static Node NewNode(string opType, Node old, PackedValues p)
    {
        var node = new Node(opType, old.Name, OperatorRegistry.SquashDomain, SquashOpset);
        node.Attributes["K"] = AttributeValue.Int(p.Layout.K);
        node.Attributes["N"] = AttributeValue.Int(p.Layout.N);
        node.Attributes["bits"] = AttributeValue.Int(4);
        node.Attributes["block_size"] = AttributeValue.Int(p.Layout.BlockSize);
        return node;
    }

    private PackedValues Pack(Graph graph, Dictionary<(Value, bool), PackedValues> packed, Value weight, int k, int n, bool transposed)
    {
        if (packed.TryGetValue((weight, transposed), out var existing)) return existing;
        var w = Int4WeightPacking.Quantize(weight.Constant!.AsSpan<float>(), k, n, transposed, _options.BlockSize, _options.Symmetric,
            _options.Quantizer, weight.Name, _options.Activations?.GetValueOrDefault(weight.Name));
        var data = WeightMath.AddConstant(graph, weight.Name + ".int4", w.Data);
        var scales = WeightMath.AddConstant(graph, weight.Name + ".int4_scales", w.Scales);
        var zeros = w.ZeroPoints is null ? null : WeightMath.AddConstant(graph, weight.Name + ".int4_zero_points", w.ZeroPoints);
        var result = new PackedValues(w.Layout, data, scales, zeros, w.Bytes);
        packed[(weight, transposed)] = result;
        return result;
    }
}
