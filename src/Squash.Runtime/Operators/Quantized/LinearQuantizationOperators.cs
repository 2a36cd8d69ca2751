using System.Numerics.Tensors;
using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Operators;

/// <summary>
/// Where the scale and zero point of each element of a QuantizeLinear / DequantizeLinear input come from: the input
/// viewed as [outer, channels, inner] around the quantization axis, and per tensor (one scale), per axis (one per
/// channel) or blocked (the scale has the input's shape with <c>ceil(channels / block)</c> along the axis).
/// </summary>
internal readonly record struct QuantizationLayout(int Outer, int Channels, int Inner, int Block, bool PerTensor)
{
    /// <summary>The layout for input shape <paramref name="x"/> and scale shape <paramref name="scale"/>.</summary>
    /// <param name="x">The input's shape.</param>
    /// <param name="scale">The scale's shape (the zero point must have the same).</param>
    /// <param name="axis">The axis attribute (negative counts from the back).</param>
    /// <param name="blockSize">The block_size attribute; 0 unless blocked.</param>
    /// <param name="invalid">Makes the exception for a shape the specification does not allow.</param>
    public static QuantizationLayout Create(int[] x, int[] scale, long axis, long blockSize, Func<string, Exception> invalid)
    {
        long count = Shapes.ElementCount(scale);
        // A one-element scale is per tensor whatever its rank (the reference implementation reads value[0]).
        if (count == 1 && blockSize == 0) return new QuantizationLayout(1, 1, (int)Shapes.ElementCount(x), 1, true);
        if (x.Length == 0) throw invalid($"a scalar input takes a one-element scale, not one of shape {Shapes.Format(scale)}.");
        if (axis < -x.Length || axis >= x.Length) throw invalid($"axis {axis} is out of range for an input of rank {x.Length}.");
        int a = (int)(axis < 0 ? axis + x.Length : axis);
        int outer = Shapes.Product(x, 0, a), channels = x[a], inner = Shapes.Product(x, a + 1, x.Length);
        if (blockSize == 0)
        {
            if (scale.Length != 1 || scale[0] != channels)
                throw invalid($"a per-axis scale must be 1-D with {channels} values (axis {a} of {Shapes.Format(x)}), not {Shapes.Format(scale)}.");
            return new QuantizationLayout(outer, channels, inner, 1, false);
        }
        if (blockSize < 0 || blockSize > int.MaxValue) throw invalid($"block_size must be positive, not {blockSize}.");
        int blocks = (int)((channels + blockSize - 1) / blockSize);
        bool fits = scale.Length == x.Length;
        for (int d = 0; fits && d < x.Length; d++) fits = scale[d] == (d == a ? blocks : x[d]);
        if (!fits)
            throw invalid($"a blocked scale for {Shapes.Format(x)} with block_size {blockSize} along axis {a} must have shape " +
                $"{Shapes.Format([.. x[..a], blocks, .. x[(a + 1)..]])}, not {Shapes.Format(scale)}.");
        return new QuantizationLayout(outer, channels, inner, (int)blockSize, false);
    }

    /// <summary>True when each (outer, channel) run of <see cref="Inner"/> elements has one scale.</summary>
    public bool RunsShareScale => Block == 1 || Inner == 1;

    /// <summary>The scale index of element <paramref name="inner"/> of run (<paramref name="outer"/>, <paramref name="channel"/>).</summary>
    public int ScaleIndex(int outer, int channel, int inner)
    {
        if (PerTensor) return 0;
        if (Block == 1) return channel;
        int blocks = (Channels + Block - 1) / Block;
        return (outer * blocks + channel / Block) * Inner + inner;
    }
}

/// <summary>
/// QuantizeLinear (opsets 10-25): <c>y = saturate(roundHalfEven(x / y_scale) + y_zero_point)</c> per tensor, per axis
/// or blocked, to uint8, int8, uint16 or int16. The division is done in the type NumPy promotes x and y_scale to (as
/// the ONNX reference implementation does: float for float/float, double for int32 inputs, float16 for float16/float16),
/// or in the <c>precision</c> attribute's type. NaN becomes the lowest value; infinities saturate. The float, uint8 and
/// int8 cases run the vectorized <see cref="Int8Quantize"/> kernel.
/// </summary>
internal sealed class QuantizeLinearOperator : Operator
{
    private readonly long _axis;
    private readonly long _blockSize;
    private readonly DataType _outputType;
    private readonly DataType _precision;

