using System.Globalization;
using Squash.Runtime;
using Squash.Runtime.Ir;
using Squash.Runtime.Operators;

namespace Squash.Tools.Llama2c;

/// <summary>
/// Builds an ONNX decoder with a KV cache from a llama2.c checkpoint, using standard default-domain operators only.
/// </summary>
/// <remarks>
/// Inputs: <c>input_ids</c> int64 [1, S] and, per layer i, <c>past_key_i</c> / <c>past_value_i</c> float
/// [1, n_kv_heads, P, head_size] (P may be 0). Outputs: <c>logits</c> float [1, S, vocab] and <c>present_key_i</c> /
/// <c>present_value_i</c> [1, n_kv_heads, P+S, head_size]. The tokens sit at positions P..P+S-1; P is read from the
/// shape of <c>past_key_0</c>. Grouped-query attention folds the query heads that share a key/value head into the
/// rows of one matrix product ([1, kv_heads, group*S, head_size]), so keys and values are never copied per query head.
/// </remarks>
public static class Llama2cConverter
{
    /// <summary>The opset written unless another is asked for.</summary>
    public const int DefaultOpset = 17;

    /// <summary>The oldest opset the graph can be written for: Softmax over one axis and Split without a split
    /// attribute date from opset 13.</summary>
    public const int MinOpset = 13;

    /// <summary>llama2.c's RMSNorm epsilon.</summary>
    public const float RmsEpsilon = 1e-5f;

    /// <summary>Parses <paramref name="checkpoint"/> and converts it.</summary>
    /// <exception cref="SquashException">The checkpoint is invalid or the opset is not supported.</exception>
    public static Model Convert(byte[] checkpoint, int opset = DefaultOpset) =>
        Convert(Llama2cCheckpoint.Parse(checkpoint), opset);

