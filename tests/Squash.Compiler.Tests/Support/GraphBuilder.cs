using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Tests.Support;

/// <summary>Builds small graphs in code for pass and CLI tests.</summary>
internal sealed class GraphBuilder
{
    private int _next;

    public Graph Graph { get; } = new("test");

    public GraphBuilder(int opset = 17) => Graph.OpsetImports[""] = opset;

    public Value Input(string name, DataType type, params int[] shape)
    {
        var v = new Value(name, type, shape);
        Graph.Inputs.Add(v);
        return v;
    }

    public Value Constant(Tensor tensor, string? name = null)
    {
        var v = new Value(name ?? $"c{_next++}", tensor);
        Graph.Initializers.Add(v);
        return v;
    }

    public Value Node(string opType, params Value?[] inputs) => NodeWith(opType, [], inputs)[0];

    public Value[] NodeWith(string opType, (string Name, AttributeValue Value)[] attributes, Value?[] inputs, int outputs = 1)
    {
        var node = new Node(opType, $"{opType}_{_next++}", "", Graph.DefaultOpset);
        foreach (var (name, value) in attributes) node.Attributes[name] = value;
        foreach (var i in inputs) node.AddInput(i);
        var result = new Value[outputs];
        for (int k = 0; k < outputs; k++) node.AddOutput(result[k] = new Value($"{node.Name}_out{k}"));
        Graph.Nodes.Add(node);
        return result;
    }

    public void Output(Value v) => Graph.Outputs.Add(v);

    /// <summary>A Resize of a 4-D image by <paramref name="factor"/> along both spatial axes, with constant scales
    /// [1, 1, factor, factor] (opset 13 inputs: X, an empty roi, scales).</summary>
    public Value Resize(Value x, int factor, string mode = "nearest", string transform = "asymmetric", string rounding = "floor")
    {
        var scales = new Tensor(DataType.Float, 4);
        float[] values = [1, 1, factor, factor];
        values.CopyTo(scales.AsSpan<float>());
        return NodeWith("Resize", [("mode", AttributeValue.String(mode)), ("coordinate_transformation_mode", AttributeValue.String(transform)),
            ("nearest_mode", AttributeValue.String(rounding))], [x, Constant(new Tensor(DataType.Float, 0)), Constant(scales)])[0];
    }

    public Model Build() => new(Graph);
}
