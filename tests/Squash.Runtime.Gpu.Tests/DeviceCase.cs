using Squash.Runtime.Execution;
using Squash.Runtime.Ir;

namespace Squash.Runtime.Gpu.Tests;

/// <summary>One input of a single-node case: a graph input fed at run time, or a constant (initializer).</summary>
internal sealed record CaseInput(string Name, Tensor? Value, bool Constant = false);

/// <summary>
/// Runs one node on the CPU operator (the reference) and through the device kernels on ILGPU's CPU accelerator, and
/// compares. Elements must satisfy |device - cpu| &lt;= atol + rtol * |cpu|; integer and bool outputs must be equal.
/// </summary>
internal static class DeviceCase
{
    public static Dictionary<string, Tensor> Check(string opType, CaseInput[] inputs, float rtol, float atol,
        Dictionary<string, AttributeValue>? attributes = null, int opset = 21, int outputs = 1, bool expectOnDevice = true)
    {
        var graph = new Graph("case");
        graph.OpsetImports[""] = opset;
        var node = new Node(opType, "n", "", opset);
        foreach (var (name, a) in attributes ?? []) node.Attributes[name] = a;
        var feeds = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var input in inputs)
        {
            if (input.Value is null)
            {
                node.AddInput(null);
                continue;
            }
            var v = input.Constant ? new Value(input.Name, input.Value) : new Value(input.Name, input.Value.DataType, input.Value.Shape);
            if (input.Constant) graph.Initializers.Add(v);
            else
            {
                graph.Inputs.Add(v);
                feeds[input.Name] = input.Value;
            }
            node.AddInput(v);
        }
        for (int k = 0; k < outputs; k++)
        {
            var o = new Value($"y{k}");
            node.AddOutput(o);
            graph.Outputs.Add(o);
        }
        graph.Nodes.Add(node);
        var expected = new GraphExecutor(graph).Run(feeds);
        foreach (var o in graph.Outputs)
        {
            o.Type = expected[o.Name].DataType;
            o.Shape = expected[o.Name].Shape;
        }
        using var model = GpuModel.Create(graph, GpuDevice.Emulator);
        if (expectOnDevice) Assert.Empty(model.HostNodes.Select(h => h.Reason));
        var actual = model.Run(feeds);
        foreach (var o in graph.Outputs) AssertClose(expected[o.Name], actual[o.Name], rtol, atol, $"{opType} {o.Name}");
        return actual;
    }

    public static void AssertClose(Tensor expected, Tensor actual, float rtol, float atol, string what)
    {
        Assert.Equal(expected.DataType, actual.DataType);
        Assert.Equal(expected.Shape, actual.Shape);
        if (!DataTypes.IsFloatingPoint(expected.DataType))
        {
            Assert.True(expected.Bytes.SequenceEqual(actual.Bytes), $"{what}: integer outputs differ");
            return;
        }
        double worst = 0;
        int at = -1;
        for (int i = 0; i < expected.ElementCount; i++)
        {
            double e = expected.GetAsDouble(i), a = actual.GetAsDouble(i);
            if (double.IsNaN(e) && double.IsNaN(a)) continue;
            if (double.IsInfinity(e) && e == a) continue;
            double excess = Math.Abs(a - e) - (atol + rtol * Math.Abs(e));
            if (double.IsNaN(excess) || excess > worst) { worst = double.IsNaN(excess) ? double.PositiveInfinity : excess; at = i; }
        }
        Assert.True(at < 0, at < 0 ? "" : $"{what}: element {at}: device {actual.GetAsDouble(at)}, cpu {expected.GetAsDouble(at)} (rtol {rtol}, atol {atol})");
    }

    /// <summary>Deterministic values in [-scale, scale).</summary>
    public static Tensor Random(int seed, float scale, params int[] shape)
    {
        var rng = new Random(seed);
        var t = new Tensor(DataType.Float, shape);
        var s = t.AsSpan<float>();
        for (int i = 0; i < s.Length; i++) s[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return t;
    }

    public static AttributeValue Ints(params long[] v) => AttributeValue.IntList(v);
    public static AttributeValue Int(long v) => AttributeValue.Int(v);
    public static AttributeValue Float(float v) => AttributeValue.Float(v);
    public static AttributeValue Str(string v) => AttributeValue.String(v);
}