    public QuantizeLinearOperator(Node node) : base(node)
    {
        _axis = Attributes.Int("axis", 1);
        _blockSize = Attributes.Int("block_size", 0);
        long outputType = Attributes.Int("output_dtype", 0);
        long precision = Attributes.Int("precision", 0);
        // saturate only changes float8 results, which Squash does not produce.
        long saturate = Attributes.Int("saturate", 1);
        int opset = node.OpsetVersion;
        RequireOpset(node, "axis", 13, opset);
        RequireOpset(node, "saturate", 19, opset);
        RequireOpset(node, "block_size", 21, opset);
        RequireOpset(node, "output_dtype", 21, opset);
        RequireOpset(node, "precision", 23, opset);
        if (saturate is not (0 or 1)) throw Invalid($"saturate must be 0 or 1, not {saturate}.");
        _outputType = outputType == 0 ? DataType.Undefined : QuantizedType(outputType, "output_dtype");
        _precision = precision switch
        {
            0 => DataType.Undefined,
            (long)DataType.Float or (long)DataType.Double or (long)DataType.Float16 or (long)DataType.BFloat16 => (DataType)precision,
            _ => throw Invalid($"precision must be a floating-point type (1, 10, 11 or 16), not {precision}."),
        };
    }

    public override void InferOutputs(InferenceContext context)
    {
        var xType = context.InputType(0);
        if (xType is not (DataType.Float or DataType.Float16 or DataType.BFloat16 or DataType.Int32))
            throw LinearQuantization.UnsupportedType(Node, "x", xType);
        var scaleType = context.InputType(1);
        if (scaleType is not (DataType.Float or DataType.Float16 or DataType.BFloat16 or DataType.Int32))
            throw LinearQuantization.UnsupportedType(Node, "y_scale", scaleType);
        var type = _outputType == DataType.Undefined ? DataType.UInt8 : _outputType;
        if (context.HasInput(2))
        {
            var zeroType = context.InputType(2);
            if (!LinearQuantization.IsQuantized(zeroType)) throw LinearQuantization.UnsupportedType(Node, "y_zero_point", zeroType);
            if (_outputType != DataType.Undefined && zeroType != _outputType)
                throw Invalid($"output_dtype is {DataTypes.Name(_outputType)} but y_zero_point is {DataTypes.Name(zeroType)}.");
            type = zeroType;
        }
        LinearQuantization.CheckShapes(context, _axis, _blockSize, Invalid);
        context.SetOutput(0, type, context.InputShape(0));
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var x = Required(inputs, 0);
        var scale = Required(inputs, 1);
        var zeroPoint = Optional(inputs, 2);
        var y = outputs[0];
        var layout = QuantizationLayout.Create(x.Shape, scale.Shape, _axis, _blockSize, m => Invalid(m));
        if (zeroPoint is not null && !Shapes.Equal(zeroPoint.Shape, scale.Shape))
            throw Invalid($"y_zero_point has shape {Shapes.Format(zeroPoint.Shape)} but y_scale has {Shapes.Format(scale.Shape)}.");
        var division = _precision != DataType.Undefined ? _precision : LinearQuantization.Promote(x.DataType, scale.DataType);
        var scales = LinearQuantization.ToDoubles(scale);
        var zeros = zeroPoint is null ? new double[scales.Length] : LinearQuantization.ToDoubles(zeroPoint);
        bool fast = x.DataType == DataType.Float && division == DataType.Float && layout.RunsShareScale
            && y.DataType is DataType.UInt8 or DataType.Int8;
        if (fast && scales.Length == 1 && y.DataType == DataType.UInt8)
            context.For(LinearQuantization.Chunks(x.ElementCount), new TensorBody(x, y, (float)scales[0], (byte)zeros[0]));
        else if (fast) context.For(layout.Outer * layout.Channels, new ByteBody(layout, x, y, scales, zeros), Grain(layout));
        else context.For(layout.Outer * layout.Channels, new GeneralBody(layout, x, y, scales, zeros, division), Grain(layout));
    }

    /// <summary>float to uint8 with one scale for the tensor, in chunks (one run of the whole tensor kept a second thread idle:
    /// det's input, 1.2 million values).</summary>
    private readonly struct TensorBody(Tensor x, Tensor y, float scale, byte zero) : IRangeBody
    {
        public void Invoke(int start, int end)
        {
            var (offset, length) = LinearQuantization.ChunkRange(start, end, x.ElementCount);
            Int8Quantize.Quantize(x.AsSpan<float>().Slice(offset, length), scale, zero, y.AsSpan<byte>().Slice(offset, length));
        }
    }

