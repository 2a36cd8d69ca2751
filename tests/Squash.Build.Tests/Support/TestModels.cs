using Squash.Compiler.Onnx;
using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Build.Tests.Support;

/// <summary>Small ONNX models built in code (with the project's own IR and writer), with known outputs.</summary>
internal static class TestModels
{
    /// <summary><c>y = x * [1,2,3,4] + [0.5,0.5,0.5,0.5]</c>, x: float [N,4] (N dynamic: pin it with InputShapes).</summary>
    public static void ScaleShift(string path)
    {
        var g = new Graph("scale_shift");
        g.OpsetImports[""] = 17;
        var x = Input(g, "x", DataType.Float, -1, 4);
        var w = Constant(g, "w", Tensor.From<float>([1, 2, 3, 4], 4));
        var b = Constant(g, "b", Tensor.From<float>([0.5f, 0.5f, 0.5f, 0.5f], 4));
        var y = Op(g, "Add", Op(g, "Mul", x, w), b);
        g.Outputs.Add(y);
        Save(g, path);
    }

    /// <summary><c>z = a * k + [0.25,0.5,0.75]</c>, a: float [3], k: float [1] (bake it with ConstantInputs).</summary>
    public static void Affine(string path)
    {
        var g = new Graph("affine");
        g.OpsetImports[""] = 17;
        var a = Input(g, "a", DataType.Float, 3);
        var k = Input(g, "k", DataType.Float, 1);
        var c = Constant(g, "c", Tensor.From<float>([0.25f, 0.5f, 0.75f], 3));
        g.Outputs.Add(Op(g, "Add", Op(g, "Mul", a, k), c));
        Save(g, path);
    }

    /// <summary>A model whose only node is an operator no one implements (domain com.example).</summary>
    public static void Unsupported(string path)
    {
        var g = new Graph("unsupported");
        g.OpsetImports[""] = 17;
        g.OpsetImports["com.example"] = 1;
        var x = Input(g, "x", DataType.Float, 2);
        var node = new Node("Frobnicate", "frobnicate_0", "com.example", 1);
        node.AddInput(x);
        var y = new Value("y", DataType.Float, [2]);
        node.AddOutput(y);
        g.Nodes.Add(node);
        g.Outputs.Add(y);
        Save(g, path);
    }

    /// <summary>An Add node with an attribute Add does not have.</summary>
    public static void UnknownAttribute(string path)
    {
        var g = new Graph("unknown_attribute");
        g.OpsetImports[""] = 17;
        var x = Input(g, "x", DataType.Float, 2);
        var y = Op(g, "Add", x, x);
        g.Nodes[0].Attributes["frobnicate"] = AttributeValue.Int(1);
        g.Outputs.Add(y);
        Save(g, path);
    }

    /// <summary>Bytes that are not an ONNX protobuf.</summary>
    public static void Corrupt(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        File.WriteAllBytes(path, [0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02]);
    }

    private static Value Input(Graph g, string name, DataType type, params int[] shape)
    {
        var v = new Value(name, type, shape);
        g.Inputs.Add(v);
        return v;
    }

    private static Value Constant(Graph g, string name, Tensor t)
    {
        var v = new Value(name, t);
        g.Initializers.Add(v);
        return v;
    }

    private static Value Op(Graph g, string opType, params Value[] inputs)
    {
        var node = new Node(opType, $"{opType}_{g.Nodes.Count}", "", 17);
        foreach (var i in inputs) node.AddInput(i);
        var output = new Value($"{opType.ToLowerInvariant()}_{g.Nodes.Count}");
        node.AddOutput(output);
        g.Nodes.Add(node);
        return output;
    }

    private static void Save(Graph g, string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        OnnxWriter.Save(new Model(g), path);
    }
}
