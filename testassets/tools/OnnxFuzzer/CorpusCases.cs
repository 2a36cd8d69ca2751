using System.Globalization;
using Google.Protobuf;
using P = global::Onnx;

namespace Squash.Tools.OnnxFuzzer;

/// <summary>
/// Hand-built hostile models for testassets/fuzz-corpus, one per attack the fuzzer's mutations aim at, each small.
/// Names follow the corpus convention <c>WHAT.EXPECTED.onnx</c>, EXPECTED being a diagnostic code or <c>ok</c>.
/// External-data cases resolve against a <see cref="FuzzSandbox"/>.
/// </summary>
internal static class CorpusCases
{
    /// <summary>Every case: file name (without .onnx) and the model.</summary>
    public static IEnumerable<(string Name, byte[] Bytes)> All()
    {
        // ---- sizes -------------------------------------------------------------------------------------------------
        yield return ("tensor-dim-2pow40.SQ1005", Model(Identity(Tensor("w", 1, [1L << 40]))));
        yield return ("tensor-dim-negative.SQ1005", Model(Identity(Tensor("w", 1, [-1]))));
        yield return ("tensor-dim-int64-max.SQ1005", Model(Identity(Tensor("w", 1, [long.MaxValue]))));
        yield return ("tensor-dims-product-overflow.SQ1011", Model(Identity(Tensor("w", 1, [65536, 65536, 65536]))));
        // 2^28 floats declared (1 GB) with no values: refused before the 1 GB is allocated.
        yield return ("tensor-huge-typed-data-missing.SQ1005", Model(Identity(Tensor("w", 1, [1 << 28], floats: []))));
        yield return ("tensor-raw-data-short.SQ1005", Model(Identity(Tensor("w", 1, [4], raw: new byte[15]))));
        yield return ("tensor-dim-zero.ok", Model(Identity(Tensor("w", 1, [0], raw: []))));
        yield return ("input-dim-int32-overflow.SQ1005", Model(Graph(
            inputs: [Input("x", 1, 1L << 31)], nodes: [Node("Relu", ["x"], ["y"])], outputs: ["y"])));
        yield return ("input-elements-over-limit.SQ1011", Model(Graph(
            inputs: [Input("x", 1, 65536, 65536)], nodes: [Node("Relu", ["x"], ["y"])], outputs: ["y"])));
        yield return ("constant-of-shape-2pow40.SQ1005", Model(Graph(
            inits: [Tensor("s", 7, [1], raw: BitConverter.GetBytes(1L << 40))],
            nodes: [Node("ConstantOfShape", ["s"], ["y"])], outputs: ["y"])));
        // 2^28 floats (1 GB): too large to fold, so it stays a node; planning it is refused only by the arena limit.
        yield return ("constant-of-shape-1gb-not-folded.ok", Model(Graph(
            inits: [Tensor("s", 7, [1], raw: BitConverter.GetBytes(1L << 28))],
            nodes: [Node("ConstantOfShape", ["s"], ["y"])], outputs: ["y"])));
        yield return ("reshape-to-2pow40.SQ1005", Model(Graph(
            inputs: [Input("x", 1, 4)], inits: [Tensor("s", 7, [2], raw: [.. BitConverter.GetBytes(1L << 40), .. BitConverter.GetBytes(-1L)])],
            nodes: [Node("Reshape", ["x", "s"], ["y"])], outputs: ["y"])));
        // 1 KB doubled 20 times would be 1 GB of folded weights; folding stops at its growth limits.
        // Found by the fuzzer in the PP-OCR classifier: checked arithmetic on a pad threw OverflowException.
        yield return ("conv-pads-2pow40.SQ1005", Model(Graph(
            inputs: [Input("x", 1, 1, 1, 4, 4)], inits: [Tensor("w", 1, [1, 1, 1, 1], floats: [1])],
            nodes: [Node("Conv", ["x", "w"], ["y"], new P.AttributeProto { Name = "pads", Type = P.AttributeProto.Types.AttributeType.Ints, Ints = { 1L << 40, 0, 0, 0 } })],
            outputs: ["y"])));
        yield return ("concat-doubling-chain.ok", ConcatDoubling(20));
        yield return ("concat-doubling-past-int32.SQ1005", ConcatDoubling(24));
        yield return ("if-branch-huge-constant.ok", IfWithHugeBranch());

        // ---- structure ---------------------------------------------------------------------------------------------
        yield return ("cycle-two-nodes.SQ1005", Model(Graph(
            nodes: [Node("Relu", ["b"], ["a"]), Node("Relu", ["a"], ["b"])], outputs: ["b"])));
        yield return ("cycle-self.SQ1005", Model(Graph(nodes: [Node("Relu", ["a"], ["a"])], outputs: ["a"])));
        yield return ("undefined-input.SQ1005", Model(Graph(nodes: [Node("Relu", ["ghost"], ["y"])], outputs: ["y"])));
        yield return ("output-not-computed.SQ1005", Model(Graph(inputs: [Input("x", 1, 2)], nodes: [Node("Relu", ["x"], ["y"])], outputs: ["z"])));
        yield return ("output-assigned-twice.SQ1005", Model(Graph(
            inputs: [Input("x", 1, 2)], nodes: [Node("Relu", ["x"], ["y"]), Node("Neg", ["x"], ["y"])], outputs: ["y"])));
        yield return ("initializer-twice.SQ1005", Model(Graph(
            inits: [Tensor("w", 1, [1], floats: [1]), Tensor("w", 1, [1], floats: [2])], nodes: [Node("Relu", ["w"], ["y"])], outputs: ["y"])));
        yield return ("input-unnamed.SQ1005", Model(Graph(inputs: [Input("", 1, 2)], nodes: [Node("Relu", ["x"], ["y"])], outputs: ["y"])));
        yield return ("output-unnamed.SQ1005", Model(Graph(inputs: [Input("x", 1, 2)], nodes: [Node("Relu", ["x"], ["y"])], outputs: [""])));
        yield return ("nodes-in-reverse-order.ok", Model(Graph(
            inputs: [Input("x", 1, 2)], nodes: [Node("Neg", ["a"], ["y"]), Node("Relu", ["x"], ["a"])], outputs: ["y"])));
        yield return ("graph-output-listed-20000-times.ok", ManyOutputs(20_000));
        yield return ("graph-output-listed-twice.ok", Model(Graph(
            inputs: [Input("x", 1, 2)], nodes: [Node("Relu", ["x"], ["a"]), Node("Identity", ["a"], ["y"])], outputs: ["y", "y"])));
        yield return ("size-with-two-outputs.SQ1005", Model(Graph(
            inputs: [Input("x", 1, 2)], nodes: [Node("Size", ["x"], ["y", "z"])], outputs: ["y"])));
        yield return ("node-without-outputs.SQ1005", Model(Graph(
            inputs: [Input("x", 1, 2)], nodes: [Node("Relu", ["x"], ["y"]), Node("Constant", [], [], new P.AttributeProto { Name = "value", Type = P.AttributeProto.Types.AttributeType.Tensor, T = Tensor("", 1, [1], floats: [0]) })], outputs: ["y"])));
        yield return ("topk-one-output.SQ1005", Model(Graph(
            inputs: [Input("x", 1, 4)], inits: [Tensor("k", 7, [1], raw: BitConverter.GetBytes(2L))], nodes: [Node("TopK", ["x", "k"], ["y"])], outputs: ["y"])));
        yield return ("attribute-twice.SQ1005", Model(Graph(
            inputs: [Input("x", 1, 2)], nodes: [Node("Softmax", ["x"], ["y"], IntAttr("axis", 0), IntAttr("axis", 0))], outputs: ["y"])));
        // The parser's nesting limit (100 messages, 3 per If level) stops at 33 levels, before the loader's own limit.
        yield return ("op-type-5000-chars.SQ1005", Model(Graph(inputs: [Input("x", 1, 2)], nodes: [Node(new string('R', 5000), ["x"], ["y"])], outputs: ["y"])));
        yield return ("if-nested-32-deep.ok", NestedIf(32));
        yield return ("if-nested-33-deep.SQ1002", NestedIf(33));
        yield return ("if-nested-200-deep.SQ1002", NestedIf(200));
        yield return ("type-nested-200-deep.SQ1002", DeepType(200));
        // Protobuf merges repeats of a singular field; the parser did so in quadratic time (4 GB allocated here).
        yield return ("value-type-repeated-8000.SQ1002", RepeatedType(8000));

        // ---- types and versions ------------------------------------------------------------------------------------
        yield return ("tensor-type-257.SQ1006", Model(Identity(Tensor("w", 257, [1], raw: new byte[4]))));
        yield return ("tensor-type-string.SQ1006", Model(Identity(Tensor("w", 8, [1]))));
        yield return ("tensor-float-bytes-declared-int64.SQ1005", Model(Identity(Tensor("w", 7, [3], raw: new byte[12]))));
        yield return ("input-type-negative.SQ1006", Model(Graph(inputs: [Input("x", -5, 2)], nodes: [Node("Relu", ["x"], ["y"])], outputs: ["y"])));
        yield return ("input-sequence.SQ1006", SequenceInput());
        yield return ("sparse-initializer.SQ1006", SparseInitializer());
        yield return ("opset-1000.SQ1003", Model(Identity(Tensor("w", 1, [1], floats: [1])), opset: 1000));
        yield return ("opset-negative.SQ1005", Model(Identity(Tensor("w", 1, [1], floats: [1])), opset: -1));
        yield return ("opset-missing.SQ1005", Model(Identity(Tensor("w", 1, [1], floats: [1])), opset: null));
        yield return ("bool-stored-as-2.ok", Model(Graph(
            inits: [Tensor("b", 9, [2], raw: [2, 0])], nodes: [Node("Not", ["b"], ["y"])], outputs: ["y"])));
        yield return ("declared-shape-contradicts-run.SQ1005", DeclaredShapeLie());

        // ---- external data (against FuzzSandbox) -------------------------------------------------------------------
        yield return ("external-inside.ok", External("weights.bin", "0", "16"));
        yield return ("external-absolute.SQ1007", External("/etc/passwd", "0", "16"));
        yield return ("external-parent.SQ1007", External("../outside/secret.bin", "0", "16"));
        yield return ("external-parent-hidden.SQ1007", External("sub/../../outside/secret.bin", "0", "16"));
        yield return ("external-file-link-out.SQ1007", External("link-out.bin", "0", "16"));
        yield return ("external-dir-link-out.SQ1007", External("dir-link/secret.bin", "0", "16"));
        yield return ("external-link-loop.SQ1007", External("loop-link", "0", "16"));
        yield return ("external-directory.SQ1007", External("sub", "0", "16"));
        yield return ("external-missing.SQ1007", External("missing.bin", "0", "16"));
        yield return ("external-nul-in-location.SQ1007", External("weights.bin\0.txt", "0", "16"));
        yield return ("external-offset-past-end.SQ1007", External("weights.bin", "4090", "16"));
        yield return ("external-offset-int64-max.SQ1007", External("weights.bin", "9223372036854775807", "16"));
        yield return ("external-offset-negative.SQ1007", External("weights.bin", "-4", "16"));
        yield return ("external-offset-not-a-number.SQ1007", External("weights.bin", "abc", "16"));
        yield return ("external-length-mismatch.SQ1007", External("weights.bin", "0", "12"));
        yield return ("external-empty-file.SQ1007", External("empty.bin", "0", null));
        yield return ("external-no-location.SQ1007", External(null, "0", "16"));
    }

