using Squash.Compiler.Passes;
using Squash.Runtime;
using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;
using Squash.Runtime.Operators;

namespace Squash.Compiler.Quantization;

/// <summary>What the int8 rewrite did to one unit.</summary>
/// <param name="Node">The unit's first node.</param>
/// <param name="Kind">What it is in int8.</param>
/// <param name="Planned">The plan's precision.</param>
/// <param name="Int8">True when it runs in int8 (a planned unit runs in float when it would only convert back and forth).</param>
public sealed record Int8UnitReport(string Node, Int8UnitKind Kind, NodePrecision Planned, bool Int8);

/// <summary>What the int8 rewrite produced.</summary>
/// <param name="Units">Every unit, in graph order.</param>
/// <param name="Quantizes">QuantizeLinear nodes inserted (entries of int8 regions).</param>
/// <param name="Dequantizes">DequantizeLinear nodes inserted (exits of int8 regions into float nodes).</param>
/// <param name="UInt8Values">Every uint8 tensor of the rewritten graph, by name: the float value it stands for and its
/// quantization.</param>
public sealed record Int8QuantizationReport(IReadOnlyList<Int8UnitReport> Units, int Quantizes, int Dequantizes,
    IReadOnlyDictionary<string, (string FloatValue, AffineQuantization Quantization)> UInt8Values)
{
    /// <summary>The weights of the units planned fp16, rounded to float16 or kept fp32 (<see cref="Fp16Weights"/>).</summary>
    public IReadOnlyList<Fp16WeightReport> Fp16Weights { get; init; } = [];

    /// <summary>Units that run in int8.</summary>
    public int Int8Count => Units.Count(u => u.Int8);
}

/// <summary>
/// Post-training int8 quantization of a float graph, in place: from the calibrated ranges of its activations (run the
/// <see cref="Calibrator"/> on this same fp32-optimized graph, whose value names the ranges are keyed by) and a
/// <see cref="QuantizationPlan"/>, products (Conv, MatMul, Gemm with constant weights) become com.squash.QConv and
/// QMatMul with weights quantized per output channel, and int8 regions extend through the operators that can stay in
/// uint8 (element-wise chains as lookup tables, residual Add, Concat, a per-channel gate Mul, global average pooling, and
/// byte movement: Reshape, Transpose, Slice, MaxPool, nearest Resize ...). A QuantizeLinear is inserted where a region
/// reads a float tensor, a DequantizeLinear where a float node reads a region's tensor; a product whose output only
/// float nodes read writes float directly (its dequantizing epilogue).
/// </summary>
/// <remarks>
/// Number formats (docs/quantization.md): activations uint8 per tensor, asymmetric over [0, 255]
/// (<see cref="QuantizationParameters.Asymmetric"/> of the calibrated range); weights int8 symmetric per output
/// channel in [-64, 64] for the products that run as GEMMs and [-127, 127] for depthwise convolutions; bias int32 with
/// scale <c>x_scale * w_scale[c]</c>. Byte-moving operators keep their input's parameters; a fused Relu or Clip takes the
/// parameters of its own output, its bounds applied as a clamp of the quantized output.
/// </remarks>
public static class Int8Quantization
{
    /// <summary>The version of Squash's operator domain the rewrite writes.</summary>
    public const int SquashOpset = 1;

