using System.Buffers;
using System.Numerics.Tensors;
using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Operators;

/// <summary>Recurrent layers: LSTM, GRU.</summary>
internal static class RecurrentOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        registry.Add("LSTM", n => new LstmOperator(n), minOpset: 7);
        registry.Add("GRU", n => new GruOperator(n), minOpset: 7);
    }
}

/// <summary>The activation functions ONNX recurrent layers accept.</summary>
internal enum RnnActivationKind
{
    Relu,
    Tanh,
    Sigmoid,
    Affine,
    LeakyRelu,
    ThresholdedRelu,
    ScaledTanh,
    HardSigmoid,
    Elu,
    Softsign,
    Softplus,
}

/// <summary>An activation function of a recurrent layer with its alpha and beta.</summary>
internal readonly record struct RnnActivation(RnnActivationKind Kind, float Alpha, float Beta)
{
    /// <summary>Name (lower case) to function, whether it takes alpha and beta, and their defaults (ONNX Runtime's).</summary>
    private static readonly Dictionary<string, (RnnActivationKind Kind, bool UsesAlpha, bool UsesBeta, float Alpha, float Beta)> s_table =
        new(StringComparer.OrdinalIgnoreCase)
        {
            ["relu"] = (RnnActivationKind.Relu, false, false, 0, 0),
            ["tanh"] = (RnnActivationKind.Tanh, false, false, 0, 0),
            ["sigmoid"] = (RnnActivationKind.Sigmoid, false, false, 0, 0),
            ["affine"] = (RnnActivationKind.Affine, true, true, 1, 0),
            ["leakyrelu"] = (RnnActivationKind.LeakyRelu, true, false, 0.01f, 0),
            ["thresholdedrelu"] = (RnnActivationKind.ThresholdedRelu, true, false, 1, 0),
            ["scaledtanh"] = (RnnActivationKind.ScaledTanh, true, true, 1, 1),
            ["hardsigmoid"] = (RnnActivationKind.HardSigmoid, true, true, 0.2f, 0.5f),
            ["elu"] = (RnnActivationKind.Elu, true, false, 1, 0),
            ["softsign"] = (RnnActivationKind.Softsign, false, false, 0, 0),
            ["softplus"] = (RnnActivationKind.Softplus, false, false, 0, 0),
        };

    /// <summary>
    /// Parses the <c>activations</c> attribute; <c>activation_alpha</c> and <c>activation_beta</c> are consumed in
    /// order by the functions that take them, with the defaults where the lists run out.
    /// </summary>
    public static RnnActivation[] Parse(string[] names, float[]? alphas, float[]? betas, Func<string, SquashException> invalid)
    {
        var result = new RnnActivation[names.Length];
        int nextAlpha = 0, nextBeta = 0;
        for (int i = 0; i < names.Length; i++)
        {
            if (!s_table.TryGetValue(names[i], out var entry))
                throw invalid($"activation '{names[i]}' is not one of {string.Join(", ", s_table.Keys)}.");
            float alpha = entry.UsesAlpha && alphas is not null && nextAlpha < alphas.Length ? alphas[nextAlpha++] : entry.Alpha;
            float beta = entry.UsesBeta && betas is not null && nextBeta < betas.Length ? betas[nextBeta++] : entry.Beta;
            result[i] = new RnnActivation(entry.Kind, alpha, beta);
        }
        return result;
    }

    /// <summary>Applies the function in place.</summary>
    public void Apply(Span<float> x)
    {
        switch (Kind)
        {
            case RnnActivationKind.Sigmoid: TensorPrimitives.Sigmoid(x, x); break;
            case RnnActivationKind.Tanh: TensorPrimitives.Tanh(x, x); break;
            case RnnActivationKind.Relu: TensorPrimitives.Max(x, 0f, x); break;
            case RnnActivationKind.Affine:
                TensorPrimitives.Multiply(x, Alpha, x);
                TensorPrimitives.Add(x, Beta, x);
                break;
            case RnnActivationKind.LeakyRelu:
                for (int i = 0; i < x.Length; i++) x[i] = x[i] >= 0 ? x[i] : Alpha * x[i];
                break;
            case RnnActivationKind.ThresholdedRelu:
                for (int i = 0; i < x.Length; i++) x[i] = x[i] > Alpha ? x[i] : 0;
                break;
            case RnnActivationKind.ScaledTanh:
                TensorPrimitives.Multiply(x, Beta, x);
                TensorPrimitives.Tanh(x, x);
                TensorPrimitives.Multiply(x, Alpha, x);
                break;
            case RnnActivationKind.HardSigmoid:
                TensorPrimitives.Multiply(x, Alpha, x);
                TensorPrimitives.Add(x, Beta, x);
                TensorPrimitives.Clamp(x, 0f, 1f, x);
                break;
            case RnnActivationKind.Elu:
                for (int i = 0; i < x.Length; i++) x[i] = x[i] >= 0 ? x[i] : Alpha * (MathF.Exp(x[i]) - 1);
                break;
            case RnnActivationKind.Softsign:
                for (int i = 0; i < x.Length; i++) x[i] /= 1 + MathF.Abs(x[i]);
                break;
            case RnnActivationKind.Softplus:
                // log(1 + e^x) without overflow for large x.
                for (int i = 0; i < x.Length; i++) x[i] = MathF.Max(x[i], 0) + MathF.Log(1 + MathF.Exp(-MathF.Abs(x[i])));
                break;
        }
    }
}

