using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Passes;

/// <summary>Arithmetic on constant weights for folding passes, in double so folding adds as little rounding as
/// possible, and helpers to read per-channel constants.</summary>
internal static class WeightMath
{
    /// <summary>The values of a float constant that is a scalar or broadcasts as one value per channel of
    /// <paramref name="channels"/> channels along axis <paramref name="axis"/> of a rank-<paramref name="rank"/>
    /// tensor (e.g. [1,C,1,1] or [C,1,1] for NCHW, [C] for the last axis); null when it is not of that form.</summary>
    public static double[]? PerChannel(Tensor? t, int channels, int axis, int rank)
    {
        if (t is null || t.DataType != DataType.Float) return null;
        var v = t.AsSpan<float>();
        if (t.ElementCount == 1)
        {
            var all = new double[channels];
            Array.Fill(all, v[0]);
            return all;
        }
        if (t.ElementCount != channels || t.Rank > rank) return null;
        // Right-aligned broadcasting: the channel dimension must sit at `axis` and every other dimension be 1.
        int offset = rank - t.Rank;
        for (int d = 0; d < t.Rank; d++)
            if (d + offset != axis && t.Shape[d] != 1) return null;
        if (axis - offset < 0 || t.Shape[axis - offset] != channels) return null;
        var result = new double[channels];
        for (int i = 0; i < channels; i++) result[i] = v[i];
        return result;
    }

    /// <summary>A new float tensor whose element i is <paramref name="f"/>(i, old value).</summary>
    public static Tensor Map(Tensor t, Func<int, double, double> f)
    {
        var result = new Tensor(DataType.Float, (int[])t.Shape.Clone());
        var src = t.AsSpan<float>();
        var dst = result.AsSpan<float>();
        for (int i = 0; i < src.Length; i++) dst[i] = (float)f(i, src[i]);
        return result;
    }

    /// <summary>A float vector constant.</summary>
    public static Tensor Vector(double[] values)
    {
        var t = new Tensor(DataType.Float, values.Length);
        var s = t.AsSpan<float>();
        for (int i = 0; i < values.Length; i++) s[i] = (float)values[i];
        return t;
    }

    /// <summary>A float constant's values as doubles.</summary>
    public static double[] ToDoubles(Tensor t)
    {
        var result = new double[t.ElementCount];
        for (int i = 0; i < result.Length; i++) result[i] = t.GetAsDouble(i);
        return result;
    }

    /// <summary>Adds a new constant to the graph and returns it. Scans the graph's names on each call: for passes that
    /// add a few constants per model; pattern passes use <see cref="GraphRewrite.AddConstant"/>.</summary>
    public static Value AddConstant(Graph graph, string name, Tensor tensor)
    {
        var existing = new HashSet<string>(graph.AllValues().Select(v => v.Name), StringComparer.Ordinal);
        string unique = name;
        for (int i = 1; existing.Contains(unique); i++) unique = $"{name}_{i}";
        var value = new Value(unique, tensor);
        graph.Initializers.Add(value);
        return value;
    }
}

/// <summary>Questions passes ask about the graph's wiring.</summary>
internal static class GraphQueries
{
    /// <summary>The only node reading <paramref name="value"/>, or null when several (or none, or a graph output) do.</summary>
    public static Node? SoleConsumer(Graph graph, Dictionary<Value, List<(Node Node, int Index)>> consumers, Value value)
    {
        if (graph.Outputs.Contains(value)) return null;
        if (!consumers.TryGetValue(value, out var list) || list.Count != 1 || list[0].Index < 0) return null;
        return list[0].Node;
    }

    /// <summary>True for a node of the default domain with the given type.</summary>
    public static bool Is(Node node, string opType) => node.OpType == opType && node.Domain.Length == 0;
}
