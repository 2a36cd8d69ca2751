using Squash.Runtime.Execution;
using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Operators;

/// <summary>
/// What Squash's int8 operators (domain com.squash) share. Activations are uint8 with a per-tensor scale and zero point
/// given as constant scalar inputs (as ONNX's QLinearConv takes them); weights are int8, symmetric, per output channel.
/// Operators with a product or a sum take an optional clamp of their real-valued output (<c>activation_min</c>,
/// <c>activation_max</c>: a fused Relu or Clip), applied to the quantized output as the bounds quantized with the
/// output's parameters, which equals quantizing the clamped value because quantization is monotonic.
/// </summary>
internal abstract class Int8OperatorBase : Operator
{
    protected Int8OperatorBase(Node node) : base(node)
    {
    }

    /// <summary>Reads the fused clamp attributes (absent: no clamp).</summary>
    protected (float Min, float Max) ReadActivation()
    {
        float min = Attributes.Float("activation_min", float.NegativeInfinity);
        float max = Attributes.Float("activation_max", float.PositiveInfinity);
        if (float.IsNaN(min) || float.IsNaN(max) || min > max)
            throw Invalid($"activation_min {min} and activation_max {max} do not form a range.");
        return (min, max);
    }

    /// <summary>The constant positive scale at input <paramref name="index"/>: one value, or one per channel when
    /// <paramref name="channels"/> is given.</summary>
    protected float[] Scales(int index, string name, int channels = 1)
    {
        var t = ConstantInput(index, name);
        if (t.DataType != DataType.Float) throw Invalid($"{name} must be float, not {DataTypes.Name(t.DataType)}.");
        if (t.ElementCount != 1 && t.ElementCount != channels)
            throw Invalid($"{name} has {t.ElementCount} values; it takes one{(channels > 1 ? $" or {channels}" : "")}.");
        var values = t.AsSpan<float>().ToArray();
        foreach (float v in values)
            if (!(v > 0) || !float.IsFinite(v)) throw Invalid($"{name} must be positive and finite, not {v}.");
        return values;
    }

    /// <summary>The constant scalar float at input <paramref name="index"/>.</summary>
    protected float Scale(int index, string name) => Scales(index, name)[0];

    /// <summary>The constant uint8 zero point at input <paramref name="index"/> (0 when absent).</summary>
    protected byte ZeroPoint(int index, string name)
    {
        if (Node.Input(index) is null) return 0;
        var t = ConstantInput(index, name);
        if (t.DataType != DataType.UInt8 || t.ElementCount != 1) throw Invalid($"{name} must be one uint8 value, not {t}.");
        return t.AsSpan<byte>()[0];
    }

    /// <summary>Checks that the optional weight zero point at <paramref name="index"/> is absent or all zeros (weights
    /// are symmetric).</summary>
    protected void RequireZeroWeightZeroPoint(int index, string name)
    {
        if (Node.Input(index) is null) return;
        var t = ConstantInput(index, name);
        if (t.DataType != DataType.Int8) throw Invalid($"{name} must be int8, not {DataTypes.Name(t.DataType)}.");
        foreach (sbyte v in t.AsSpan<sbyte>())
            if (v != 0) throw Unsupported($"{name} must be 0: Squash's int8 weights are symmetric.");
    }

    /// <summary>The constant tensor at input <paramref name="index"/>.</summary>
    protected Tensor ConstantInput(int index, string name) =>
        Node.Input(index)?.Constant ?? throw Unsupported($"{name} must be a constant.");

    /// <summary>Throws unless input <paramref name="index"/> is uint8.</summary>
    protected void RequireUInt8(InferenceContext context, int index, string name)
    {
        if (context.InputType(index) != DataType.UInt8)
            throw new SquashException(ErrorCodes.UnsupportedDataType,
                $"{Node.Describe()}: {name} must be uint8, not {DataTypes.Name(context.InputType(index))}.", Node.Name);
    }

    /// <summary>The uint8 bounds that a real clamp [<paramref name="min"/>, <paramref name="max"/>] becomes for output
    /// parameters (<paramref name="scale"/>, <paramref name="zeroPoint"/>): the bounds quantized as QuantizeLinear would.</summary>
    protected static (byte Min, byte Max) ByteRange(float min, float max, float scale, byte zeroPoint) =>
        (QuantizeBound(min, scale, zeroPoint), QuantizeBound(max, scale, zeroPoint));