    // ---- builders ----------------------------------------------------------------------------------------------------

    private static byte[] Model(P.GraphProto graph, long? opset = 17) => ModelProto(graph, opset).ToByteArray();

    private static P.ModelProto ModelProto(P.GraphProto graph, long? opset = 17)
    {
        var model = new P.ModelProto { IrVersion = 8, ProducerName = "OnnxFuzzer corpus", Graph = graph };
        if (opset is { } v) model.OpsetImport.Add(new P.OperatorSetIdProto { Domain = "", Version = v });
        return model;
    }

    private static P.GraphProto Graph(P.ValueInfoProto[]? inputs = null, P.TensorProto[]? inits = null, P.NodeProto[]? nodes = null, string[]? outputs = null)
    {
        var g = new P.GraphProto { Name = "corpus" };
        g.Input.AddRange(inputs ?? []);
        g.Initializer.AddRange(inits ?? []);
        g.Node.AddRange(nodes ?? []);
        foreach (var o in outputs ?? []) g.Output.Add(new P.ValueInfoProto { Name = o });
        return g;
    }

    private static P.GraphProto Identity(P.TensorProto w) => Graph(inits: [w], nodes: [Node("Identity", [w.Name], ["y"])], outputs: ["y"]);

    private static P.NodeProto Node(string op, string[] inputs, string[] outputs, params P.AttributeProto[] attributes)
    {
        var n = new P.NodeProto { OpType = op, Name = $"{op}_{string.Join("_", outputs)}" };
        n.Input.AddRange(inputs);
        n.Output.AddRange(outputs);
        n.Attribute.AddRange(attributes);
        return n;
    }