/// <summary>
/// What LSTM and GRU share: attributes, shapes, layouts, sequence lengths, and the time loop. The input projection
/// <c>X * W^T</c> of all time steps is one GEMM; each step adds <c>H * R^T</c> with a GEMM over the batch, then
/// the subclass's gate arithmetic runs on contiguous rows.
/// </summary>
internal abstract class RecurrentOperator : Operator
{
    private readonly int _hiddenSize;
    private PackedWeights? _packed;

    protected RecurrentOperator(Node node, int gates, string[] defaultActivations) : base(node)
    {
        Gates = gates;
        _hiddenSize = (int)Attributes.Int("hidden_size", -1);
        string direction = Attributes.String("direction", "forward");
        Directions = direction switch
        {
            "forward" or "reverse" => 1,
            "bidirectional" => 2,
            _ => throw Invalid($"direction '{direction}' is not one of forward, reverse, bidirectional."),
        };
        Reverse = direction == "reverse";
        Layout = (int)Attributes.Int("layout", 0);
        if (Layout is not (0 or 1)) throw Invalid($"layout must be 0 or 1, not {Layout}.");
        float clip = Attributes.Float("clip", float.NaN);
        if (!float.IsNaN(clip) && !(clip > 0)) throw Invalid($"clip must be positive, not {clip}.");
        Clip = clip;
        var names = Attributes.Strings("activations");
        var alphas = Attributes.Floats("activation_alpha");
        var betas = Attributes.Floats("activation_beta");
        int perDirection = defaultActivations.Length;
        if (names is null)
        {
            names = new string[perDirection * Directions];
            for (int d = 0; d < Directions; d++) defaultActivations.CopyTo(names, d * perDirection);
        }
        else if (names.Length == perDirection && Directions == 2)
        {
            // Some exporters give one direction's functions for both.
            names = [.. names, .. names];
        }
        if (names.Length != perDirection * Directions)
            throw Invalid($"activations lists {names.Length} functions; expected {perDirection * Directions} ({perDirection} per direction).");
        Activations = RnnActivation.Parse(names, alphas, betas, Invalid);
    }

    /// <summary>Gates per cell (LSTM 4, GRU 3).</summary>
    protected int Gates { get; }

    /// <summary>1, or 2 when bidirectional.</summary>
    protected int Directions { get; }

    /// <summary>True for a single reverse direction.</summary>
    protected bool Reverse { get; }

    /// <summary>0: X is [seq, batch, input]; 1: X is [batch, seq, input].</summary>
    protected int Layout { get; }

    /// <summary>Bound on gate pre-activations, or NaN for none.</summary>
    protected float Clip { get; }

    /// <summary>Activation functions, per direction.</summary>
    protected RnnActivation[] Activations { get; }