    private static byte QuantizeBound(float value, float scale, byte zeroPoint) =>
        (byte)Math.Clamp(Math.Round((double)(value / scale), MidpointRounding.ToEven) + zeroPoint, 0, 255);

    /// <summary>Work items per task so that each holds some thousands of elements.</summary>
    protected static int Grain(int elementsPerItem) => Math.Max(1, 16384 / Math.Max(1, elementsPerItem));
}

/// <summary>
/// <c>com.squash.QConv(x, x_scale, x_zero_point, w, w_scale, w_zero_point?, y_scale?, y_zero_point?, B?)</c>: a 1-D
/// or 2-D convolution of uint8 x with int8 weights (symmetric, per output channel; [-64, 64] unless depthwise, see
/// docs/quantization.md) and an int32 bias quantized with scale <c>x_scale * w_scale[c]</c>, by
/// <see cref="Int8Conv"/>. With y_scale the output is uint8 (requantized); without, it is float (dequantized: the border
/// of an int8 region). Attributes: dilations, group, kernel_shape, pads (explicit; the rewrite resolves auto_pad),
/// strides, and the fused clamp activation_min / activation_max.
/// </summary>
internal sealed class QConvOperator : Int8OperatorBase
{
    private sealed record Prepared(int[] X, Int8ConvWeights Weights, Int8Epilogue Epilogue);

    private readonly long[]? _dilations, _kernelShape, _pads, _strides;
    private readonly long _group;
    private readonly (float Min, float Max) _activation;
    private readonly float _xScale;
    private readonly byte _xZero;
    private readonly float[] _wScales;
    private readonly float? _yScale;
    private readonly byte _yZero;
    private readonly Tensor _w;
    private readonly int[]? _bias;
    private Prepared? _prepared;

    public QConvOperator(Node node) : base(node)
    {
        _dilations = Attributes.Ints("dilations");
        _group = Attributes.Int("group", 1);
        _kernelShape = Attributes.Ints("kernel_shape");
        _pads = Attributes.Ints("pads");
        _strides = Attributes.Ints("strides");
        _activation = ReadActivation();
        _w = ConstantInput(3, "w");
        if (_w.DataType != DataType.Int8 || _w.Rank is not (3 or 4))
            throw Invalid($"w must be int8 [M, C/group, kH, kW] or [M, C/group, k], not {_w}.");
        int m = _w.Shape[0];
        _xScale = Scale(1, "x_scale");
        _xZero = ZeroPoint(2, "x_zero_point");
        _wScales = Scales(4, "w_scale", m);
        RequireZeroWeightZeroPoint(5, "w_zero_point");
        if (node.Input(6) is not null)
        {
            _yScale = Scale(6, "y_scale");
            _yZero = ZeroPoint(7, "y_zero_point");
        }
        if (node.Input(8) is not null)
        {
            var b = ConstantInput(8, "B");
            if (b.DataType != DataType.Int32 || b.ElementCount != m) throw Invalid($"B must be int32 [{m}], not {b}.");
            _bias = b.AsSpan<int>().ToArray();
        }
        if (_group < 1 || _group > m) throw Invalid($"group {_group} is not in [1, {m}].");
    }

    public override void InferOutputs(InferenceContext context)
    {
        RequireUInt8(context, 0, "x");
        var type = _yScale is null ? DataType.Float : DataType.UInt8;
        if (context.InputShape(0) is not { } x || !Shapes.IsKnown(x))
        {
            context.SetOutput(0, type, context.InputShape(0) is { } partial ? [partial[0], _w.Shape[0], .. Enumerable.Repeat(-1, partial.Length - 2)] : null);
            return;
        }
        var g = Geometry(x);
        context.SetOutput(0, type, x.Length == 3 ? [g.Batch, g.OutChannels, g.OutWidth] : [g.Batch, g.OutChannels, g.OutHeight, g.OutWidth]);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var x = Required(inputs, 0);
        var p = Prepare(x.Shape);
        if (_yScale is null) Int8Conv.Run(context, p.Weights, x.AsSpan<byte>(), p.Epilogue, outputs[0].AsSpan<float>());
        else Int8Conv.Run(context, p.Weights, x.AsSpan<byte>(), p.Epilogue, outputs[0].AsSpan<byte>());
    }

