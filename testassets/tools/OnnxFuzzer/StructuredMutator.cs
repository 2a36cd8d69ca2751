using Google.Protobuf;
using Squash.Runtime.Operators;
using P = global::Onnx;

namespace Squash.Tools.OnnxFuzzer;

/// <summary>
/// Mutations that know the ONNX schema: absurd dimensions and values, cycles, missing and duplicate names, type
/// mismatches, deep subgraph nesting, huge strings and repeated fields, wrong opsets, hostile external data, other
/// operators in a node's place. Each works on a parsed <c>ModelProto</c> in place.
/// </summary>
internal static class StructuredMutator
{
    private delegate string? Mutation(P.ModelProto model, Random rng);

    private static readonly (string Name, Mutation Apply)[] s_mutations =
    [
        ("tensor-dims", TensorDims),
        ("value-info-dims", ValueInfoDims),
        ("tensor-values", TensorValues),
        ("attribute-value", AttributeValue),
        ("attribute-add", AttributeAdd),
        ("attribute-remove", AttributeRemove),
        ("cycle", Cycle),
        ("missing-name", MissingName),
        ("duplicate-name", DuplicateName),
        ("type-mismatch", TypeMismatch),
        ("deep-nesting", DeepNesting),
        ("huge-string", HugeString),
        ("huge-repeated", HugeRepeated),
        ("opset", Opset),
        ("external-data", ExternalData),
        ("shuffle-nodes", ShuffleNodes),
        ("op-type", OpType),
        ("node-arity", NodeArity),
        ("graph-io", GraphIo),
        ("cast-input", CastInput),
    ];

    /// <summary>The mutation kinds, for statistics.</summary>
    public static IEnumerable<string> Kinds => s_mutations.Select(m => m.Name);

    private static readonly string[] s_opTypes = [.. OperatorRegistry.All.Select(e => e.OpType).Distinct()];

    /// <summary>Applies one random mutation to <paramref name="model"/>; returns its name (with a detail) or null when
    /// the chosen mutation found nothing to change.</summary>
    public static string? Mutate(P.ModelProto model, Random rng)
    {
        var (name, apply) = s_mutations[rng.Next(s_mutations.Length)];
        string? detail = apply(model, rng);
        return detail is null ? null : $"{name}:{detail}";
    }

    // ---- what a model contains -------------------------------------------------------------------------------------

    private static List<P.GraphProto> Graphs(P.ModelProto model)
    {
        var result = new List<P.GraphProto>();
        if (model.Graph is not null) Collect(model.Graph, result);
        return result;

        static void Collect(P.GraphProto g, List<P.GraphProto> into)
        {
            into.Add(g);
            foreach (var n in g.Node)
                foreach (var a in n.Attribute)
                {
                    if (a.G is not null) Collect(a.G, into);
                    foreach (var sub in a.Graphs) Collect(sub, into);
                }
        }
    }

    private static List<(P.GraphProto Graph, P.NodeProto Node)> Nodes(P.ModelProto model) =>
        [.. Graphs(model).SelectMany(g => g.Node.Select(n => (g, n)))];

    private static List<P.TensorProto> Tensors(P.ModelProto model)
    {
        var result = new List<P.TensorProto>();
        foreach (var g in Graphs(model))
        {
            result.AddRange(g.Initializer);
            foreach (var n in g.Node)
                foreach (var a in n.Attribute)
                {
                    if (a.T is not null) result.Add(a.T);
                    result.AddRange(a.Tensors);
                }
        }
        return result;
    }

    private static List<P.ValueInfoProto> ValueInfos(P.ModelProto model) =>
        [.. Graphs(model).SelectMany(g => g.Input.Concat(g.Output).Concat(g.ValueInfo))];

    private static T? Pick<T>(IReadOnlyList<T> items, Random rng) where T : class =>
        items.Count == 0 ? null : items[rng.Next(items.Count)];

    private static P.NodeProto? PickNode(P.ModelProto model, Random rng)
    {
        var nodes = Nodes(model);
        return nodes.Count == 0 ? null : nodes[rng.Next(nodes.Count)].Node;
    }

    private static List<string> ValueNames(P.GraphProto g) =>
        [.. g.Input.Select(i => i.Name), .. g.Initializer.Select(i => i.Name), .. g.Node.SelectMany(n => n.Output)];