    /// <summary>Number of state outputs after Y (LSTM: Y_h and Y_c; GRU: Y_h).</summary>
    protected abstract int StateOutputs { get; }

    /// <summary>Index of input <c>initial_h</c>.</summary>
    protected const int InitialHInput = 5;

    public override void InferOutputs(InferenceContext context)
    {
        var type = context.InputType(0);
        if (type is not (DataType.Float or DataType.Float16 or DataType.BFloat16))
            throw Unsupported($"{DataTypes.Name(type)} inputs are not supported (float, float16 and bfloat16 are).");
        var x = context.InputShape(0);
        var r = context.InputShape(2);
        int hidden = _hiddenSize > 0 ? _hiddenSize : r is { Length: 3 } ? r[2] : -1;
        int seq = -1, batch = -1;
        if (x is not null)
        {
            if (x.Length != 3) throw Invalid($"X must have rank 3, not {x.Length}.");
            seq = Layout == 0 ? x[0] : x[1];
            batch = Layout == 0 ? x[1] : x[0];
        }
        int[] y = Layout == 0 ? [seq, Directions, batch, hidden] : [batch, seq, Directions, hidden];
        int[] state = Layout == 0 ? [Directions, batch, hidden] : [batch, Directions, hidden];
        context.SetOutput(0, type, y);
        for (int i = 1; i <= StateOutputs; i++) context.SetOutput(i, type, state);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var x = Required(inputs, 0);
        var w = Required(inputs, 1);
        var r = Required(inputs, 2);
        int seq = Layout == 0 ? x.Shape[0] : x.Shape[1];
        int batch = Layout == 0 ? x.Shape[1] : x.Shape[0];
        int inputSize = x.Shape[2];
        int hidden = _hiddenSize > 0 ? _hiddenSize : r.Shape[2];
        int g = Gates * hidden;
        CheckShape(w, "W", [Directions, g, inputSize]);
        CheckShape(r, "R", [Directions, g, hidden]);
        var packed = _packed ?? Pack(inputs, hidden, inputSize);
        if (IsConstant(1) && IsConstant(2) && IsConstant(3) && IsConstant(7)) _packed = packed;

        var lengths = new int[batch];
        if (Optional(inputs, 4) is { } seqLens)
        {
            CheckShape(seqLens, "sequence_lens", [batch]);
            for (int b = 0; b < batch; b++)
            {
                long len = seqLens.GetAsInt64(b);
                if (len < 0 || len > seq) throw Invalid($"sequence_lens[{b}] = {len} is outside [0, {seq}].");
                lengths[b] = (int)len;
            }
        }
        else
        {
            Array.Fill(lengths, seq);
        }

        var pool = ArrayPool<float>.Shared;
        var rented = new List<float[]>();
        float[] Rent(int n)
        {
            var a = pool.Rent(Math.Max(n, 1));
            rented.Add(a);
            return a;
        }
        try
        {
            var seqData = new SequenceData(seq, batch, hidden, Directions, Layout);
            var xs = Floats(x, Rent);
            int stateSize = Directions * batch * hidden;
            // Outputs are computed in float; other types go through a float buffer. An unnamed Y is not wanted.
            bool wantY = outputs.Length > 0 && Node.Outputs[0].Name.Length > 0;
            var y = wantY ? FloatOutput(outputs[0], Rent) : Span<float>.Empty;
            var states = new float[StateOutputs][];
            for (int i = 0; i < StateOutputs; i++)
            {
                states[i] = Rent(stateSize);
                var initial = Optional(inputs, InitialHInput + i);
                if (initial is null)
                {
                    states[i].AsSpan(0, stateSize).Clear();
                }
                else
                {
                    CheckShape(initial, i == 0 ? "initial_h" : "initial_c", Layout == 0 ? [Directions, batch, hidden] : [batch, Directions, hidden]);
                    WorkingConversion.ToWorking(initial, states[i].AsSpan(0, stateSize));
                }
            }
            var work = new StepBuffers
            {
                Projection = Rent(seq * batch * g),
                Gates = Rent(batch * g),
                Hidden = Rent(batch * hidden),
                Cell = Rent(batch * hidden),
                Scratch = Rent(batch * hidden),
            };
            for (int d = 0; d < Directions; d++)
            {
                bool reverse = Reverse || d == 1;
                // Input projection of every time step at once, biases folded in.
                var projection = work.Projection.AsSpan(0, seq * batch * g);
                Gemm.Multiply(context, false, false, seq * batch, g, inputSize, 1f, xs, inputSize, packed.InputWeights[d], g, 0f, projection, g);
                if (packed.Bias is not null)
                    for (int row = 0; row < seq * batch; row++)
                        TensorPrimitives.Add(projection.Slice(row * g, g), packed.Bias[d], projection.Slice(row * g, g));
                // Gather this direction's initial state into [batch, hidden] rows.
                for (int b = 0; b < batch; b++)
                {
                    states[0].AsSpan(seqData.StateOffset(d, b), hidden).CopyTo(work.Hidden.AsSpan(b * hidden, hidden));
                    if (StateOutputs > 1) states[1].AsSpan(seqData.StateOffset(d, b), hidden).CopyTo(work.Cell.AsSpan(b * hidden, hidden));
                }
                var active = new bool[batch];
                var gates = work.Gates.AsSpan(0, batch * g);
                for (int s = 0; s < seq; s++)
                {
                    for (int b = 0; b < batch; b++)
                    {
                        active[b] = s < lengths[b];
                        var row = gates.Slice(b * g, g);
                        if (active[b]) projection.Slice(seqData.XRow(reverse ? lengths[b] - 1 - s : s, b) * g, g).CopyTo(row);
                        else row.Clear();
                    }
                    Step(context, packed, d, work, batch, hidden, active);
                    if (wantY)
                        for (int b = 0; b < batch; b++)
                        {
                            // Steps past a sequence's length leave zeros in Y.
                            if (active[b]) work.Hidden.AsSpan(b * hidden, hidden).CopyTo(y.Slice(seqData.YOffset(reverse ? lengths[b] - 1 - s : s, d, b), hidden));
                            else y.Slice(seqData.YOffset(s, d, b), hidden).Clear();
                        }
                }
                for (int b = 0; b < batch; b++)
                {
                    work.Hidden.AsSpan(b * hidden, hidden).CopyTo(states[0].AsSpan(seqData.StateOffset(d, b), hidden));
                    if (StateOutputs > 1) work.Cell.AsSpan(b * hidden, hidden).CopyTo(states[1].AsSpan(seqData.StateOffset(d, b), hidden));
                }
            }
            if (wantY && outputs[0].DataType != DataType.Float) WorkingConversion.FromWorking(y, outputs[0]);
            for (int i = 0; i < StateOutputs && i + 1 < outputs.Length; i++)
            {
                var state = states[i].AsSpan(0, stateSize);
                if (outputs[i + 1].DataType == DataType.Float) state.CopyTo(outputs[i + 1].AsSpan<float>());
                else WorkingConversion.FromWorking(state, outputs[i + 1]);
            }
        }
        finally
        {
            foreach (var a in rented) pool.Return(a);
        }
    }

