using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Squash.Runtime.Kernels;

/// <summary>What an int8 GEMM or convolution writes.</summary>
public enum Int8OutputKind
{
    /// <summary>uint8 activations: requantized with a per-channel multiplier, zero point and clamp range.</summary>
    Requantize,
    /// <summary>fp32: dequantized with a per-channel scale, plus an fp32 bias (the border of an int8 region).</summary>
    Dequantize,
    /// <summary>int32: the exact sums (ConvInteger and MatMulInteger).</summary>
    Integer,
}

/// <summary>
/// The per-output-channel arithmetic fused into the store of an int8 GEMM or convolution, built once per layer.
/// With activations x (uint8, zero point zx) and weights w (int8, symmetric), every output starts from the exact
/// int32 sum <c>acc = sum over k of (x - zx) * w + bias</c>, which the kernels form as the raw product
/// <c>sum x * w</c> plus a per-channel offset <c>bias - zx * sum w</c> precomputed here. Then:
/// <list type="bullet">
/// <item><see cref="Int8OutputKind.Requantize"/>: <c>y = clamp(roundHalfEven((float)acc * multiplier[c]) + zy, min, max)</c>
/// as uint8, where <c>multiplier[c] = inputScale * weightScale[c] / outputScale</c> (<see cref="Multiplier"/>). The
/// product is one fp32 multiplication of the int32 converted to fp32 (rounded to nearest even above 2^24).</item>
/// <item><see cref="Int8OutputKind.Dequantize"/>: <c>y = clamp(fma((float)acc, scale[c], bias[c]), min, max)</c> as fp32,
/// where <c>scale[c] = inputScale * weightScale[c]</c> and acc has no integer bias.</item>
/// <item><see cref="Int8OutputKind.Integer"/>: <c>y = acc</c> as int32.</item>
/// </list>
/// acc is exact (int32 arithmetic wraps, but the true value is within int32) while the depth K is at most
/// <see cref="MaxDepth"/>.
/// </summary>
/// <remarks>Immutable; safe to share between threads. Arrays are pinned so that kernels hold plain pointers.</remarks>
public sealed unsafe class Int8Epilogue
{
    /// <summary>The deepest product whose exact sum is guaranteed to fit int32: |x - zx| &lt;= 255 and |w| &lt;= 128, so
    /// |acc - bias| &lt;= K * 32640; the bias must keep the total within int32 too.</summary>
    public const int MaxDepth = 65_793;

    private readonly int[] _offsets;
    private readonly float[] _scales;
    private readonly float[] _bias;

    private Int8Epilogue(Int8OutputKind kind, int channels)
    {
        Kind = kind;
        Channels = channels;
        _offsets = GC.AllocateArray<int>(channels, pinned: true);
        _scales = GC.AllocateArray<float>(kind == Int8OutputKind.Integer ? 0 : channels, pinned: true);
        _bias = GC.AllocateArray<float>(kind == Int8OutputKind.Dequantize ? channels : 0, pinned: true);
    }

    /// <summary>What the epilogue writes.</summary>
    public Int8OutputKind Kind { get; }

    /// <summary>Output channels (rows of C for weights on the left, columns for weights on the right).</summary>
    public int Channels { get; }

    /// <summary>The uint8 zero point of the input activations (a convolution pads with it).</summary>
    public byte InputZeroPoint { get; private set; }

    /// <summary>The uint8 zero point of the output (<see cref="Int8OutputKind.Requantize"/>).</summary>
    public byte OutputZeroPoint { get; private init; }

    /// <summary>The lowest uint8 output (the zero point for a fused ReLU).</summary>
    public byte Min { get; private init; }

    /// <summary>The highest uint8 output.</summary>
    public byte Max { get; private init; }

    /// <summary>The lowest fp32 output (<see cref="Int8OutputKind.Dequantize"/>).</summary>
    public float FloatMin { get; private init; } = float.NegativeInfinity;

    /// <summary>The highest fp32 output (<see cref="Int8OutputKind.Dequantize"/>).</summary>
    public float FloatMax { get; private init; } = float.PositiveInfinity;

