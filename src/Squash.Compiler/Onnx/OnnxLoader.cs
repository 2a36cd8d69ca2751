using Google.Protobuf;
using Squash.Runtime;
using Squash.Runtime.Ir;
using P = global::Onnx;

namespace Squash.Compiler.Onnx;

/// <summary>Reads ONNX files into the protobuf-free <see cref="Model"/> IR.</summary>
public static class OnnxLoader
{
    /// <summary>Deepest subgraph nesting accepted (If inside If ...).</summary>
    public const int MaxSubgraphDepth = 32;

    /// <summary>Longest name (of a value, node, graph, operator, domain or attribute) accepted. Exporters write names
    /// of a few hundred characters at most; a megabyte-long one would be copied into every message that names it.</summary>
    public const int MaxNameLength = 4096;

    /// <summary>Loads a model file; external data is resolved relative to its folder.</summary>
    /// <exception cref="SquashException">The file is missing, not ONNX, or describes an invalid model.</exception>
    public static Model Load(string path)
    {
        if (!File.Exists(path))
            throw new SquashException(ErrorCodes.ModelNotFound, $"Model file '{path}' does not exist. Check the path (relative paths start at the project folder).");
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SquashException(ErrorCodes.FileError, $"Model file '{path}' cannot be read: {e.Message}");
        }
        return Load(bytes, Path.GetDirectoryName(Path.GetFullPath(path)), Path.GetFileName(path));
    }

    /// <summary>Loads a model from bytes. <paramref name="baseDirectory"/> resolves external data (null forbids it).</summary>
    public static Model Load(byte[] bytes, string? baseDirectory, string displayName = "model")
    {
        ProtobufGuard.Check(bytes, P.ModelProto.Descriptor, displayName);
        P.ModelProto proto;
        try
        {
            // Google.Protobuf bounds message nesting (recursion limit 100), so hostile nesting fails cleanly.
            proto = P.ModelProto.Parser.WithDiscardUnknownFields(true).ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new SquashException(ErrorCodes.CorruptModel,
                $"'{displayName}' is not a valid ONNX model ({e.Message}). Check that the file is complete and was exported as .onnx.");
        }
        if (proto.Graph is null)
            throw new SquashException(ErrorCodes.CorruptModel, $"'{displayName}' has no graph; it is not a valid ONNX model.");
        var loader = new Loader(baseDirectory, displayName);
        foreach (var opset in proto.OpsetImport)
        {
            string domain = NormalizeDomain(opset.Domain);
            if (opset.Version < 0 || opset.Version > int.MaxValue)
                throw new SquashException(ErrorCodes.InvalidModel, $"'{displayName}' imports opset {opset.Version} of '{domain}', which is not a valid version.");
            loader.Opsets[domain] = (int)opset.Version;
        }
        if (!loader.Opsets.ContainsKey("") && proto.IrVersion >= 3)
            throw new SquashException(ErrorCodes.InvalidModel, $"'{displayName}' imports no version of the default ONNX opset.");
        int opsetVersion = loader.Opsets.GetValueOrDefault("", 0);
        if (opsetVersion != 0 && (opsetVersion < 7 || opsetVersion > Squash.Runtime.Operators.OperatorRegistry.MaxSupportedOpset))
            throw new SquashException(ErrorCodes.UnsupportedOperator,
                $"'{displayName}' uses ONNX opset {opsetVersion}; Squash supports opsets 7 to {Squash.Runtime.Operators.OperatorRegistry.MaxSupportedOpset}. Convert the model (onnx.version_converter) to a supported opset.");
        var graph = loader.ReadGraph(proto.Graph, null, 0);
        foreach (var (domain, version) in loader.Opsets) graph.OpsetImports[domain] = version;
        var model = new Model(graph)
        {
            IrVersion = proto.IrVersion,
            ProducerName = proto.ProducerName ?? "",
            ProducerVersion = proto.ProducerVersion ?? "",
        };
        foreach (var p in proto.MetadataProps) model.Metadata[p.Key] = p.Value;
        return model;
    }

    internal static string NormalizeDomain(string? domain) => domain is null or "ai.onnx" ? "" : domain;

    private sealed class Loader(string? baseDirectory, string displayName)
    {
        public readonly Dictionary<string, int> Opsets = new(StringComparer.Ordinal);
        private readonly HashSet<string> _nodeNames = new(StringComparer.Ordinal);
        private int _unnamed;

        public Graph ReadGraph(P.GraphProto proto, Scope? parent, int depth)
        {
            if (depth > MaxSubgraphDepth)
                throw new SquashException(ErrorCodes.InvalidModel, $"'{displayName}' nests subgraphs more than {MaxSubgraphDepth} deep.");
            var graph = new Graph(string.IsNullOrEmpty(proto.Name) ? (parent is null ? "main" : "subgraph") : CheckName(proto.Name, "graph"));
            var scope = new Scope(parent);
            if (proto.SparseInitializer.Count > 0)
                throw new SquashException(ErrorCodes.UnsupportedDataType, $"'{displayName}' has sparse initializers, which Squash does not support. Store them dense.");

            foreach (var init in proto.Initializer)
            {
                if (string.IsNullOrEmpty(init.Name))
                    throw new SquashException(ErrorCodes.InvalidModel, $"'{displayName}' has an initializer without a name.");
                var tensor = TensorProtoReader.Read(init, baseDirectory, $"'{displayName}'");
                var value = new Value(CheckName(init.Name, "initializer"), tensor);
                Define(scope, value, "initializer");
                graph.Initializers.Add(value);
            }
            foreach (var input in proto.Input)
            {
                if (string.IsNullOrEmpty(input.Name))
                    throw new SquashException(ErrorCodes.InvalidModel, $"'{displayName}' has a graph input without a name.");
                CheckName(input.Name, "graph input");
                if (scope.Local.TryGetValue(input.Name, out var existing))
                {
                    // IR version < 4 lists initializers among the inputs too; the initializer is its value.
                    ApplyInfo(existing, input, keepConstantShape: true);
                    continue;
                }
                var value = new Value(input.Name);
                ApplyInfo(value, input, keepConstantShape: false);
                Define(scope, value, "input");
                graph.Inputs.Add(value);
            }
            var infos = new Dictionary<string, P.ValueInfoProto>(StringComparer.Ordinal);
            foreach (var vi in proto.ValueInfo) infos.TryAdd(CheckName(vi.Name, "value_info"), vi);
            foreach (var o in proto.Output) infos.TryAdd(o.Name, o);

            foreach (var nodeProto in proto.Node)
            {
                var node = ReadNode(nodeProto, scope, depth);
                graph.Nodes.Add(node);
            }
            // Inputs of nodes may refer to values produced later in the list (a non-topological file); resolve now.
            foreach (var node in graph.Nodes)
                for (int i = 0; i < node.Inputs.Count; i++)
                    if (node.Inputs[i] is { } placeholder && placeholder.Producer is null && placeholder.Constant is null && !IsDefinedAbove(scope, placeholder))
                        node.SetInput(i, Resolve(scope, placeholder.Name, node));
            foreach (var output in proto.Output)
            {
                if (string.IsNullOrEmpty(output.Name))
                    throw new SquashException(ErrorCodes.InvalidModel, $"'{displayName}' has a graph output without a name.");
                CheckName(output.Name, "graph output");
                var value = scope.Find(output.Name)
                    ?? throw new SquashException(ErrorCodes.InvalidModel, $"'{displayName}': graph output '{output.Name}' is not computed by any node.");
                graph.Outputs.Add(value);
            }
            foreach (var value in scope.Local.Values)
                if (infos.TryGetValue(value.Name, out var info) && value.Constant is null)
                    ApplyInfo(value, info, keepConstantShape: false);
            graph.SortTopologically(parent?.AllVisible());
            return graph;
        }

        private bool IsDefinedAbove(Scope scope, Value v) => scope.Find(v.Name) == v;

        private Node ReadNode(P.NodeProto proto, Scope scope, int depth)
        {
            string name = CheckName(proto.Name, "node");
            CheckName(proto.OpType, "operator");
            CheckName(proto.Domain, "domain");
            if (string.IsNullOrEmpty(name) || !_nodeNames.Add(name))
            {
                // Names must be unique for diagnostics and reports; invent one for unnamed or duplicate nodes.
                string baseName = string.IsNullOrEmpty(name) ? proto.OpType : name;
                do name = $"{baseName}_{_unnamed++}"; while (!_nodeNames.Add(name));
            }
            string domain = NormalizeDomain(proto.Domain);
            int version = Opsets.GetValueOrDefault(domain, 0);
            var node = new Node(proto.OpType, name, domain, version);
            foreach (var attr in proto.Attribute)
            {
                if (string.IsNullOrEmpty(attr.Name))
                    throw new SquashException(ErrorCodes.InvalidModel, $"'{displayName}': {node.Describe()} has an attribute without a name.", name);
                CheckName(attr.Name, "attribute");
                if (!string.IsNullOrEmpty(attr.RefAttrName))
                    throw new SquashException(ErrorCodes.UnsupportedAttribute, $"'{displayName}': {node.Describe()} refers to a function attribute; model-local functions are not supported.", name);
                if (node.Attributes.ContainsKey(attr.Name))
                    throw new SquashException(ErrorCodes.InvalidModel, $"'{displayName}': {node.Describe()} has attribute '{attr.Name}' twice.", name);
                node.Attributes[attr.Name] = ReadAttribute(attr, node, scope, depth);
            }
            // Every ONNX operator has at least one output; operators write their first without asking.
            if (proto.Output.Count == 0)
                throw new SquashException(ErrorCodes.InvalidModel, $"'{displayName}': {node.Describe()} has no outputs.", name);
            foreach (var input in proto.Input)
                node.AddInput(string.IsNullOrEmpty(input) ? null : scope.Find(input) ?? new Value(CheckName(input, "value")));
            foreach (var output in proto.Output)
            {
                CheckName(output, "value");
                if (string.IsNullOrEmpty(output))
                {
                    node.AddOutput(new Value(""));
                    continue;
                }
                if (scope.Local.ContainsKey(output))
                    throw new SquashException(ErrorCodes.InvalidModel, $"'{displayName}': {node.Describe()} writes '{output}', which is already defined; ONNX values are assigned once.", name);
                var value = new Value(output);
                node.AddOutput(value);
                scope.Local[output] = value;
            }
            return node;
        }

        private string CheckName(string name, string what) =>
            name.Length <= MaxNameLength ? name
                : throw new SquashException(ErrorCodes.InvalidModel,
                    $"'{displayName}': the {what} name '{name[..40]}...' has {name.Length} characters; names may have at most {MaxNameLength}.");

        private Value Resolve(Scope scope, string name, Node reader) =>
            scope.Find(name) ?? throw new SquashException(ErrorCodes.InvalidModel,
                $"'{displayName}': {reader.Describe()} reads '{name}', which no node, input or initializer defines.", reader.Name);

        private AttributeValue ReadAttribute(P.AttributeProto attr, Node node, Scope scope, int depth)
        {
            var type = attr.Type;
            if (type == P.AttributeProto.Types.AttributeType.Undefined)
            {
                // Very old files leave the type out; infer it from the field that is set.
                type = attr.Floats.Count > 0 ? P.AttributeProto.Types.AttributeType.Floats
                    : attr.Ints.Count > 0 ? P.AttributeProto.Types.AttributeType.Ints
                    : attr.Strings.Count > 0 ? P.AttributeProto.Types.AttributeType.Strings
                    : attr.T is not null ? P.AttributeProto.Types.AttributeType.Tensor
                    : attr.G is not null ? P.AttributeProto.Types.AttributeType.Graph
                    : attr.HasS ? P.AttributeProto.Types.AttributeType.String
                    : attr.HasF ? P.AttributeProto.Types.AttributeType.Float
                    : P.AttributeProto.Types.AttributeType.Int;
            }
            string context = $"'{displayName}': {node.Describe()}";
            return type switch
            {
                P.AttributeProto.Types.AttributeType.Float => AttributeValue.Float(attr.F),
                P.AttributeProto.Types.AttributeType.Int => AttributeValue.Int(attr.I),
                P.AttributeProto.Types.AttributeType.String => AttributeValue.String(attr.S.ToStringUtf8()),
                P.AttributeProto.Types.AttributeType.Tensor => AttributeValue.FromTensor(TensorProtoReader.Read(attr.T ?? new P.TensorProto(), baseDirectory, context)),
                P.AttributeProto.Types.AttributeType.Graph => AttributeValue.FromGraph(ReadGraph(attr.G ?? new P.GraphProto(), scope, depth + 1)),
                P.AttributeProto.Types.AttributeType.Floats => AttributeValue.FloatList([.. attr.Floats]),
                P.AttributeProto.Types.AttributeType.Ints => AttributeValue.IntList([.. attr.Ints]),
                P.AttributeProto.Types.AttributeType.Strings => AttributeValue.StringList([.. attr.Strings.Select(s => s.ToStringUtf8())]),
                _ => throw new SquashException(ErrorCodes.UnsupportedAttribute,
                    $"{context}: attribute '{attr.Name}' is of kind {type}, which Squash does not support.", node.Name),
            };
        }

        private void Define(Scope scope, Value value, string what)
        {
            if (!scope.Local.TryAdd(value.Name, value))
                throw new SquashException(ErrorCodes.InvalidModel, $"'{displayName}' defines {what} '{value.Name}' twice.");
        }

        private void ApplyInfo(Value value, P.ValueInfoProto info, bool keepConstantShape)
        {
            if (info.Type?.TensorType is not { } tt)
            {
                if (info.Type is not null && info.Type.ValueCase != P.TypeProto.ValueOneofCase.None && info.Type.ValueCase != P.TypeProto.ValueOneofCase.TensorType)
                    throw new SquashException(ErrorCodes.UnsupportedDataType,
                        $"'{displayName}': '{value.Name}' is a {info.Type.ValueCase}; Squash supports tensors only.");
                return;
            }
            if (keepConstantShape) return;
            if (tt.HasElemType)
            {
                var type = TensorProtoReader.ElementType(tt.ElemType);
                if (!DataTypes.IsSupported(type))
                    throw new SquashException(ErrorCodes.UnsupportedDataType,
                        $"'{displayName}': '{value.Name}' has element type {TensorProtoReader.DataTypeName(tt.ElemType)}, which Squash does not support.");
                value.Type = type;
            }
            if (tt.Shape is { } shape)
            {
                var dims = new int[shape.Dim.Count];
                var names = new string?[dims.Length];
                for (int i = 0; i < dims.Length; i++)
                {
                    var d = shape.Dim[i];
                    if (d.HasDimValue)
                    {
                        if (d.DimValue < 0 || d.DimValue > int.MaxValue)
                            throw new SquashException(ErrorCodes.InvalidModel, $"'{displayName}': '{value.Name}' has an invalid dimension {d.DimValue}.");
                        dims[i] = (int)d.DimValue;
                    }
                    else
                    {
                        dims[i] = -1;
                        names[i] = d.HasDimParam && d.DimParam.Length > 0 ? d.DimParam : null;
                    }
                }
                value.Shape = dims;
                value.DimNames = names.Any(n => n is not null) ? names : null;
            }
        }
    }

    private sealed class Scope(Scope? parent)
    {
        public readonly Dictionary<string, Value> Local = new(StringComparer.Ordinal);

        public Value? Find(string name) =>
            Local.TryGetValue(name, out var v) ? v : parent?.Find(name);

        public HashSet<Value> AllVisible()
        {
            var set = parent?.AllVisible() ?? [];
            set.UnionWith(Local.Values);
            return set;
        }
    }
}