    /// <summary>
    /// One time step for the whole batch. On entry <c>work.Gates</c> holds each active row's input projection plus
    /// folded biases, and <c>work.Hidden</c> (and <c>work.Cell</c>) the previous state; on exit the state rows of
    /// active sequences are updated and inactive rows are left as they were.
    /// </summary>
    protected abstract void Step(KernelContext context, PackedWeights packed, int direction, StepBuffers work, int batch, int hidden, bool[] active);

    /// <summary>Transposes the weights for the GEMMs and folds the biases.</summary>
    protected abstract PackedWeights Pack(ReadOnlySpan<Tensor?> inputs, int hidden, int inputSize);

    /// <summary>Bounds gate pre-activations when <c>clip</c> is set.</summary>
    protected void ClipGate(Span<float> x)
    {
        if (!float.IsNaN(Clip)) TensorPrimitives.Clamp(x, -Clip, Clip, x);
    }

    /// <summary><paramref name="matrix"/> [directions, rows, cols] transposed per direction into [cols, rows].</summary>
    protected static float[][] TransposePerDirection(Tensor matrix)
    {
        int directions = matrix.Shape[0], rows = matrix.Shape[1], cols = matrix.Shape[2];
        var all = new float[matrix.ElementCount];
        WorkingConversion.ToWorking(matrix, all.AsSpan());
        var result = new float[directions][];
        for (int d = 0; d < directions; d++)
        {
            var t = new float[rows * cols];
            int start = d * rows * cols;
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < cols; j++) t[j * rows + i] = all[start + i * cols + j];
            result[d] = t;
        }
        return result;
    }

    /// <summary>The values of an optional [directions, n] input per direction, or null when absent.</summary>
    protected float[][]? PerDirection(Tensor? input, string name, int n)
    {
        if (input is null) return null;
        CheckShape(input, name, [Directions, n]);
        var all = new float[input.ElementCount];
        WorkingConversion.ToWorking(input, all.AsSpan());
        var result = new float[Directions][];
        for (int d = 0; d < Directions; d++) result[d] = all.AsSpan(d * n, n).ToArray();
        return result;
    }

    /// <summary>Throws unless <paramref name="t"/> has the given shape.</summary>
    protected void CheckShape(Tensor t, string name, int[] expected)
    {
        if (!Shapes.Equal(t.Shape, expected))
            throw Invalid($"{name} has shape {Shapes.Format(t.Shape)}, expected {Shapes.Format(expected)}.");
    }

    private bool IsConstant(int input) => Node.Input(input) is not { } v || v.Constant is not null;

    private static ReadOnlySpan<float> Floats(Tensor t, Func<int, float[]> rent)
    {
        if (t.DataType == DataType.Float) return t.AsSpan<float>();
        var buffer = rent(t.ElementCount).AsSpan(0, t.ElementCount);
        WorkingConversion.ToWorking(t, buffer);
        return buffer;
    }

    private static Span<float> FloatOutput(Tensor t, Func<int, float[]> rent) =>
        t.DataType == DataType.Float ? t.AsSpan<float>() : rent(t.ElementCount).AsSpan(0, t.ElementCount);

    /// <summary>Weights prepared for the GEMMs, per direction.</summary>
    protected sealed class PackedWeights
    {
        /// <summary>W transposed: [input, gates * hidden].</summary>
        public required float[][] InputWeights { get; init; }

        /// <summary>R transposed: [hidden, gates * hidden].</summary>
        public required float[][] RecurrentWeights { get; init; }

        /// <summary>Biases added to the input projection: [gates * hidden], or null for none.</summary>
        public float[][]? Bias { get; init; }

        /// <summary>An extra per-cell vector (LSTM peepholes [3 * hidden]; GRU's recurrent bias of the hidden gate with linear_before_reset [hidden]).</summary>
        public float[][]? Extra { get; init; }
    }

    /// <summary>Buffers of one run.</summary>
    protected sealed class StepBuffers
    {
        /// <summary>[steps * batch, gates * hidden].</summary>
        public required float[] Projection { get; init; }

        /// <summary>[batch, gates * hidden].</summary>
        public required float[] Gates { get; init; }

        /// <summary>[batch, hidden].</summary>
        public required float[] Hidden { get; init; }

        /// <summary>[batch, hidden] (LSTM cell state).</summary>
        public required float[] Cell { get; init; }

        /// <summary>[batch, hidden] for the cell's temporaries.</summary>
        public required float[] Scratch { get; init; }
    }

    /// <summary>Offsets into X, Y and the state tensors for either layout.</summary>
    private readonly record struct SequenceData(int SeqLength, int Batch, int Hidden, int Directions, int Layout)
    {
        /// <summary>Row of X (and of the projection) for time <paramref name="t"/> of sequence <paramref name="b"/>.</summary>
        public int XRow(int t, int b) => Layout == 0 ? t * Batch + b : b * SeqLength + t;

        /// <summary>Offset in Y of the hidden state at time <paramref name="t"/>.</summary>
        public int YOffset(int t, int d, int b) =>
            (Layout == 0 ? (t * Directions + d) * Batch + b : (b * SeqLength + t) * Directions + d) * Hidden;

        /// <summary>Offset in Y_h, Y_c, initial_h and initial_c.</summary>
        public int StateOffset(int d, int b) => (Layout == 0 ? d * Batch + b : b * Directions + d) * Hidden;
    }
}

