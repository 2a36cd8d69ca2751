using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Squash.Runtime.Kernels;

/// <summary>
/// Int8 depthwise 2-D convolution (one input and one output channel per group), computed directly: with one channel per
/// group a GEMM would have a depth of only KH x KW and would spend its time packing.
/// </summary>
/// <remarks>
/// The arithmetic is fp32 on integer values, which is exact here and keeps one multiply-add per lane: products of a
/// uint8 and an int8 are at most 32640 in magnitude, so any sum of up to <see cref="MaxTaps"/> of them stays below
/// 2^24, where every integer is an fp32 value (and the GEMM's 7-bit weight limit does not apply). Each channel is first
/// converted into a padded fp32 plane (padding = the input zero point) whose rows are split into stride phases, so
/// every tap reads a contiguous run for a run of output columns; outputs are vectorized along the row, up to four rows
/// by two vectors at a time to keep eight FMA chains in flight. The exact sums then go through the same
/// <see cref="Int8Epilogue"/> as the GEMM.
/// </remarks>
public static unsafe class Int8Depthwise
{
    /// <summary>The most taps whose fp32 sums are exact (514 x 32640 &lt; 2^24).</summary>
    public const int MaxTaps = 514;

    /// <summary>True when <paramref name="g"/> is depthwise with at most <see cref="MaxTaps"/> taps.</summary>
    public static bool Applies(Int8ConvGeometry g) => g.IsDepthwise && g.Taps <= MaxTaps;

    /// <summary>
    /// <c>y = epilogue(depthwise conv(x, w))</c> for a geometry where <see cref="Applies"/>: x is uint8 [N, C, H, W], w is
    /// int8 [C, 1, KH, KW] (the full int8 range), y is [N, C, OH, OW] of the epilogue's output type. Where
    /// <see cref="Int8DepthwisePairs.Applies"/>, <see cref="Int8Conv"/> runs <see cref="Int8DepthwisePairs"/> on the packed
    /// pairs instead.
    /// </summary>
    internal static void Run(KernelContext context, Int8ConvGeometry g, byte* x, sbyte* w, Int8Epilogue epilogue, void* y)
    {
        if (!Applies(g)) throw new ArgumentException("The geometry is not a depthwise convolution the direct kernel runs.", nameof(g));
        if (Quantize512.IsAccelerated) Run<Vector512<int>, Vector512<float>, Quantize512>(context, g, x, w, epilogue, y);
        else if (Quantize256.IsAccelerated) Run<Vector256<int>, Vector256<float>, Quantize256>(context, g, x, w, epilogue, y);
        else Run<Vector128<int>, Vector128<float>, Quantize128>(context, g, x, w, epilogue, y);
    }

    /// <summary>The depthwise convolution of prepared weights with lanes of one width (tests run every width); the
    /// operands are checked as <see cref="Int8Conv.Run"/> checks them.</summary>
    internal static void Run<TInt, TFloat, TLanes, T>(KernelContext context, Int8ConvWeights weights, ReadOnlySpan<byte> x,
        Int8Epilogue epilogue, Span<T> y)
        where TInt : struct
        where TFloat : struct
        where TLanes : struct, IQuantizeLanes<TInt, TFloat>
        where T : unmanaged
    {
        Int8Conv.Check<T>(weights, x.Length, epilogue, y.Length);
        if (weights.Depthwise is null) throw new ArgumentException("The weights are not for the direct depthwise kernel.", nameof(weights));
        fixed (byte* px = x)
        fixed (sbyte* pw = weights.Depthwise)
        fixed (T* py = y) Run<TInt, TFloat, TLanes>(context, weights.Geometry, px, pw, epilogue, py);
    }

    private static void Run<TInt, TFloat, TLanes>(KernelContext context, Int8ConvGeometry g, byte* x, sbyte* w, Int8Epilogue epilogue, void* y)
        where TInt : struct
        where TFloat : struct
        where TLanes : struct, IQuantizeLanes<TInt, TFloat>
    {
        var body = new Body<TInt, TFloat, TLanes>(g, x, w, epilogue, y);
        int planes = g.Batch * g.InChannels;
        if (context.ThreadCount == 1) body.Invoke(0, planes);
        else context.For(planes, body);
    }