    /// <summary>Converts a checkpoint into a model of the given default-domain opset.</summary>
    /// <exception cref="SquashException">The opset is not supported.</exception>
    public static Model Convert(Llama2cCheckpoint checkpoint, int opset = DefaultOpset)
    {
        if (opset < MinOpset || opset > OperatorRegistry.MaxSupportedOpset)
            throw new SquashException(ErrorCodes.UnsupportedOperator,
                $"Opset {opset} is not supported by the llama2.c converter; use {MinOpset} to {OperatorRegistry.MaxSupportedOpset}.");
        var c = checkpoint.Config;
        var graph = new Graph("llama2c");
        graph.OpsetImports[""] = opset;
        var b = new Builder(graph, opset);
        int hs = c.HeadSize, half = hs / 2;

        var ids = Input(graph, "input_ids", DataType.Int64, [1, -1], [null, "sequence"]);
        var past = new (Value Key, Value Value)[c.Layers];
        for (int l = 0; l < c.Layers; l++)
        {
            past[l] = (Input(graph, $"past_key_{l}", DataType.Float, [1, c.KvHeads, -1, hs], [null, null, "past_sequence", null]),
                       Input(graph, $"past_value_{l}", DataType.Float, [1, c.KvHeads, -1, hs], [null, null, "past_sequence", null]));
        }

        // Positions P..P+S-1 of the new tokens, and the rotary factors for them.
        var embedding = b.Const("token_embedding", Matrix(checkpoint.TokenEmbedding, c.VocabSize, c.Dim));
        var x = b.Op("Gather", "embed", [embedding, ids], ("axis", AttributeValue.Int(0)));
        var seqLen = b.Op("Gather", "seq_len", [b.Op("Shape", "ids_shape", [ids]), b.ScalarInt(1)], ("axis", AttributeValue.Int(0)));
        var pastLen = b.Op("Gather", "past_len", [b.Op("Shape", "past_shape", [past[0].Key]), b.ScalarInt(2)], ("axis", AttributeValue.Int(0)));
        var totalLen = b.Op("Add", "total_len", [pastLen, seqLen]);
        var positions = b.Op("Range", "positions", [pastLen, totalLen, b.ScalarInt(1)]);
        var cosTable = b.Const("rope_cos_table", Matrix(checkpoint.FreqCisReal, c.SeqLen, half));
        var sinTable = b.Const("rope_sin_table", Matrix(checkpoint.FreqCisImag, c.SeqLen, half));
        // [S, 1, head/2, 1] broadcasts over [1, S, heads, head/2, 1], the pairs split off the last axis.
        var cos = b.Op("Reshape", "rope_cos", [b.Op("Gather", "rope_cos_rows", [cosTable, positions], ("axis", AttributeValue.Int(0))), b.Ints(-1, 1, half, 1)]);
        var sin = b.Op("Reshape", "rope_sin", [b.Op("Gather", "rope_sin_rows", [sinTable, positions], ("axis", AttributeValue.Int(0))), b.Ints(-1, 1, half, 1)]);

        // Causal mask over the [group*S, P+S] score rows of one kv head: row g*S+i (position P+i) sees keys 0..P+i.
        var rowPositions = c.Group == 1 ? positions : b.Op("Tile", "mask_row_positions", [positions, b.Ints(c.Group)]);
        var rowColumn = b.Op("Reshape", "mask_row_column", [rowPositions, b.Ints(-1, 1)]);
        var keyPositions = b.Op("Range", "mask_key_positions", [b.ScalarInt(0), totalLen, b.ScalarInt(1)]);
        var allowed = b.Op("LessOrEqual", "mask_allowed", [keyPositions, rowColumn]);
        var negativeInfinity = b.Const("negative_infinity", Tensor.Scalar(float.NegativeInfinity));
        var scale = b.Const("attention_scale", Tensor.Scalar(MathF.Sqrt(hs)));

        var presents = new (Value Key, Value Value)[c.Layers];
        for (int l = 0; l < c.Layers; l++)
        {
            var w = checkpoint.Layers[l];
            string p = $"layers.{l}";
            // Attention.
            var xn = RmsNorm(b, x, b.Const($"{p}.attention_norm.weight", Vector(w.RmsAttention)), $"{p}.attention_norm");
            var q = b.Op("MatMul", $"{p}.attention.q", [xn, b.Const($"{p}.attention.wq_t", Transposed(w.Wq, c.Dim, c.Dim))]);
            var k = b.Op("MatMul", $"{p}.attention.k", [xn, b.Const($"{p}.attention.wk_t", Transposed(w.Wk, c.KvDim, c.Dim))]);
            var v = b.Op("MatMul", $"{p}.attention.v", [xn, b.Const($"{p}.attention.wv_t", Transposed(w.Wv, c.KvDim, c.Dim))]);
            q = Rotary(b, q, c.Heads, hs, cos, sin, $"{p}.attention.q_rope");
            k = Rotary(b, k, c.KvHeads, hs, cos, sin, $"{p}.attention.k_rope");
            var qHeads = b.Op("Transpose", $"{p}.attention.q_heads", [q], ("perm", AttributeValue.IntList(0, 2, 1, 3)));
            var qGroups = b.Op("Reshape", $"{p}.attention.q_groups", [qHeads, b.Ints(1, c.KvHeads, -1, hs)]);
            var kHeads = b.Op("Transpose", $"{p}.attention.k_heads", [k], ("perm", AttributeValue.IntList(0, 2, 1, 3)));
            var vSplit = b.Op("Reshape", $"{p}.attention.v_split", [v, b.Ints(1, -1, c.KvHeads, hs)]);
            var vHeads = b.Op("Transpose", $"{p}.attention.v_heads", [vSplit], ("perm", AttributeValue.IntList(0, 2, 1, 3)));
            var presentKey = b.Op("Concat", $"present_key_{l}", [past[l].Key, kHeads], ("axis", AttributeValue.Int(2)));
            var presentValue = b.Op("Concat", $"present_value_{l}", [past[l].Value, vHeads], ("axis", AttributeValue.Int(2)));
            presents[l] = (presentKey, presentValue);
            var keysT = b.Op("Transpose", $"{p}.attention.keys_t", [presentKey], ("perm", AttributeValue.IntList(0, 1, 3, 2)));
            var scores = b.Op("MatMul", $"{p}.attention.scores", [qGroups, keysT]);
            scores = b.Op("Div", $"{p}.attention.scaled_scores", [scores, scale]);
            scores = b.Op("Where", $"{p}.attention.masked_scores", [allowed, scores, negativeInfinity]);
            var probs = b.Op("Softmax", $"{p}.attention.probs", [scores], ("axis", AttributeValue.Int(-1)));
            var mixed = b.Op("MatMul", $"{p}.attention.mixed", [probs, presentValue]);
            mixed = b.Op("Reshape", $"{p}.attention.mixed_heads", [mixed, b.Ints(1, c.Heads, -1, hs)]);
            mixed = b.Op("Transpose", $"{p}.attention.mixed_tokens", [mixed], ("perm", AttributeValue.IntList(0, 2, 1, 3)));
            mixed = b.Op("Reshape", $"{p}.attention.mixed_flat", [mixed, b.Ints(1, -1, c.Dim)]);
            var attention = b.Op("MatMul", $"{p}.attention.out", [mixed, b.Const($"{p}.attention.wo_t", Transposed(w.Wo, c.Dim, c.Dim))]);
            x = b.Op("Add", $"{p}.attention_residual", [x, attention]);
            // SwiGLU feed-forward: w2(silu(w1 x) * w3 x).
            var hn = RmsNorm(b, x, b.Const($"{p}.ffn_norm.weight", Vector(w.RmsFfn)), $"{p}.ffn_norm");
            var gate = b.Op("MatMul", $"{p}.ffn.gate", [hn, b.Const($"{p}.ffn.w1_t", Transposed(w.W1, c.HiddenDim, c.Dim))]);
            var up = b.Op("MatMul", $"{p}.ffn.up", [hn, b.Const($"{p}.ffn.w3_t", Transposed(w.W3, c.HiddenDim, c.Dim))]);
            var silu = b.Op("Mul", $"{p}.ffn.silu", [gate, b.Op("Sigmoid", $"{p}.ffn.gate_sigmoid", [gate])]);
            var product = b.Op("Mul", $"{p}.ffn.product", [silu, up]);
            var down = b.Op("MatMul", $"{p}.ffn.down", [product, b.Const($"{p}.ffn.w2_t", Transposed(w.W2, c.Dim, c.HiddenDim))]);
            x = b.Op("Add", $"{p}.ffn_residual", [x, down]);
        }

        // Classifier: logits = rms(x) · E^T. Gemm's transB reads the [vocab, dim] matrix as it is, so a shared
        // embedding stays one tensor.
        var final = RmsNorm(b, x, b.Const("final_norm.weight", Vector(checkpoint.RmsFinal)), "final_norm");
        var rows = b.Op("Reshape", "final_rows", [final, b.Ints(-1, c.Dim)]);
        var classifier = checkpoint.Classifier is null ? embedding : b.Const("classifier", Matrix(checkpoint.Classifier, c.VocabSize, c.Dim));
        var logitRows = b.Op("Gemm", "classifier_rows", [rows, classifier], ("transB", AttributeValue.Int(1)));
        var logits = b.Op("Reshape", "logits", [logitRows, b.Ints(1, -1, c.VocabSize)]);

        Output(graph, logits, DataType.Float, [1, -1, c.VocabSize], [null, "sequence", null]);
        foreach (var (key, value) in presents)
        {
            Output(graph, key, DataType.Float, [1, c.KvHeads, -1, hs], [null, null, "total_sequence", null]);
            Output(graph, value, DataType.Float, [1, c.KvHeads, -1, hs], [null, null, "total_sequence", null]);
        }

        var model = new Model(graph)
        {
            IrVersion = IrVersionFor(opset),
            ProducerName = "Llama2cToOnnx",
            ProducerVersion = "1",
        };
        model.Metadata["llama2c.config"] = c.ToString();
        model.Metadata["bos_token_id"] = "1";
        return model;
    }

