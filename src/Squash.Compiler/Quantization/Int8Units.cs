using Squash.Runtime;
using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Compiler.Quantization;

/// <summary>What an int8 unit becomes.</summary>
public enum Int8UnitKind
{
    /// <summary>A convolution with constant weights (com.squash.QConv).</summary>
    Conv,
    /// <summary>A MatMul or Gemm with constant weights (com.squash.QMatMul).</summary>
    MatMul,
    /// <summary>A chain of element-wise nodes with constant operands (com.squash.QLookup).</summary>
    Lookup,
    /// <summary>The sum of two activations of one shape (com.squash.QAdd).</summary>
    Add,
    /// <summary>An activation times a per-channel float gate (com.squash.QMul).</summary>
    Mul,
    /// <summary>A concatenation (com.squash.QConcat).</summary>
    Concat,
    /// <summary>A global average pool read from uint8 (com.squash.QGlobalAveragePool, float out).</summary>
    GlobalAveragePool,
    /// <summary>An operator that only moves or selects bytes (Reshape, Transpose, Slice, MaxPool, nearest Resize ...),
    /// run as it is on uint8 with its input's quantization.</summary>
    Passthrough,
}

/// <summary>
/// A node of the float graph that can run in int8, with the nodes it absorbs: the bias Add after a MatMul, a Relu or
/// Clip after a product or a sum (a clamp of the quantized output), the rest of a chain of element-wise nodes.
/// </summary>
internal sealed class Int8Unit
{
    public required Int8UnitKind Kind { get; init; }

    /// <summary>The node the unit is named after (its first).</summary>
    public required Node Anchor { get; init; }

    /// <summary>Every node of the unit, anchor first, in graph order.</summary>
    public List<Node> Nodes { get; } = [];

    /// <summary>The inputs that the int8 form reads as uint8.</summary>
    public List<Value> ActivationInputs { get; } = [];

    /// <summary>What the unit produces (the last node's output).</summary>
    public Value Output => Nodes[^1].Outputs[0];

    /// <summary>A fused clamp of the output (Relu, Clip).</summary>
    public float ActivationMin { get; set; } = float.NegativeInfinity;

    /// <summary>A fused clamp of the output (Relu, Clip).</summary>
    public float ActivationMax { get; set; } = float.PositiveInfinity;

    /// <summary>A constant [N] bias added after a MatMul.</summary>
    public Tensor? AddedBias { get; set; }

    /// <summary>For a lookup, the axis its constants vary along (one table per channel), or null for one table.</summary>
    public int? LookupAxis { get; set; }

    /// <summary>True for the products, which convert their input to int8 whatever produced it.</summary>
    public bool IsProduct => Kind is Int8UnitKind.Conv or Int8UnitKind.MatMul;
}

/// <summary>Finds the <see cref="Int8Unit"/>s of a float graph whose shapes are known.</summary>
internal static class Int8Units
{
    /// <summary>Element-wise operators a lookup table can stand for when their other operands are constants.</summary>
    private static readonly HashSet<string> s_elementwise = new(StringComparer.Ordinal)
    {
        "Relu", "LeakyRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid", "HardSwish", "Softplus", "Softsign", "Mish",
        "Gelu", "ThresholdedRelu", "Tanh", "Erf", "Exp", "Abs", "Neg", "Clip", "Add", "Sub", "Mul", "Div", "Pow", "Max",
        "Min", "PRelu",
    };

    /// <summary>Operators that only move or select elements; they run unchanged on uint8.</summary>
    private static readonly HashSet<string> s_passthrough = new(StringComparer.Ordinal)
    {
        "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Slice", "MaxPool", "Resize", "Identity",
        "DepthToSpace", "SpaceToDepth",
    };

    public static List<Int8Unit> Find(Graph graph)
    {
        var consumers = graph.Consumers();
        var outputs = new HashSet<Value>(graph.Outputs);
        var claimed = new HashSet<Node>();
        var units = new List<Int8Unit>();
        foreach (var node in graph.Nodes)
        {
            if (claimed.Contains(node) || node.Domain.Length != 0 || node.Outputs.Count == 0) continue;
            var unit = Match(node, consumers, outputs);
            if (unit is null) continue;
            units.Add(unit);
            claimed.UnionWith(unit.Nodes);
        }
        return units;
    }

