using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Squash.Runtime.Kernels;

/// <summary>
/// Int8 depthwise 2-D convolution on 16-bit pair products: VPMADDWD multiplies two adjacent taps' inputs by their two
/// weights and adds the pair into one int32 lane, so a 512-bit instruction does 32 multiply-adds where the fp32 kernel
/// (<see cref="Int8Depthwise"/>) does 16, and the sums are exact integers without conversions.
/// </summary>
/// <remarks>
/// Each channel is first turned into a plane of pairs: element t of a (stride-phase-split, zero-point-padded) row holds
/// the inputs of columns t and t + 1 as two int16 halves, so the taps (kw, kw + 1) of one kernel row read one int32
/// per output column; a kernel row of KW taps takes ceil(KW / 2) products per phase (the odd one out pairs with a zero
/// weight). Inputs are at most 255 and weights -128..127, so a pair sum is at most 65280 in magnitude and the int32
/// sums are exact for any kernel <see cref="Int8Depthwise.MaxTaps"/> allows. Horizontal dilation must be 1 (pairs are
/// adjacent columns of a phase); other depthwise convolutions run <see cref="Int8Depthwise"/>.
/// </remarks>
internal static unsafe class Int8DepthwisePairs
{
    /// <summary>True when this machine has the pair product (AVX2, or AVX-512BW for 512-bit lanes).</summary>
    public static bool IsSupported => Pairs512.IsAccelerated || Pairs256.IsAccelerated;

    /// <summary>True when <paramref name="g"/> runs here: a depthwise geometry the direct kernel takes, with horizontal
    /// dilation 1, on a machine with the pair product.</summary>
    public static bool Applies(Int8ConvGeometry g) => IsSupported && Int8Depthwise.Applies(g) && g.DilationW == 1;

    /// <summary>The convolution with the widest pair lanes, from paired taps (<see cref="PairWeights"/>, as
    /// <see cref="Int8ConvWeights.DepthwisePairs"/> holds them).</summary>
    internal static void Run(KernelContext context, Int8ConvGeometry g, byte* x, int* pairs, Int8Epilogue epilogue, void* y)
    {
        if (Pairs512.IsAccelerated) Run<Vector512<int>, Pairs512>(context, g, x, pairs, epilogue, y);
        else Run<Vector256<int>, Pairs256>(context, g, x, pairs, epilogue, y);
    }

    /// <summary>Each channel's taps as the pair products take them, [C, products] in the kernel's product order: tap
    /// pair (low, high) as the int16 halves of an int32, a zero high half where a phase's taps are odd in number.
    /// Computed once when the weights are packed: gathered per channel per call, it was 8-12 % of a 5x5 layer on two-
    /// and three-row maps (cls's 200x2x96: 38 -> 34 µs without it).</summary>
    internal static int[] PairWeights(Int8ConvGeometry g, ReadOnlySpan<sbyte> w)
    {
        int products = ProductsPerRow(g) * g.KernelH;
        var low = new int[products];
        var high = new int[products];
        Taps(g, low, high);
        var result = new int[g.InChannels * products];
        for (int c = 0; c < g.InChannels; c++)
        {
            var cw = w.Slice(c * g.Taps, g.Taps);
            for (int k = 0; k < products; k++)
                result[c * products + k] = (ushort)(short)cw[low[k]] | (high[k] < 0 ? 0 : cw[high[k]] << 16);
        }
        return result;
    }

    /// <summary>Pair products per kernel row: ceil(taps of the phase / 2) summed over the stride phases.</summary>
    private static int ProductsPerRow(Int8ConvGeometry g)
    {
        int products = 0;
        for (int phase = 0; phase < g.StrideW; phase++)
        {
            int taps = phase < g.KernelW ? (g.KernelW - 1 - phase) / g.StrideW + 1 : 0;
            products += (taps + 1) / 2;
        }
        return products;
    }