    // ---- mutations -------------------------------------------------------------------------------------------------

    private static string? TensorDims(P.ModelProto model, Random rng)
    {
        if (Pick(Tensors(model), rng) is not { } t) return null;
        switch (rng.Next(4))
        {
            case 0:
                // Dimensions whose product overflows 32 and 64 bits.
                t.Dims.Clear();
                for (int k = rng.Next(2, 6); k > 0; k--) t.Dims.Add(rng.Next(2) == 0 ? 65536 : 1L << 31);
                return "overflow";
            case 1:
                t.Dims.Add(Interesting.NextDimension(rng));
                return "extra";
            case 2:
                if (t.Dims.Count == 0) return null;
                t.Dims.RemoveAt(rng.Next(t.Dims.Count));
                return "fewer";
            default:
                if (t.Dims.Count == 0) t.Dims.Add(1);
                t.Dims[rng.Next(t.Dims.Count)] = Interesting.NextDimension(rng);
                return "absurd";
        }
    }

    private static string? ValueInfoDims(P.ModelProto model, Random rng)
    {
        if (Pick(ValueInfos(model), rng) is not { } vi) return null;
        vi.Type ??= new P.TypeProto();
        vi.Type.TensorType ??= new P.TypeProto.Types.Tensor { ElemType = 1 };
        var shape = vi.Type.TensorType.Shape ??= new P.TensorShapeProto();
        switch (rng.Next(5))
        {
            case 0:
                shape.Dim.Clear();
                for (int k = 100_000; k > 0; k--) shape.Dim.Add(new P.TensorShapeProto.Types.Dimension { DimValue = 1 });
                return "rank-100000";
            case 1:
                vi.Type.TensorType.Shape = null;
                return "no-shape";
            case 2:
                foreach (var d in shape.Dim) d.DimParam = Interesting.NextString(rng);
                return "symbolic";
            case 3:
                shape.Dim.Add(new P.TensorShapeProto.Types.Dimension { DimValue = Interesting.NextDimension(rng) });
                return "extra";
            default:
                if (shape.Dim.Count == 0) shape.Dim.Add(new P.TensorShapeProto.Types.Dimension());
                shape.Dim[rng.Next(shape.Dim.Count)].DimValue = Interesting.NextDimension(rng);
                return "absurd";
        }
    }

    private static string? TensorValues(P.ModelProto model, Random rng)
    {
        var tensors = Tensors(model);
        // Integer constants are shapes, axes, indices, pads, repeats: the values that size allocations.
        var integers = tensors.Where(t => t.DataType is 6 or 7).ToList();
        var t = rng.Next(4) != 0 && integers.Count > 0 ? Pick(integers, rng) : Pick(tensors, rng);
        if (t is null) return null;
        int size = t.DataType switch { 1 or 6 or 12 => 4, 7 or 11 or 13 => 8, 10 or 16 or 4 or 5 => 2, _ => 1 };
        long value = Interesting.NextInt64(rng);
        for (int k = rng.Next(1, 4); k > 0; k--)
        {
            if (!t.RawData.IsEmpty)
            {
                var raw = t.RawData.ToByteArray();
                int count = raw.Length / size;
                if (count == 0) return null;
                int i = rng.Next(count);
                var bits = t.DataType == 1 ? BitConverter.GetBytes(Interesting.Float32[rng.Next(Interesting.Float32.Length)]) : BitConverter.GetBytes(value);
                Array.Copy(bits, 0, raw, i * size, size);
                t.RawData = ByteString.CopyFrom(raw);
            }
            else if (t.Int64Data.Count > 0) t.Int64Data[rng.Next(t.Int64Data.Count)] = value;
            else if (t.Int32Data.Count > 0) t.Int32Data[rng.Next(t.Int32Data.Count)] = (int)value;
            else if (t.FloatData.Count > 0) t.FloatData[rng.Next(t.FloatData.Count)] = Interesting.Float32[rng.Next(Interesting.Float32.Length)];
            else if (t.DoubleData.Count > 0) t.DoubleData[rng.Next(t.DoubleData.Count)] = value;
            else if (t.Uint64Data.Count > 0) t.Uint64Data[rng.Next(t.Uint64Data.Count)] = (ulong)value;
            else return null;
            if (rng.Next(2) == 0) value = Interesting.NextInt64(rng);
        }
        return $"type{t.DataType}";
    }

