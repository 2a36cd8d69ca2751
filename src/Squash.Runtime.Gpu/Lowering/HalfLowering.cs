using ILGPU;
using ILGPU.Runtime;
using Squash.Runtime.Gpu.Execution;
using Squash.Runtime.Gpu.Kernels;
using Squash.Runtime.Ir;

namespace Squash.Runtime.Gpu.Lowering;

/// <summary>
/// fp16 for every fp32 lowering, computed as the CPU runtime computes it (ReducedFloat, FloatBridge): a node with
/// float16 values that its lowering does not take directly runs its fp32 lowering over a copy of the node whose fp16
/// values are fp32. The step widens each fp16 input computed at run time into the shared device scratch (exact), runs
/// the fp32 work into fp32 scratch, and rounds each fp16 output back into its arena slot (nearest even, as Cast).
/// fp16 constants are widened once on the host. Nothing crosses the bus and nothing is allocated per run: the scratch is
/// one buffer, sized for the largest such node, that every step shares (steps run one after another on one stream).
/// </summary>
internal static class HalfLowering
{
    // Every scratch tensor starts on a 256-byte boundary, as device allocations do (coalesced, vector loads).
    private const long Alignment = 256;

    /// <summary><paramref name="fp32"/>, falling back to the widened fp32 work for a node with fp16 values that
    /// <paramref name="fp32"/> refuses.</summary>
    public static Lowering Widened(Lowering fp32) => c =>
    {
        try { return fp32(c); }
        catch (NotOnDeviceException) when (HasHalf(c.Node)) { return Widen(c, fp32); }
    };

    /// <summary>True when any input or output of <paramref name="node"/> is fp16.</summary>
    public static bool HasHalf(Node node) =>
        node.Inputs.Any(v => v?.Type == DataType.Float16) || node.Outputs.Any(v => v.Type == DataType.Float16);

    /// <summary>Scratch bytes <see cref="Widen"/> needs for <paramref name="node"/> (0 without fp16 values).</summary>
    public static long ScratchBytes(Node node, Func<Value, bool> inArena) =>
        Staged(node, inArena).Sum(v => Aligned((long)LoweringContext.Count(v) * sizeof(float)));

    /// <summary>The fp16 values staged in scratch: inputs computed at run time and outputs, each once.</summary>
    private static IEnumerable<Value> Staged(Node node, Func<Value, bool> inArena) =>
        node.Inputs.Where(v => v is { Type: DataType.Float16 } && inArena(v)).Select(v => v!)
            .Concat(node.Outputs.Where(v => v.Type == DataType.Float16)).Distinct();

    private static long Aligned(long bytes) => (bytes + Alignment - 1) / Alignment * Alignment;

    private static GpuStep Widen(LoweringContext c, Lowering fp32)
    {
        var node = c.Node;
        var wide = new Node(node.OpType, node.Name, node.Domain, node.OpsetVersion);
        foreach (var (name, a) in node.Attributes) wide.Attributes[name] = a;
        var shadows = new Dictionary<Value, Value>();
        var widen = new List<(ArrayView<ushort> Half, ArrayView<float> Float, int Count)>();
        var narrow = new List<(ArrayView<ushort> Half, ArrayView<float> Float, int Count)>();
        long offset = 0;

        // A value staged in scratch: the same fp16 value read twice (Mul(x, x)) is widened once.
        Value Stage(Value v, bool output)
        {
            if (shadows.TryGetValue(v, out var s)) return s;
            s = new Value(v.Name, DataType.Float, v.Shape);
            int count = LoweringContext.Count(v);
            var view = c.Scratch(offset, (long)count * sizeof(float));
            offset += Aligned((long)count * sizeof(float));
            c.Bind(s, view);
            (output ? narrow : widen).Add((c.Bytes(v).Cast<ushort>(), view.Cast<float>(), count));
            shadows[v] = s;
            return s;
        }

        foreach (var v in node.Inputs)
        {
            if (v is not { Type: DataType.Float16 }) wide.AddInput(v);
            else if (c.InArena(v)) wide.AddInput(Stage(v, output: false));
            else wide.AddInput(WideConstant(c, v));
        }
        foreach (var v in node.Outputs)
        {
            if (v.Type == DataType.Float16) wide.AddOutput(Stage(v, output: true));
            else
            {
                // Another output type (ArgMax's indices) is written in place; an alias keeps the graph's value (and its
                // producer) untouched.
                var alias = new Value(v.Name, v.Type, v.Shape);
                c.Bind(alias, c.Bytes(v));
                wide.AddOutput(alias);
            }
        }

        GpuStep inner;
        c.Node = wide;
        try { inner = fp32(c); }
        finally { c.Node = node; }

        var toFloat = c.Kernels.Auto<ArrayView<ushort>, ArrayView<float>>(CastKernels.Cast<ushort, float, HalfToFloat>);
        var toHalf = c.Kernels.Auto<ArrayView<float>, ArrayView<ushort>>(CastKernels.Cast<float, ushort, FloatToHalf>);
        var ins = widen.Where(p => p.Count > 0).ToArray();
        var outs = narrow.Where(p => p.Count > 0).ToArray();
        return new ActionStep(stream =>
        {
            foreach (var (half, single, count) in ins) toFloat(stream, count, half, single);
            inner.Run(stream);
            foreach (var (half, single, count) in outs) toHalf(stream, count, single, half);
        });
    }

    /// <summary>An fp32 copy of an fp16 constant (exact), made once per model.</summary>
    private static Value WideConstant(LoweringContext c, Value v)
    {
        if (c.WideConstants.TryGetValue(v, out var w)) return w;
        var constant = v.Constant ?? throw new NotOnDeviceException($"'{v.Name}' has no value on the device");
        var half = constant.AsSpan<System.Half>();
        var single = new float[half.Length];
        for (int i = 0; i < half.Length; i++) single[i] = (float)half[i];
        w = new Value(v.Name, Tensor.From<float>(single, (int[])constant.Shape.Clone()));
        c.WideConstants[v] = w;
        return w;
    }
}