    /// <summary>Rewrites <paramref name="graph"/> (float, optimized, every shape known) to int8 where
    /// <paramref name="plan"/> says so (default: <see cref="QuantizationPlan.Create"/>).</summary>
    /// <exception cref="ArgumentException">The calibration was made with another activation range than uint8.</exception>
    public static Int8QuantizationReport Apply(Graph graph, CalibrationResult calibration, QuantizationPlan? plan = null)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(calibration);
        if (calibration.Settings.ActivationRange != QuantizationRange.UInt8)
            throw new ArgumentException($"The int8 kernels take uint8 activations over [0, 255]; calibrate with that range, not {calibration.Settings.ActivationRange}.", nameof(calibration));
        plan ??= QuantizationPlan.Create(graph);
        // Units planned fp16 stay float with their weights rounded to float16 values, before the rewrite, so that every
        // measurement of the plan (the search, the accuracy check) runs the values the class will run.
        var fp16 = Fp16Weights.Round(graph, n => plan[n.Name] == NodePrecision.Fp16);
        var rewrite = new Rewrite(graph, calibration, plan);
        var report = rewrite.Run() with { Fp16Weights = fp16 };
        graph.OpsetImports[OperatorRegistry.SquashDomain] = SquashOpset;
        Pipeline.Simplify().Run(graph, new PassContext());
        return report;
    }

    /// <summary>Quantizes float weights symmetrically per channel along <paramref name="axis"/> to
    /// [-<paramref name="limit"/>, <paramref name="limit"/>]: <c>scale[c] = max |w_c| / limit</c>,
    /// <c>q = clamp(roundHalfEven(w / scale[c]))</c> (the division in float, as QuantizeLinear).</summary>
    internal static (Tensor Weights, float[] Scales) QuantizeWeights(Tensor w, int axis, int limit)
    {
        var scales = QuantizationParameters.SymmetricPerChannel(w, axis, new QuantizationRange(-limit, limit));
        var q = new Tensor(DataType.Int8, (int[])w.Shape.Clone());
        var source = w.AsSpan<float>();
        var target = q.AsSpan<sbyte>();
        int channels = w.Shape[axis], inner = Shapes.Product(w.Shape, axis + 1, w.Rank);
        for (int i = 0; i < source.Length; i++)
        {
            float scale = scales[i / inner % channels];
            target[i] = (sbyte)Math.Clamp(MathF.Round(source[i] / scale, MidpointRounding.ToEven), -limit, limit);
        }
        return (q, scales);
    }

    /// <summary>A float bias as int32 with scale <c>x_scale * w_scale[c]</c>, rounded half to even, saturated so that
    /// the exact sums of a product of depth <paramref name="depth"/> stay within int32.</summary>
    internal static Tensor QuantizeBias(ReadOnlySpan<float> bias, float xScale, float[] wScales, int depth)
    {
        var q = new Tensor(DataType.Int32, bias.Length);
        var target = q.AsSpan<int>();
        double limit = int.MaxValue - (double)depth * 255 * 128;
        for (int c = 0; c < bias.Length; c++)
        {
            double scale = QBiasScale(xScale, wScales.Length == 1 ? wScales[0] : wScales[c]);
            target[c] = (int)Math.Clamp(Math.Round(bias[c] / scale, MidpointRounding.ToEven), -limit, limit);
        }
        return q;
    }

    /// <summary>The bias scale, as the int8 operators and the QDQ export compute it.</summary>
    internal static float QBiasScale(float xScale, float wScale) => (float)((double)xScale * wScale);

    /// <summary>A convolution's explicit pads [begin..., end...] for its known input shape, as QConv gets them.</summary>
    internal static long[] ConvPads(Node conv, int[] x, int[] w) => Rewrite.ResolvePads(conv, x, w);

    private sealed class Rewrite(Graph graph, CalibrationResult calibration, QuantizationPlan plan)
    {
        private readonly List<Int8Unit> _units = Int8Units.Find(graph);
        private readonly Dictionary<Node, Int8Unit> _unitOf = [];
        private readonly Dictionary<Value, Int8Unit> _producer = [];
        private readonly Dictionary<Int8Unit, bool> _on = [];
        private readonly Dictionary<Value, List<(Node Node, int Index)>> _consumers = graph.Consumers();
        private readonly List<Node> _nodes = [];
        private readonly Dictionary<Value, (Value Q, AffineQuantization P)> _uint8 = [];
        private readonly HashSet<Value> _float = [];
        private readonly HashSet<string> _names = new(graph.AllValues().Select(v => v.Name).Concat(graph.Nodes.Select(n => n.Name)), StringComparer.Ordinal);
        private readonly int _opset = Math.Max(graph.DefaultOpset, 13);
        private int _quantizes, _dequantizes;

        public Int8QuantizationReport Run()
        {
            foreach (var unit in _units)
            {
                foreach (var n in unit.Nodes) _unitOf[n] = unit;
                _producer[unit.Output] = unit;
                _on[unit] = plan[unit.Anchor.Name] == NodePrecision.Int8 && HasParameters(unit);
            }
            Settle();
            _float.UnionWith(graph.Inputs);
            foreach (var node in graph.Nodes)
            {
                if (_unitOf.TryGetValue(node, out var unit) && _on[unit])
                {
                    if (node == unit.Anchor) Emit(unit);
                    continue;
                }
                for (int i = 0; i < node.Inputs.Count; i++)
                    if (node.Inputs[i] is { } v) node.SetInput(i, FloatOf(v));
                _nodes.Add(node);
                _float.UnionWith(node.Outputs);
            }
            foreach (var v in graph.Outputs) FloatOf(v);
            graph.Nodes.Clear();
            graph.Nodes.AddRange(_nodes);
            return new Int8QuantizationReport(
                [.. _units.Select(u => new Int8UnitReport(u.Anchor.Name, u.Kind, plan[u.Anchor.Name], _on[u]))], _quantizes, _dequantizes,
                _uint8.ToDictionary(p => p.Value.Q.Name, p => (p.Key.Name, p.Value.P), StringComparer.Ordinal));
        }

        /// <summary>Turns off, until nothing changes, the non-product units whose inputs do not arrive in uint8 or whose
        /// output no int8 unit reads: they would only convert back and forth.</summary>
        private void Settle()
        {
            bool changed;
            do
            {
                changed = false;
                foreach (var unit in _units)
                {
                    if (!_on[unit] || unit.IsProduct) continue;
                    bool keep = unit.ActivationInputs.All(ArrivesInUInt8)
                        && (unit.Kind == Int8UnitKind.GlobalAveragePool || Int8Reads(unit.Output));
                    if (keep) continue;
                    _on[unit] = false;
                    changed = true;
                }
            }
            while (changed);
        }

        private bool ArrivesInUInt8(Value v) =>
            _producer.TryGetValue(v, out var u) && _on[u] && u.Kind != Int8UnitKind.GlobalAveragePool;

        /// <summary>True when some int8 unit reads <paramref name="v"/> as a uint8 activation.</summary>
        private bool Int8Reads(Value v) =>
            _consumers.TryGetValue(v, out var list)
            && list.Any(c => _unitOf.TryGetValue(c.Node, out var u) && _on[u] && u.ActivationInputs.Contains(v));

        /// <summary>True when every tensor the unit quantizes has a calibrated, finite range.</summary>
        private bool HasParameters(Int8Unit unit) =>
            unit.ActivationInputs.All(v => Calibrated(v) is not null)
            && (unit.Kind is Int8UnitKind.GlobalAveragePool or Int8UnitKind.Passthrough || Calibrated(unit.Output) is not null);

        private AffineQuantization? Calibrated(Value v) =>
            calibration.Tensors.TryGetValue(v.Name, out var t) && t.NonFiniteCount == 0 && float.IsFinite(t.Min) && float.IsFinite(t.Max)
                ? QuantizationParameters.Asymmetric(t.Min, t.Max, QuantizationRange.UInt8)
                : null;

        private void Emit(Int8Unit unit)
        {
            switch (unit.Kind)
            {
                case Int8UnitKind.Conv: EmitConv(unit); break;
                case Int8UnitKind.MatMul: EmitMatMul(unit); break;
                case Int8UnitKind.Lookup: EmitLookup(unit); break;
                case Int8UnitKind.Add: EmitAdd(unit); break;
                case Int8UnitKind.Mul: EmitMul(unit); break;
                case Int8UnitKind.Concat: EmitConcat(unit); break;
                case Int8UnitKind.GlobalAveragePool: EmitGlobalAveragePool(unit); break;
                default: EmitPassthrough(unit); break;
            }
        }

        private void EmitConv(Int8Unit unit)
        {
            var conv = unit.Anchor;
            var x = conv.Inputs[0]!;
            var (xq, px) = UInt8Of(x);
            var w = conv.Inputs[1]!.Constant!;
            long group = conv.Attributes.TryGetValue("group", out var g) ? g.IntValue : 1;
            int taps = Shapes.Product(w.Shape, 2, w.Rank);
            bool depthwise = group == x.Shape![1] && w.Shape[0] == group && w.Shape[1] == 1 && taps <= Int8Depthwise.MaxTaps;
            var (wq, scales) = QuantizeWeights(w, 0, depthwise ? 127 : Int8PackedWeights.MaxMagnitude);
            var node = new Node("QConv", conv.Name, OperatorRegistry.SquashDomain, SquashOpset);
            node.AddInput(xq).AddInput(Scalar(conv.Name + "_x_scale", px.Scale)).AddInput(ZeroPoint(conv.Name + "_x_zero_point", px));
            node.AddInput(Constant(conv.Name + "_w_quantized", wq)).AddInput(Constant(conv.Name + "_w_scale", Tensor.From<float>(scales, scales.Length)));
            node.AddInput(null);
            AddOutputParameters(unit, node);
            float[]? bias = conv.Input(2)?.Constant?.AsSpan<float>().ToArray();
            if (calibration.InputMeans.TryGetValue(conv.Name, out var means))
                bias = BiasCorrection.Apply(bias, BiasCorrection.ForConv(w, wq, scales, (int)group, means));
            node.AddInput(bias is null ? null : Constant(conv.Name + "_b_quantized", QuantizeBias(bias, px.Scale, scales, w.Shape[1] * taps)));
            foreach (var name in (string[])["dilations", "group", "kernel_shape", "strides"])
                if (conv.Attributes.TryGetValue(name, out var a)) node.Attributes[name] = a;
            node.Attributes["pads"] = AttributeValue.IntList(ResolvePads(conv, x.Shape!, w.Shape));
            AddActivation(unit, node);
            Finish(unit, node);
        }

        private void EmitMatMul(Int8Unit unit)
        {
            var anchor = unit.Anchor;
            var a = anchor.Inputs[0]!;
            var (aq, pa) = UInt8Of(a);
            var b = anchor.Inputs[1]!.Constant!;
            Tensor weights = b;
            float[]? bias = unit.AddedBias?.AsSpan<float>().ToArray();
            if (anchor.OpType == "Gemm")
                (weights, bias) = GemmOperands(anchor, b);
            var (wq, scales) = QuantizeWeights(weights, 1, Int8PackedWeights.MaxMagnitude);
            if (calibration.InputMeans.TryGetValue(anchor.Name, out var means))
                bias = BiasCorrection.Apply(bias, BiasCorrection.ForMatMul(weights, wq, scales, means));
            var node = new Node("QMatMul", anchor.Name, OperatorRegistry.SquashDomain, SquashOpset);
            node.AddInput(aq).AddInput(Scalar(anchor.Name + "_a_scale", pa.Scale)).AddInput(ZeroPoint(anchor.Name + "_a_zero_point", pa));
            node.AddInput(Constant(anchor.Name + "_b_quantized", wq)).AddInput(Constant(anchor.Name + "_b_scale", Tensor.From<float>(scales, scales.Length)));
            node.AddInput(null);
            AddOutputParameters(unit, node);
            node.AddInput(bias is null ? null : Constant(anchor.Name + "_bias_quantized", QuantizeBias(bias, pa.Scale, scales, weights.Shape[0])));
            AddActivation(unit, node);
            Finish(unit, node);
        }

        /// <summary>Gemm's weights as [K, N] with alpha applied, and its bias as [N] with beta applied.</summary>
        private static (Tensor Weights, float[]? Bias) GemmOperands(Node gemm, Tensor b)
        {
            float alpha = gemm.Attributes.TryGetValue("alpha", out var al) ? al.FloatValue : 1;
            float beta = gemm.Attributes.TryGetValue("beta", out var be) ? be.FloatValue : 1;
            bool transB = gemm.Attributes.TryGetValue("transB", out var t) && t.IntValue != 0;
            int k = transB ? b.Shape[1] : b.Shape[0], n = transB ? b.Shape[0] : b.Shape[1];
            var w = new Tensor(DataType.Float, k, n);
            var source = b.AsSpan<float>();
            var target = w.AsSpan<float>();
            for (int i = 0; i < k; i++)
                for (int j = 0; j < n; j++) target[i * n + j] = alpha * (transB ? source[j * k + i] : source[i * n + j]);
            if (gemm.Input(2)?.Constant is not { } c) return (w, null);
            var bias = new float[n];
            var cv = c.AsSpan<float>();
            for (int j = 0; j < n; j++) bias[j] = beta * cv[cv.Length == 1 ? 0 : j];
            return (w, bias);
        }

        private void EmitLookup(Int8Unit unit)
        {
            var x = unit.ActivationInputs[0];
            var (xq, px) = UInt8Of(x);
            var anchor = unit.Anchor;
            var body = new Graph("body");
            foreach (var (domain, version) in graph.OpsetImports) body.OpsetImports[domain] = version;
            var input = new Value("x", DataType.Float, Enumerable.Repeat(-1, x.Shape!.Length).ToArray());
            body.Inputs.Add(input);
            var map = new Dictionary<Value, Value> { [x] = input };
            int constants = 0;
            foreach (var n in unit.Nodes)
            {
                var clone = new Node(n.OpType, n.Name, n.Domain, n.OpsetVersion);
                foreach (var (name, a) in n.Attributes) clone.Attributes[name] = a;
                foreach (var v in n.Inputs)
                {
                    if (v is null) clone.AddInput(null);
                    else if (map.TryGetValue(v, out var mapped)) clone.AddInput(mapped);
                    else
                    {
                        var c = new Value($"c{constants++}", v.Constant!);
                        body.Initializers.Add(c);
                        clone.AddInput(c);
                    }
                }
                var output = new Value($"y{body.Nodes.Count}", DataType.Float);
                clone.AddOutput(output);
                map[n.Outputs[0]] = output;
                body.Nodes.Add(clone);
            }
            body.Outputs.Add(map[unit.Output]);
            var node = new Node("QLookup", anchor.Name, OperatorRegistry.SquashDomain, SquashOpset);
            node.AddInput(xq).AddInput(Scalar(anchor.Name + "_x_scale", px.Scale)).AddInput(ZeroPoint(anchor.Name + "_x_zero_point", px));
            AddOutputParameters(unit, node, always: true);
            node.Attributes["body"] = AttributeValue.FromGraph(body);
            if (unit.LookupAxis is { } axis) node.Attributes["axis"] = AttributeValue.Int(axis);
            Finish(unit, node);
        }

        private void EmitAdd(Int8Unit unit)
        {
            var add = unit.Anchor;
            var node = new Node("QAdd", add.Name, OperatorRegistry.SquashDomain, SquashOpset);
            foreach (var (v, name) in new[] { (add.Inputs[0]!, "a"), (add.Inputs[1]!, "b") })
            {
                var (q, p) = UInt8Of(v);
                node.AddInput(q).AddInput(Scalar($"{add.Name}_{name}_scale", p.Scale)).AddInput(ZeroPoint($"{add.Name}_{name}_zero_point", p));
            }
            AddOutputParameters(unit, node, always: true);
            AddActivation(unit, node);
            Finish(unit, node);
        }

        private void EmitMul(Int8Unit unit)
        {
            var mul = unit.Anchor;
            var a = unit.ActivationInputs[0];
            var gate = mul.Inputs[0] == a ? mul.Inputs[1]! : mul.Inputs[0]!;
            var (aq, pa) = UInt8Of(a);
            var node = new Node("QMul", mul.Name, OperatorRegistry.SquashDomain, SquashOpset);
            node.AddInput(aq).AddInput(Scalar(mul.Name + "_a_scale", pa.Scale)).AddInput(ZeroPoint(mul.Name + "_a_zero_point", pa));
            node.AddInput(FloatOf(gate));
            AddOutputParameters(unit, node, always: true);
            Finish(unit, node);
        }

        private void EmitConcat(Int8Unit unit)
        {
            var concat = unit.Anchor;
            var node = new Node("QConcat", concat.Name, OperatorRegistry.SquashDomain, SquashOpset);
            AddOutputParameters(unit, node, always: true);
            for (int i = 0; i < concat.Inputs.Count; i++)
            {
                var (q, p) = UInt8Of(concat.Inputs[i]!);
                node.AddInput(q).AddInput(Scalar($"{concat.Name}_x{i}_scale", p.Scale)).AddInput(ZeroPoint($"{concat.Name}_x{i}_zero_point", p));
            }
            node.Attributes["axis"] = concat.Attributes["axis"];
            Finish(unit, node);
        }

        private void EmitGlobalAveragePool(Int8Unit unit)
        {
            var pool = unit.Anchor;
            var (xq, px) = UInt8Of(pool.Inputs[0]!);
            var node = new Node("QGlobalAveragePool", pool.Name, OperatorRegistry.SquashDomain, SquashOpset);
            node.AddInput(xq).AddInput(Scalar(pool.Name + "_x_scale", px.Scale)).AddInput(ZeroPoint(pool.Name + "_x_zero_point", px));
            node.AddOutput(unit.Output);
            _nodes.Add(node);
            _float.Add(unit.Output);
        }

        private void EmitPassthrough(Int8Unit unit)
        {
            var original = unit.Anchor;
            var (xq, px) = UInt8Of(original.Inputs[0]!);
            var node = new Node(original.OpType, original.Name, original.Domain, original.OpsetVersion);
            foreach (var (name, a) in original.Attributes) node.Attributes[name] = a;
            node.AddInput(xq);
            for (int i = 1; i < original.Inputs.Count; i++) node.AddInput(original.Inputs[i] is { } v ? FloatOf(v) : null);
            var output = UInt8Value(unit.Output);
            node.AddOutput(output);
            _nodes.Add(node);
            _uint8[unit.Output] = (output, px);
        }

        /// <summary>Adds y_scale and y_zero_point when the unit writes uint8 (always, or when an int8 unit reads the
        /// output); otherwise two omitted inputs, and the output is float.</summary>
        private void AddOutputParameters(Int8Unit unit, Node node, bool always = false)
        {
            if (always || Int8Reads(unit.Output))
            {
                var p = Calibrated(unit.Output)!.Value;
                node.AddInput(Scalar(unit.Anchor.Name + "_y_scale", p.Scale)).AddInput(ZeroPoint(unit.Anchor.Name + "_y_zero_point", p));
            }
            else
            {
                node.AddInput(null).AddInput(null);
            }
        }

        private static void AddActivation(Int8Unit unit, Node node)
        {
            if (unit.ActivationMin > float.NegativeInfinity) node.Attributes["activation_min"] = AttributeValue.Float(unit.ActivationMin);
            if (unit.ActivationMax < float.PositiveInfinity) node.Attributes["activation_max"] = AttributeValue.Float(unit.ActivationMax);
        }

        /// <summary>Connects the unit's output: uint8 when the node has output parameters, float otherwise.</summary>
        private void Finish(Int8Unit unit, Node node)
        {
            bool uint8 = node.OpType switch
            {
                "QConv" or "QMatMul" => node.Input(6) is not null,
                _ => true,
            };
            while (node.Inputs.Count > 0 && node.Inputs[^1] is null) node.TruncateInputs(node.Inputs.Count - 1);
            if (uint8)
            {
                var output = UInt8Value(unit.Output);
                node.AddOutput(output);
                _uint8[unit.Output] = (output, Calibrated(unit.Output)!.Value);
            }
            else
            {
                node.AddOutput(unit.Output);
                _float.Add(unit.Output);
            }
            _nodes.Add(node);
        }

        /// <summary>The float form of <paramref name="v"/>, dequantizing (once) a tensor an int8 unit produced.</summary>
        private Value FloatOf(Value v)
        {
            if (v.Constant is not null || _float.Contains(v) || !_uint8.TryGetValue(v, out var q)) return v;
            var node = new Node("DequantizeLinear", Unique(v.Name + "_dequantize"), "", _opset);
            node.AddInput(q.Q).AddInput(Scalar(v.Name + "_scale", q.P.Scale)).AddInput(ZeroPoint(v.Name + "_zero_point", q.P));
            node.AddOutput(v);
            _nodes.Add(node);
            _float.Add(v);
            _dequantizes++;
            return v;
        }

        /// <summary>The uint8 form of <paramref name="v"/> and its parameters, quantizing (once) a float tensor.</summary>
        private (Value Q, AffineQuantization P) UInt8Of(Value v)
        {
            if (_uint8.TryGetValue(v, out var existing)) return existing;
            var p = Calibrated(v)!.Value;
            var q = UInt8Value(v);
            var node = new Node("QuantizeLinear", Unique(v.Name + "_quantize"), "", _opset);
            node.AddInput(FloatOf(v)).AddInput(Scalar(v.Name + "_scale", p.Scale)).AddInput(ZeroPoint(v.Name + "_zero_point", p));
            node.AddOutput(q);
            _nodes.Add(node);
            _quantizes++;
            return _uint8[v] = (q, p);
        }

        private Value UInt8Value(Value v) => new(Unique(v.Name + "_quantized"), DataType.UInt8, (int[]?)v.Shape?.Clone());

        private Value Scalar(string name, float value) => Constant(name, Tensor.Scalar(value));

        private Value ZeroPoint(string name, AffineQuantization p) => Constant(name, Tensor.Scalar((byte)p.ZeroPoint));

        private Value Constant(string name, Tensor value) => new(Unique(name), value);

        private string Unique(string name)
        {
            string candidate = name;
            for (int i = 1; !_names.Add(candidate); i++) candidate = $"{name}_{i}";
            return candidate;
        }

        /// <summary>Explicit pads [begin..., end...] for the convolution's known input shape (auto_pad resolved as the
        /// float Conv resolves it).</summary>
        internal static long[] ResolvePads(Node conv, int[] x, int[] w)
        {
            int rank = x.Length - 2;
            string autoPad = conv.Attributes.TryGetValue("auto_pad", out var ap) ? ap.StringValue : "NOTSET";
            long[] Attribute(string name, long fallback) =>
                conv.Attributes.TryGetValue(name, out var a) ? [.. a.Ints] : Enumerable.Repeat(fallback, rank).ToArray();
            if (autoPad is "NOTSET") return conv.Attributes.TryGetValue("pads", out var pads) ? [.. pads.Ints] : new long[2 * rank];
            var result = new long[2 * rank];
            if (autoPad is "VALID") return result;
            var strides = Attribute("strides", 1);
            var dilations = Attribute("dilations", 1);
            for (int d = 0; d < rank; d++)
            {
                long input = x[d + 2], output = (input + strides[d] - 1) / strides[d];
                long total = Math.Max(0, (output - 1) * strides[d] + (w[d + 2] - 1) * dilations[d] + 1 - input);
                result[d] = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2;
                result[d + rank] = total - result[d];
            }
            return result;
        }
    }
}