    /// <summary>Weights and epilogue for an input shape, prepared once (a planned model runs one shape).</summary>
    private Prepared Prepare(int[] x)
    {
        var prepared = Volatile.Read(ref _prepared);
        if (prepared is not null && Shapes.Equal(prepared.X, x)) return prepared;
        var g = Geometry(x);
        Int8ConvWeights weights;
        try
        {
            weights = Int8ConvWeights.Pack(g, _w.AsSpan<sbyte>());
        }
        catch (ArgumentException e)
        {
            throw Unsupported(e.Message);
        }
        int m = g.OutChannels;
        Int8Epilogue epilogue;
        if (_yScale is { } yScale)
        {
            var multipliers = new float[m];
            for (int c = 0; c < m; c++) multipliers[c] = Int8Epilogue.Multiplier(_xScale, WeightScale(c), yScale);
            var (min, max) = ByteRange(_activation.Min, _activation.Max, yScale, _yZero);
            epilogue = Int8Epilogue.Requantize(weights.WeightSums, _xZero, _bias ?? [], multipliers, _yZero, min, max);
        }
        else
        {
            var scales = new float[m];
            var bias = _bias is null ? [] : new float[m];
            for (int c = 0; c < m; c++)
            {
                scales[c] = BiasScale(_xScale, WeightScale(c));
                if (_bias is not null) bias[c] = _bias[c] * scales[c];
            }
            epilogue = Int8Epilogue.Dequantize(weights.WeightSums, _xZero, scales, bias, _activation.Min, _activation.Max);
        }
        prepared = new Prepared((int[])x.Clone(), weights, epilogue);
        Volatile.Write(ref _prepared, prepared);
        return prepared;
    }

    private float WeightScale(int channel) => _wScales.Length == 1 ? _wScales[0] : _wScales[channel];

    /// <summary>The scale of an int32 bias and of the exact sums: <c>x_scale * w_scale</c> rounded to float once (the
    /// rewrite and the QDQ export compute it the same way).</summary>
    internal static float BiasScale(float xScale, float wScale) => (float)((double)xScale * wScale);

    private Int8ConvGeometry Geometry(int[] x)
    {
        var w = _w.Shape;
        if (x.Length != w.Length) throw Invalid($"x {Shapes.Format(x)} and w {Shapes.Format(w)} must have the same rank.");
        if ((long)w[1] * _group != x[1]) throw Invalid($"x has {x[1]} channels but w {Shapes.Format(w)} with group {_group} expects {(long)w[1] * _group}.");
        bool oneD = x.Length == 3;
        int rank = x.Length - 2;
        var kernel = w[2..];
        if (_kernelShape is not null && !_kernelShape.Select(v => (int)v).SequenceEqual(kernel))
            throw Invalid($"kernel_shape [{string.Join(",", _kernelShape)}] does not match w {Shapes.Format(w)}.");
        var strides = PerAxis(_strides, rank, 1, "strides");
        var dilations = PerAxis(_dilations, rank, 1, "dilations");
        var pads = _pads is null ? new int[2 * rank] : PerAxis(_pads, 2 * rank, 0, "pads");
        try
        {
            return oneD
                ? new Int8ConvGeometry(x[0], x[1], 1, x[2], w[0], (int)_group, 1, kernel[0], 1, strides[0], 0, pads[0], 0, pads[1], 1, dilations[0])
                : new Int8ConvGeometry(x[0], x[1], x[2], x[3], w[0], (int)_group, kernel[0], kernel[1], strides[0], strides[1],
                    pads[0], pads[1], pads[2], pads[3], dilations[0], dilations[1]);
        }
        catch (ArgumentException e)
        {
            throw Invalid(e.Message);
        }
    }

    private int[] PerAxis(long[]? values, int count, int fallback, string name)
    {
        if (values is null) return Enumerable.Repeat(fallback, count).ToArray();
        if (values.Length != count) throw Invalid($"{name} has {values.Length} values; it needs {count}.");
        return values.Select(v => v is >= 0 and <= int.MaxValue ? (int)v : throw Invalid($"{name} has the value {v}.")).ToArray();
    }
}

/// <summary>
/// <c>com.squash.QMatMul(a, a_scale, a_zero_point, b, b_scale, b_zero_point?, y_scale?, y_zero_point?, bias?)</c>:
/// uint8 a [..., K] times constant int8 b [K, N] (symmetric per column, [-64, 64]), plus an int32 bias [N] with scale
/// <c>a_scale * b_scale[n]</c>, by <see cref="Int8Gemm"/>; uint8 output with y_scale, float without. MatMul and Gemm
/// with constant weights both become this. Attributes: activation_min, activation_max.
/// </summary>
internal sealed class QMatMulOperator : Int8OperatorBase
{
    private readonly (float Min, float Max) _activation;
    private readonly float _aScale;
    private readonly byte _aZero;
    private readonly float[] _bScales;
    private readonly float? _yScale;
    private readonly byte _yZero;
    private readonly Tensor _b;
    private readonly int[]? _bias;
    private (Int8PackedWeights Weights, Int8Epilogue Epilogue)? _prepared;