/// <summary>
/// LSTM: gates i, o, f, c (in that order in W, R and B), optional peepholes P (i, o, f), input_forget coupling,
/// clip, three activation functions per direction (default Sigmoid, Tanh, Tanh).
/// </summary>
internal sealed class LstmOperator : RecurrentOperator
{
    private readonly bool _inputForget;

    public LstmOperator(Node node) : base(node, 4, ["Sigmoid", "Tanh", "Tanh"]) =>
        _inputForget = Attributes.Int("input_forget", 0) != 0;

    protected override int StateOutputs => 2;

    protected override PackedWeights Pack(ReadOnlySpan<Tensor?> inputs, int hidden, int inputSize)
    {
        var b = PerDirection(Optional(inputs, 3), "B", 8 * hidden);
        float[][]? bias = null;
        if (b is not null)
        {
            // Wb + Rb: both are added to every step's pre-activations.
            bias = new float[Directions][];
            for (int d = 0; d < Directions; d++)
            {
                bias[d] = new float[4 * hidden];
                TensorPrimitives.Add(b[d].AsSpan(0, 4 * hidden), b[d].AsSpan(4 * hidden), bias[d]);
            }
        }
        return new PackedWeights
        {
            InputWeights = TransposePerDirection(Required(inputs, 1)),
            RecurrentWeights = TransposePerDirection(Required(inputs, 2)),
            Bias = bias,
            Extra = PerDirection(Optional(inputs, 7), "P", 3 * hidden),
        };
    }

