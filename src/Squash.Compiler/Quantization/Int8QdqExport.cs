using Squash.Runtime;
using Squash.Runtime.Ir;
using Squash.Runtime.Operators;

namespace Squash.Compiler.Quantization;

/// <summary>
/// Turns an int8 graph (<see cref="Int8Quantization.Apply"/>) into standard ONNX QDQ that any runtime reads: each
/// com.squash operator becomes DequantizeLinear on its uint8 inputs, int8 weights (per axis) and int32 bias, the float
/// operator (Conv, MatMul + Add, Add, Mul, Concat, GlobalAveragePool, the lookup's body chain), its fused clamp (Relu or
/// Clip), and QuantizeLinear to the same uint8 output. The values are the ones Squash computes with, so a runtime that
/// fuses the pattern into its own int8 kernels differs from Squash only in rounding.
/// </summary>
/// <remarks>Per-axis DequantizeLinear needs opset 13: the default domain is raised to at least 13 and nodes of older
/// versions whose form changed (Squeeze, Unsqueeze, Split and ReduceSum axes, Slice and Clip and Pad attributes,
/// Resize 10's inputs) are rewritten to the new form. A Softmax (or LogSoftmax, Hardmax) before 13 over any axis but
/// the last has other semantics in 13 and is refused.</remarks>
public static class Int8QdqExport
{
    /// <summary>Rewrites <paramref name="graph"/> in place; returns the number of com.squash nodes replaced.</summary>
    /// <exception cref="SquashException">A node cannot be expressed at the target opset (SQ1003).</exception>
    public static int Convert(Graph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var names = new HashSet<string>(graph.AllValues().Select(v => v.Name).Concat(graph.Nodes.Select(n => n.Name)), StringComparer.Ordinal);
        int opset = Math.Max(13, graph.OpsetImports.GetValueOrDefault("", 1));
        foreach (var node in graph.Nodes)
        {
            if (node.Domain.Length == 0) opset = Math.Max(opset, node.OpsetVersion);
            // A lookup's body is inlined: its nodes (a fused HardSwish is opset 14) count too.
            if (node.OpType == "QLookup" && node.Attributes.TryGetValue("body", out var body))
                foreach (var inner in body.GraphValue!.Nodes) opset = Math.Max(opset, inner.OpsetVersion);
        }
        var writer = new Writer(graph, names, opset);
        int replaced = 0;
        foreach (var node in graph.Nodes.ToList())
        {
            if (node.Domain == OperatorRegistry.SquashDomain)
            {
                writer.Replace(node);
                replaced++;
            }
            else
            {
                writer.Keep(node);
            }
        }
        graph.Nodes.Clear();
        graph.Nodes.AddRange(writer.Nodes);
        foreach (var node in graph.Nodes)
            if (node.Domain.Length == 0) writer.Upgrade(node);
        graph.OpsetImports[""] = opset;
        graph.OpsetImports.Remove(OperatorRegistry.SquashDomain);
        return replaced;
    }

    private sealed class Writer(Graph graph, HashSet<string> names, int opset)
    {
        public List<Node> Nodes { get; } = [];

        public void Keep(Node node) => Nodes.Add(node);

        public void Replace(Node q)
        {
            switch (q.OpType)
            {
                case "QConv": Product(q, "Conv", 0); break;
                case "QMatMul": Product(q, "MatMul", 1); break;
                case "QAdd": Binary(q); break;
                case "QMul": Gate(q); break;
                case "QConcat": Concat(q); break;
                case "QLookup": Lookup(q); break;
                case "QGlobalAveragePool":
                    Emit("GlobalAveragePool", q.Name, [Dequantize(q.Inputs[0]!, q.Inputs[1]!, q.Input(2))], q.Outputs[0]);
                    break;
                default:
                    throw new SquashException(ErrorCodes.UnsupportedOperator, $"{q.Describe()}: no QDQ form for com.squash.{q.OpType}.", q.Name);
            }
        }