    public QMatMulOperator(Node node) : base(node)
    {
        _activation = ReadActivation();
        _b = ConstantInput(3, "b");
        if (_b.DataType != DataType.Int8 || _b.Rank != 2) throw Invalid($"b must be int8 [K, N], not {_b}.");
        int n = _b.Shape[1];
        _aScale = Scale(1, "a_scale");
        _aZero = ZeroPoint(2, "a_zero_point");
        _bScales = Scales(4, "b_scale", n);
        RequireZeroWeightZeroPoint(5, "b_zero_point");
        if (node.Input(6) is not null)
        {
            _yScale = Scale(6, "y_scale");
            _yZero = ZeroPoint(7, "y_zero_point");
        }
        if (node.Input(8) is not null)
        {
            var bias = ConstantInput(8, "bias");
            if (bias.DataType != DataType.Int32 || bias.ElementCount != n) throw Invalid($"bias must be int32 [{n}], not {bias}.");
            _bias = bias.AsSpan<int>().ToArray();
        }
        if (_b.Shape[0] > Int8Epilogue.MaxDepth) throw Unsupported($"K = {_b.Shape[0]} exceeds {Int8Epilogue.MaxDepth}, beyond which int32 sums may overflow.");
    }

    public override void InferOutputs(InferenceContext context)
    {
        RequireUInt8(context, 0, "a");
        var type = _yScale is null ? DataType.Float : DataType.UInt8;
        if (context.InputShape(0) is not { } a)
        {
            context.SetOutput(0, type, null);
            return;
        }
        if (a.Length < 1) throw Invalid("a must have at least one dimension.");
        if (a[^1] >= 0 && a[^1] != _b.Shape[0]) throw Invalid($"a {Shapes.Format(a)} has {a[^1]} columns but b has {_b.Shape[0]} rows.");
        context.SetOutput(0, type, [.. a[..^1], _b.Shape[1]]);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var a = Required(inputs, 0);
        var (weights, epilogue) = Prepare();
        int k = _b.Shape[0], n = _b.Shape[1], m = k == 0 ? 0 : a.ElementCount / k;
        if (_yScale is null) Int8Gemm.Multiply(context, m, a.AsSpan<byte>(), k, weights, epilogue, outputs[0].AsSpan<float>(), n);
        else Int8Gemm.Multiply(context, m, a.AsSpan<byte>(), k, weights, epilogue, outputs[0].AsSpan<byte>(), n);
    }

    private (Int8PackedWeights, Int8Epilogue) Prepare()
    {
        if (_prepared is { } done) return done;
        int k = _b.Shape[0], n = _b.Shape[1];
        Int8PackedWeights weights;
        try
        {
            weights = Int8PackedWeights.PackRight(_b.AsSpan<sbyte>(), n, transposed: false, k, n);
        }
        catch (ArgumentException e)
        {
            throw Unsupported(e.Message);
        }
        Int8Epilogue epilogue;
        if (_yScale is { } yScale)
        {
            var multipliers = new float[n];
            for (int c = 0; c < n; c++) multipliers[c] = Int8Epilogue.Multiplier(_aScale, WeightScale(c), yScale);
            var (min, max) = ByteRange(_activation.Min, _activation.Max, yScale, _yZero);
            epilogue = Int8Epilogue.Requantize(weights.WeightSums, _aZero, _bias ?? [], multipliers, _yZero, min, max);
        }
        else
        {
            var scales = new float[n];
            var bias = _bias is null ? [] : new float[n];
            for (int c = 0; c < n; c++)
            {
                scales[c] = QConvOperator.BiasScale(_aScale, WeightScale(c));
                if (_bias is not null) bias[c] = _bias[c] * scales[c];
            }
            epilogue = Int8Epilogue.Dequantize(weights.WeightSums, _aZero, scales, bias, _activation.Min, _activation.Max);
        }
        // Immutable once built; two threads racing build equal values.
        _prepared = (weights, epilogue);
        return (weights, epilogue);
    }