    /// <summary>Per channel: <c>bias - zx * sum over k of w</c>.</summary>
    internal ReadOnlySpan<int> Offsets => _offsets;

    /// <summary>Per channel: the requantization multipliers or the dequantization scales.</summary>
    internal ReadOnlySpan<float> Scales => _scales;

    /// <summary>Per channel: the fp32 bias of <see cref="Int8OutputKind.Dequantize"/>.</summary>
    internal ReadOnlySpan<float> FloatBias => _bias;

    internal int* OffsetPointer => (int*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_offsets));
    internal float* ScalePointer => (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_scales));
    internal float* BiasPointer => (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_bias));

    /// <summary>The requantization multiplier <c>inputScale * weightScale / outputScale</c>, evaluated in double and
    /// rounded to fp32 once.</summary>
    public static float Multiplier(float inputScale, float weightScale, float outputScale) =>
        (float)((double)inputScale * weightScale / outputScale);

    /// <summary>
    /// Requantization to uint8. <paramref name="weightSums"/> are the per-channel sums of the weights
    /// (<see cref="Int8PackedWeights.WeightSums"/>); <paramref name="bias"/> is int32 per channel (quantized with scale
    /// inputScale * weightScale[c] and zero point 0) or empty; <paramref name="multipliers"/> has one value per channel or
    /// a single one for all. A fused ReLU is <paramref name="min"/> = <paramref name="outputZeroPoint"/>; a fused Clip
    /// is its bounds quantized to the output scale.
    /// </summary>
    public static Int8Epilogue Requantize(ReadOnlySpan<int> weightSums, byte inputZeroPoint, ReadOnlySpan<int> bias,
        ReadOnlySpan<float> multipliers, byte outputZeroPoint, byte min = 0, byte max = 255)
    {
        if (min > max) throw new ArgumentException($"The output range [{min}, {max}] is empty.", nameof(min));
        var epilogue = new Int8Epilogue(Int8OutputKind.Requantize, weightSums.Length)
        {
            OutputZeroPoint = outputZeroPoint,
            Min = min,
            Max = max,
        };
        epilogue.FillOffsets(weightSums, inputZeroPoint, bias);
        epilogue.FillPerChannel(epilogue._scales, multipliers, nameof(multipliers));
        return epilogue;
    }

    /// <summary>
    /// Dequantization to fp32: <paramref name="scales"/> are <c>inputScale * weightScale[c]</c> (one per channel or a
    /// single one), <paramref name="bias"/> is fp32 per channel or empty, and the result is clamped to
    /// [<paramref name="min"/>, <paramref name="max"/>] (a fused ReLU or Clip).
    /// </summary>
    public static Int8Epilogue Dequantize(ReadOnlySpan<int> weightSums, byte inputZeroPoint, ReadOnlySpan<float> scales,
        ReadOnlySpan<float> bias, float min = float.NegativeInfinity, float max = float.PositiveInfinity)
    {
        if (!(min <= max)) throw new ArgumentException($"The output range [{min}, {max}] is empty.", nameof(min));
        var epilogue = new Int8Epilogue(Int8OutputKind.Dequantize, weightSums.Length) { FloatMin = min, FloatMax = max };
        epilogue.FillOffsets(weightSums, inputZeroPoint, []);
        epilogue.FillPerChannel(epilogue._scales, scales, nameof(scales));
        if (!bias.IsEmpty) epilogue.FillPerChannel(epilogue._bias, bias, nameof(bias));
        return epilogue;
    }

    /// <summary>The exact int32 sums <c>sum (x - zx) * w + bias</c>; <paramref name="bias"/> is per channel or empty.</summary>
    public static Int8Epilogue Integer(ReadOnlySpan<int> weightSums, byte inputZeroPoint, ReadOnlySpan<int> bias)
    {
        var epilogue = new Int8Epilogue(Int8OutputKind.Integer, weightSums.Length);
        epilogue.FillOffsets(weightSums, inputZeroPoint, bias);
        return epilogue;
    }

    private void FillOffsets(ReadOnlySpan<int> weightSums, byte inputZeroPoint, ReadOnlySpan<int> bias)
    {
        if (!bias.IsEmpty && bias.Length != Channels)
            throw new ArgumentException($"The bias has {bias.Length} values for {Channels} channels.", nameof(bias));
        InputZeroPoint = inputZeroPoint;
        for (int c = 0; c < Channels; c++)
            _offsets[c] = unchecked((bias.IsEmpty ? 0 : bias[c]) - inputZeroPoint * weightSums[c]);
    }

    private void FillPerChannel(float[] target, ReadOnlySpan<float> values, string name)
    {
        if (values.Length == 1) Array.Fill(target, values[0]);
        else if (values.Length == Channels) values.CopyTo(target);
        else throw new ArgumentException($"{values.Length} values for {Channels} channels (give one per channel, or one for all).", name);
    }
}