    /// <summary>Enough runs per task that each holds some thousands of elements.</summary>
    private static int Grain(QuantizationLayout layout) => Math.Max(1, 16384 / Math.Max(1, layout.Inner));

    private DataType QuantizedType(long code, string name)
    {
        var type = (DataType)code;
        if (code is > 0 and < 256 && LinearQuantization.IsQuantized(type)) return type;
        throw new SquashException(ErrorCodes.UnsupportedDataType,
            $"{Node.Describe()}: {name} {code} is not supported (uint8, int8, uint16 and int16 are; float8, int4 and int2 have no Squash tensor type).", Node.Name);
    }

    internal static void RequireOpset(Node node, string attribute, int since, int opset)
    {
        if (opset is > 0 && opset < since && node.Attributes.ContainsKey(attribute))
            throw new SquashException(ErrorCodes.InvalidModel,
                $"{node.Describe()}: attribute '{attribute}' exists from opset {since}; the model imports opset {opset}.", node.Name);
    }

    /// <summary>float to uint8 or int8 with one scale per run: the vectorized kernel (int8 through uint8 with the zero
    /// point moved by 128, then the sign bit flipped, which is exact).</summary>
    private readonly struct ByteBody(QuantizationLayout layout, Tensor x, Tensor y, double[] scales, double[] zeros) : IRangeBody
    {
        public void Invoke(int start, int end)
        {
            var source = x.AsSpan<float>();
            var target = y.Bytes;
            bool signed = y.DataType == DataType.Int8;
            for (int run = start; run < end; run++)
            {
                int index = layout.ScaleIndex(run / layout.Channels, run % layout.Channels, 0);
                var row = target.Slice(run * layout.Inner, layout.Inner);
                byte zero = (byte)(zeros[index] + (signed ? 128 : 0));
                Int8Quantize.Quantize(source.Slice(run * layout.Inner, layout.Inner), (float)scales[index], zero, row);
                if (signed) TensorPrimitives.Xor(row, (byte)0x80, row);
            }
        }
    }

    /// <summary>Any supported type pair, element by element.</summary>
    private readonly struct GeneralBody(QuantizationLayout layout, Tensor x, Tensor y, double[] scales, double[] zeros, DataType division) : IRangeBody
    {
        public void Invoke(int start, int end)
        {
            var (min, max) = LinearQuantization.Range(y.DataType);
            for (int run = start; run < end; run++)
            {
                int outer = run / layout.Channels, channel = run % layout.Channels;
                for (int j = 0; j < layout.Inner; j++)
                {
                    int i = run * layout.Inner + j, s = layout.ScaleIndex(outer, channel, j);
                    double q = Math.Round(LinearQuantization.Divide(x.GetAsDouble(i), scales[s], division), MidpointRounding.ToEven);
                    // NaN compares false everywhere: it takes the lowest value, as the kernel's does.
                    double value = q + zeros[s];
                    LinearQuantization.Store(y, i, value >= min ? Math.Min(value, max) : min);
                }
            }
        }
    }
}

/// <summary>
/// DequantizeLinear (opsets 10-25): <c>y = (x - x_zero_point) * x_scale</c> per tensor, per axis or blocked, from uint8,
/// int8, uint16, int16 or int32, computed in float (as the ONNX reference implementation does) and rounded to the output
/// type: <c>output_dtype</c>, or the scale's type. The uint8 and int8 to float case runs the vectorized
/// <see cref="Int8Quantize"/> kernel.
/// </summary>
internal sealed class DequantizeLinearOperator : Operator
{
    private readonly long _axis;
    private readonly long _blockSize;
    private readonly DataType _outputType;

    public DequantizeLinearOperator(Node node) : base(node)
    {
        _axis = Attributes.Int("axis", 1);
        _blockSize = Attributes.Int("block_size", 0);
        long outputType = Attributes.Int("output_dtype", 0);
        int opset = node.OpsetVersion;
        QuantizeLinearOperator.RequireOpset(node, "axis", 13, opset);
        QuantizeLinearOperator.RequireOpset(node, "block_size", 21, opset);
        QuantizeLinearOperator.RequireOpset(node, "output_dtype", 23, opset);
        _outputType = outputType switch
        {
            0 => DataType.Undefined,
            (long)DataType.Float or (long)DataType.Float16 or (long)DataType.BFloat16 => (DataType)outputType,
            _ => throw Invalid($"output_dtype must be float (1), float16 (10) or bfloat16 (16), not {outputType}."),
        };
    }

