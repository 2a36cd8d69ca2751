using Squash.Compiler.Passes;
using Squash.Runtime;
using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;
using Squash.Runtime.Operators;

namespace Squash.Compiler.Quantization;

/// <summary>
/// Turns a graph with Squash's int4 nodes into one ONNX Runtime runs: each <c>com.squash</c> MatMulNBits becomes a
/// <c>com.microsoft</c> MatMulNBits over the same int4 values (<see cref="Int4WeightPacking.ToOnnxRuntime"/>), and each
/// GatherNBits a standard Gather over the dequantized fp32 table (the values the int4 table stands for, exactly).
/// Both runtimes then compute with identical weights; only the order of fp32 sums differs.
/// </summary>
public static class Int4OnnxRuntimeExport
{
    /// <summary>The domain of ONNX Runtime's contrib operators.</summary>
    public const string MicrosoftDomain = "com.microsoft";

    /// <summary>Rewrites <paramref name="graph"/> in place; returns the number of nodes rewritten.</summary>
    public static int Convert(Graph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var matrices = new Dictionary<Value, (Value B, Value Scales, Value? ZeroPoints)>();
        var tables = new Dictionary<Value, Value>();
        var replaced = new HashSet<Value>();
        int rewritten = 0;
        for (int i = 0; i < graph.Nodes.Count; i++)
        {
            var node = graph.Nodes[i];
            if (node.Domain != OperatorRegistry.SquashDomain || node.OpType is not ("MatMulNBits" or "GatherNBits")) continue;
            var layout = new Int4Layout((int)node.Attributes["K"].IntValue, (int)node.Attributes["N"].IntValue, (int)node.Attributes["block_size"].IntValue);
            bool gather = node.OpType == "GatherNBits";
            int data = gather ? 0 : 1, scales = 2, zeros = 3;
            var packed = new Int4PackedWeight(layout, Constant(node, data), Constant(node, scales), node.Input(zeros) is { } z ? Constant(node, zeros) : null);
            Node replacement;
            if (gather)
            {
                var dataValue = node.Input(data)!;
                if (!tables.TryGetValue(dataValue, out var table))
                {
                    // Int4WeightPacking.Dequantize gives [K, N]; the table is [N, K], row i = column i.
                    var rows = new Tensor(DataType.Float, layout.N, layout.K);
                    Int4MatMul.Dequantize(packed.Weights, 0, layout.N, rows.AsSpan<float>(), layout.K);
                    tables[dataValue] = table = WeightMath.AddConstant(graph, dataValue.Name + ".dequantized", rows);
                }
                replacement = new Node("Gather", node.Name, "", graph.DefaultOpset);
                replacement.Attributes["axis"] = AttributeValue.Int(0);
                replacement.AddInput(table).AddInput(node.Input(1));
            }
            else
            {
                var dataValue = node.Input(data)!;
                if (!matrices.TryGetValue(dataValue, out var ort))
                {
                    var (b, s, zp) = Int4WeightPacking.ToOnnxRuntime(packed);
                    ort = (WeightMath.AddConstant(graph, dataValue.Name + ".ort", b), WeightMath.AddConstant(graph, dataValue.Name + ".ort_scales", s),
                        zp is null ? null : WeightMath.AddConstant(graph, dataValue.Name + ".ort_zero_points", zp));
                    matrices[dataValue] = ort;
                }
                replacement = new Node("MatMulNBits", node.Name, MicrosoftDomain, 1);
                foreach (var name in new[] { "K", "N", "bits", "block_size" }) replacement.Attributes[name] = node.Attributes[name];
                // int8 activations: ONNX Runtime's attribute of the same name and meaning.
                if (node.Attributes.TryGetValue("accuracy_level", out var level)) replacement.Attributes["accuracy_level"] = level;
                replacement.AddInput(node.Input(0)).AddInput(ort.B).AddInput(ort.Scales).AddInput(ort.ZeroPoints);
                // MatMulNBits: A, B, scales, zero_points, g_idx, bias.
                if (node.Input(4) is { } bias) replacement.AddInput(null).AddInput(bias);
                else if (ort.ZeroPoints is null) replacement.TruncateInputs(3);
            }
            replacement.AddOutput(node.Outputs[0]);
            foreach (var v in node.Inputs)
                if (v?.Constant is not null) replaced.Add(v);
            graph.Nodes[i] = replacement;
            rewritten++;
        }
        if (rewritten == 0) return 0;
        graph.OpsetImports.TryAdd(MicrosoftDomain, 1);
        if (!graph.Nodes.Any(n => n.Domain == OperatorRegistry.SquashDomain)) graph.OpsetImports.Remove(OperatorRegistry.SquashDomain);
        // The Squash-layout tensors nothing reads any more.
        var consumers = graph.Consumers();
        graph.Initializers.RemoveAll(v => replaced.Contains(v) && !consumers.ContainsKey(v) && !graph.Outputs.Contains(v) && !graph.Inputs.Contains(v));
        return rewritten;
    }

    private static Tensor Constant(Node node, int input) =>
        node.Input(input)?.Constant
        ?? throw new SquashException(ErrorCodes.InvalidModel, $"{node.Describe()}: input {input} must be a constant to export to ONNX Runtime.", node.Name);
}