        /// <summary>QConv / QMatMul: weights dequantized per output channel (axis 0 for Conv's [M, ...], 1 for [K, N]),
        /// the int32 bias with scale x_scale * w_scale[c] (as the operators compute it).</summary>
        private void Product(Node q, string op, int weightAxis)
        {
            var x = Dequantize(q.Inputs[0]!, q.Inputs[1]!, q.Input(2));
            var w = Dequantize(q.Inputs[3]!, q.Inputs[4]!, null, weightAxis);
            Value? bias = null;
            if (q.Input(8) is { Constant: { } b })
            {
                float xScale = q.Inputs[1]!.Constant!.AsSpan<float>()[0];
                var wScales = q.Inputs[4]!.Constant!.AsSpan<float>();
                var scales = new float[b.ElementCount];
                for (int c = 0; c < scales.Length; c++) scales[c] = Int8Quantization.QBiasScale(xScale, wScales[wScales.Length == 1 ? 0 : c]);
                bias = Dequantize(q.Inputs[8]!, Constant(q.Name + "_bias_scale", Tensor.From<float>(scales, scales.Length)), null, 0);
            }
            Value y;
            if (op == "Conv")
            {
                var conv = Emit("Conv", q.Name, bias is null ? [x, w] : [x, w, bias], null);
                foreach (var (name, a) in q.Attributes)
                    if (name is not ("activation_min" or "activation_max")) conv.Attributes[name] = a;
                y = conv.Outputs[0];
            }
            else
            {
                y = Emit("MatMul", q.Name, [x, w], null).Outputs[0];
                if (bias is not null) y = Emit("Add", q.Name + "_bias", [y, bias], null).Outputs[0];
            }
            Finish(q, y, q.Input(6), q.Input(7));
        }

        private void Binary(Node q)
        {
            var a = Dequantize(q.Inputs[0]!, q.Inputs[1]!, q.Input(2));
            var b = Dequantize(q.Inputs[3]!, q.Inputs[4]!, q.Input(5));
            Finish(q, Emit("Add", q.Name, [a, b], null).Outputs[0], q.Input(6), q.Input(7));
        }

        private void Gate(Node q)
        {
            var a = Dequantize(q.Inputs[0]!, q.Inputs[1]!, q.Input(2));
            Finish(q, Emit("Mul", q.Name, [a, q.Inputs[3]!], null).Outputs[0], q.Input(4), q.Input(5));
        }

        private void Concat(Node q)
        {
            var parts = new List<Value>();
            for (int i = 2; i + 2 < q.Inputs.Count + 1; i += 3) parts.Add(Dequantize(q.Inputs[i]!, q.Inputs[i + 1]!, q.Input(i + 2)));
            var concat = Emit("Concat", q.Name, [.. parts], null);
            concat.Attributes["axis"] = q.Attributes["axis"];
            Finish(q, concat.Outputs[0], q.Inputs[0], q.Inputs[1]);
        }

        /// <summary>QLookup: the body's float chain inlined between a DequantizeLinear and a QuantizeLinear.</summary>
        private void Lookup(Node q)
        {
            var body = q.Attributes["body"].GraphValue!;
            var map = new Dictionary<Value, Value> { [body.Inputs[0]] = Dequantize(q.Inputs[0]!, q.Inputs[1]!, q.Input(2)) };
            foreach (var c in body.Initializers) map[c] = Constant(q.Name + "_" + c.Name, c.Constant!);
            foreach (var n in body.Nodes)
            {
                var clone = Emit(n.OpType, q.Name + "_" + n.Name, [.. n.Inputs.Select(v => v is null ? null : map[v])], null, n.OpsetVersion);
                foreach (var (name, a) in n.Attributes) clone.Attributes[name] = a;
                map[n.Outputs[0]] = clone.Outputs[0];
            }
            Quantize(map[body.Outputs[0]], q.Inputs[3]!, q.Input(4), q.Outputs[0]);
        }

        /// <summary>The fused clamp, then QuantizeLinear to the node's output when it has output parameters (else the
        /// float result is the output).</summary>
        private void Finish(Node q, Value y, Value? scale, Value? zeroPoint)
        {
            float min = q.Attributes.TryGetValue("activation_min", out var lo) ? lo.FloatValue : float.NegativeInfinity;
            float max = q.Attributes.TryGetValue("activation_max", out var hi) ? hi.FloatValue : float.PositiveInfinity;
            if (min == 0 && float.IsPositiveInfinity(max)) y = Emit("Relu", q.Name + "_relu", [y], null).Outputs[0];
            else if (min > float.NegativeInfinity || max < float.PositiveInfinity)
                y = Emit("Clip", q.Name + "_clip", [y, Constant(q.Name + "_min", Tensor.Scalar(min)), Constant(q.Name + "_max", Tensor.Scalar(max))], null).Outputs[0];
            if (scale is null)
            {
                // Float out: rename the last node's output to the operator's.
                Nodes[^1].SetOutput(0, q.Outputs[0]);
                return;
            }
            Quantize(y, scale, zeroPoint, q.Outputs[0]);
        }