    protected override void Step(KernelContext context, PackedWeights packed, int direction, StepBuffers work, int batch, int hidden, bool[] active)
    {
        int g = 4 * hidden;
        var gates = work.Gates.AsSpan(0, batch * g);
        Gemm.Multiply(context, false, false, batch, g, hidden, 1f, work.Hidden.AsSpan(0, batch * hidden), hidden,
            packed.RecurrentWeights[direction], g, 1f, gates, g);
        var fAct = Activations[3 * direction];
        var gAct = Activations[3 * direction + 1];
        var hAct = Activations[3 * direction + 2];
        var peep = packed.Extra?[direction];
        for (int b = 0; b < batch; b++)
        {
            if (!active[b]) continue;
            var row = gates.Slice(b * g, g);
            var i = row[..hidden];
            var o = row.Slice(hidden, hidden);
            var fg = row.Slice(2 * hidden, hidden);
            var c = row.Slice(3 * hidden, hidden);
            var cell = work.Cell.AsSpan(b * hidden, hidden);
            if (peep is not null)
            {
                TensorPrimitives.MultiplyAdd(peep.AsSpan(0, hidden), cell, i, i);
                TensorPrimitives.MultiplyAdd(peep.AsSpan(2 * hidden, hidden), cell, fg, fg);
            }
            ClipGate(i);
            fAct.Apply(i);
            if (_inputForget)
            {
                TensorPrimitives.Subtract(1f, i, fg);
            }
            else
            {
                ClipGate(fg);
                fAct.Apply(fg);
            }
            ClipGate(c);
            gAct.Apply(c);
            // C = f * C_prev + i * c
            TensorPrimitives.Multiply(fg, cell, cell);
            TensorPrimitives.MultiplyAdd(i, c, cell, cell);
            if (peep is not null) TensorPrimitives.MultiplyAdd(peep.AsSpan(hidden, hidden), cell, o, o);
            ClipGate(o);
            fAct.Apply(o);
            // H = o * h(C); the c gate's row is free now.
            cell.CopyTo(c);
            hAct.Apply(c);
            TensorPrimitives.Multiply(o, c, work.Hidden.AsSpan(b * hidden, hidden));
        }
    }
}

/// <summary>
/// GRU: gates z, r, h (in that order in W, R and B), linear_before_reset, clip, two activation functions per
/// direction (default Sigmoid, Tanh).
/// </summary>
internal sealed class GruOperator : RecurrentOperator
{
    private readonly bool _linearBeforeReset;