    private readonly struct Body<TInt, TFloat, TLanes> : IRangeBody
        where TInt : struct
        where TFloat : struct
        where TLanes : struct, IQuantizeLanes<TInt, TFloat>
    {
        private readonly Int8ConvGeometry _g;
        private readonly byte* _x;
        private readonly sbyte* _w;
        private readonly Int8Epilogue _epilogue;
        private readonly void* _y;
        /// <summary>Rows of the padded plane: only those some output reads.</summary>
        private readonly int _planeRows;
        /// <summary>Output columns rounded up to whole vectors (the sums buffer's row stride).</summary>
        private readonly int _paddedWidth;
        /// <summary>Floats per stride phase of a padded row, enough for whole vectors past the last output.</summary>
        private readonly int _phaseLength;

        public Body(Int8ConvGeometry g, byte* x, sbyte* w, Int8Epilogue epilogue, void* y)
        {
            _g = g;
            _x = x;
            _w = w;
            _epilogue = epilogue;
            _y = y;
            _planeRows = (g.OutHeight - 1) * g.StrideH + (g.KernelH - 1) * g.DilationH + 1;
            _paddedWidth = (g.OutWidth + TLanes.Count - 1) / TLanes.Count * TLanes.Count;
            // Whole vectors, so that splitting a row into phases has no tail.
            int phaseLength = _paddedWidth + (g.KernelW - 1) * g.DilationW / g.StrideW + 1;
            _phaseLength = (phaseLength + TLanes.Count - 1) / TLanes.Count * TLanes.Count;
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Invoke(int start, int end)
        {
            var g = _g;
            int rowStride = g.StrideW * _phaseLength;
            int taps = g.Taps;
            long planeFloats = (long)_planeRows * rowStride;
            long bytes = (planeFloats + rowStride) * sizeof(float) + 4L * _paddedWidth * sizeof(int);
            if (bytes > int.MaxValue) throw new ArgumentException("The image is too large for the depthwise kernel.");
            float* plane = (float*)Int8Scratch.Other((int)bytes);
            float* padded = plane + planeFloats;
            int* sums = (int*)(padded + rowStride);
            // Where tap (kh, kw) starts reading, relative to the output row's first plane row: column ow * SW + kw * DW of
            // a padded row is element ow + kw * DW / SW of phase (kw * DW) % SW.
            int* tapOffset = stackalloc int[taps];
            float* weights = stackalloc float[taps];
            for (int kh = 0; kh < g.KernelH; kh++)
                for (int kw = 0; kw < g.KernelW; kw++)
                    tapOffset[kh * g.KernelW + kw] = kh * g.DilationH * rowStride
                        + kw * g.DilationW % g.StrideW * _phaseLength + kw * g.DilationW / g.StrideW;
            int elementSize = _epilogue.Kind == Int8OutputKind.Requantize ? 1 : 4;
            nint rowStep = (nint)g.StrideH * rowStride;
            for (int index = start; index < end; index++)
            {
                int image = index / g.InChannels, channel = index % g.InChannels;
                Pad(_x + (nint)index * g.InputSize, plane, rowStride, padded);
                for (int t = 0; t < taps; t++) weights[t] = _w[channel * taps + t];
                // The output image as a [C, OH * OW] matrix: row = channel, so the channel's parameters apply.
                var store = new Int8Store(_epilogue, (byte*)_y + (nint)image * g.InChannels * g.OutputSize * elementSize,
                    g.OutputSize, 0, channelsOnRows: true);
                int oh = 0;
                for (; oh < g.OutHeight; oh += 4)
                {
                    float* rows = plane + oh * rowStep;
                    int count = Math.Min(4, g.OutHeight - oh);
                    switch (count)
                    {
                        case 4: Rows<Rows4>(rows, rowStep, weights, tapOffset, taps, sums); break;
                        case 3: Rows<Rows3>(rows, rowStep, weights, tapOffset, taps, sums); break;
                        case 2: Rows<Rows2>(rows, rowStep, weights, tapOffset, taps, sums); break;
                        default: Rows<Rows1>(rows, rowStep, weights, tapOffset, taps, sums); break;
                    }
                    for (int r = 0; r < count; r++)
                        store.StoreRow<TInt, TFloat, TLanes>(sums + r * _paddedWidth, g.OutWidth, channel, (oh + r) * g.OutWidth);
                }
            }
        }

        /// <summary>Converts one input channel into the padded, phase-split fp32 plane. A row is converted whole
        /// (into the plane for stride 1, else into <paramref name="padded"/> and then split into phases), so that every
        /// step runs on whole vectors.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Pad(byte* input, float* plane, int rowStride, float* padded)
        {
            var g = _g;
            float zero = _epilogue.InputZeroPoint;
            // Padded column c of a row is input column c - PL; the row has rowStride columns.
            int lo = Math.Min(rowStride, g.PadLeft), hi = Math.Min(rowStride, g.PadLeft + g.Width);
            for (int r = 0; r < _planeRows; r++)
            {
                float* row = plane + (nint)r * rowStride;
                int ih = r - g.PadTop;
                if ((uint)ih >= (uint)g.Height)
                {
                    Fill(row, rowStride, zero);
                    continue;
                }
                float* dst = g.StrideW == 1 ? row : padded;
                Fill(dst, lo, zero);
                Convert(input + (nint)ih * g.Width, hi - lo, dst + lo);
                Fill(dst + hi, rowStride - hi, zero);
                if (g.StrideW == 2) SplitTwo(padded, row, row + _phaseLength, _phaseLength);
                else if (g.StrideW > 2)
                    for (int phase = 0; phase < g.StrideW; phase++)
                        for (int t = 0; t < _phaseLength; t++) row[phase * _phaseLength + t] = padded[phase + t * g.StrideW];
            }
        }

        /// <summary>uint8 to fp32.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static void Convert(byte* source, int count, float* destination)
        {
            int i = 0;
            if (TLanes.IsAccelerated)
                for (; i + TLanes.Count <= count; i += TLanes.Count)
                    TLanes.StoreFloat(TLanes.ToFloat(TLanes.LoadBytes(source + i)), destination + i);
            for (; i < count; i++) destination[i] = source[i];
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Fill(float* destination, int count, float value)
        {
            int i = 0;
            if (TLanes.IsAccelerated)
            {
                TFloat v = TLanes.SplatFloat(value);
                for (; i + TLanes.Count <= count; i += TLanes.Count) TLanes.StoreFloat(v, destination + i);
            }
            for (; i < count; i++) destination[i] = value;
        }

        /// <summary><c>even[t] = source[2t]</c>, <c>odd[t] = source[2t + 1]</c> for t &lt; <paramref name="count"/>, a
        /// multiple of the lane count.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static void SplitTwo(float* source, float* even, float* odd, int count)
        {
            int t = 0;
            if (TLanes.Count == 16 && Avx512F.IsSupported)
            {
                var evens = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
                var odds = evens + Vector512<int>.One;
                for (; t < count; t += 16)
                {
                    var a = Vector512.Load(source + 2 * t);
                    var b = Vector512.Load(source + 2 * t + 16);
                    Avx512F.PermuteVar16x32x2(a, evens, b).Store(even + t);
                    Avx512F.PermuteVar16x32x2(a, odds, b).Store(odd + t);
                }
            }
            else if (TLanes.Count == 8 && Avx2.IsSupported)
            {
                for (; t < count; t += 8)
                {
                    // Shuffles pick even (odd) floats of a and b per 128-bit half; the permute orders the halves.
                    var a = Vector256.Load(source + 2 * t);
                    var b = Vector256.Load(source + 2 * t + 8);
                    Avx2.Permute4x64(Avx.Shuffle(a, b, 0b10_00_10_00).AsDouble(), 0b11_01_10_00).AsSingle().Store(even + t);
                    Avx2.Permute4x64(Avx.Shuffle(a, b, 0b11_01_11_01).AsDouble(), 0b11_01_10_00).AsSingle().Store(odd + t);
                }
            }
            for (; t < count; t++)
            {
                even[t] = source[2 * t];
                odd[t] = source[2 * t + 1];
            }
        }

        /// <summary>
        /// The exact sums of output rows [oh, oh + TRows) into <paramref name="sums"/> (row r at r * paddedWidth), from
        /// plane rows starting at <paramref name="rows"/> (output row r reads from <c>rows + r * rowStep</c>). Several
        /// rows at once give independent FMA chains even when rows are short.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Rows<TRows>(float* rows, nint rowStep, float* weights, int* tapOffset, int taps, int* sums)
            where TRows : struct, IRowCount
        {
            int count = TRows.Value;
            int lanes = TLanes.Count, stride = _paddedWidth;
            TFloat zero = TLanes.SplatFloat(0);
            int ow = 0;
            for (; ow + 2 * lanes <= _paddedWidth; ow += 2 * lanes)
            {
                TFloat a00 = zero, a01 = zero, a10 = zero, a11 = zero;
                TFloat a20 = zero, a21 = zero, a30 = zero, a31 = zero;
                for (int t = 0; t < taps; t++)
                {
                    TFloat weight = TLanes.SplatFloat(weights[t]);
                    float* p = rows + tapOffset[t] + ow;
                    a00 = TLanes.MultiplyAdd(TLanes.LoadFloat(p), weight, a00);
                    a01 = TLanes.MultiplyAdd(TLanes.LoadFloat(p + lanes), weight, a01);
                    if (count > 1)
                    {
                        a10 = TLanes.MultiplyAdd(TLanes.LoadFloat(p + rowStep), weight, a10);
                        a11 = TLanes.MultiplyAdd(TLanes.LoadFloat(p + rowStep + lanes), weight, a11);
                    }
                    if (count > 2)
                    {
                        a20 = TLanes.MultiplyAdd(TLanes.LoadFloat(p + 2 * rowStep), weight, a20);
                        a21 = TLanes.MultiplyAdd(TLanes.LoadFloat(p + 2 * rowStep + lanes), weight, a21);
                    }
                    if (count > 3)
                    {
                        a30 = TLanes.MultiplyAdd(TLanes.LoadFloat(p + 3 * rowStep), weight, a30);
                        a31 = TLanes.MultiplyAdd(TLanes.LoadFloat(p + 3 * rowStep + lanes), weight, a31);
                    }
                }
                // The sums are integers below 2^24: the conversion is exact.
                TLanes.StoreInt(TLanes.RoundToInt(a00), sums + ow);
                TLanes.StoreInt(TLanes.RoundToInt(a01), sums + ow + lanes);
                if (count > 1)
                {
                    TLanes.StoreInt(TLanes.RoundToInt(a10), sums + stride + ow);
                    TLanes.StoreInt(TLanes.RoundToInt(a11), sums + stride + ow + lanes);
                }
                if (count > 2)
                {
                    TLanes.StoreInt(TLanes.RoundToInt(a20), sums + 2 * stride + ow);
                    TLanes.StoreInt(TLanes.RoundToInt(a21), sums + 2 * stride + ow + lanes);
                }
                if (count > 3)
                {
                    TLanes.StoreInt(TLanes.RoundToInt(a30), sums + 3 * stride + ow);
                    TLanes.StoreInt(TLanes.RoundToInt(a31), sums + 3 * stride + ow + lanes);
                }
            }
            if (ow < _paddedWidth)
            {
                // One vector left: four chains over the rows.
                TFloat a0 = zero, a1 = zero, a2 = zero, a3 = zero;
                for (int t = 0; t < taps; t++)
                {
                    TFloat weight = TLanes.SplatFloat(weights[t]);
                    float* p = rows + tapOffset[t] + ow;
                    a0 = TLanes.MultiplyAdd(TLanes.LoadFloat(p), weight, a0);
                    if (count > 1) a1 = TLanes.MultiplyAdd(TLanes.LoadFloat(p + rowStep), weight, a1);
                    if (count > 2) a2 = TLanes.MultiplyAdd(TLanes.LoadFloat(p + 2 * rowStep), weight, a2);
                    if (count > 3) a3 = TLanes.MultiplyAdd(TLanes.LoadFloat(p + 3 * rowStep), weight, a3);
                }
                TLanes.StoreInt(TLanes.RoundToInt(a0), sums + ow);
                if (count > 1) TLanes.StoreInt(TLanes.RoundToInt(a1), sums + stride + ow);
                if (count > 2) TLanes.StoreInt(TLanes.RoundToInt(a2), sums + 2 * stride + ow);
                if (count > 3) TLanes.StoreInt(TLanes.RoundToInt(a3), sums + 3 * stride + ow);
            }
        }
    }
}