    /// <summary>The one definition of the kernel's product order (kernel row, stride phase, pairs of taps of the phase:
    /// taps kw = phase + j * SW read element j of the phase, adjacent j pair up): which two taps each product
    /// multiplies, the second -1 when the phase's taps are odd in number (<paramref name="high"/> may be empty).</summary>
    private static void Taps(Int8ConvGeometry g, Span<int> low, Span<int> high)
    {
        int k = 0;
        for (int kh = 0; kh < g.KernelH; kh++)
            for (int phase = 0; phase < g.StrideW; phase++)
                for (int kw = phase; kw < g.KernelW; kw += 2 * g.StrideW, k++)
                {
                    int second = kw + g.StrideW;
                    low[k] = kh * g.KernelW + kw;
                    if (!high.IsEmpty) high[k] = second < g.KernelW ? kh * g.KernelW + second : -1;
                }
    }

    /// <summary>The convolution of prepared weights with lanes of one width (tests run each width the machine has).</summary>
    internal static void Run<TVector, TPairs, T>(KernelContext context, Int8ConvWeights weights, ReadOnlySpan<byte> x, Int8Epilogue epilogue, Span<T> y)
        where TVector : struct
        where TPairs : struct, IPairLanes<TVector>
        where T : unmanaged
    {
        Int8Conv.Check<T>(weights, x.Length, epilogue, y.Length);
        if (weights.Depthwise is null || !Applies(weights.Geometry) || !TPairs.IsAccelerated)
            throw new ArgumentException("The weights are not for a depthwise convolution these lanes run.", nameof(weights));
        fixed (byte* px = x)
        fixed (int* pw = weights.DepthwisePairs ?? PairWeights(weights.Geometry, weights.Depthwise))
        fixed (T* py = y) Run<TVector, TPairs>(context, weights.Geometry, px, pw, epilogue, py);
    }

    private static void Run<TVector, TPairs>(KernelContext context, Int8ConvGeometry g, byte* x, int* w, Int8Epilogue epilogue, void* y)
        where TVector : struct
        where TPairs : struct, IPairLanes<TVector>
    {
        if (!Applies(g)) throw new ArgumentException("The geometry is not a depthwise convolution the pair kernel runs.", nameof(g));
        var body = new Body<TVector, TPairs>(g, x, w, epilogue, y);
        int planes = g.Batch * g.InChannels;
        if (context.ThreadCount == 1) body.Invoke(0, planes);
        else context.For(planes, body);
    }