    private static Int8Unit? Match(Node node, Dictionary<Value, List<(Node Node, int Index)>> consumers, HashSet<Value> outputs)
    {
        switch (node.OpType)
        {
            case "Conv" when IsQuantizableConv(node):
                return WithActivation(Unit(Int8UnitKind.Conv, node, node.Inputs[0]!), consumers, outputs);
            case "MatMul" when IsQuantizableMatMul(node):
                return WithActivation(WithBias(Unit(Int8UnitKind.MatMul, node, node.Inputs[0]!), consumers, outputs), consumers, outputs);
            case "Gemm" when IsQuantizableGemm(node):
                return WithActivation(Unit(Int8UnitKind.MatMul, node, node.Inputs[0]!), consumers, outputs);
            case "Add" when IsActivationPair(node, out _, out _) && Shapes.Equal(node.Inputs[0]!.Shape!, node.Inputs[1]!.Shape!)
                                 && Shapes.Equal(node.Inputs[0]!.Shape!, node.Outputs[0].Shape!):
                return WithActivation(Unit(Int8UnitKind.Add, node, node.Inputs[0]!, node.Inputs[1]!), consumers, outputs);
            case "Mul" when IsActivationPair(node, out var a, out var gate) && IsChannelGate(a, gate):
                return Unit(Int8UnitKind.Mul, node, a);
            case "Concat" when node.Inputs.All(v => IsFloatActivation(v) && v!.Constant is null) && IsFloatActivation(node.Outputs[0]):
                return Unit(Int8UnitKind.Concat, node, [.. node.Inputs.Select(v => v!)]);
            case "GlobalAveragePool" when IsFloatActivation(node.Inputs[0]) && node.Inputs[0]!.Shape!.Length >= 3:
                return Unit(Int8UnitKind.GlobalAveragePool, node, node.Inputs[0]!);
        }
        if (s_passthrough.Contains(node.OpType) && IsPassthrough(node)) return Unit(Int8UnitKind.Passthrough, node, node.Inputs[0]!);
        if (LookupOperand(node) is { } x && AxisOfConstants(node, x.Shape!) is { } axis)
        {
            var unit = Unit(Int8UnitKind.Lookup, node, x);
            unit.LookupAxis = axis < 0 ? null : axis;
            // Extend the chain while the next element-wise node reads only this one's output.
            while (SoleConsumer(unit.Output, consumers, outputs) is { } next && LookupOperand(next) == unit.Output
                   && AxisOfConstants(next, x.Shape!) is { } nextAxis && Compatible(unit.LookupAxis, nextAxis))
            {
                unit.Nodes.Add(next);
                if (nextAxis >= 0) unit.LookupAxis = nextAxis;
            }
            return unit;
        }
        return null;
    }

    private static bool Compatible(int? axis, int next) => next < 0 || axis is null || axis == next;

    private static Int8Unit Unit(Int8UnitKind kind, Node anchor, params Value[] activations)
    {
        var unit = new Int8Unit { Kind = kind, Anchor = anchor };
        unit.Nodes.Add(anchor);
        unit.ActivationInputs.AddRange(activations.Distinct());
        return unit;
    }

    /// <summary>Absorbs a Relu, or a Clip with constant bounds, that alone reads the unit's output.</summary>
    private static Int8Unit WithActivation(Int8Unit unit, Dictionary<Value, List<(Node Node, int Index)>> consumers, HashSet<Value> outputs)
    {
        if (SoleConsumer(unit.Output, consumers, outputs) is not { } next || next.Domain.Length != 0) return unit;
        if (next.OpType == "Relu")
        {
            unit.ActivationMin = 0;
        }
        else if (next.OpType == "Clip" && ClipBounds(next) is var (min, max))
        {
            unit.ActivationMin = min;
            unit.ActivationMax = max;
        }
        else
        {
            return unit;
        }
        unit.Nodes.Add(next);
        return unit;
    }