        private Value Dequantize(Value x, Value scale, Value? zeroPoint, int? axis = null)
        {
            var node = Emit("DequantizeLinear", x.Name + "_dequantize", zeroPoint is null ? [x, scale] : [x, scale, zeroPoint], null);
            if (axis is { } a) node.Attributes["axis"] = AttributeValue.Int(a);
            return node.Outputs[0];
        }

        private void Quantize(Value y, Value scale, Value? zeroPoint, Value output) =>
            Emit("QuantizeLinear", output.Name + "_quantize", [y, scale, zeroPoint ?? Constant(output.Name + "_zero_point", Tensor.Scalar((byte)0))], output);

        private Node Emit(string op, string name, Value?[] inputs, Value? output, int version = 0)
        {
            var node = new Node(op, Unique(name), "", version == 0 ? opset : version);
            foreach (var v in inputs) node.AddInput(v);
            node.AddOutput(output ?? new Value(Unique(name + "_out"), DataType.Float));
            Nodes.Add(node);
            return node;
        }

        private Value Constant(string name, Tensor t)
        {
            var v = new Value(Unique(name), t);
            graph.Initializers.Add(v);
            return v;
        }

        private string Unique(string name)
        {
            string candidate = name;
            for (int i = 1; !names.Add(candidate); i++) candidate = $"{name}_{i}";
            return candidate;
        }

        /// <summary>Brings a default-domain node to <c>opset</c>: attributes that became inputs move there.</summary>
        public void Upgrade(Node node)
        {
            int from = node.OpsetVersion;
            node.OpsetVersion = opset;
            switch (node.OpType)
            {
                case "Squeeze" or "Unsqueeze" or "ReduceSum" or "Split" when from < 13:
                    string attribute = node.OpType == "Split" ? "split" : "axes";
                    if (node.Attributes.Remove(attribute, out var axes))
                    {
                        while (node.Inputs.Count < 1) node.AddInput(null);
                        node.TruncateInputs(1);
                        node.AddInput(Constant(node.Name + "_" + attribute, Tensor.From<long>([.. axes.Ints], axes.Ints.Count)));
                    }
                    break;
                case "Slice" when from < 10:
                    var starts = node.Attributes["starts"].Ints;
                    var ends = node.Attributes["ends"].Ints;
                    node.AddInput(Constant(node.Name + "_starts", Tensor.From<long>([.. starts], starts.Count)));
                    node.AddInput(Constant(node.Name + "_ends", Tensor.From<long>([.. ends], ends.Count)));
                    if (node.Attributes.Remove("axes", out var sliceAxes))
                        node.AddInput(Constant(node.Name + "_axes", Tensor.From<long>([.. sliceAxes.Ints], sliceAxes.Ints.Count)));
                    node.Attributes.Remove("starts");
                    node.Attributes.Remove("ends");
                    break;
                case "Clip" when from < 11:
                    float min = node.Attributes.Remove("min", out var lo) ? lo.FloatValue : float.NegativeInfinity;
                    float max = node.Attributes.Remove("max", out var hi) ? hi.FloatValue : float.PositiveInfinity;
                    node.AddInput(Constant(node.Name + "_min", Tensor.Scalar(min)));
                    node.AddInput(Constant(node.Name + "_max", Tensor.Scalar(max)));
                    break;
                case "Pad" when from < 11:
                    var pads = node.Attributes["pads"].Ints;
                    node.AddInput(Constant(node.Name + "_pads", Tensor.From<long>([.. pads], pads.Count)));
                    if (node.Attributes.Remove("value", out var value)) node.AddInput(Constant(node.Name + "_value", Tensor.Scalar(value.FloatValue)));
                    node.Attributes.Remove("pads");
                    break;
                case "Resize" when from < 11:
                    // Resize-10 is (X, scales); from 11 it is (X, roi, scales, sizes).
                    var scales = node.Inputs[1];
                    node.TruncateInputs(1);
                    node.AddInput(null).AddInput(scales);
                    break;
                case "Softmax" or "LogSoftmax" or "Hardmax" when from < 13:
                    long axis = node.Attributes.TryGetValue("axis", out var a) ? a.IntValue : 1;
                    int rank = node.Inputs[0]?.Shape?.Length ?? -1;
                    if (!(axis == -1 || rank > 0 && axis == rank - 1))
                        throw new SquashException(ErrorCodes.UnsupportedOperator,
                            $"{node.Describe()}: {node.OpType}-{from} over axis {axis} of rank {rank} has no opset-{opset} form; the QDQ export needs opset 13.", node.Name);
                    break;
            }
        }
    }
}