    public override void InferOutputs(InferenceContext context)
    {
        var xType = context.InputType(0);
        if (!LinearQuantization.IsQuantized(xType) && xType != DataType.Int32) throw LinearQuantization.UnsupportedType(Node, "x", xType);
        var scaleType = context.InputType(1);
        if (scaleType is not (DataType.Float or DataType.Float16 or DataType.BFloat16))
            throw LinearQuantization.UnsupportedType(Node, "x_scale", scaleType);
        if (context.HasInput(2) && context.InputType(2) != xType)
            throw Invalid($"x_zero_point is {DataTypes.Name(context.InputType(2))} but x is {DataTypes.Name(xType)}; they must match.");
        LinearQuantization.CheckShapes(context, _axis, _blockSize, Invalid);
        context.SetOutput(0, _outputType == DataType.Undefined ? scaleType : _outputType, context.InputShape(0));
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var x = Required(inputs, 0);
        var scale = Required(inputs, 1);
        var zeroPoint = Optional(inputs, 2);
        var y = outputs[0];
        var layout = QuantizationLayout.Create(x.Shape, scale.Shape, _axis, _blockSize, m => Invalid(m));
        if (zeroPoint is not null && !Shapes.Equal(zeroPoint.Shape, scale.Shape))
            throw Invalid($"x_zero_point has shape {Shapes.Format(zeroPoint.Shape)} but x_scale has {Shapes.Format(scale.Shape)}.");
        var scales = LinearQuantization.ToDoubles(scale);
        var zeros = zeroPoint is null ? new double[scales.Length] : LinearQuantization.ToDoubles(zeroPoint);
        if (x.DataType == DataType.Int32)
            foreach (double z in zeros)
                if (z != 0) throw Invalid("an int32 input has no zero point (it must be 0).");
        int grain = Math.Max(1, 16384 / Math.Max(1, layout.Inner));
        bool fast = x.DataType is DataType.UInt8 or DataType.Int8 && y.DataType == DataType.Float && layout.RunsShareScale;
        if (fast && scales.Length == 1 && x.DataType == DataType.UInt8)
            context.For(LinearQuantization.Chunks(x.ElementCount), new TensorBody(x, y, (float)scales[0], (byte)zeros[0]));
        else if (fast) context.For(layout.Outer * layout.Channels, new ByteBody(layout, x, y, scales, zeros), grain);
        else context.For(layout.Outer * layout.Channels, new GeneralBody(layout, x, y, scales, zeros), grain);
    }

    /// <summary>uint8 to float with one scale for the tensor, in chunks (one run of the whole tensor kept a second thread
    /// idle: det's 2.5 million pyramid values took as long on two threads as on one).</summary>
    private readonly struct TensorBody(Tensor x, Tensor y, float scale, byte zero) : IRangeBody
    {
        public void Invoke(int start, int end)
        {
            var (offset, length) = LinearQuantization.ChunkRange(start, end, x.ElementCount);
            Int8Quantize.Dequantize(x.AsSpan<byte>().Slice(offset, length), scale, zero, y.AsSpan<float>().Slice(offset, length));
        }
    }

    private readonly struct ByteBody(QuantizationLayout layout, Tensor x, Tensor y, double[] scales, double[] zeros) : IRangeBody
    {
        public void Invoke(int start, int end)
        {
            var target = y.AsSpan<float>();
            for (int run = start; run < end; run++)
            {
                int index = layout.ScaleIndex(run / layout.Channels, run % layout.Channels, 0);
                var row = target.Slice(run * layout.Inner, layout.Inner);
                float scale = (float)scales[index];
                if (x.DataType == DataType.UInt8)
                    Int8Quantize.Dequantize(x.AsSpan<byte>().Slice(run * layout.Inner, layout.Inner), scale, (byte)zeros[index], row);
                else
                    Int8Quantize.Dequantize(x.AsSpan<sbyte>().Slice(run * layout.Inner, layout.Inner), scale, (sbyte)zeros[index], row);
            }
        }
    }

    private readonly struct GeneralBody(QuantizationLayout layout, Tensor x, Tensor y, double[] scales, double[] zeros) : IRangeBody
    {
        public void Invoke(int start, int end)
        {
            for (int run = start; run < end; run++)
            {
                int outer = run / layout.Channels, channel = run % layout.Channels;
                for (int j = 0; j < layout.Inner; j++)
                {
                    int i = run * layout.Inner + j, s = layout.ScaleIndex(outer, channel, j);
                    float value = ((float)x.GetAsDouble(i) - (float)zeros[s]) * (float)scales[s];
                    switch (y.DataType)
                    {
                        case DataType.Float: y.AsSpan<float>()[i] = value; break;
                        case DataType.Float16: y.AsSpan<Half>()[i] = (Half)value; break;
                        default: y.AsSpan<BFloat16>()[i] = (BFloat16)value; break;
                    }
                }
            }
        }
    }
}