    private static P.AttributeProto IntAttr(string name, long value) =>
        new() { Name = name, Type = P.AttributeProto.Types.AttributeType.Int, I = value };

    private static P.AttributeProto GraphAttr(string name, P.GraphProto g) =>
        new() { Name = name, Type = P.AttributeProto.Types.AttributeType.Graph, G = g };

    private static P.TensorProto Tensor(string name, int type, long[] dims, byte[]? raw = null, float[]? floats = null)
    {
        var t = new P.TensorProto { Name = name, DataType = type };
        t.Dims.AddRange(dims);
        if (raw is not null) t.RawData = ByteString.CopyFrom(raw);
        if (floats is not null) t.FloatData.AddRange(floats);
        return t;
    }

    private static P.ValueInfoProto Input(string name, int type, params long[] dims)
    {
        var shape = new P.TensorShapeProto();
        foreach (long d in dims) shape.Dim.Add(new P.TensorShapeProto.Types.Dimension { DimValue = d });
        return new P.ValueInfoProto { Name = name, Type = new P.TypeProto { TensorType = new P.TypeProto.Types.Tensor { ElemType = type, Shape = shape } } };
    }

    /// <summary>x (1 KB) concatenated with itself <paramref name="steps"/> times.</summary>
    private static byte[] ConcatDoubling(int steps)
    {
        var nodes = new List<P.NodeProto>();
        string previous = "x0";
        for (int i = 1; i <= steps; i++)
        {
            nodes.Add(Node("Concat", [previous, previous], [$"x{i}"], IntAttr("axis", 0)));
            previous = $"x{i}";
        }
        nodes.Add(Node("ReduceSum", [previous], ["y"], IntAttr("keepdims", 0)));
        return Model(Graph(inits: [Tensor("x0", 1, [256], raw: new byte[1024])], nodes: [.. nodes], outputs: ["y"]));
    }