    private float WeightScale(int channel) => _bScales.Length == 1 ? _bScales[0] : _bScales[channel];
}

/// <summary>
/// <c>com.squash.QAdd(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point)</c>: the sum of two
/// uint8 tensors of one shape (a residual connection), requantized to the output's parameters by
/// <see cref="Int8Requantize.Add"/>, as com.microsoft.QLinearAdd. Attributes: activation_min, activation_max.
/// </summary>
internal sealed class QAddOperator : Int8OperatorBase
{
    private readonly byte _aZero, _bZero, _yZero, _min, _max;
    private readonly float _aMultiplier, _bMultiplier;

    public QAddOperator(Node node) : base(node)
    {
        var (lo, hi) = ReadActivation();
        float aScale = Scale(1, "a_scale"), bScale = Scale(4, "b_scale"), yScale = Scale(6, "y_scale");
        _aZero = ZeroPoint(2, "a_zero_point");
        _bZero = ZeroPoint(5, "b_zero_point");
        _yZero = ZeroPoint(7, "y_zero_point");
        _aMultiplier = Int8Requantize.Multiplier(aScale, yScale);
        _bMultiplier = Int8Requantize.Multiplier(bScale, yScale);
        (_min, _max) = ByteRange(lo, hi, yScale, _yZero);
    }

    public override void InferOutputs(InferenceContext context)
    {
        RequireUInt8(context, 0, "a");
        RequireUInt8(context, 3, "b");
        var a = context.InputShape(0);
        var b = context.InputShape(3);
        if (a is not null && b is not null && Shapes.IsKnown(a) && Shapes.IsKnown(b) && !Shapes.Equal(a, b))
            throw Unsupported($"a {Shapes.Format(a)} and b {Shapes.Format(b)} must have the same shape (QAdd does not broadcast).");
        context.SetOutput(0, DataType.UInt8, a ?? b);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var a = Required(inputs, 0);
        var b = Required(inputs, 3);
        if (!Shapes.Equal(a.Shape, b.Shape)) throw Unsupported($"a {Shapes.Format(a.Shape)} and b {Shapes.Format(b.Shape)} must have the same shape.");
        const int chunk = 16384;
        context.For((a.ElementCount + chunk - 1) / chunk, new Body(this, a, b, outputs[0], chunk));
    }

    private readonly struct Body(QAddOperator op, Tensor a, Tensor b, Tensor y, int chunk) : IRangeBody
    {
        public void Invoke(int start, int end)
        {
            int from = start * chunk, to = Math.Min(a.ElementCount, end * chunk);
            Int8Requantize.Add(a.AsSpan<byte>()[from..to], op._aZero, op._aMultiplier, b.AsSpan<byte>()[from..to], op._bZero,
                op._bMultiplier, op._yZero, y.AsSpan<byte>()[from..to], op._min, op._max);
        }
    }
}

/// <summary>
/// <c>com.squash.QConcat(y_scale, y_zero_point, x0, x0_scale, x0_zero_point, x1, ...)</c> with attribute axis: uint8
/// inputs joined along an axis, each requantized to the output's parameters (<see cref="Int8Requantize.Requantize"/>)
/// or copied when its parameters are the output's, as com.microsoft.QLinearConcat.
/// </summary>
internal sealed class QConcatOperator : Int8OperatorBase
{
    private readonly long _axis;
    private readonly byte _yZero;
    private readonly float[] _multipliers;
    private readonly byte[] _zeros;
    private readonly bool[] _copy;

    public QConcatOperator(Node node) : base(node)
    {
        _axis = Attributes.Int("axis", 0);
        int count = (node.Inputs.Count - 2) / 3;
        if (count < 1 || node.Inputs.Count != 2 + 3 * count) throw Invalid("the inputs must be y_scale, y_zero_point, then (x, x_scale, x_zero_point) per input.");
        float yScale = Scale(0, "y_scale");
        _yZero = ZeroPoint(1, "y_zero_point");
        _multipliers = new float[count];
        _zeros = new byte[count];
        _copy = new bool[count];
        for (int i = 0; i < count; i++)
        {
            float scale = Scale(3 + 3 * i, $"x{i}_scale");
            _zeros[i] = ZeroPoint(4 + 3 * i, $"x{i}_zero_point");
            _multipliers[i] = Int8Requantize.Multiplier(scale, yScale);
            _copy[i] = scale == yScale && _zeros[i] == _yZero;
        }
    }

