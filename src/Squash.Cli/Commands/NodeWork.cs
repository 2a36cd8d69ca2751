using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Cli.Commands;

/// <summary>What a node computes, for profiles: its multiply-add count and its shapes.</summary>
internal static class NodeWork
{
    /// <summary>Floating-point or integer operations (two per multiply-add) of a convolution or matrix product with
    /// known shapes; null for other nodes, whose cost is memory traffic rather than arithmetic.</summary>
    public static double? Flops(Node node)
    {
        if (node.Outputs.Count == 0 || node.Outputs[0].Shape is not { } y || !Shapes.IsKnown(y) || Weights(node) is not { } w) return null;
        double outputs = Product(y);
        if (node.OpType.EndsWith("Conv", StringComparison.Ordinal) && w.Length >= 3) return 2 * outputs * Product(w.AsSpan(1));
        if (node.OpType.EndsWith("MatMul", StringComparison.Ordinal) && w.Length >= 2) return 2 * outputs * w[^2];
        return null;
    }

    /// <summary>The data input and the weights with their element types, and the output: <c>f32[1,3,48,320] x
    /// f32[16,3,3,3] -> f32[1,16,24,160]</c>.</summary>
    public static string Describe(Node node)
    {
        string Format(Value? v) => v is null ? "?" : $"{Abbreviation(v.Type)}{(Shape(v) is { } s ? Shapes.Format(s) : "?")}";
        var parts = new List<string> { Format(node.Input(0)) };
        var weights = WeightsValue(node) ?? node.Input(1);
        if (weights is not null) parts.Add(Format(weights));
        return $"{string.Join(" x ", parts)} -> {(node.Outputs.Count > 0 ? Format(node.Outputs[0]) : "?")}";
    }

    // The com.squash int8 operators take (x, x_scale, x_zero_point, w, ...): their weights are input 3.
    private static Value? WeightsValue(Node node) =>
        node.Domain == "com.squash" && node.OpType is "QConv" or "QMatMul" ? node.Input(3)
        : node.OpType.EndsWith("Conv", StringComparison.Ordinal) || node.OpType.EndsWith("MatMul", StringComparison.Ordinal) ? node.Input(1) : null;

    private static int[]? Weights(Node node) => WeightsValue(node) is { } v ? Shape(v) : null;

    private static int[]? Shape(Value v) => v.Constant?.Shape ?? v.Shape;

    private static string Abbreviation(DataType type) => type switch
    {
        DataType.Float => "f32",
        DataType.Float16 => "f16",
        DataType.UInt8 => "u8",
        DataType.Int8 => "i8",
        DataType.Int32 => "i32",
        DataType.Int64 => "i64",
        _ => type.ToString().ToLowerInvariant(),
    };

    private static double Product(ReadOnlySpan<int> shape)
    {
        double product = 1;
        foreach (int d in shape) product *= d;
        return product;
    }
}