    /// <summary>If with a constant condition whose then-branch makes 1 GB: build-time inference must not run it.</summary>
    private static byte[] IfWithHugeBranch()
    {
        var then = Graph(inits: [Tensor("s", 7, [1], raw: BitConverter.GetBytes(1L << 28))], nodes: [Node("ConstantOfShape", ["s"], ["t"])], outputs: ["t"]);
        var otherwise = Graph(nodes: [Node("Constant", [], ["e"], new P.AttributeProto { Name = "value", Type = P.AttributeProto.Types.AttributeType.Tensor, T = Tensor("", 1, [1], floats: [0]) })], outputs: ["e"]);
        return Model(Graph(inits: [Tensor("c", 9, [], raw: [1])], nodes: [Node("If", ["c"], ["y"], GraphAttr("then_branch", then), GraphAttr("else_branch", otherwise))], outputs: ["y"]));
    }

    private static byte[] NestedIf(int depth)
    {
        P.GraphProto Leaf(string output) => Graph(
            nodes: [Node("Constant", [], [output], new P.AttributeProto { Name = "value", Type = P.AttributeProto.Types.AttributeType.Tensor, T = Tensor("", 1, [1], floats: [1]) })],
            outputs: [output]);
        var inner = Leaf($"y{depth}");
        for (int level = depth - 1; level >= 0; level--)
            inner = Graph(nodes: [Node("If", ["c"], [$"y{level}"], GraphAttr("then_branch", inner), GraphAttr("else_branch", Leaf($"e{level}")))], outputs: [$"y{level}"]);
        inner.Initializer.Add(Tensor("c", 9, [], raw: [1]));
        return Model(inner);
    }

    private static byte[] DeepType(int depth)
    {
        var type = new P.TypeProto { TensorType = new P.TypeProto.Types.Tensor { ElemType = 1 } };
        for (int k = 0; k < depth; k++) type = new P.TypeProto { SequenceType = new P.TypeProto.Types.Sequence { ElemType = type } };
        return Model(Graph(inputs: [new P.ValueInfoProto { Name = "x", Type = type }], nodes: [Node("Identity", ["x"], ["y"])], outputs: ["y"]));
    }