    /// <summary>RMSNorm as llama2.c computes it: weight * (x / sqrt(mean(x^2) + eps)).</summary>
    private static Value RmsNorm(Builder b, Value x, Value weight, string name)
    {
        var square = b.Op("Mul", $"{name}.square", [x, x]);
        var mean = b.ReduceMeanLastAxis(square, $"{name}.mean");
        var variance = b.Op("Add", $"{name}.mean_eps", [mean, b.Const("rms_epsilon", Tensor.Scalar(RmsEpsilon), shared: true)]);
        var inverse = b.Op("Reciprocal", $"{name}.inverse_rms", [b.Op("Sqrt", $"{name}.rms", [variance])]);
        var normalized = b.Op("Mul", $"{name}.normalized", [x, inverse]);
        return b.Op("Mul", $"{name}.scaled", [normalized, weight]);
    }

    /// <summary>
    /// Rotates the pairs (2i, 2i+1) of each head by the angle of the token's position (llama2.c's RoPE), turning
    /// [1, S, heads*head] into [1, S, heads, head].
    /// </summary>
    private static Value Rotary(Builder b, Value t, int heads, int headSize, Value cos, Value sin, string name)
    {
        var pairs = b.Op("Reshape", $"{name}.pairs", [t, b.Ints(1, -1, heads, headSize / 2, 2)]);
        var (re, im) = b.SplitLastAxisInTwo(pairs, name);
        var real = b.Op("Sub", $"{name}.real", [b.Op("Mul", $"{name}.re_cos", [re, cos]), b.Op("Mul", $"{name}.im_sin", [im, sin])]);
        var imag = b.Op("Add", $"{name}.imag", [b.Op("Mul", $"{name}.re_sin", [re, sin]), b.Op("Mul", $"{name}.im_cos", [im, cos])]);
        var rotated = b.Op("Concat", $"{name}.rotated", [real, imag], ("axis", AttributeValue.Int(-1)));
        return b.Op("Reshape", $"{name}.heads", [rotated, b.Ints(1, -1, heads, headSize)]);
    }

    private static Value Input(Graph graph, string name, DataType type, int[] shape, string?[] dimNames)
    {
        var v = new Value(name, type, shape) { DimNames = dimNames };
        graph.Inputs.Add(v);
        return v;
    }