    public override void InferOutputs(InferenceContext context)
    {
        int count = _zeros.Length;
        int[]? result = null;
        int axis = -1;
        for (int i = 0; i < count; i++)
        {
            RequireUInt8(context, 2 + 3 * i, $"x{i}");
            if (context.InputShape(2 + 3 * i) is not { } shape)
            {
                context.SetOutput(0, DataType.UInt8, null);
                return;
            }
            if (result is null)
            {
                axis = Shapes.NormalizeAxis(_axis, shape.Length);
                result = (int[])shape.Clone();
                continue;
            }
            if (shape.Length != result.Length) throw Invalid($"input {i} has rank {shape.Length}, the first {result.Length}.");
            for (int d = 0; d < shape.Length; d++)
            {
                if (d == axis) result[d] = result[d] < 0 || shape[d] < 0 ? -1 : result[d] + shape[d];
                else if (result[d] >= 0 && shape[d] >= 0 && result[d] != shape[d])
                    throw Invalid($"input {i} {Shapes.Format(shape)} differs from the first input outside axis {axis}.");
            }
        }
        context.SetOutput(0, DataType.UInt8, result);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var y = outputs[0];
        int axis = Shapes.NormalizeAxis(_axis, y.Rank);
        int outer = Shapes.Product(y.Shape, 0, axis), inner = Shapes.Product(y.Shape, axis + 1, y.Rank);
        int rowBytes = y.Shape[axis] * inner, offset = 0;
        var target = y.Bytes;
        for (int i = 0; i < _zeros.Length; i++)
        {
            var x = Required(inputs, 2 + 3 * i);
            int block = x.Shape[axis] * inner;
            var source = x.Bytes;
            for (int o = 0; o < outer; o++)
            {
                var from = source.Slice(o * block, block);
                var to = target.Slice(o * rowBytes + offset, block);
                if (_copy[i]) from.CopyTo(to);
                else Int8Requantize.Requantize(from, _zeros[i], _multipliers[i], _yZero, to);
            }
            offset += block;
        }
    }
}

/// <summary>
/// <c>com.squash.QLookup(x, x_scale, x_zero_point, y_scale, y_zero_point)</c> with a graph attribute <c>body</c>: an
/// element-wise function of one uint8 tensor, applied through 256-entry tables (<see cref="Int8Lookup"/>). The body is
/// the float function (one input, one output, element-wise nodes with constant operands: an activation, a chain such as
/// HardSwish then a scale and shift). Each table entry is <c>quantize(body(dequantize(q)))</c>, computed once by running
/// the body with the same operators as the float model (so no second description of the function can drift), the
/// dequantization as DequantizeLinear and the quantization as QuantizeLinear. With attribute <c>axis</c>, the body's
/// constants may vary along that axis of x and there is one table per channel.
/// </summary>
internal sealed class QLookupOperator : Int8OperatorBase
{
    private sealed record Tables(int[] X, byte[] Values, int Channels);

    private readonly Graph _body;
    private readonly long? _axis;
    private readonly float _xScale, _yScale;
    private readonly byte _xZero, _yZero;
    private Tables? _tables;

    public QLookupOperator(Node node) : base(node)
    {
        _body = Attributes.Graph("body") ?? throw Invalid("the attribute 'body' (the float function) is required.");
        _axis = Attributes.Has("axis") ? Attributes.Int("axis", 0) : null;
        if (_body.Inputs.Count != 1 || _body.Outputs.Count != 1) throw Invalid("body must have one input and one output.");
        _xScale = Scale(1, "x_scale");
        _xZero = ZeroPoint(2, "x_zero_point");
        _yScale = Scale(3, "y_scale");
        _yZero = ZeroPoint(4, "y_zero_point");
    }

    public override void InferOutputs(InferenceContext context)
    {
        RequireUInt8(context, 0, "x");
        context.SetOutput(0, DataType.UInt8, context.InputShape(0));
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var x = Required(inputs, 0);
        var tables = Prepare(x.Shape);
        if (tables.Channels == 1)
        {
            const int chunk = 65536;
            context.For((x.ElementCount + chunk - 1) / chunk, new Body(tables.Values, x, outputs[0], 1, chunk));
            return;
        }
        int axis = Shapes.NormalizeAxis(_axis!.Value, x.Rank);
        int inner = Shapes.Product(x.Shape, axis + 1, x.Rank);
        context.For(Shapes.Product(x.Shape, 0, axis + 1), new Body(tables.Values, x, outputs[0], tables.Channels, inner), Grain(inner));
    }