    /// <summary>Graph input x whose <c>type</c> field (a TypeProto with a rank-3 tensor type) occurs
    /// <paramref name="copies"/> times, which protobuf would merge into one rank-3·copies type.</summary>
    private static byte[] RepeatedType(int copies)
    {
        var model = ModelProto(Graph(inputs: [Input("x", 1, 3, 4, 5)], nodes: [Node("Identity", ["x"], ["y"])], outputs: ["y"]));
        var input = model.Graph.Input[0];
        var typeField = new WireField(2, WireField.Length, 0, input.Type.ToByteArray());
        var inputFields = new List<WireField> { new(1, WireField.Length, 0, System.Text.Encoding.UTF8.GetBytes("x")) };
        inputFields.AddRange(Enumerable.Repeat(typeField, copies));
        model.Graph.Input.Clear();
        // The graph without its input, then the hand-written input appended (field 11 of GraphProto).
        var graphFields = new List<WireField>();
        ProtoWire.TryParse(model.Graph.ToByteArray(), out graphFields);
        graphFields.Add(new WireField(11, WireField.Length, 0, ProtoWire.Write(inputFields)));
        model.Graph = null;
        ProtoWire.TryParse(model.ToByteArray(), out var modelFields);
        modelFields.Add(new WireField(7, WireField.Length, 0, ProtoWire.Write(graphFields)));
        return ProtoWire.Write(modelFields);
    }

    /// <summary>One 64 KB output listed <paramref name="count"/> times (1.3 GB if each listing were copied).</summary>
    private static byte[] ManyOutputs(int count)
    {
        var g = Graph(inputs: [Input("x", 1, 16384)], nodes: [Node("Relu", ["x"], ["y"])]);
        for (int i = 0; i < count; i++) g.Output.Add(new P.ValueInfoProto { Name = "y" });
        return Model(g);
    }

    private static byte[] SequenceInput() => Model(Graph(
        inputs: [new P.ValueInfoProto { Name = "x", Type = new P.TypeProto { SequenceType = new P.TypeProto.Types.Sequence { ElemType = new P.TypeProto { TensorType = new P.TypeProto.Types.Tensor { ElemType = 1 } } } } }],
        nodes: [Node("Identity", ["x"], ["y"])], outputs: ["y"]));

    private static byte[] SparseInitializer()
    {
        var g = Graph(inputs: [Input("x", 1, 4)], nodes: [Node("Relu", ["x"], ["y"])], outputs: ["y"]);
        g.SparseInitializer.Add(new P.SparseTensorProto { Dims = { 4 }, Values = Tensor("s", 1, [1], floats: [1]), Indices = Tensor("i", 7, [1], raw: new byte[8]) });
        return Model(g);
    }

    /// <summary>ReduceSum over axes given at run time, with an output shape the model declares wrongly: the plan is laid
    /// out for the declaration, and the run must notice instead of writing past it.</summary>
    private static byte[] DeclaredShapeLie()
    {
        var g = Graph(inputs: [Input("x", 1, 3, 4), Input("axes", 7, 1)], nodes: [Node("ReduceSum", ["x", "axes"], ["y"], IntAttr("keepdims", 0))]);
        g.Output.Add(Input("y", 1, 5));
        return Model(g, opset: 18);
    }

    private static byte[] External(string? location, string? offset, string? length)
    {
        var t = Tensor("w", 1, [4]);
        t.DataLocation = P.TensorProto.Types.DataLocation.External;
        if (location is not null) t.ExternalData.Add(new P.StringStringEntryProto { Key = "location", Value = location });
        if (offset is not null) t.ExternalData.Add(new P.StringStringEntryProto { Key = "offset", Value = offset });
        if (length is not null) t.ExternalData.Add(new P.StringStringEntryProto { Key = "length", Value = length });
        return Model(Identity(t));
    }

    /// <summary>Writes every case to <paramref name="directory"/>.</summary>
    public static int Write(string directory)
    {
        Directory.CreateDirectory(directory);
        int n = 0;
        foreach (var (name, bytes) in All())
        {
            File.WriteAllBytes(Path.Combine(directory, name + ".onnx"), bytes);
            n++;
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Wrote {n} cases to {directory}."));
        return n;
    }
}