/// <summary>
/// Where the epilogue of one int8 GEMM call writes: the output matrix (row stride <c>Ld</c> elements) and how its rows
/// and columns map to the epilogue's channels. The epilogue's parameters are copied in as plain pointers and values,
/// so that the micro-kernel can apply them to its registers without calls.
/// </summary>
internal readonly unsafe struct Int8Store
{
    private readonly void* _output;
    private readonly nint _ld;
    private readonly bool _channelsOnRows;
    // The per-channel arrays, advanced to the channel of row (or column) 0.
    private readonly int* _offsets;
    private readonly float* _scales;
    private readonly float* _bias;
    private readonly byte _zeroPoint, _min, _max;
    private readonly float _floatMin, _floatMax;
    // The requantization's clamp bounds relative to the zero point, computed once: per tile row they were two int
    // subtractions and conversions the JIT cannot hoist out of a caller's loop through the store's reference.
    private readonly float _low, _high;

    /// <param name="epilogue">The arithmetic (its arrays are pinned).</param>
    /// <param name="output">byte*, float* or int* by <see cref="Int8Epilogue.Kind"/>.</param>
    /// <param name="ld">Row stride of the output in elements.</param>
    /// <param name="channelBase">The channel of row (or column) 0 (a group's first channel).</param>
    /// <param name="channelsOnRows">True for weights on the left (channel = row), false on the right (channel = column).</param>
    public Int8Store(Int8Epilogue epilogue, void* output, nint ld, int channelBase, bool channelsOnRows)
    {
        Kind = epilogue.Kind;
        _output = output;
        _ld = ld;
        _channelsOnRows = channelsOnRows;
        _offsets = epilogue.OffsetPointer + channelBase;
        _scales = epilogue.Kind == Int8OutputKind.Integer ? null : epilogue.ScalePointer + channelBase;
        _bias = epilogue.FloatBias.IsEmpty ? null : epilogue.BiasPointer + channelBase;
        _zeroPoint = epilogue.OutputZeroPoint;
        _min = epilogue.Min;
        _max = epilogue.Max;
        _floatMin = epilogue.FloatMin;
        _floatMax = epilogue.FloatMax;
        _low = _min - _zeroPoint;
        _high = _max - _zeroPoint;
    }

    /// <summary>What the epilogue writes.</summary>
    public Int8OutputKind Kind { get; }

    /// <summary>Writes C[row, col .. col + count) from the raw sums <c>sum x * w</c> at <paramref name="sums"/>.</summary>
    /// <remarks>The widest lanes that fit the row are used: every width computes the same values, so a short row
    /// (a GEMM edge tile, a small feature map) runs on narrower vectors instead of the scalar tail.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void StoreRow(int* sums, int count, int row, int col)
    {
        if (Quantize512.IsAccelerated && count >= Quantize512.Count) StoreRow<Vector512<int>, Vector512<float>, Quantize512>(sums, count, row, col);
        else if (Quantize256.IsAccelerated && count >= Quantize256.Count) StoreRow<Vector256<int>, Vector256<float>, Quantize256>(sums, count, row, col);
        else StoreRow<Vector128<int>, Vector128<float>, Quantize128>(sums, count, row, col);
    }

    /// <summary>One row of sums through <paramref name="epilogue"/> (channel 0 for the whole row) with lanes of one width,
    /// for tests of every width.</summary>
    internal static void StoreRow<TInt, TFloat, TLanes, TOutput>(Int8Epilogue epilogue, ReadOnlySpan<int> sums, Span<TOutput> output)
        where TInt : struct
        where TFloat : struct
        where TLanes : struct, IQuantizeLanes<TInt, TFloat>
        where TOutput : unmanaged
    {
        Int8Gemm.CheckEpilogue<TOutput>(epilogue, 1, 0);
        Int8Quantize.CheckLengths(sums.Length, output.Length);
        fixed (int* s = sums)
        fixed (TOutput* o = output)
            new Int8Store(epilogue, o, sums.Length, 0, channelsOnRows: true).StoreRow<TInt, TFloat, TLanes>(s, sums.Length, 0, 0);
    }

    /// <summary><see cref="StoreRow(int*, int, int, int)"/> with lanes of one width.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal void StoreRow<TInt, TFloat, TLanes>(int* sums, int count, int row, int col)
        where TInt : struct
        where TFloat : struct
        where TLanes : struct, IQuantizeLanes<TInt, TFloat>
    {
        nint at = row * _ld + col;
        // Per-row channels use one set of parameters for the whole row (stride 0); per-column ones advance with it.
        int channel = _channelsOnRows ? row : col;
        int stride = _channelsOnRows ? 0 : 1;
        switch (Kind)
        {
            case Int8OutputKind.Requantize:
                Int8Rows.Requantize<TInt, TFloat, TLanes>(sums, count, _offsets + channel, _scales + channel, stride,
                    _zeroPoint, _min, _max, (byte*)_output + at);
                break;
            case Int8OutputKind.Dequantize:
                Int8Rows.Dequantize<TInt, TFloat, TLanes>(sums, count, _offsets + channel, _scales + channel,
                    _bias == null ? null : _bias + channel, stride, _floatMin, _floatMax, (float*)_output + at);
                break;
            default:
                Int8Rows.Offset<TInt, TFloat, TLanes>(sums, count, _offsets + channel, stride, (int*)_output + at);
                break;
        }
    }

    /// <summary>Requantizes C[row, col .. col + 2 * lanes) from two vectors of raw sums (a row of a full tile, in
    /// registers).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Requantize<TInt, TFloat, TLanes>(TInt sums0, TInt sums1, int row, int col)
        where TInt : struct
        where TFloat : struct
        where TLanes : struct, IQuantizeLanes<TInt, TFloat>
    {
        TInt offset0, offset1;
        TFloat multiplier0, multiplier1;
        if (_channelsOnRows)
        {
            offset0 = offset1 = TLanes.SplatInt(_offsets[row]);
            multiplier0 = multiplier1 = TLanes.SplatFloat(_scales[row]);
        }
        else
        {
            offset0 = TLanes.LoadInt(_offsets + col);
            offset1 = TLanes.LoadInt(_offsets + col + TLanes.Count);
            multiplier0 = TLanes.LoadFloat(_scales + col);
            multiplier1 = TLanes.LoadFloat(_scales + col + TLanes.Count);
        }
        TFloat low = TLanes.SplatFloat(_low), high = TLanes.SplatFloat(_high);
        TInt zero = TLanes.SplatInt(_zeroPoint);
        byte* output = (byte*)_output + row * _ld + col;
        TFloat scaled0 = TLanes.Multiply(TLanes.ToFloat(TLanes.Add(sums0, offset0)), multiplier0);
        TFloat scaled1 = TLanes.Multiply(TLanes.ToFloat(TLanes.Add(sums1, offset1)), multiplier1);
        scaled0 = StoreBounds.Apply<TInt, TFloat, TLanes>(scaled0, low, high, _min == 0);
        scaled1 = StoreBounds.Apply<TInt, TFloat, TLanes>(scaled1, low, high, _min == 0);
        TLanes.StoreBytes(TLanes.Add(TLanes.RoundToInt(scaled0), zero), TLanes.Add(TLanes.RoundToInt(scaled1), zero), output);
    }

    /// <summary>Dequantizes C[row, col .. col + 2 * lanes) from two vectors of raw sums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Dequantize<TInt, TFloat, TLanes>(TInt sums0, TInt sums1, int row, int col)
        where TInt : struct
        where TFloat : struct
        where TLanes : struct, IQuantizeLanes<TInt, TFloat>
    {
        TInt offset0, offset1;
        TFloat scale0, scale1, add0, add1;
        if (_channelsOnRows)
        {
            offset0 = offset1 = TLanes.SplatInt(_offsets[row]);
            scale0 = scale1 = TLanes.SplatFloat(_scales[row]);
            add0 = add1 = TLanes.SplatFloat(_bias == null ? 0 : _bias[row]);
        }
        else
        {
            offset0 = TLanes.LoadInt(_offsets + col);
            offset1 = TLanes.LoadInt(_offsets + col + TLanes.Count);
            scale0 = TLanes.LoadFloat(_scales + col);
            scale1 = TLanes.LoadFloat(_scales + col + TLanes.Count);
            add0 = _bias == null ? TLanes.SplatFloat(0) : TLanes.LoadFloat(_bias + col);
            add1 = _bias == null ? TLanes.SplatFloat(0) : TLanes.LoadFloat(_bias + col + TLanes.Count);
        }
        TFloat low = TLanes.SplatFloat(_floatMin), high = TLanes.SplatFloat(_floatMax);
        float* output = (float*)_output + row * _ld + col;
        TLanes.StoreFloat(TLanes.Clamp(TLanes.MultiplyAdd(TLanes.ToFloat(TLanes.Add(sums0, offset0)), scale0, add0), low, high), output);
        TLanes.StoreFloat(TLanes.Clamp(TLanes.MultiplyAdd(TLanes.ToFloat(TLanes.Add(sums1, offset1)), scale1, add1), low, high),
            output + TLanes.Count);
    }

    /// <summary>Writes the exact int32 sums C[row, col .. col + 2 * lanes) from two vectors of raw sums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Offset<TInt, TFloat, TLanes>(TInt sums0, TInt sums1, int row, int col)
        where TInt : struct
        where TFloat : struct
        where TLanes : struct, IQuantizeLanes<TInt, TFloat>
    {
        TInt offset0 = _channelsOnRows ? TLanes.SplatInt(_offsets[row]) : TLanes.LoadInt(_offsets + col);
        TInt offset1 = _channelsOnRows ? offset0 : TLanes.LoadInt(_offsets + col + TLanes.Count);
        int* output = (int*)_output + row * _ld + col;
        TLanes.StoreInt(TLanes.Add(sums0, offset0), output);
        TLanes.StoreInt(TLanes.Add(sums1, offset1), output + TLanes.Count);
    }
}