    /// <summary>Absorbs an Add of a constant [N] (any leading ones) after a MatMul into its bias.</summary>
    private static Int8Unit WithBias(Int8Unit unit, Dictionary<Value, List<(Node Node, int Index)>> consumers, HashSet<Value> outputs)
    {
        if (SoleConsumer(unit.Output, consumers, outputs) is not { OpType: "Add", Domain: "" } add) return unit;
        int n = unit.Anchor.Inputs[1]!.Shape![1];
        var bias = add.Inputs[0] == unit.Output ? add.Inputs[1] : add.Inputs[0];
        if (bias?.Constant is not { DataType: DataType.Float } t || t.ElementCount != n || t.Rank == 0 || t.Shape[^1] != n) return unit;
        if (!Shapes.Equal(add.Outputs[0].Shape ?? [], unit.Output.Shape ?? [-1])) return unit;
        unit.AddedBias = t;
        unit.Nodes.Add(add);
        return unit;
    }

    /// <summary>The bounds of a Clip with constant (or attribute) bounds.</summary>
    internal static (float Min, float Max)? ClipBounds(Node clip)
    {
        if (clip.Attributes.TryGetValue("min", out var minAttribute) | clip.Attributes.TryGetValue("max", out var maxAttribute))
            return (minAttribute?.FloatValue ?? float.NegativeInfinity, maxAttribute?.FloatValue ?? float.PositiveInfinity);
        float min = float.NegativeInfinity, max = float.PositiveInfinity;
        if (clip.Input(1) is { } lo)
        {
            if (lo.Constant is not { DataType: DataType.Float, ElementCount: 1 } t) return null;
            min = t.AsSpan<float>()[0];
        }
        if (clip.Input(2) is { } hi)
        {
            if (hi.Constant is not { DataType: DataType.Float, ElementCount: 1 } t) return null;
            max = t.AsSpan<float>()[0];
        }
        return min <= max ? (min, max) : null;
    }

    private static Node? SoleConsumer(Value value, Dictionary<Value, List<(Node Node, int Index)>> consumers, HashSet<Value> outputs)
    {
        if (outputs.Contains(value) || !consumers.TryGetValue(value, out var list) || list.Count != 1 || list[0].Index < 0) return null;
        return list[0].Node.Inputs.Count(v => v == value) == 1 ? list[0].Node : null;
    }

    /// <summary>A computed float tensor of known shape.</summary>
    private static bool IsFloatActivation(Value? v) => v is { Type: DataType.Float, HasKnownShape: true };

    private static bool IsConstantFloat(Value? v) => v?.Constant is { DataType: DataType.Float };

    internal static bool IsQuantizableConv(Node node)
    {
        var x = node.Input(0);
        var w = node.Input(1);
        if (!IsFloatActivation(x) || x!.Constant is not null || !IsConstantFloat(w) || node.Outputs.Count != 1) return false;
        if (node.Input(2) is { } b && !IsConstantFloat(b)) return false;
        int rank = x.Shape!.Length;
        if (rank is not (3 or 4) || w!.Shape!.Length != rank) return false;
        long group = node.Attributes.TryGetValue("group", out var g) ? g.IntValue : 1;
        int taps = Shapes.Product(w.Shape, 2, rank);
        bool depthwise = group == x.Shape[1] && w.Shape[0] == group && w.Shape[1] == 1 && taps <= Int8Depthwise.MaxTaps;
        long depth = (long)w.Shape[1] * taps;
        return depthwise || depth <= Int8Epilogue.MaxDepth;
    }

    internal static bool IsQuantizableMatMul(Node node)
    {
        var a = node.Input(0);
        var b = node.Input(1);
        return IsFloatActivation(a) && a!.Constant is null && a.Shape!.Length >= 1 && IsConstantFloat(b) && b!.Shape!.Length == 2
            && b.Shape[0] <= Int8Epilogue.MaxDepth && IsFloatActivation(node.Outputs[0]);
    }