    private readonly struct Body<TVector, TPairs> : IRangeBody
        where TVector : struct
        where TPairs : struct, IPairLanes<TVector>
    {
        private readonly Int8ConvGeometry _g;
        private readonly byte* _x;
        /// <summary>Paired taps, [C, products].</summary>
        private readonly int* _w;
        private readonly Int8Epilogue _epilogue;
        private readonly void* _y;
        /// <summary>Rows of the plane: only those some output reads.</summary>
        private readonly int _planeRows;
        /// <summary>Output columns rounded up to whole vectors (the sums buffer's row stride).</summary>
        private readonly int _paddedWidth;
        /// <summary>Pairs per stride phase of a row: whole vectors past the last output for every tap.</summary>
        private readonly int _phaseLength;
        /// <summary>Pair products per kernel row: ceil(taps of the phase / 2) summed over the phases.</summary>
        private readonly int _productsPerRow;

        public Body(Int8ConvGeometry g, byte* x, int* w, Int8Epilogue epilogue, void* y)
        {
            _g = g;
            _x = x;
            _w = w;
            _epilogue = epilogue;
            _y = y;
            _planeRows = (g.OutHeight - 1) * g.StrideH + (g.KernelH - 1) * g.DilationH + 1;
            _paddedWidth = (g.OutWidth + TPairs.Count - 1) / TPairs.Count * TPairs.Count;
            // Whole 16-pair steps, so that building a row of pairs has no scalar tail (the extra pairs are never read).
            _phaseLength = (_paddedWidth + (g.KernelW - 1) / g.StrideW + 1 + 15) / 16 * 16;
            _productsPerRow = ProductsPerRow(g);
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Invoke(int start, int end)
        {
            var g = _g;
            int rowStride = g.StrideW * _phaseLength;
            int products = _productsPerRow * g.KernelH;
            // The plane of pairs, one padded byte row (every phase's columns plus the last pair's partner), the sums.
            long pairs = (long)_planeRows * rowStride;
            int paddedBytes = (g.StrideW * (_phaseLength + 1) + 63) / 64 * 64;
            long bytes = pairs * sizeof(int) + paddedBytes + 4L * _paddedWidth * sizeof(int);
            if (bytes > int.MaxValue) throw new ArgumentException("The image is too large for the depthwise kernel.");
            int* plane = (int*)Int8Scratch.Other((int)bytes);
            byte* padded = (byte*)(plane + pairs);
            int* sums = (int*)(padded + paddedBytes);
            // Product k of kernel row kh reads the pair at offset[kh * P + k] of the output row's first plane row.
            // The same for every channel, so computed once here (its divisions cost a fifth of a 5x5 depthwise
            // convolution on a two-row map when repeated per channel); the taps come paired (PairWeights).
            int* offset = stackalloc int[products];
            Offsets(rowStride, offset);
            int elementSize = _epilogue.Kind == Int8OutputKind.Requantize ? 1 : 4;
            nint rowStep = (nint)g.StrideH * rowStride;
            // Padding is the same for every channel: the rows above and below the image and the columns beside it are
            // written once here, and each channel overwrites only its image's columns.
            byte zero = _epilogue.InputZeroPoint;
            new Span<int>(plane, checked((int)pairs)).Fill(zero | zero << 16);
            new Span<byte>(padded, paddedBytes).Fill(zero);
            for (int index = start; index < end; index++)
            {
                int image = index / g.InChannels, channel = index % g.InChannels;
                Pad(_x + (nint)index * g.InputSize, plane, rowStride, padded);
                int* weightPairs = _w + (nint)channel * products;
                var store = new Int8Store(_epilogue, (byte*)_y + (nint)image * g.InChannels * g.OutputSize * elementSize,
                    g.OutputSize, 0, channelsOnRows: true);
                for (int oh = 0; oh < g.OutHeight; oh += 4)
                {
                    int* rows = plane + oh * rowStep;
                    int count = Math.Min(4, g.OutHeight - oh);
                    switch (count)
                    {
                        case 4: Rows<Rows4>(rows, rowStep, offset, weightPairs, products, sums); break;
                        case 3: Rows<Rows3>(rows, rowStep, offset, weightPairs, products, sums); break;
                        case 2: Rows<Rows2>(rows, rowStep, offset, weightPairs, products, sums); break;
                        default: Rows<Rows1>(rows, rowStep, offset, weightPairs, products, sums); break;
                    }
                    for (int r = 0; r < count; r++) store.StoreRow(sums + r * _paddedWidth, g.OutWidth, channel, (oh + r) * g.OutWidth);
                }
            }
        }

        /// <summary>Where each product reads, relative to an output row's first plane row, in the order of
        /// <see cref="Taps"/>.</summary>
        private void Offsets(int rowStride, int* offset)
        {
            var g = _g;
            int products = _productsPerRow * g.KernelH;
            Span<int> low = stackalloc int[products];
            Taps(g, low, []);
            for (int k = 0; k < products; k++)
            {
                // Tap (kh, kw) reads element kw / SW of phase kw % SW (+ the output column) of plane row kh * DH.
                int kh = low[k] / g.KernelW, kw = low[k] - kh * g.KernelW;
                offset[k] = kh * g.DilationH * rowStride + kw % g.StrideW * _phaseLength + kw / g.StrideW;
            }
        }

        /// <summary>Builds the rows of the plane of pairs that hold one input channel's image (the padding around them
        /// is written once per call): each row split into stride phases, element t holding columns t and t + 1 of its
        /// phase.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Pad(byte* input, int* plane, int rowStride, byte* padded)
        {
            var g = _g;
            int width = g.StrideW * (_phaseLength + 1);
            int lo = Math.Min(width, g.PadLeft), hi = Math.Min(width, g.PadLeft + g.Width);
            int first = Math.Max(0, g.PadTop), last = Math.Min(_planeRows, g.PadTop + g.Height);
            for (int r = first; r < last; r++)
            {
                int* row = plane + (nint)r * rowStride;
                CopyRow(input + (nint)(r - g.PadTop) * g.Width, padded + lo, hi - lo);
                if (g.StrideW == 1)
                {
                    TPairs.Pair(padded, row, _phaseLength);
                    continue;
                }
                if (g.StrideW == 2)
                {
                    TPairs.PairTwo(padded, row, row + _phaseLength, _phaseLength);
                    continue;
                }
                for (int phase = 0; phase < g.StrideW; phase++)
                {
                    int* dst = row + phase * _phaseLength;
                    for (int t = 0; t < _phaseLength; t++)
                        dst[t] = padded[phase + t * g.StrideW] | padded[phase + (t + 1) * g.StrideW] << 16;
                }
            }
        }

        /// <summary>Copies <paramref name="count"/> bytes in whole vectors, the last one overlapping the one before: a
        /// feature-map row is 2 to 200 bytes, where a call to a general copy costs as much as the copy.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void CopyRow(byte* source, byte* destination, int count)
        {
            if (count >= 32)
            {
                int i = 0;
                for (; i + 32 < count; i += 32) Vector256.Load(source + i).Store(destination + i);
                Vector256.Load(source + count - 32).Store(destination + count - 32);
            }
            else if (count >= 16)
            {
                Vector128.Load(source).Store(destination);
                Vector128.Load(source + count - 16).Store(destination + count - 16);
            }
            else Buffer.MemoryCopy(source, destination, count, count);
        }

        /// <summary>The sums of output rows [oh, oh + TRows) into <paramref name="sums"/> (row r at r * paddedWidth):
        /// two vectors by up to four rows, eight independent chains.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Rows<TRows>(int* rows, nint rowStep, int* offset, int* weightPairs, int products, int* sums)
            where TRows : struct, IRowCount
        {
            int count = TRows.Value;
            int lanes = TPairs.Count, stride = _paddedWidth;
            int ow = 0;
            for (; ow + 2 * lanes <= _paddedWidth; ow += 2 * lanes)
            {
                TVector a00 = TPairs.Zero, a01 = TPairs.Zero, a10 = TPairs.Zero, a11 = TPairs.Zero;
                TVector a20 = TPairs.Zero, a21 = TPairs.Zero, a30 = TPairs.Zero, a31 = TPairs.Zero;
                for (int k = 0; k < products; k++)
                {
                    TVector weight = TPairs.Splat(weightPairs[k]);
                    int* p = rows + offset[k] + ow;
                    a00 = TPairs.MultiplyAdd(a00, TPairs.Load(p), weight);
                    a01 = TPairs.MultiplyAdd(a01, TPairs.Load(p + lanes), weight);
                    if (count > 1)
                    {
                        a10 = TPairs.MultiplyAdd(a10, TPairs.Load(p + rowStep), weight);
                        a11 = TPairs.MultiplyAdd(a11, TPairs.Load(p + rowStep + lanes), weight);
                    }
                    if (count > 2)
                    {
                        a20 = TPairs.MultiplyAdd(a20, TPairs.Load(p + 2 * rowStep), weight);
                        a21 = TPairs.MultiplyAdd(a21, TPairs.Load(p + 2 * rowStep + lanes), weight);
                    }
                    if (count > 3)
                    {
                        a30 = TPairs.MultiplyAdd(a30, TPairs.Load(p + 3 * rowStep), weight);
                        a31 = TPairs.MultiplyAdd(a31, TPairs.Load(p + 3 * rowStep + lanes), weight);
                    }
                }
                TPairs.Store(a00, sums + ow);
                TPairs.Store(a01, sums + ow + lanes);
                if (count > 1)
                {
                    TPairs.Store(a10, sums + stride + ow);
                    TPairs.Store(a11, sums + stride + ow + lanes);
                }
                if (count > 2)
                {
                    TPairs.Store(a20, sums + 2 * stride + ow);
                    TPairs.Store(a21, sums + 2 * stride + ow + lanes);
                }
                if (count > 3)
                {
                    TPairs.Store(a30, sums + 3 * stride + ow);
                    TPairs.Store(a31, sums + 3 * stride + ow + lanes);
                }
            }
            if (ow < _paddedWidth)
            {
                // One vector left: four chains over the rows.
                TVector a0 = TPairs.Zero, a1 = TPairs.Zero, a2 = TPairs.Zero, a3 = TPairs.Zero;
                for (int k = 0; k < products; k++)
                {
                    TVector weight = TPairs.Splat(weightPairs[k]);
                    int* p = rows + offset[k] + ow;
                    a0 = TPairs.MultiplyAdd(a0, TPairs.Load(p), weight);
                    if (count > 1) a1 = TPairs.MultiplyAdd(a1, TPairs.Load(p + rowStep), weight);
                    if (count > 2) a2 = TPairs.MultiplyAdd(a2, TPairs.Load(p + 2 * rowStep), weight);
                    if (count > 3) a3 = TPairs.MultiplyAdd(a3, TPairs.Load(p + 3 * rowStep), weight);
                }
                TPairs.Store(a0, sums + ow);
                if (count > 1) TPairs.Store(a1, sums + stride + ow);
                if (count > 2) TPairs.Store(a2, sums + 2 * stride + ow);
                if (count > 3) TPairs.Store(a3, sums + 3 * stride + ow);
            }
        }
    }
}

/// <summary>int32 lanes that each hold a pair of int16 values, and the pair product VPMADDWD.</summary>
internal unsafe interface IPairLanes<TVector> where TVector : struct
{
    /// <summary>True when the machine runs these lanes.</summary>
    static abstract bool IsAccelerated { get; }