    public GruOperator(Node node) : base(node, 3, ["Sigmoid", "Tanh"]) =>
        _linearBeforeReset = Attributes.Int("linear_before_reset", 0) != 0;

    protected override int StateOutputs => 1;

    protected override PackedWeights Pack(ReadOnlySpan<Tensor?> inputs, int hidden, int inputSize)
    {
        var b = PerDirection(Optional(inputs, 3), "B", 6 * hidden);
        float[][]? bias = null, recurrentH = null;
        if (b is not null)
        {
            bias = new float[Directions][];
            recurrentH = _linearBeforeReset ? new float[Directions][] : null;
            for (int d = 0; d < Directions; d++)
            {
                // Wb + Rb for z and r; for h too unless linear_before_reset puts Rbh inside the reset product.
                bias[d] = new float[3 * hidden];
                int folded = _linearBeforeReset ? 2 * hidden : 3 * hidden;
                TensorPrimitives.Add(b[d].AsSpan(0, folded), b[d].AsSpan(3 * hidden, folded), bias[d].AsSpan(0, folded));
                if (_linearBeforeReset)
                {
                    b[d].AsSpan(2 * hidden, hidden).CopyTo(bias[d].AsSpan(2 * hidden));
                    recurrentH![d] = b[d].AsSpan(5 * hidden, hidden).ToArray();
                }
            }
        }
        return new PackedWeights
        {
            InputWeights = TransposePerDirection(Required(inputs, 1)),
            RecurrentWeights = TransposePerDirection(Required(inputs, 2)),
            Bias = bias,
            Extra = recurrentH,
        };
    }

    protected override void Step(KernelContext context, PackedWeights packed, int direction, StepBuffers work, int batch, int hidden, bool[] active)
    {
        int g = 3 * hidden;
        var gates = work.Gates.AsSpan(0, batch * g);
        var state = work.Hidden.AsSpan(0, batch * hidden);
        var scratch = work.Scratch.AsSpan(0, batch * hidden);
        var rt = packed.RecurrentWeights[direction];
        // z and r: += H * [Rz; Rr]^T.
        Gemm.Multiply(context, false, false, batch, 2 * hidden, hidden, 1f, state, hidden, rt, g, 1f, gates, g);
        if (_linearBeforeReset)
            Gemm.Multiply(context, false, false, batch, hidden, hidden, 1f, state, hidden, rt.AsSpan(2 * hidden), g, 0f, scratch, hidden);
        var fAct = Activations[2 * direction];
        var gAct = Activations[2 * direction + 1];
        for (int b = 0; b < batch; b++)
        {
            var zr = gates.Slice(b * g, 2 * hidden);
            ClipGate(zr);
            fAct.Apply(zr);
            if (!_linearBeforeReset)
                TensorPrimitives.Multiply(zr.Slice(hidden, hidden), state.Slice(b * hidden, hidden), scratch.Slice(b * hidden, hidden));
        }
        // Without linear_before_reset the hidden gate sees (r . H) * Rh^T.
        if (!_linearBeforeReset)
            Gemm.Multiply(context, false, false, batch, hidden, hidden, 1f, scratch, hidden, rt.AsSpan(2 * hidden), g, 1f, gates.Slice(2 * hidden), g);
        var rbh = packed.Extra?[direction];
        for (int b = 0; b < batch; b++)
        {
            if (!active[b]) continue;
            var row = gates.Slice(b * g, g);
            var z = row[..hidden];
            var r = row.Slice(hidden, hidden);
            var hh = row.Slice(2 * hidden, hidden);
            var previous = state.Slice(b * hidden, hidden);
            if (_linearBeforeReset)
            {
                var linear = scratch.Slice(b * hidden, hidden);
                if (rbh is not null) TensorPrimitives.Add(linear, rbh, linear);
                TensorPrimitives.MultiplyAdd(r, linear, hh, hh);
            }
            ClipGate(hh);
            gAct.Apply(hh);
            // H = (1 - z) . h + z . H_prev = h + z . (H_prev - h)
            TensorPrimitives.Subtract(previous, hh, r);
            TensorPrimitives.MultiplyAdd(z, r, hh, previous);
        }
    }
}