    private static string? AttributeValue(P.ModelProto model, Random rng)
    {
        var attrs = Nodes(model).SelectMany(x => x.Node.Attribute).ToList();
        if (Pick(attrs, rng) is not { } a) return null;
        switch (rng.Next(3))
        {
            case 0:
                // Another kind than the value holds.
                a.Type = (P.AttributeProto.Types.AttributeType)rng.Next(0, 14);
                return "kind";
            case 1:
                if (a.Ints.Count > 0) a.Ints[rng.Next(a.Ints.Count)] = Interesting.NextInt64(rng);
                else if (a.Floats.Count > 0) a.Floats[rng.Next(a.Floats.Count)] = Interesting.Float32[rng.Next(Interesting.Float32.Length)];
                else if (a.Strings.Count > 0) a.Strings[rng.Next(a.Strings.Count)] = ByteString.CopyFromUtf8(Interesting.NextString(rng));
                else if (a.T is not null) return TensorDims(new P.ModelProto { Graph = new P.GraphProto { Initializer = { a.T } } }, rng);
                else return null;
                return "element";
            default:
                switch (a.Type)
                {
                    case P.AttributeProto.Types.AttributeType.Int: a.I = Interesting.NextInt64(rng); break;
                    case P.AttributeProto.Types.AttributeType.Float: a.F = Interesting.Float32[rng.Next(Interesting.Float32.Length)]; break;
                    case P.AttributeProto.Types.AttributeType.String: a.S = ByteString.CopyFromUtf8(Interesting.NextString(rng)); break;
                    case P.AttributeProto.Types.AttributeType.Ints:
                        if (rng.Next(2) == 0) a.Ints.Clear();
                        else for (int k = rng.Next(1, 8); k > 0; k--) a.Ints.Add(Interesting.NextInt64(rng));
                        break;
                    case P.AttributeProto.Types.AttributeType.Floats:
                        if (rng.Next(2) == 0) a.Floats.Clear();
                        else for (int k = rng.Next(1, 8); k > 0; k--) a.Floats.Add(Interesting.Float32[rng.Next(Interesting.Float32.Length)]);
                        break;
                    default: return null;
                }
                return "value";
        }
    }

    private static readonly string[] s_attributeNames =
    [
        "axis", "axes", "perm", "shape", "to", "keepdims", "pads", "strides", "kernel_shape", "dilations", "group", "mode",
        "value", "k", "direction", "hidden_size", "then_branch", "else_branch", "alpha", "beta", "epsilon", "transA",
        "transB", "auto_pad", "ceil_mode", "count_include_pad", "starts", "ends", "split", "num_outputs", "allowzero",
        "largest", "sorted", "coordinate_transformation_mode", "nearest_mode", "output_padding", "output_shape", "scales",
        "sizes", "blocksize", "exclusive", "reverse", "batch_dims", "select_last_index", "noop_with_empty_axes",
    ];

    private static string? AttributeAdd(P.ModelProto model, Random rng)
    {
        if (PickNode(model, rng) is not { } node) return null;
        string name = s_attributeNames[rng.Next(s_attributeNames.Length)];
        var existing = node.Attribute.FirstOrDefault(a => a.Name == name);
        if (existing is not null && rng.Next(2) == 0)
        {
            // The same attribute twice.
            node.Attribute.Add(existing.Clone());
            return "twice";
        }
        if (existing is not null) node.Attribute.Remove(existing);
        var attr = new P.AttributeProto { Name = name };
        switch (rng.Next(6))
        {
            case 0: attr.Type = P.AttributeProto.Types.AttributeType.Int; attr.I = Interesting.NextInt64(rng); break;
            case 1:
                attr.Type = P.AttributeProto.Types.AttributeType.Ints;
                for (int k = rng.Next(0, 6); k > 0; k--) attr.Ints.Add(Interesting.NextDimension(rng));
                break;
            case 2: attr.Type = P.AttributeProto.Types.AttributeType.Float; attr.F = Interesting.Float32[rng.Next(Interesting.Float32.Length)]; break;
            case 3: attr.Type = P.AttributeProto.Types.AttributeType.String; attr.S = ByteString.CopyFromUtf8(Interesting.NextString(rng)); break;
            case 4:
                attr.Type = P.AttributeProto.Types.AttributeType.Tensor;
                attr.T = new P.TensorProto { DataType = rng.Next(0, 17), Dims = { Interesting.NextDimension(rng) }, RawData = ByteString.CopyFrom(new byte[rng.Next(0, 17)]) };
                break;
            default:
                attr.Type = P.AttributeProto.Types.AttributeType.Graph;
                attr.G = new P.GraphProto { Name = "g" };
                break;
        }
        node.Attribute.Add(attr);
        return attr.Type.ToString();
    }