    private static void Output(Graph graph, Value v, DataType type, int[] shape, string?[] dimNames)
    {
        v.Type = type;
        v.Shape = shape;
        v.DimNames = dimNames;
        graph.Outputs.Add(v);
    }

    /// <summary>The ONNX IR version released with <paramref name="opset"/>.</summary>
    private static long IrVersionFor(int opset) => opset switch
    {
        <= 14 => 7,
        <= 18 => 8,
        <= 20 => 9,
        <= 22 => 10,
        _ => 11,
    };

    private static Tensor Vector(float[] values) => Tensor.From<float>(values, values.Length);

    private static Tensor Matrix(float[] values, int rows, int columns) => Tensor.From<float>(values, rows, columns);

    /// <summary>Turns llama2.c's [out, in] matrix into the [in, out] right operand of MatMul.</summary>
    private static Tensor Transposed(float[] w, int outputs, int inputs)
    {
        var tensor = new Tensor(DataType.Float, inputs, outputs);
        var dst = tensor.AsSpan<float>();
        // Blocked so that both the reads and the writes stay in cache for large synthetic models.
        const int Block = 64;
        for (int o0 = 0; o0 < outputs; o0 += Block)
        {
            int o1 = Math.Min(o0 + Block, outputs);
            for (int i0 = 0; i0 < inputs; i0 += Block)
            {
                int i1 = Math.Min(i0 + Block, inputs);
                for (int o = o0; o < o1; o++)
                {
                    long row = (long)o * inputs;
                    for (int i = i0; i < i1; i++) dst[i * outputs + o] = w[row + i];
                }
            }
        }
        return tensor;
    }

    /// <summary>Appends nodes and constants to a graph, naming each node's output after the node.</summary>
    private sealed class Builder(Graph graph, int opset)
    {
        private readonly Dictionary<string, Value> _shared = new(StringComparer.Ordinal);

        /// <summary>Adds an initializer; with <paramref name="shared"/>, one value per name serves every reader.</summary>
        public Value Const(string name, Tensor tensor, bool shared = false)
        {
            if (shared && _shared.TryGetValue(name, out var existing)) return existing;
            var v = new Value(name, tensor);
            graph.Initializers.Add(v);
            if (shared) _shared[name] = v;
            return v;
        }

        /// <summary>A shared int64 vector constant (shapes, axes, repeats).</summary>
        public Value Ints(params long[] values) =>
            Const("const_i64_" + string.Join("_", values.Select(n => n.ToString(CultureInfo.InvariantCulture).Replace('-', 'm'))),
                Tensor.From<long>(values, values.Length), shared: true);

        /// <summary>A shared int64 scalar constant.</summary>
        public Value ScalarInt(long value) =>
            Const("const_i64_scalar_" + value.ToString(CultureInfo.InvariantCulture).Replace('-', 'm'), Tensor.Scalar(value), shared: true);

        /// <summary>Adds a one-output node named <paramref name="name"/>; its output has the same name.</summary>
        public Value Op(string opType, string name, Value[] inputs, params (string Name, AttributeValue Value)[] attributes) =>
            Node(opType, name, inputs, [name], attributes)[0];

        /// <summary>Mean over the last axis, keeping it (axes moved from attribute to input in opset 18).</summary>
        public Value ReduceMeanLastAxis(Value x, string name) => opset >= 18
            ? Op("ReduceMean", name, [x, Ints(-1)], ("keepdims", AttributeValue.Int(1)))
            : Op("ReduceMean", name, [x], ("axes", AttributeValue.IntList(-1)), ("keepdims", AttributeValue.Int(1)));

        /// <summary>Splits the last axis (of size 2) into its two halves (opset 18 wants num_outputs).</summary>
        public (Value First, Value Second) SplitLastAxisInTwo(Value x, string name)
        {
            (string, AttributeValue)[] attributes = opset >= 18
                ? [("axis", AttributeValue.Int(-1)), ("num_outputs", AttributeValue.Int(2))]
                : [("axis", AttributeValue.Int(-1))];
            var outputs = Node("Split", $"{name}.split", [x], [$"{name}.even", $"{name}.odd"], attributes);
            return (outputs[0], outputs[1]);
        }

        private Value[] Node(string opType, string name, Value[] inputs, string[] outputNames, (string Name, AttributeValue Value)[] attributes)
        {
            var node = new Node(opType, name, "", opset);
            foreach (var input in inputs) node.AddInput(input);
            var outputs = new Value[outputNames.Length];
            for (int i = 0; i < outputs.Length; i++)
            {
                outputs[i] = new Value(outputNames[i]);
                node.AddOutput(outputs[i]);
            }
            foreach (var (key, value) in attributes) node.Attributes[key] = value;
            graph.Nodes.Add(node);
            return outputs;
        }
    }
}