    /// <summary>Runs [start, end) of the runs of <paramref name="run"/> elements; run r uses table r % channels.</summary>
    private readonly struct Body(byte[] tables, Tensor x, Tensor y, int channels, int run) : IRangeBody
    {
        public void Invoke(int start, int end)
        {
            var source = x.AsSpan<byte>();
            var target = y.AsSpan<byte>();
            for (int r = start; r < end; r++)
            {
                int from = r * run, length = Math.Min(run, source.Length - from);
                var table = tables.AsSpan(r % channels * Int8Lookup.TableSize, Int8Lookup.TableSize);
                Int8Lookup.Apply(table, source.Slice(from, length), target.Slice(from, length));
            }
        }
    }

    private Tables Prepare(int[] x)
    {
        var tables = Volatile.Read(ref _tables);
        if (tables is not null && Shapes.Equal(tables.X, x)) return tables;
        tables = Build(x);
        Volatile.Write(ref _tables, tables);
        return tables;
    }

    /// <summary>Evaluates the body on every uint8 value (per channel: a [C, 256] arrangement in x's rank, so the
    /// body's per-channel constants broadcast as they do on x) and quantizes the results.</summary>
    private Tables Build(int[] x)
    {
        // The body sees x's rank, so that its constants broadcast as they do on x: [1, ..., 256] for one table.
        int channels = 1, rank = Math.Max(1, x.Length);
        var shape = Enumerable.Repeat(1, rank).ToArray();
        shape[^1] = Int8Lookup.TableSize;
        bool valuesFirst = false;
        if (_axis is { } rawAxis)
        {
            int axis = Shapes.NormalizeAxis(rawAxis, rank);
            if (rank < 2) throw Invalid("a per-channel lookup needs an input of rank 2 or more.");
            channels = x[axis];
            shape[^1] = 1;
            int valueAxis = axis == rank - 1 ? rank - 2 : rank - 1;
            shape[axis] = channels;
            shape[valueAxis] = Int8Lookup.TableSize;
            valuesFirst = valueAxis < axis;
        }
        var input = new Tensor(DataType.Float, shape);
        var values = input.AsSpan<float>();
        for (int c = 0; c < channels; c++)
            for (int q = 0; q < Int8Lookup.TableSize; q++)
                values[valuesFirst ? q * channels + c : c * Int8Lookup.TableSize + q] = (q - _xZero) * _xScale;
        Tensor output;
        try
        {
            output = new GraphExecutor(_body).Run(new Dictionary<string, Tensor> { [_body.Inputs[0].Name] = input })[_body.Outputs[0].Name];
        }
        catch (SquashException e)
        {
            throw new SquashException(e.Code, $"{Node.Describe()}: evaluating the body: {e.Message}", Node.Name, e);
        }
        if (output.DataType != DataType.Float || output.ElementCount != input.ElementCount)
            throw Invalid($"body must be element-wise float, but maps {input} to {output}.");
        var quantized = new byte[output.ElementCount];
        Int8Quantize.Quantize(output.AsSpan<float>(), _yScale, _yZero, quantized);
        var result = new byte[channels * Int8Lookup.TableSize];
        for (int c = 0; c < channels; c++)
            for (int q = 0; q < Int8Lookup.TableSize; q++)
                result[c * Int8Lookup.TableSize + q] = quantized[valuesFirst ? q * channels + c : c * Int8Lookup.TableSize + q];
        return new Tables((int[])x.Clone(), result, channels);
    }
}

/// <summary>
/// <c>com.squash.QMul(a, a_scale, a_zero_point, b, y_scale, y_zero_point)</c>: uint8 a times a float tensor b computed at
/// run time that is one value or one per channel of a (a squeeze-and-excitation gate, [1, C, 1, 1] against
/// [N, C, H, W]), requantized: each channel is <see cref="Int8Requantize.Requantize"/> with multiplier
/// <c>a_scale * b[c] / y_scale</c>.
/// </summary>
internal sealed class QMulOperator : Int8OperatorBase
{
    private readonly float _aScale, _yScale;
    private readonly byte _aZero, _yZero;

    public QMulOperator(Node node) : base(node)
    {
        _aScale = Scale(1, "a_scale");
        _aZero = ZeroPoint(2, "a_zero_point");
        _yScale = Scale(4, "y_scale");
        _yZero = ZeroPoint(5, "y_zero_point");
    }