/// <summary>Helpers shared by QuantizeLinear and DequantizeLinear.</summary>
internal static class LinearQuantization
{
    /// <summary>Elements per chunk when a tensor with one scale is split between threads.</summary>
    private const int ChunkElements = 16384;

    /// <summary>Chunks of <see cref="ChunkElements"/> in <paramref name="count"/> elements.</summary>
    public static int Chunks(int count) => (count + ChunkElements - 1) / ChunkElements;

    /// <summary>The elements of chunks [<paramref name="start"/>, <paramref name="end"/>).</summary>
    public static (int Offset, int Length) ChunkRange(int start, int end, int count)
    {
        int offset = start * ChunkElements;
        return (offset, Math.Min(count, end * ChunkElements) - offset);
    }

    /// <summary>The integer types Squash quantizes to.</summary>
    public static bool IsQuantized(DataType type) => type is DataType.UInt8 or DataType.Int8 or DataType.UInt16 or DataType.Int16;

    /// <summary>The saturation range of a quantized type.</summary>
    public static (double Min, double Max) Range(DataType type) => type switch
    {
        DataType.UInt8 => (0, 255),
        DataType.Int8 => (-128, 127),
        DataType.UInt16 => (0, 65535),
        _ => (-32768, 32767),
    };

    public static SquashException UnsupportedType(Node node, string input, DataType type) =>
        new(ErrorCodes.UnsupportedDataType,
            $"{node.Describe()}: {input} of type {DataTypes.Name(type)} is not supported (float8, int4 and int2 have no Squash tensor type).", node.Name);

    /// <summary>Checks the scale and zero point against the input where the shapes are known.</summary>
    public static void CheckShapes(InferenceContext context, long axis, long blockSize, Func<string, SquashException> invalid)
    {
        var x = context.InputShape(0);
        var scale = context.InputShape(1);
        if (context.HasInput(2) && context.InputShape(2) is { } zero && scale is not null && !Shapes.Equal(zero, scale))
            throw invalid($"the zero point has shape {Shapes.Format(zero)} but the scale has {Shapes.Format(scale)}.");
        if (x is not null && scale is not null && Shapes.IsKnown(x) && Shapes.IsKnown(scale))
            QuantizationLayout.Create(x, scale, axis, blockSize, m => invalid(m));
    }

    /// <summary>The type NumPy divides <paramref name="x"/> by <paramref name="scale"/> in (the reference implementation's
    /// <c>x / y_scale</c>): float for float with float or a 16-bit float, the 16-bit type for two of the same, double
    /// whenever an int32 is involved.</summary>
    public static DataType Promote(DataType x, DataType scale)
    {
        if (x == DataType.Int32 || scale == DataType.Int32) return DataType.Double;
        return x == scale ? x : DataType.Float;
    }

    /// <summary><c>x / scale</c> rounded as it is in <paramref name="type"/>.</summary>
    public static double Divide(double x, double scale, DataType type) => type switch
    {
        DataType.Double => x / scale,
        // A float quotient of two 16-bit floats, rounded once more, is the correctly rounded 16-bit quotient (the
        // float has more than twice the significand bits plus two).
        DataType.Float16 => (double)(Half)((float)(Half)x / (float)(Half)scale),
        DataType.BFloat16 => (float)(BFloat16)((float)(BFloat16)(float)x / (float)(BFloat16)(float)scale),
        _ => (float)x / (float)scale,
    };

    public static double[] ToDoubles(Tensor t)
    {
        var result = new double[t.ElementCount];
        for (int i = 0; i < result.Length; i++) result[i] = t.GetAsDouble(i);
        return result;
    }

    /// <summary>Stores an in-range integer value.</summary>
    public static void Store(Tensor y, int index, double value)
    {
        switch (y.DataType)
        {
            case DataType.UInt8: y.AsSpan<byte>()[index] = (byte)value; break;
            case DataType.Int8: y.AsSpan<sbyte>()[index] = (sbyte)value; break;
            case DataType.UInt16: y.AsSpan<ushort>()[index] = (ushort)value; break;
            default: y.AsSpan<short>()[index] = (short)value; break;
        }
    }
}
