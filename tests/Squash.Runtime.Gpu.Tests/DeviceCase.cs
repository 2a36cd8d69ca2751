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
        BackendCompiler.CompileAll(model);
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

/// <summary>A graph of several independent nodes over shared inputs, checked in one model (one accelerator start for
/// many operators).</summary>
internal sealed class MultiCase
{
    private readonly Graph _graph = new("multi");
    private readonly Dictionary<string, Tensor> _feeds = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Value> _values = new(StringComparer.Ordinal);
    private int _count;

    public MultiCase(int opset = 21) => _graph.OpsetImports[""] = opset;

    public MultiCase Input(string name, Tensor value, bool constant = false)
    {
        var v = constant ? new Value(name, value) : new Value(name, value.DataType, value.Shape);
        if (constant) _graph.Initializers.Add(v);
        else
        {
            _graph.Inputs.Add(v);
            _feeds[name] = value;
        }
        _values[name] = v;
        return this;
    }

    /// <summary>Adds a node reading the named inputs (null: omitted) with one output.</summary>
    public MultiCase Node(string opType, string?[] inputs, Dictionary<string, AttributeValue>? attributes = null, bool output = true, int outputs = 1,
        string domain = "")
    {
        if (domain.Length > 0) _graph.OpsetImports[domain] = 1;
        var node = new Node(opType, $"n{_count}", domain, domain.Length > 0 ? 1 : _graph.DefaultOpset);
        foreach (var (name, a) in attributes ?? []) node.Attributes[name] = a;
        foreach (var i in inputs) node.AddInput(i is null ? null : _values[i]);
        int id = _count++;
        for (int k = 0; k < outputs; k++)
        {
            var o = new Value(k == 0 ? $"{opType}_{id}" : $"{opType}_{id}_{k}");
            node.AddOutput(o);
            if (output) _graph.Outputs.Add(o);
            _values[o.Name] = o;
        }
        _graph.Nodes.Add(node);
        return this;
    }

    /// <summary>The name of the output of the last node added.</summary>
    public string Last => _graph.Nodes[^1].Outputs[0].Name;

    /// <summary>Runs both ways and compares; <paramref name="hostNodes"/> nodes are expected to run on the host.</summary>
    public GpuModel Check(float rtol, float atol, int hostNodes = 0)
    {
        // Intermediate values get their shapes from a CPU run that outputs everything.
        var probe = new Graph("probe");
        foreach (var (domain, version) in _graph.OpsetImports) probe.OpsetImports[domain] = version;
        probe.Inputs.AddRange(_graph.Inputs);
        probe.Initializers.AddRange(_graph.Initializers);
        probe.Nodes.AddRange(_graph.Nodes);
        probe.Outputs.AddRange(_graph.Nodes.SelectMany(n => n.Outputs));
        var all = new GraphExecutor(probe).Run(_feeds);
        foreach (var o in probe.Outputs)
        {
            o.Type = all[o.Name].DataType;
            o.Shape = all[o.Name].Shape;
        }
        var expected = new GraphExecutor(_graph).Run(_feeds);
        var model = GpuModel.Create(_graph, GpuDevice.Emulator);
        BackendCompiler.CompileAll(model);
        Assert.True(hostNodes == model.HostNodes.Count, string.Join("; ", model.HostNodes.Select(h => $"{h.Node.OpType}: {h.Reason}")));
        if (hostNodes == 0) Assert.Empty(model.HostNodes.Select(h => $"{h.Node.OpType}: {h.Reason}"));
        var actual = model.Run(_feeds);
        foreach (var o in _graph.Outputs) DeviceCase.AssertClose(expected[o.Name], actual[o.Name], rtol, atol, o.Name);
        model.Dispose();
        return model;
    }
}