    /// <summary>Lanes (pairs, output columns) per vector.</summary>
    static abstract int Count { get; }

    /// <summary>All lanes zero.</summary>
    static abstract TVector Zero { get; }

    /// <summary>Every lane <paramref name="pair"/>.</summary>
    static abstract TVector Splat(int pair);

    /// <summary>Loads <see cref="Count"/> pairs.</summary>
    static abstract TVector Load(int* source);

    /// <summary>Stores <see cref="Count"/> int32 sums.</summary>
    static abstract void Store(TVector value, int* destination);

    /// <summary><c>accumulator + low(a) * low(b) + high(a) * high(b)</c> per lane (int16 halves, exact in int32).</summary>
    static abstract TVector MultiplyAdd(TVector accumulator, TVector a, TVector b);

    /// <summary><c>destination[t] = source[t] | source[t + 1] &lt;&lt; 16</c> for t &lt; <paramref name="count"/> (reads
    /// count + 1 bytes, and up to a vector more).</summary>
    static abstract void Pair(byte* source, int* destination, int count);

    /// <summary>The pairs of the two stride-2 phases: <c>even[t] = source[2t] | source[2t + 2] &lt;&lt; 16</c>,
    /// <c>odd[t] = source[2t + 1] | source[2t + 3] &lt;&lt; 16</c> for t &lt; <paramref name="count"/> (reads 2 count + 2
    /// bytes, and up to a vector more).</summary>
    static abstract void PairTwo(byte* source, int* even, int* odd, int count);
}

/// <summary>AVX-512BW pair lanes: 16 output columns, 32 multiply-adds per instruction.</summary>
internal readonly unsafe struct Pairs512 : IPairLanes<Vector512<int>>
{
    public static bool IsAccelerated => Avx512BW.IsSupported && Vector512.IsHardwareAccelerated;

    public static int Count => 16;

    public static Vector512<int> Zero => Vector512<int>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<int> Splat(int pair) => Vector512.Create(pair);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<int> Load(int* source) => Vector512.Load(source);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector512<int> value, int* destination) => value.Store(destination);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<int> MultiplyAdd(Vector512<int> accumulator, Vector512<int> a, Vector512<int> b) =>
        accumulator + Avx512BW.MultiplyAddAdjacent(a.AsInt16(), b.AsInt16());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Pair(byte* source, int* destination, int count)
    {
        int t = 0;
        for (; t + 16 <= count; t += 16)
        {
            var low = Avx512F.ConvertToVector512Int32(Vector128.Load(source + t));
            var high = Avx512F.ConvertToVector512Int32(Vector128.Load(source + t + 1));
            (low | (high << 16)).Store(destination + t);
        }
        for (; t < count; t++) destination[t] = source[t] | source[t + 1] << 16;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void PairTwo(byte* source, int* even, int* odd, int count)
    {
        int t = 0;
        var low = Vector512.Create(0xFF);
        for (; t + 16 <= count; t += 16)
        {
            // Sixteen 16-bit lanes from byte 2t hold (source[2t + 2i], source[2t + 2i + 1]); the next sixteen from 2t + 2.
            var a = Avx512F.ConvertToVector512Int32(Vector256.Load((ushort*)(source + 2 * t)));
            var b = Avx512F.ConvertToVector512Int32(Vector256.Load((ushort*)(source + 2 * t + 2)));
            ((a & low) | ((b & low) << 16)).Store(even + t);
            (Vector512.ShiftRightLogical(a, 8) | (Vector512.ShiftRightLogical(b, 8) << 16)).Store(odd + t);
        }
        for (; t < count; t++)
        {
            even[t] = source[2 * t] | source[2 * t + 2] << 16;
            odd[t] = source[2 * t + 1] | source[2 * t + 3] << 16;
        }
    }
}

/// <summary>AVX2 pair lanes: 8 output columns, 16 multiply-adds per instruction.</summary>
internal readonly unsafe struct Pairs256 : IPairLanes<Vector256<int>>
{
    public static bool IsAccelerated => Avx2.IsSupported;

    public static int Count => 8;

    public static Vector256<int> Zero => Vector256<int>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Splat(int pair) => Vector256.Create(pair);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Load(int* source) => Vector256.Load(source);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector256<int> value, int* destination) => value.Store(destination);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> MultiplyAdd(Vector256<int> accumulator, Vector256<int> a, Vector256<int> b) =>
        accumulator + Avx2.MultiplyAddAdjacent(a.AsInt16(), b.AsInt16());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Pair(byte* source, int* destination, int count)
    {
        int t = 0;
        for (; t + 8 <= count; t += 8)
        {
            var low = Avx2.ConvertToVector256Int32(source + t);
            var high = Avx2.ConvertToVector256Int32(source + t + 1);
            (low | (high << 16)).Store(destination + t);
        }
        for (; t < count; t++) destination[t] = source[t] | source[t + 1] << 16;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void PairTwo(byte* source, int* even, int* odd, int count)
    {
        int t = 0;
        var low = Vector256.Create(0xFF);
        for (; t + 8 <= count; t += 8)
        {
            var a = Avx2.ConvertToVector256Int32((ushort*)(source + 2 * t));
            var b = Avx2.ConvertToVector256Int32((ushort*)(source + 2 * t + 2));
            ((a & low) | ((b & low) << 16)).Store(even + t);
            (Vector256.ShiftRightLogical(a, 8) | (Vector256.ShiftRightLogical(b, 8) << 16)).Store(odd + t);
        }
        for (; t < count; t++)
        {
            even[t] = source[2 * t] | source[2 * t + 2] << 16;
            odd[t] = source[2 * t + 1] | source[2 * t + 3] << 16;
        }
    }
}