    internal static bool IsQuantizableGemm(Node node)
    {
        var a = node.Input(0);
        var b = node.Input(1);
        if (!IsFloatActivation(a) || a!.Constant is not null || a.Shape!.Length != 2 || !IsConstantFloat(b) || b!.Shape!.Length != 2) return false;
        if (node.Attributes.TryGetValue("transA", out var transA) && transA.IntValue != 0) return false;
        bool transB = node.Attributes.TryGetValue("transB", out var t) && t.IntValue != 0;
        int n = transB ? b.Shape[0] : b.Shape[1];
        if (node.Input(2) is { } c && (!IsConstantFloat(c) || !(c.Constant!.ElementCount == 1 || c.Constant.ElementCount == n && c.Shape![^1] == n)))
            return false;
        return (transB ? b.Shape[1] : b.Shape[0]) <= Int8Epilogue.MaxDepth;
    }

    /// <summary>Two computed float inputs (a binary node between activations).</summary>
    private static bool IsActivationPair(Node node, out Value a, out Value b)
    {
        a = node.Input(0)!;
        b = node.Input(1)!;
        if (node.Inputs.Count != 2 || !IsFloatActivation(a) || !IsFloatActivation(b) || a.Constant is not null || b.Constant is not null
            || !IsFloatActivation(node.Outputs[0]))
            return false;
        // For Mul, the first is the large activation, the second the gate.
        if (Shapes.ElementCount(b.Shape!) > Shapes.ElementCount(a.Shape!)) (a, b) = (b, a);
        return true;
    }

    /// <summary>True when <paramref name="gate"/> holds one value per channel (or one) of <paramref name="a"/>, whose
    /// shape the product keeps.</summary>
    private static bool IsChannelGate(Value a, Value gate)
    {
        var x = a.Shape!;
        var g = gate.Shape!;
        if (g.Length > x.Length || Shapes.ElementCount(g) == Shapes.ElementCount(x)) return false;
        int varying = 0;
        for (int d = 0; d < g.Length; d++)
        {
            if (g[d] == 1) continue;
            if (g[d] != x[d + x.Length - g.Length]) return false;
            varying++;
        }
        return varying <= 1;
    }

    private static bool IsPassthrough(Node node)
    {
        if (!IsFloatActivation(node.Input(0)) || node.Input(0)!.Constant is not null || node.Outputs.Count != 1 || !IsFloatActivation(node.Outputs[0]))
            return false;
        if (node.OpType == "Resize")
        {
            string mode = node.Attributes.TryGetValue("mode", out var m) ? m.StringValue : "nearest";
            return mode == "nearest";
        }
        // Inputs beyond the data (shape, starts, axes ...) are read as they are; they must not be activations.
        for (int i = 1; i < node.Inputs.Count; i++)
            if (node.Inputs[i] is { Type: DataType.Float, Constant: null }) return false;
        return true;
    }

    /// <summary>The one computed float input of an element-wise node whose other operands are constants, when the
    /// output keeps its shape.</summary>
    private static Value? LookupOperand(Node node)
    {
        if (node.Domain.Length != 0 || !s_elementwise.Contains(node.OpType) || node.Outputs.Count != 1) return null;
        Value? operand = null;
        foreach (var v in node.Inputs)
        {
            if (v is null || v.Constant is not null) continue;
            if (operand is not null) return null;
            operand = v;
        }
        if (!IsFloatActivation(operand) || !IsFloatActivation(node.Outputs[0]) || !Shapes.Equal(operand!.Shape!, node.Outputs[0].Shape!)) return null;
        foreach (var v in node.Inputs)
            if (v?.Constant is { } c && !DataTypes.IsFloatingPoint(c.DataType)) return null;
        return operand;
    }

    /// <summary>The axis of <paramref name="shape"/> along which the node's constants vary: -1 when they are single
    /// values, null when they vary along more than one axis or not as the shape's channels.</summary>
    private static int? AxisOfConstants(Node node, int[] shape)
    {
        int axis = -1;
        foreach (var v in node.Inputs)
        {
            if (v?.Constant is not { } c) continue;
            if (c.Rank > shape.Length) return null;
            for (int d = 0; d < c.Rank; d++)
            {
                if (c.Shape[d] == 1) continue;
                int at = d + shape.Length - c.Rank;
                if (c.Shape[d] != shape[at] || axis >= 0 && axis != at) return null;
                axis = at;
            }
        }
        // A per-channel lookup evaluates the body on [channels, 256] in the input's rank, which needs rank 2.
        return axis >= 0 && shape.Length < 2 ? null : axis;
    }
}
