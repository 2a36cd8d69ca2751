using Squash.Compiler.Onnx;
using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Build.Tests.Support;

/// <summary>Small ONNX models built in code (with the project's own IR and writer), with known outputs.</summary>
internal static class TestModels
{
    /// <summary><c>y = x * [1,2,3,4] * factor + [0.5,0.5,0.5,0.5]</c>, x: float [N,4] (N dynamic: pin it with InputShapes).</summary>
    public static void ScaleShift(string path, float factor = 1)
    {
        var g = new Graph("scale_shift");
        g.OpsetImports[""] = 17;
        var x = Input(g, "x", DataType.Float, -1, 4);
        var w = Constant(g, "w", Tensor.From<float>([factor, 2 * factor, 3 * factor, 4 * factor], 4));
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

    /// <summary>
    /// A small image classifier, x: float [1,3,16,16] to a softmax over 10 classes: Conv (padded) + BatchNormalization +
    /// Relu + MaxPool + Reshape [1,-1] + Gemm + Softmax(axis=-1), seeded weights. Enough for the passes to fold and fuse,
    /// weights in the .sqw file, and negative numbers in attributes and inline constants (culture-sensitive text).
    /// </summary>
    public static void SmallConvNet(string path)
    {
        var random = new Random(1234);
        var g = new Graph("small_conv_net");
        g.OpsetImports[""] = 17;
        var x = Input(g, "x", DataType.Float, 1, 3, 16, 16);
        var conv = OpWith(g, "Conv", [("kernel_shape", AttributeValue.IntList(3, 3)), ("pads", AttributeValue.IntList(1, 1, 1, 1))],
            x, Constant(g, "conv.w", Seeded(random, 0.3f, 8, 3, 3, 3)), Constant(g, "conv.b", Seeded(random, 0.1f, 8)));
        var bn = OpWith(g, "BatchNormalization", [("epsilon", AttributeValue.Float(1e-5f))], conv,
            Constant(g, "bn.scale", Seeded(random, 1f, 8)), Constant(g, "bn.bias", Seeded(random, 0.5f, 8)),
            Constant(g, "bn.mean", Seeded(random, 0.2f, 8)), Constant(g, "bn.var", Tensor.From<float>([.. Enumerable.Range(1, 8).Select(i => i / 4f)], 8)));
        var pooled = OpWith(g, "MaxPool", [("kernel_shape", AttributeValue.IntList(2, 2)), ("strides", AttributeValue.IntList(2, 2))], Op(g, "Relu", bn));
        var flat = Op(g, "Reshape", pooled, Constant(g, "flat.shape", Tensor.From<long>([1, -1], 2)));
        var logits = Op(g, "Gemm", flat, Constant(g, "fc.w", Seeded(random, 0.05f, 512, 10)), Constant(g, "fc.b", Seeded(random, 0.1f, 10)));
        g.Outputs.Add(OpWith(g, "Softmax", [("axis", AttributeValue.Int(-1))], logits));
        Save(g, path);
    }

    /// <summary>
    /// <paramref name="layers"/> dense layers, x: float [1,width] to y: float [1,width]: MatMul by a seeded
    /// [width,width] matrix, Add of a seeded bias, Relu (none after the last). 1024 wide, 4 layers weigh 16 MB: a model
    /// that takes the compiler a while to load, fold and write. Another <paramref name="seed"/> gives other weights.
    /// </summary>
    public static void Dense(string path, int width, int layers, int seed = 4321)
    {
        var random = new Random(seed);
        var g = new Graph("dense");
        g.OpsetImports[""] = 17;
        var h = Input(g, "x", DataType.Float, 1, width);
        for (int l = 0; l < layers; l++)
        {
            h = Op(g, "Add", Op(g, "MatMul", h, Constant(g, $"w{l}", Seeded(random, 1.5f / MathF.Sqrt(width), width, width))),
                Constant(g, $"b{l}", Seeded(random, 0.1f, width)));
            if (l < layers - 1) h = Op(g, "Relu", h);
        }
        g.Outputs.Add(h);
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

    private static Value OpWith(Graph g, string opType, (string Name, AttributeValue Value)[] attributes, params Value[] inputs)
    {
        var output = Op(g, opType, inputs);
        foreach (var (name, value) in attributes) g.Nodes[^1].Attributes[name] = value;
        return output;
    }

    /// <summary>Values uniform in [-scale, scale] from <paramref name="random"/>.</summary>
    private static Tensor Seeded(Random random, float scale, params int[] shape)
    {
        var values = new float[shape.Aggregate(1, (a, d) => a * d)];
        for (int i = 0; i < values.Length; i++) values[i] = (float)(random.NextDouble() * 2 - 1) * scale;
        return Tensor.From<float>(values, shape);
    }

    private static void Save(Graph g, string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        OnnxWriter.Save(new Model(g), path);
    }
}