    private static string? AttributeRemove(P.ModelProto model, Random rng)
    {
        var withAttrs = Nodes(model).Where(x => x.Node.Attribute.Count > 0).ToList();
        if (withAttrs.Count == 0) return null;
        var node = withAttrs[rng.Next(withAttrs.Count)].Node;
        node.Attribute.RemoveAt(rng.Next(node.Attribute.Count));
        return "one";
    }

    private static string? Cycle(P.ModelProto model, Random rng)
    {
        var graphs = Graphs(model).Where(g => g.Node.Count > 0).ToList();
        if (Pick(graphs, rng) is not { } g) return null;
        int a = rng.Next(g.Node.Count), b = rng.Next(a, g.Node.Count);
        var reader = g.Node[a];
        var writer = g.Node[b];
        if (writer.Output.Count == 0) return null;
        string value = writer.Output[rng.Next(writer.Output.Count)];
        if (reader.Input.Count == 0) reader.Input.Add(value);
        else reader.Input[rng.Next(reader.Input.Count)] = value;
        return a == b ? "self" : "back-edge";
    }

    private static string? MissingName(P.ModelProto model, Random rng)
    {
        var graphs = Graphs(model);
        var g = graphs[rng.Next(graphs.Count)];
        switch (rng.Next(6))
        {
            case 0:
                if (Pick(g.Node, rng) is not { Input.Count: > 0 } n) return null;
                n.Input[rng.Next(n.Input.Count)] = "ghost";
                return "undefined-input";
            case 1:
                if (g.Node.Count == 0) return null;
                g.Node.RemoveAt(rng.Next(g.Node.Count));
                return "node-removed";
            case 2:
                if (g.Initializer.Count == 0) return null;
                g.Initializer.RemoveAt(rng.Next(g.Initializer.Count));
                return "initializer-removed";
            case 3:
                if (Pick(g.Initializer, rng) is not { } t) return null;
                t.Name = "";
                return "initializer-unnamed";
            case 4:
                if (Pick(g.Output, rng) is not { } o) return null;
                o.Name = rng.Next(2) == 0 ? "" : "ghost";
                return "output";
            default:
                if (Pick(g.Node, rng) is not { Output.Count: > 0 } m) return null;
                m.Output[rng.Next(m.Output.Count)] = "";
                return "output-unnamed";
        }
    }

    private static string? DuplicateName(P.ModelProto model, Random rng)
    {
        var graphs = Graphs(model);
        var g = graphs[rng.Next(graphs.Count)];
        var names = ValueNames(g);
        switch (rng.Next(5))
        {
            case 0:
                if (Pick(g.Node, rng) is not { Output.Count: > 0 } n || names.Count == 0) return null;
                n.Output[rng.Next(n.Output.Count)] = names[rng.Next(names.Count)];
                return "output";
            case 1:
                if (Pick(g.Initializer, rng) is not { } t) return null;
                g.Initializer.Add(t.Clone());
                return "initializer";
            case 2:
                if (Pick(g.Input, rng) is not { } i) return null;
                g.Input.Add(i.Clone());
                return "input";
            case 3:
                if (Pick(g.Node, rng) is not { } m) return null;
                g.Node.Add(m.Clone());
                return "node";
            default:
                // An initializer that is also a graph input (IR < 4 style), perhaps with a contradicting type.
                if (Pick(g.Initializer, rng) is not { } init) return null;
                g.Input.Add(new P.ValueInfoProto
                {
                    Name = init.Name,
                    Type = new P.TypeProto { TensorType = new P.TypeProto.Types.Tensor { ElemType = rng.Next(0, 17), Shape = new P.TensorShapeProto { Dim = { new P.TensorShapeProto.Types.Dimension { DimValue = Interesting.NextDimension(rng) } } } } },
                });
                return "initializer-input";
        }
    }