    public override void InferOutputs(InferenceContext context)
    {
        RequireUInt8(context, 0, "a");
        if (context.InputType(3) != DataType.Float)
            throw new SquashException(ErrorCodes.UnsupportedDataType, $"{Node.Describe()}: b must be float, not {DataTypes.Name(context.InputType(3))}.", Node.Name);
        var a = context.InputShape(0);
        if (a is not null && context.InputShape(3) is { } b && Shapes.IsKnown(a) && Shapes.IsKnown(b)) Axis(a, b);
        context.SetOutput(0, DataType.UInt8, a);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var a = Required(inputs, 0);
        var b = Required(inputs, 3);
        int axis = Axis(a.Shape, b.Shape);
        int channels = axis < 0 ? 1 : a.Shape[axis];
        int inner = axis < 0 ? a.ElementCount : Shapes.Product(a.Shape, axis + 1, a.Rank);
        int runs = axis < 0 ? 1 : Shapes.Product(a.Shape, 0, axis + 1);
        context.For(runs, new Body(this, a, b, outputs[0], channels, inner), Grain(inner));
    }

    /// <summary>The axis of a that b varies along, or -1 for one value; throws unless b broadcasts that way.</summary>
    private int Axis(int[] a, int[] b)
    {
        if (b.Length > a.Length) throw Unsupported($"b {Shapes.Format(b)} has a higher rank than a {Shapes.Format(a)}.");
        int axis = -1;
        for (int d = 0; d < b.Length; d++)
        {
            int ad = d + a.Length - b.Length;
            if (b[d] == 1) continue;
            if (b[d] != a[ad] || axis >= 0)
                throw Unsupported($"b {Shapes.Format(b)} must hold one value, or one per channel of a {Shapes.Format(a)}.");
            axis = ad;
        }
        return axis;
    }

    private readonly struct Body(QMulOperator op, Tensor a, Tensor b, Tensor y, int channels, int inner) : IRangeBody
    {
        public void Invoke(int start, int end)
        {
            // The spans once per range, not per channel: cls's gates multiply 200 channels of 192 values, where checks
            // and span arithmetic per channel were a fifth of the time.
            var gates = b.AsSpan<float>();
            var x = a.AsSpan<byte>().Slice(start * inner, (end - start) * inner);
            var output = y.AsSpan<byte>().Slice(start * inner, (end - start) * inner);
            for (int r = start; r < end; r++)
            {
                float multiplier = (float)((double)op._aScale * gates[r % channels] / op._yScale);
                int at = (r - start) * inner;
                Int8Requantize.RequantizeUnchecked(x.Slice(at, inner), op._aZero, multiplier, op._yZero, output.Slice(at, inner));
            }
        }
    }
}

/// <summary>
/// <c>com.squash.QGlobalAveragePool(x, x_scale, x_zero_point)</c>: the float mean of each channel of uint8 x
/// [N, C, ...]: <c>x_scale * (sum / count - x_zero_point)</c> from the exact integer sum (<see cref="Int8Lookup.Sum"/>),
/// evaluated in double and rounded once. Float out, because what reads it (a squeeze-and-excitation branch) is small.
/// </summary>
internal sealed class QGlobalAveragePoolOperator : Int8OperatorBase
{
    private readonly float _xScale;
    private readonly byte _xZero;

    public QGlobalAveragePoolOperator(Node node) : base(node)
    {
        _xScale = Scale(1, "x_scale");
        _xZero = ZeroPoint(2, "x_zero_point");
    }

    public override void InferOutputs(InferenceContext context)
    {
        RequireUInt8(context, 0, "x");
        var x = context.InputShape(0);
        if (x is not null && x.Length < 3) throw Invalid($"x must have a batch, a channel and spatial axes, not {Shapes.Format(x)}.");
        context.SetOutput(0, DataType.Float, x is null ? null : [x[0], x[1], .. Enumerable.Repeat(1, x.Length - 2)]);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var x = Required(inputs, 0);
        int planes = x.Shape[0] * x.Shape[1], size = planes == 0 ? 0 : x.ElementCount / planes;
        var source = x.AsSpan<byte>();
        var target = outputs[0].AsSpan<float>();
        for (int p = 0; p < planes; p++)
        {
            long sum = Int8Lookup.Sum(source.Slice(p * size, size));
            target[p] = size == 0 ? 0 : (float)(((double)sum / size - _xZero) * _xScale);
        }
    }
}