/// <summary>Where a micro-kernel puts a finished tile: a type argument, so that each kernel variant contains only its
/// own epilogue (one variant with all of them exceeds the JIT's inlining budget and spills the accumulators).</summary>
internal interface IInt8TileOutput;

/// <summary>Raw sums into a tile buffer (partial tiles, finished by <see cref="Int8Store.StoreRow(int*, int, int, int)"/>).</summary>
internal struct Int8ToTile : IInt8TileOutput;

/// <summary>Requantized uint8 straight from the registers.</summary>
internal struct Int8ToRequantized : IInt8TileOutput;

/// <summary>Dequantized fp32 straight from the registers.</summary>
internal struct Int8ToDequantized : IInt8TileOutput;

/// <summary>Exact int32 straight from the registers.</summary>
internal struct Int8ToInteger : IInt8TileOutput;

/// <summary>The epilogue loops over one row of sums. Per-channel parameters advance by <c>stride</c> (0 or 1) per
/// element, so one loop serves channels on rows and on columns. A row of at least one vector ends with a vector that
/// overlaps the previous one (its elements are recomputed to the same values) instead of a scalar tail.</summary>
internal static unsafe class Int8Rows
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Requantize<TInt, TFloat, TLanes>(int* sums, int count, int* offsets, float* multipliers, int stride,
        byte zeroPoint, byte min, byte max, byte* output)
        where TInt : struct
        where TFloat : struct
        where TLanes : struct, IQuantizeLanes<TInt, TFloat>
    {
        // Clamping before rounding to the integer bounds (min - zy, max - zy) equals saturating after it, and keeps the
        // conversion in range.
        float low = min - zeroPoint, high = max - zeroPoint;
        int j = 0;
        if (TLanes.IsAccelerated && count >= TLanes.Count)
        {
            TFloat lowV = TLanes.SplatFloat(low), highV = TLanes.SplatFloat(high);
            TInt zero = TLanes.SplatInt(zeroPoint);
            TInt offset = TLanes.SplatInt(offsets[0]);
            TFloat multiplier = TLanes.SplatFloat(multipliers[0]);
            for (int last = count - TLanes.Count; ; j = Math.Min(j + TLanes.Count, last))
            {
                if (stride != 0)
                {
                    offset = TLanes.LoadInt(offsets + j);
                    multiplier = TLanes.LoadFloat(multipliers + j);
                }
                TFloat scaled = TLanes.Multiply(TLanes.ToFloat(TLanes.Add(TLanes.LoadInt(sums + j), offset)), multiplier);
                TLanes.StoreBytes(TLanes.Add(TLanes.RoundToInt(TLanes.Clamp(scaled, lowV, highV)), zero), output + j);
                if (j == last) break;
            }
            j = count;
        }
        for (; j < count; j++)
        {
            float scaled = (float)unchecked(sums[j] + offsets[j * stride]) * multipliers[j * stride];
            output[j] = (byte)(QuantizeScalar.RoundToInt(QuantizeScalar.Clamp(scaled, low, high)) + zeroPoint);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Dequantize<TInt, TFloat, TLanes>(int* sums, int count, int* offsets, float* scales, float* bias, int stride,
        float min, float max, float* output)
        where TInt : struct
        where TFloat : struct
        where TLanes : struct, IQuantizeLanes<TInt, TFloat>
    {
        int j = 0;
        if (TLanes.IsAccelerated && count >= TLanes.Count)
        {
            TFloat lowV = TLanes.SplatFloat(min), highV = TLanes.SplatFloat(max);
            TInt offset = TLanes.SplatInt(offsets[0]);
            TFloat scale = TLanes.SplatFloat(scales[0]);
            TFloat add = TLanes.SplatFloat(bias == null ? 0 : bias[0]);
            for (int last = count - TLanes.Count; ; j = Math.Min(j + TLanes.Count, last))
            {
                if (stride != 0)
                {
                    offset = TLanes.LoadInt(offsets + j);
                    scale = TLanes.LoadFloat(scales + j);
                    if (bias != null) add = TLanes.LoadFloat(bias + j);
                }
                TFloat value = TLanes.MultiplyAdd(TLanes.ToFloat(TLanes.Add(TLanes.LoadInt(sums + j), offset)), scale, add);
                TLanes.StoreFloat(TLanes.Clamp(value, lowV, highV), output + j);
                if (j == last) break;
            }
            j = count;
        }
        for (; j < count; j++)
        {
            float value = MathF.FusedMultiplyAdd((float)unchecked(sums[j] + offsets[j * stride]), scales[j * stride],
                bias == null ? 0 : bias[j * stride]);
            output[j] = QuantizeScalar.Clamp(value, min, max);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Offset<TInt, TFloat, TLanes>(int* sums, int count, int* offsets, int stride, int* output)
        where TInt : struct
        where TFloat : struct
        where TLanes : struct, IQuantizeLanes<TInt, TFloat>
    {
        int j = 0;
        if (TLanes.IsAccelerated && count >= TLanes.Count)
        {
            TInt offset = TLanes.SplatInt(offsets[0]);
            for (int last = count - TLanes.Count; ; j = Math.Min(j + TLanes.Count, last))
            {
                if (stride != 0) offset = TLanes.LoadInt(offsets + j);
                TLanes.StoreInt(TLanes.Add(TLanes.LoadInt(sums + j), offset), output + j);
                if (j == last) break;
            }
            j = count;
        }
        for (; j < count; j++) output[j] = unchecked(sums[j] + offsets[j * stride]);
    }
}
