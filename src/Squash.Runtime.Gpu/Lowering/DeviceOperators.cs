using Squash.Runtime.Gpu.Execution;
using Squash.Runtime.Ir;
using Squash.Runtime.Operators;

namespace Squash.Runtime.Gpu.Lowering;

/// <summary>Turns one node into device work, or throws <see cref="NotOnDeviceException"/> when the node's types or
/// parameters are outside what the kernels cover (the node then runs on the host).</summary>
internal delegate GpuStep Lowering(LoweringContext context);

/// <summary>The operators that have device kernels: one registration line per family, like the CPU registry.</summary>
internal static class DeviceOperators
{
    private static readonly Dictionary<string, Lowering> s_table = Build();
    private static readonly Dictionary<string, Lowering> s_squash = BuildSquash();

    private static Dictionary<string, Lowering> Build()
    {
        var table = new Dictionary<string, Lowering>(StringComparer.Ordinal);
        ElementwiseLowerings.Register(table);
        GemmLowerings.Register(table);
        PoolLowerings.Register(table);
        ReduceLowerings.Register(table);
        MovementLowerings.Register(table);
        // fp16 through the fp32 kernels, as the CPU computes it, for every floating-point operator. Not Cast (it
        // converts, fp16 to float has its own kernel) nor quantization (fp16 scales follow the CPU's own rules).
        foreach (string op in table.Keys.Where(k => k is not ("Cast" or "CastLike")).ToArray())
            table[op] = HalfLowering.Widened(table[op]);
        Int8Lowerings.Register(table);
        return table;
    }

    /// <summary>Squash's own operators (domain com.squash).</summary>
    private static Dictionary<string, Lowering> BuildSquash()
    {
        var table = new Dictionary<string, Lowering>(StringComparer.Ordinal);
        Int4Lowerings.Register(table);
        Int8Lowerings.RegisterSquash(table);
        AttentionLowerings.Register(table);
        return table;
    }

    /// <summary>The lowering of <paramref name="node"/>'s operator, or null when it has no device kernel.</summary>
    public static Lowering? Find(Node node) => node.Domain switch
    {
        "" or "ai.onnx" => s_table.GetValueOrDefault(node.OpType),
        OperatorRegistry.SquashDomain => s_squash.GetValueOrDefault(node.OpType),
        _ => null,
    };

    /// <summary>Operators with device kernels (domain, operator), sorted.</summary>
    public static IEnumerable<(string Domain, string OpType)> Covered =>
        s_table.Keys.Select(k => ("", k)).Concat(s_squash.Keys.Select(k => (OperatorRegistry.SquashDomain, k)))
            .Order();
}

/// <summary>Reads node attributes for the lowerings. The CPU operator built for every node has already checked them
/// (kinds, ranges, unknown names), so these reads only take values.</summary>
internal static class Attr
{
    public static long Int(Node node, string name, long defaultValue) =>
        node.Attributes.TryGetValue(name, out var a) ? a.Kind == AttributeKind.Ints ? a.Ints[0] : a.IntValue : defaultValue;

    public static float Float(Node node, string name, float defaultValue) =>
        node.Attributes.TryGetValue(name, out var a) ? a.Kind == AttributeKind.Floats ? a.Floats[0] : a.FloatValue : defaultValue;

    public static string String(Node node, string name, string defaultValue) =>
        node.Attributes.TryGetValue(name, out var a) ? a.StringValue : defaultValue;

    public static long[]? Ints(Node node, string name) =>
        node.Attributes.TryGetValue(name, out var a) ? a.Kind == AttributeKind.Int ? [a.IntValue] : [.. a.Ints] : null;

    public static float[]? Floats(Node node, string name) =>
        node.Attributes.TryGetValue(name, out var a) ? a.Kind == AttributeKind.Float ? [a.FloatValue] : [.. a.Floats] : null;
}