    private static string? TypeMismatch(P.ModelProto model, Random rng)
    {
        int type = rng.Next(8) == 0 ? (int)Interesting.NextInt64(rng) : rng.Next(0, 24);
        switch (rng.Next(3))
        {
            case 0:
                if (Pick(Tensors(model), rng) is not { } t) return null;
                t.DataType = type;
                return $"tensor:{type}";
            case 1:
                if (Pick(ValueInfos(model), rng) is not { } vi) return null;
                vi.Type ??= new P.TypeProto();
                vi.Type.TensorType ??= new P.TypeProto.Types.Tensor();
                vi.Type.TensorType.ElemType = type;
                return $"value-info:{type}";
            default:
                var casts = Nodes(model).Where(x => x.Node.OpType is "Cast" or "CastLike" or "EyeLike" or "RandomNormal" or "ConstantOfShape").ToList();
                if (casts.Count == 0) return null;
                var node = casts[rng.Next(casts.Count)].Node;
                node.Attribute.Clear();
                node.Attribute.Add(new P.AttributeProto { Name = "to", Type = P.AttributeProto.Types.AttributeType.Int, I = type });
                return $"cast:{type}";
        }
    }

    private static string? DeepNesting(P.ModelProto model, Random rng)
    {
        if (model.Graph is not { } main) return null;
        int[] depths = [2, 8, 31, 32, 33, 34, 40, 100, 1000];
        int depth = depths[rng.Next(depths.Length)];
        // Innermost: a constant. Each level: If(cond) whose then_branch is the level below and whose else_branch is a
        // constant; branches read the condition from the main graph (an outer-scope value).
        string cond = "fuzz_cond";
        main.Initializer.Add(new P.TensorProto { Name = cond, DataType = 9, RawData = ByteString.CopyFrom([1]) });
        P.GraphProto Leaf(string output) => new()
        {
            Name = "leaf",
            Node = { new P.NodeProto { OpType = "Constant", Output = { output }, Attribute = { new P.AttributeProto { Name = "value", Type = P.AttributeProto.Types.AttributeType.Tensor, T = new P.TensorProto { DataType = 1, Dims = { 1 }, FloatData = { 1f } } } } } },
            Output = { new P.ValueInfoProto { Name = output } },
        };
        var inner = Leaf($"deep_{depth}");
        for (int level = depth - 1; level >= 0; level--)
        {
            string output = $"deep_{level}";
            inner = new P.GraphProto
            {
                Name = $"level{level}",
                Node =
                {
                    new P.NodeProto
                    {
                        OpType = "If", Input = { cond }, Output = { output },
                        Attribute =
                        {
                            new P.AttributeProto { Name = "then_branch", Type = P.AttributeProto.Types.AttributeType.Graph, G = inner },
                            new P.AttributeProto { Name = "else_branch", Type = P.AttributeProto.Types.AttributeType.Graph, G = Leaf($"else_{level}") },
                        },
                    },
                },
                Output = { new P.ValueInfoProto { Name = output } },
            };
        }
        main.Node.AddRange(inner.Node);
        main.Output.Add(new P.ValueInfoProto { Name = "deep_0" });
        return depth.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    private static string? HugeString(P.ModelProto model, Random rng)
    {
        string s = new((char)('a' + rng.Next(26)), 1 << rng.Next(16, 25));
        switch (rng.Next(6))
        {
            case 0:
                if (PickNode(model, rng) is not { } n) return null;
                n.Name = s;
                return "node-name";
            case 1:
                if (PickNode(model, rng) is not { } m) return null;
                m.OpType = s;
                return "op-type";
            case 2:
                if (PickNode(model, rng) is not { } k) return null;
                k.Attribute.Add(new P.AttributeProto { Name = "mode", Type = P.AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(s) });
                return "attribute";
            case 3:
                model.MetadataProps.Add(new P.StringStringEntryProto { Key = s, Value = s });
                return "metadata";
            case 4:
                if (Pick(Tensors(model), rng) is not { } t) return null;
                t.Name = s;
                return "tensor-name";
            default:
                model.Graph.DocString = s;
                return "doc";
        }
    }

    private static string? HugeRepeated(P.ModelProto model, Random rng)
    {
        var g = model.Graph;
        int count = 1 << rng.Next(12, 18);
        switch (rng.Next(6))
        {
            case 0:
                if (Pick(g.Node, rng) is not { Input.Count: > 0 } n) return null;
                for (int k = 0; k < count; k++) n.Input.Add(n.Input[0]);
                return "node-inputs";
            case 1:
                if (Pick(g.Node, rng) is not { } a) return null;
                var attr = new P.AttributeProto { Name = "axes", Type = P.AttributeProto.Types.AttributeType.Ints };
                for (int k = 0; k < count * 8; k++) attr.Ints.Add(k);
                a.Attribute.Add(attr);
                return "attribute-ints";
            case 2:
                if (g.Output.Count == 0) return null;
                for (int k = 0; k < count; k++) g.Output.Add(g.Output[0]);
                return "graph-outputs";
            case 3:
            {
                // A long chain of Identity nodes, listed in reverse (the loader must sort them).
                if (g.Output.Count == 0) return null;
                string source = g.Output[0].Name;
                var chain = new List<P.NodeProto>(count);
                for (int k = 0; k < count; k++)
                    chain.Add(new P.NodeProto { OpType = "Identity", Input = { k == 0 ? source : $"chain_{k - 1}" }, Output = { $"chain_{k}" } });
                chain.Reverse();
                g.Node.AddRange(chain);
                g.Output.Add(new P.ValueInfoProto { Name = $"chain_{count - 1}" });
                return "reversed-chain";
            }
            case 4:
                for (int k = 0; k < count; k++) model.OpsetImport.Add(new P.OperatorSetIdProto { Domain = $"d{k}", Version = 1 });
                return "opsets";
            default:
                if (Pick(Tensors(model), rng) is not { } t) return null;
                t.Dims.Clear();
                for (int k = 0; k < count; k++) t.Dims.Add(1);
                return "tensor-rank";
        }
    }

    private static string? Opset(P.ModelProto model, Random rng)
    {
        switch (rng.Next(5))
        {
            case 0:
                model.OpsetImport.Clear();
                return "none";
            case 1:
                foreach (var o in model.OpsetImport) o.Version = rng.Next(2) == 0 ? Interesting.NextInt64(rng) : rng.Next(0, 30);
                return "version";
            case 2:
                model.OpsetImport.Add(new P.OperatorSetIdProto { Domain = "", Version = rng.Next(1, 30) });
                return "twice";
            case 3:
                model.IrVersion = Interesting.NextInt64(rng);
                return "ir-version";
            default:
                if (PickNode(model, rng) is not { } n) return null;
                string[] domains = ["", "ai.onnx", "com.squash", "ai.onnx.ml", "com.microsoft", "unknown"];
                n.Domain = domains[rng.Next(domains.Length)];
                return "node-domain";
        }
    }

    private static readonly string[] s_locations =
    [
        "weights.bin", "sub/w.bin", "../outside/secret.bin", "/etc/passwd", "sub/../../outside/secret.bin", "link-out.bin",
        "dir-link/secret.bin", "sub", ".", "", "missing.bin", "weights.bin\0x", "./weights.bin", "sub/../weights.bin",
        "loop-link", "empty.bin",
    ];

    private static readonly string[] s_offsets = ["0", "4", "8", "4095", "4096", "-1", "abc", "1e3", " 4", "+4", "9223372036854775807", "-9223372036854775808", "99999999999999999999"];

    private static string? ExternalData(P.ModelProto model, Random rng)
    {
        var tensors = Tensors(model);
        if (Pick(tensors, rng) is not { } t) return null;
        t.DataLocation = P.TensorProto.Types.DataLocation.External;
        if (rng.Next(4) != 0)
        {
            t.RawData = ByteString.Empty;
            t.FloatData.Clear(); t.Int32Data.Clear(); t.Int64Data.Clear(); t.DoubleData.Clear(); t.Uint64Data.Clear();
        }
        t.ExternalData.Clear();
        string location = s_locations[rng.Next(s_locations.Length)];
        if (rng.Next(10) != 0) t.ExternalData.Add(new P.StringStringEntryProto { Key = "location", Value = location });
        if (rng.Next(2) == 0) t.ExternalData.Add(new P.StringStringEntryProto { Key = "offset", Value = s_offsets[rng.Next(s_offsets.Length)] });
        if (rng.Next(2) == 0) t.ExternalData.Add(new P.StringStringEntryProto { Key = "length", Value = s_offsets[rng.Next(s_offsets.Length)] });
        if (rng.Next(8) == 0) t.ExternalData.Add(new P.StringStringEntryProto { Key = "location", Value = "/etc/passwd" });
        return location.Replace('\0', '0');
    }

    private static string? ShuffleNodes(P.ModelProto model, Random rng)
    {
        var graphs = Graphs(model);
        var g = graphs[rng.Next(graphs.Count)];
        var nodes = g.Node.ToArray();
        rng.Shuffle(nodes);
        g.Node.Clear();
        g.Node.AddRange(nodes);
        return "shuffled";
    }

    private static string? OpType(P.ModelProto model, Random rng)
    {
        if (PickNode(model, rng) is not { } n) return null;
        n.OpType = s_opTypes[rng.Next(s_opTypes.Length)];
        if (rng.Next(4) == 0) n.Attribute.Clear();
        return n.OpType;
    }

    private static string? NodeArity(P.ModelProto model, Random rng)
    {
        var graphs = Graphs(model);
        var g = graphs[rng.Next(graphs.Count)];
        if (Pick(g.Node, rng) is not { } n) return null;
        var names = ValueNames(g);
        switch (rng.Next(4))
        {
            case 0:
                if (n.Input.Count == 0) return null;
                n.Input.RemoveAt(rng.Next(n.Input.Count));
                return "input-removed";
            case 1:
                n.Input.Add(rng.Next(3) == 0 || names.Count == 0 ? "" : names[rng.Next(names.Count)]);
                return "input-added";
            case 2:
                if (n.Output.Count == 0) return null;
                n.Output.RemoveAt(rng.Next(n.Output.Count));
                return "output-removed";
            default:
                n.Output.Add($"extra_{rng.Next(1000)}");
                return "output-added";
        }
    }

    private static readonly int[] s_castTypes = [1, 2, 3, 5, 6, 7, 9, 10, 11, 12, 13, 16];

    /// <summary>One input of a node passed through a Cast to another type: same shape, other type, so operators that
    /// require equal input types (T) must say so instead of reading one type's bytes as another's.</summary>
    private static string? CastInput(P.ModelProto model, Random rng)
    {
        var graphs = Graphs(model);
        var g = graphs[rng.Next(graphs.Count)];
        if (Pick(g.Node, rng) is not { Input.Count: > 0 } n) return null;
        int k = rng.Next(n.Input.Count);
        if (n.Input[k].Length == 0) return null;
        int to = s_castTypes[rng.Next(s_castTypes.Length)];
        string cast = $"{n.Input[k]}_cast{to}_{rng.Next(1000)}";
        g.Node.Insert(g.Node.IndexOf(n), new P.NodeProto
        {
            OpType = "Cast", Name = cast, Input = { n.Input[k] }, Output = { cast },
            Attribute = { new P.AttributeProto { Name = "to", Type = P.AttributeProto.Types.AttributeType.Int, I = to } },
        });
        n.Input[k] = cast;
        return $"to{to}";
    }

    private static string? GraphIo(P.ModelProto model, Random rng)
    {
        var g = model.Graph;
        switch (rng.Next(4))
        {
            case 0:
                g.Output.Clear();
                return "no-outputs";
            case 1:
            {
                if (Pick(g.Input, rng) is not { } i) return null;
                i.Type = new P.TypeProto { SequenceType = new P.TypeProto.Types.Sequence { ElemType = new P.TypeProto { TensorType = new P.TypeProto.Types.Tensor { ElemType = 1 } } } };
                return "sequence-input";
            }
            case 2:
            {
                // A type nested very deep (sequence of sequence of ...): the parser's recursion limit.
                if (Pick(g.Input, rng) is not { } i) return null;
                var type = new P.TypeProto { TensorType = new P.TypeProto.Types.Tensor { ElemType = 1 } };
                for (int k = 0; k < 200; k++) type = new P.TypeProto { SequenceType = new P.TypeProto.Types.Sequence { ElemType = type } };
                i.Type = type;
                return "deep-type";
            }
            default:
                g.SparseInitializer.Add(new P.SparseTensorProto { Dims = { 4 } });
                return "sparse";
        }
    }
}
