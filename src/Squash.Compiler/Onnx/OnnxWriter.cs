using Google.Protobuf;
using Squash.Runtime;
using Squash.Runtime.Ir;
using P = global::Onnx;

namespace Squash.Compiler.Onnx;

/// <summary>Writes the IR back to ONNX (used by <c>squash export</c> and the Llama converter).</summary>
public static class OnnxWriter
{
    /// <summary>Serializes <paramref name="model"/> to ONNX bytes. All constants are written as initializers.</summary>
    public static byte[] ToBytes(Model model) => ToProto(model).ToByteArray();

    /// <summary>Writes <paramref name="model"/> to <paramref name="path"/> through a temporary file, so a failure
    /// never leaves a half-written model.</summary>
    public static void Save(Model model, string path)
    {
        var bytes = ToBytes(model);
        AtomicFile.Write(path, bytes);
    }

    internal static P.ModelProto ToProto(Model model)
    {
        var proto = new P.ModelProto
        {
            IrVersion = model.IrVersion,
            ProducerName = string.IsNullOrEmpty(model.ProducerName) ? "Squash.Build" : model.ProducerName,
            ProducerVersion = model.ProducerVersion,
            Graph = WriteGraph(model.Graph, isMain: true),
        };
        foreach (var (domain, version) in OpsetImports(model.Graph).OrderBy(p => p.Key, StringComparer.Ordinal))
            proto.OpsetImport.Add(new P.OperatorSetIdProto { Domain = domain, Version = version });
        foreach (var (key, value) in model.Metadata.OrderBy(p => p.Key, StringComparer.Ordinal))
            proto.MetadataProps.Add(new P.StringStringEntryProto { Key = key, Value = value });
        return proto;
    }

    /// <summary>The graph's imports, plus one for every domain a node uses without an import (passes write
    /// com.squash nodes, the int4 export com.microsoft ones): the version the node carries, else 1.</summary>
    private static Dictionary<string, int> OpsetImports(Graph graph)
    {
        var imports = new Dictionary<string, int>(graph.OpsetImports, StringComparer.Ordinal);
        void Visit(Graph g)
        {
            foreach (var node in g.Nodes)
            {
                if (node.Domain.Length > 0) imports.TryAdd(node.Domain, Math.Max(1, node.OpsetVersion));
                foreach (var sub in node.Subgraphs) Visit(sub);
            }
        }
        Visit(graph);
        return imports;
    }

    private static P.GraphProto WriteGraph(Graph graph, bool isMain)
    {
        var proto = new P.GraphProto { Name = graph.Name };
        var written = new HashSet<Value>();
        foreach (var v in graph.Initializers)
            if (written.Add(v)) proto.Initializer.Add(WriteTensor(v.Name, v.Constant!));
        // Constants that passes created without registering them as initializers are written too.
        foreach (var n in graph.Nodes)
            foreach (var v in n.Inputs)
                if (v?.Constant is not null && written.Add(v)) proto.Initializer.Add(WriteTensor(v.Name, v.Constant));
        foreach (var v in graph.Outputs)
            if (v.Constant is not null && v.Producer is null && written.Add(v)) proto.Initializer.Add(WriteTensor(v.Name, v.Constant));
        foreach (var v in graph.Inputs) proto.Input.Add(WriteValueInfo(v));
        foreach (var v in graph.Outputs) proto.Output.Add(WriteValueInfo(v));
        foreach (var node in graph.Nodes)
        {
            var n = new P.NodeProto { OpType = node.OpType, Name = node.Name, Domain = node.Domain };
            foreach (var input in node.Inputs) n.Input.Add(input?.Name ?? "");
            foreach (var output in node.Outputs) n.Output.Add(output.Name);
            foreach (var (name, attr) in node.Attributes.OrderBy(a => a.Key, StringComparer.Ordinal))
                n.Attribute.Add(WriteAttribute(name, attr));
            proto.Node.Add(n);
            foreach (var output in node.Outputs)
                if (output.Name.Length > 0 && output.Type != DataType.Undefined && !graph.Outputs.Contains(output))
                    proto.ValueInfo.Add(WriteValueInfo(output));
        }
        _ = isMain;
        return proto;
    }

    private static P.ValueInfoProto WriteValueInfo(Value v)
    {
        var info = new P.ValueInfoProto { Name = v.Name };
        if (v.Type == DataType.Undefined) return info;
        var tensorType = new P.TypeProto.Types.Tensor { ElemType = (int)v.Type };
        if (v.Shape is { } shape)
        {
            tensorType.Shape = new P.TensorShapeProto();
            for (int i = 0; i < shape.Length; i++)
            {
                var dim = new P.TensorShapeProto.Types.Dimension();
                if (shape[i] >= 0) dim.DimValue = shape[i];
                else if (v.DimNames?[i] is { } name) dim.DimParam = name;
                tensorType.Shape.Dim.Add(dim);
            }
        }
        info.Type = new P.TypeProto { TensorType = tensorType };
        return info;
    }

    internal static P.TensorProto WriteTensor(string name, Tensor tensor)
    {
        var proto = new P.TensorProto { Name = name, DataType = (int)tensor.DataType };
        foreach (int d in tensor.Shape) proto.Dims.Add(d);
        proto.RawData = ByteString.CopyFrom(tensor.Bytes);
        return proto;
    }

    private static P.AttributeProto WriteAttribute(string name, AttributeValue value)
    {
        var a = new P.AttributeProto { Name = name };
        switch (value.Kind)
        {
            case AttributeKind.Float: a.Type = P.AttributeProto.Types.AttributeType.Float; a.F = value.FloatValue; break;
            case AttributeKind.Int: a.Type = P.AttributeProto.Types.AttributeType.Int; a.I = value.IntValue; break;
            case AttributeKind.String: a.Type = P.AttributeProto.Types.AttributeType.String; a.S = ByteString.CopyFromUtf8(value.StringValue); break;
            case AttributeKind.Tensor: a.Type = P.AttributeProto.Types.AttributeType.Tensor; a.T = WriteTensor("", value.TensorValue!); break;
            case AttributeKind.Graph: a.Type = P.AttributeProto.Types.AttributeType.Graph; a.G = WriteGraph(value.GraphValue!, isMain: false); break;
            case AttributeKind.Floats: a.Type = P.AttributeProto.Types.AttributeType.Floats; a.Floats.AddRange(value.Floats); break;
            case AttributeKind.Ints: a.Type = P.AttributeProto.Types.AttributeType.Ints; a.Ints.AddRange(value.Ints); break;
            case AttributeKind.Strings:
                a.Type = P.AttributeProto.Types.AttributeType.Strings;
                a.Strings.AddRange(value.Strings.Select(ByteString.CopyFromUtf8));
                break;
        }
        return a;
    }
}
