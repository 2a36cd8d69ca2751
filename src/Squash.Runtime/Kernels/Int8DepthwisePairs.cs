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
/// <para>Each channel is first widened into a zero-point-padded plane of int16 values. An int32 lane loaded from int16
/// element j holds columns j and j + 1, the inputs of two adjacent taps (kw, kw + 1), so a kernel row of KW taps takes
/// ceil(KW / 2) products (the odd one out pairs with a zero weight) and no plane of pairs is built. With horizontal
/// stride 2 the lanes of a load from element 2 ow + kw are exactly output columns ow, ow + 1, ...; with stride 1 a load
/// covers every other output column, so a block of 2 x lanes columns is computed as its even and its odd columns
/// (loads from ow + kw and ow + kw + 1) and interleaved once at the end. Building pairs per row instead cost as much as
/// the products on det's maps (its byte row was re-read across the stores that had just written it).</para>
/// <para>Inputs are at most 255 and weights -128..127, so a pair sum is at most 65280 in magnitude and the int32 sums
/// are exact for any kernel <see cref="Int8Depthwise.MaxTaps"/> allows. Horizontal dilation must be 1 and the horizontal
/// stride 1 or 2; other depthwise convolutions run <see cref="Int8Depthwise"/>.</para>
/// </remarks>
internal static unsafe class Int8DepthwisePairs
{
    /// <summary>True when this machine has the pair product (AVX2, or AVX-512BW for 512-bit lanes).</summary>
    public static bool IsSupported => Pairs512.IsAccelerated || Pairs256.IsAccelerated;

    /// <summary>True when <paramref name="g"/> runs here: a depthwise geometry the direct kernel takes, with horizontal
    /// dilation 1 and stride 1 or 2, on a machine with the pair product; then <see cref="Int8ConvWeights"/> pairs the
    /// taps when packing them. It beats the direct kernel's fp32 arithmetic on 3x3 kernels too (rec's 128x12x160: 82 µs
    /// against 92; det's 96x80x80: 235 against 286; 192x40x40: 162 against 221).</summary>
    public static bool Applies(Int8ConvGeometry g) => IsSupported && Int8Depthwise.Applies(g) && g.DilationW == 1 && g.StrideW <= 2;

    /// <summary>The convolution with the widest pair lanes, from paired taps (<see cref="PairWeights"/>, as
    /// <see cref="Int8ConvWeights.Pairs"/> holds them).</summary>
    internal static void Run(KernelContext context, Int8ConvGeometry g, byte* x, int* pairs, Int8Epilogue epilogue, void* y)
    {
        if (Pairs512.IsAccelerated) Run<Vector512<int>, Pairs512, Vector256<int>, Pairs256>(context, g, x, pairs, epilogue, y);
        else Run<Vector256<int>, Pairs256, Vector128<int>, Pairs128>(context, g, x, pairs, epilogue, y);
    }

    /// <summary>True when the kernel runs <paramref name="g"/>: depthwise (<see cref="Applies"/>) or of few channels
    /// (<see cref="AppliesToFewChannels"/>).</summary>
    internal static bool Runs(Int8ConvGeometry g) => Applies(g) || AppliesToFewChannels(g);

    /// <summary>True when <paramref name="g"/> is a convolution of a few input channels (one group) into few output
    /// channels that the pair products run directly: a small network's stem (3 channels, 3x3, stride 2), where the GEMM
    /// spends its time building im2col panels for a depth of 27. The pair products cost M times the input's taps per
    /// output vector and the GEMM's im2col does not grow with M, so only few outputs pay: 8 (cls's stem: 16.7 µs against
    /// 28.8), not 16 (rec's: 40.9 against 41.7 µs; det's at 640x640: 1.21-1.59 against 1.11-1.17 ms).</summary>
    public static bool AppliesToFewChannels(Int8ConvGeometry g) =>
        IsSupported && g.Groups == 1 && g.InChannels <= MaxFewChannels && g.OutChannels <= MaxFewOutputs && !g.IsPointwise
        && g.DilationW == 1 && g.StrideW <= 2 && g.InChannels * g.Taps <= Int8Depthwise.MaxTaps;

    /// <summary>The most output rows of a depthwise map whose rows run alone (<c>Body.RowProducts</c>): beyond, few rows
    /// are at the border and four-row blocks share each weight across rows.</summary>
    private const int MaxRowsAlone = 4;

    /// <summary>The most output channels <see cref="AppliesToFewChannels"/> takes.</summary>
    private const int MaxFewOutputs = 8;

    /// <summary>The most input channels <see cref="AppliesToFewChannels"/> takes: each output channel multiplies every
    /// input plane, so their rows for a block of output rows must stay in L1 across the output channels.</summary>
    private const int MaxFewChannels = 4;

    /// <summary>Each output channel's taps as the pair products take them, [outputs, inputs x KH x ceil(KW / 2)] (inputs
    /// 1 for a depthwise convolution, C otherwise): taps (kw, kw + 1) of each kernel row for even kw, as the int16
    /// halves of an int32, a zero high half for an odd last tap. Computed once when the weights are packed: gathered
    /// per channel per call, it was 8-12 % of a 5x5 layer on two- and three-row maps (cls's 200x2x96: 38 -> 34 µs
    /// without it).</summary>
    internal static int[] PairWeights(Int8ConvGeometry g, ReadOnlySpan<sbyte> w)
    {
        int perRow = ProductsPerRow(g), inputs = g.IsDepthwise ? 1 : g.InChannels, outputs = g.OutChannels;
        int products = inputs * g.KernelH * perRow;
        var result = new int[outputs * products];
        for (int o = 0; o < outputs; o++)
        {
            var ow = w.Slice(o * inputs * g.Taps, inputs * g.Taps);
            for (int c = 0; c < inputs; c++)
                for (int kh = 0; kh < g.KernelH; kh++)
                    for (int j = 0; j < perRow; j++)
                    {
                        int kw = 2 * j, tap = (c * g.KernelH + kh) * g.KernelW + kw;
                        result[o * products + (c * g.KernelH + kh) * perRow + j] = (ushort)(short)ow[tap] | (kw + 1 < g.KernelW ? ow[tap + 1] << 16 : 0);
                    }
        }
        return result;
    }

    /// <summary>Pair products per kernel row: ceil(KW / 2).</summary>
    private static int ProductsPerRow(Int8ConvGeometry g) => (g.KernelW + 1) / 2;

    /// <summary>The convolution of prepared weights with lanes of one width (tests run each width the machine has).</summary>
    internal static void Run<TVector, TPairs, T>(KernelContext context, Int8ConvWeights weights, ReadOnlySpan<byte> x, Int8Epilogue epilogue, Span<T> y)
        where TVector : struct
        where TPairs : struct, IPairLanes<TVector>
        where T : unmanaged
    {
        Int8Conv.Check<T>(weights, x.Length, epilogue, y.Length);
        if (weights.Pairs is null || !TPairs.IsAccelerated)
            throw new ArgumentException("The weights are not for a convolution these lanes run.", nameof(weights));
        fixed (byte* px = x)
        fixed (int* pw = weights.Pairs)
        fixed (T* py = y)
        {
            // Each width's tail runs on the lanes half as wide (the narrowest on two-vector lanes).
            if (typeof(TPairs) == typeof(Pairs512)) Run<Vector512<int>, Pairs512, Vector256<int>, Pairs256>(context, weights.Geometry, px, pw, epilogue, py);
            else Run<Vector256<int>, Pairs256, Vector128<int>, Pairs128>(context, weights.Geometry, px, pw, epilogue, py);
        }
    }

    private static void Run<TVector, TPairs, THalf, THalfPairs>(KernelContext context, Int8ConvGeometry g, byte* x, int* w,
        Int8Epilogue epilogue, void* y)
        where TVector : struct
        where TPairs : struct, IPairLanes<TVector>
        where THalf : struct
        where THalfPairs : struct, IPairLanes<THalf>
    {
        if (!Runs(g)) throw new ArgumentException("The geometry is not a convolution the pair kernel runs.", nameof(g));
        // The rows' product ranges live on this frame, which outlasts every use of the body.
        int* rowProducts = stackalloc int[2 * MaxRowsAlone];
        bool rowsAlone = Body<TVector, TPairs, THalf, THalfPairs>.RowProducts(g, rowProducts);
        var body = new Body<TVector, TPairs, THalf, THalfPairs>(g, x, w, epilogue, y, rowsAlone ? rowProducts : null);
        if (!g.IsDepthwise)
        {
            RunFewChannels(context, g, body);
            return;
        }
        int planes = g.Batch * g.InChannels;
        if (context.ThreadCount == 1) body.Invoke(0, planes);
        else context.For(planes, body);
    }

    /// <summary>A convolution of few input channels: each image's channels widened once into planes side by side, then
    /// blocks of four output rows in parallel, each running every output channel over the same plane rows (which stay in
    /// L1 across them).</summary>
    private static void RunFewChannels<TVector, TPairs, THalf, THalfPairs>(KernelContext context, Int8ConvGeometry g,
        Body<TVector, TPairs, THalf, THalfPairs> body)
        where TVector : struct
        where TPairs : struct, IPairLanes<TVector>
        where THalf : struct
        where THalfPairs : struct, IPairLanes<THalf>
    {
        long bytes = (long)g.InChannels * body.PlaneLength * sizeof(short);
        if (bytes > int.MaxValue) throw new ArgumentException("The image is too large for the pair kernel.", nameof(g));
        // The planes are shared by the threads: the calling thread's left-panel scratch, which no thread uses inside.
        short* planes = (short*)Int8Scratch.Left((int)bytes);
        new Span<short>(planes, (int)(bytes / sizeof(short))).Fill(body.InputZeroPoint);
        int blocks = (g.OutHeight + 3) / 4;
        for (int image = 0; image < g.Batch; image++)
        {
            for (int c = 0; c < g.InChannels; c++)
                body.Widen(body.Input + ((nint)image * g.InChannels + c) * g.InputSize, planes + c * body.PlaneLength);
            var blocksBody = new FewChannelsBody<TVector, TPairs, THalf, THalfPairs>(body, planes, image);
            if (context.ThreadCount == 1) blocksBody.Invoke(0, blocks);
            else context.For(blocks, blocksBody);
        }
    }

    /// <summary>Blocks [start, end) of four output rows of one image, every output channel.</summary>
    private readonly struct FewChannelsBody<TVector, TPairs, THalf, THalfPairs>(Body<TVector, TPairs, THalf, THalfPairs> body,
        short* planes, int image) : IRangeBody
        where TVector : struct
        where TPairs : struct, IPairLanes<TVector>
        where THalf : struct
        where THalfPairs : struct, IPairLanes<THalf>
    {
        public void Invoke(int start, int end) => body.Blocks(planes, image, start, end);
    }

    /// <summary>The kernel on <typeparamref name="TPairs"/> lanes; with horizontal stride 1 the columns past the last
    /// block of two vectors run as one block of <typeparamref name="THalfPairs"/> lanes (det's rows of 40: 32 + 8
    /// columns computed as 32 + 16, not 32 + 32).</summary>
    private readonly struct Body<TVector, TPairs, THalf, THalfPairs> : IRangeBody
        where TVector : struct
        where TPairs : struct, IPairLanes<TVector>
        where THalf : struct
        where THalfPairs : struct, IPairLanes<THalf>
    {
        private readonly Int8ConvGeometry _g;
        private readonly byte* _x;
        /// <summary>Paired taps, [C, products].</summary>
        private readonly int* _w;
        private readonly Int8Epilogue _epilogue;
        private readonly void* _y;
        /// <summary>Rows of the plane: only those some output reads.</summary>
        private readonly int _planeRows;
        /// <summary>Output columns rounded up to whole blocks (the sums buffer's row stride).</summary>
        private readonly int _paddedWidth;
        /// <summary>int16 values per plane row: every load of the last block stays inside the row.</summary>
        private readonly int _rowLength;
        /// <summary>Pair products per output value: input planes x kernel rows x ceil(KW / 2).</summary>
        private readonly int _products;
        /// <summary>For a depthwise map of at most four output rows some of which read padding rows: per output row the
        /// first and the end of the products it computes (those of the kernel rows that read the image), else null.</summary>
        private readonly int* _rowProducts;

        public Body(Int8ConvGeometry g, byte* x, int* w, Int8Epilogue epilogue, void* y, int* rowProducts)
        {
            _g = g;
            _x = x;
            _w = w;
            _epilogue = epilogue;
            _y = y;
            _planeRows = (g.OutHeight - 1) * g.StrideH + (g.KernelH - 1) * g.DilationH + 1;
            int lanes = TPairs.Count, rest = g.OutWidth % (2 * lanes);
            // Stride 1: blocks of two vectors, then a half-width block of one vector's columns; stride 2: whole vectors.
            _paddedWidth = g.StrideW == 2
                ? (g.OutWidth + lanes - 1) / lanes * lanes
                : g.OutWidth - rest + (rest == 0 ? 0 : rest <= lanes ? lanes : 2 * lanes);
            // A block's loads reach StrideW x (its last column + 1) + the tap offset (at most KW - 1); rows of 64 bytes.
            _rowLength = (g.StrideW * _paddedWidth + g.KernelW + 31) / 32 * 32;
            _products = (g.IsDepthwise ? 1 : g.InChannels) * g.KernelH * ProductsPerRow(g);
            _rowProducts = rowProducts;
        }

        /// <summary>
        /// Writes into <paramref name="ranges"/> per output row [first, end) of the products of the kernel rows that read
        /// the image, and returns true, for a depthwise map of at most <see cref="MaxRowsAlone"/> rows when some row has kernel
        /// rows that read only padding (a 5x5 kernel on a three-row map: every output row has two). Each output row then
        /// runs alone over its own products, and the skipped ones, which multiply only the input zero point, are added as
        /// a constant (<see cref="PaddingSum"/>): cls's 5x5 layers on two- and three-row maps do a third to two fifths
        /// fewer pair products. Maps of more rows keep four-row blocks, where few rows are at the border.
        /// </summary>
        internal static bool RowProducts(Int8ConvGeometry g, int* ranges)
        {
            if (!g.IsDepthwise || g.OutHeight > MaxRowsAlone) return false;
            int perRow = ProductsPerRow(g);
            bool partial = false;
            for (int oh = 0; oh < g.OutHeight; oh++)
            {
                int first = 0, end = g.KernelH;
                while (first < end && (uint)(oh * g.StrideH - g.PadTop + first * g.DilationH) >= (uint)g.Height) first++;
                while (end > first && (uint)(oh * g.StrideH - g.PadTop + (end - 1) * g.DilationH) >= (uint)g.Height) end--;
                partial |= first > 0 || end < g.KernelH;
                ranges[2 * oh] = first * perRow;
                ranges[2 * oh + 1] = end * perRow;
            }
            return partial;
        }

        /// <summary>The input zero point times the weights of the products outside [first, end): what those products
        /// would have added from the padding.</summary>
        private int PaddingSum(int* weightPairs, int first, int end)
        {
            int sum = 0;
            for (int k = 0; k < first; k++) sum += (short)weightPairs[k] + (weightPairs[k] >> 16);
            for (int k = end; k < _products; k++) sum += (short)weightPairs[k] + (weightPairs[k] >> 16);
            return sum * _epilogue.InputZeroPoint;
        }

        /// <summary>int16 values of one input plane.</summary>
        public long PlaneLength => (long)_planeRows * _rowLength;

        /// <summary>The input image.</summary>
        public byte* Input => _x;

        /// <summary>The input zero point, which the padding holds.</summary>
        public short InputZeroPoint => _epilogue.InputZeroPoint;

        /// <summary>Depthwise: input channels [start, end) over all images.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Invoke(int start, int end)
        {
            var g = _g;
            int products = _products;
            // Two planes, so that a channel is widened while the one before it is multiplied (its products would
            // otherwise load the values the widening stores have just written), then the sums.
            long planeLength = PlaneLength;
            long bytes = 2 * planeLength * sizeof(short) + 4L * _paddedWidth * sizeof(int);
            if (bytes > int.MaxValue) throw new ArgumentException("The image is too large for the depthwise kernel.");
            short* planes = (short*)Int8Scratch.Other((int)bytes);
            int* sums = (int*)(planes + 2 * planeLength);
            int* offset = stackalloc int[products];
            Offsets(offset);
            int directEnd = DirectEnd;
            nint rowStep = (nint)g.StrideH * _rowLength;
            // Padding is the same for every channel: the rows above and below the image and the columns beside it are
            // written once here, and each channel overwrites only its image's columns.
            new Span<short>(planes, checked((int)(2 * planeLength))).Fill(InputZeroPoint);
            if (start < end) Widen(_x + (nint)start * g.InputSize, planes);
            int storeImage = start / g.InChannels;
            var store = ImageStore(storeImage);
            for (int index = start; index < end; index++)
            {
                short* plane = planes + ((index - start) & 1) * planeLength;
                if (index + 1 < end) Widen(_x + (nint)(index + 1) * g.InputSize, planes + ((index + 1 - start) & 1) * planeLength);
                int image = index / g.InChannels, channel = index % g.InChannels;
                // One store per image (building it per channel was 2 % of cls's depthwise layers).
                if (image != storeImage) store = ImageStore(storeImage = image);
                for (int oh = 0; oh < g.OutHeight; oh += 4)
                    Block(plane + oh * rowStep, rowStep, offset, _w + (nint)channel * products, products, sums, store, channel, oh, directEnd);
            }
        }

        /// <summary>Few channels: blocks [start, end) of four output rows of <paramref name="image"/>, widened into
        /// <paramref name="planes"/>, for every output channel.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Blocks(short* planes, int image, int start, int end)
        {
            var g = _g;
            int products = _products;
            int* sums = (int*)Int8Scratch.Other(4 * _paddedWidth * sizeof(int));
            int* offset = stackalloc int[products];
            Offsets(offset);
            int directEnd = DirectEnd;
            nint rowStep = (nint)g.StrideH * _rowLength;
            var store = ImageStore(image);
            for (int block = start; block < end; block++)
            {
                int oh = 4 * block;
                for (int m = 0; m < g.OutChannels; m++)
                    Block(planes + oh * rowStep, rowStep, offset, _w + (nint)m * products, products, sums, store, m, oh, directEnd);
            }
        }

        /// <summary>The store of one image's output channels (bytes, or floats and ints, per element by the epilogue).</summary>
        private Int8Store ImageStore(int image)
        {
            int elementSize = _epilogue.Kind == Int8OutputKind.Requantize ? 1 : 4;
            return new Int8Store(_epilogue, (byte*)_y + (nint)image * _g.OutChannels * _g.OutputSize * elementSize, _g.OutputSize, 0,
                channelsOnRows: true);
        }

        /// <summary>
        /// A requantized output whose rows are whole blocks of two vectors takes them from the registers; others go
        /// through the sums buffer (rows with a tail still pay the buffered store per row, and then the direct blocks
        /// only add to it: det's 192x40x40 5x5 270 -> 286 µs when its first 32 columns went direct).
        /// </summary>
        private int DirectEnd => _epilogue.Kind == Int8OutputKind.Requantize && _g.OutWidth % (2 * TPairs.Count) == 0 ? _g.OutWidth : 0;

        /// <summary>Product k (input plane c, kernel row kh, taps 2j and 2j + 1) reads element offset[k] past an output
        /// row's first plane row and first column (times the stride); the same for every channel.</summary>
        private void Offsets(int* offset)
        {
            int perRow = ProductsPerRow(_g), rows = _g.KernelH * perRow;
            long planeLength = PlaneLength;
            for (int k = 0; k < _products; k++)
            {
                int c = k / rows, kh = k % rows / perRow, j = k % perRow;
                offset[k] = checked((int)(c * planeLength)) + kh * _g.DilationH * _rowLength + 2 * j;
            }
        }

        /// <summary>Output rows [oh, oh + 4) (fewer at the bottom) of one output channel, through the store.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void Block(short* rows, nint rowStep, int* offset, int* weightPairs, int products, int* sums, in Int8Store store,
            int channel, int oh, int directEnd)
        {
            var g = _g;
            int count = Math.Min(4, g.OutHeight - oh);
            if (_rowProducts != null)
            {
                int* ranges = _rowProducts;
                for (int r = 0; r < count; r++)
                {
                    int first = ranges[2 * (oh + r)], end = ranges[2 * (oh + r) + 1], initial = PaddingSum(weightPairs, first, end);
                    if (g.StrideW == 1)
                        RowAlone<Unit>(rows + r * rowStep, offset + first, weightPairs + first, end - first, sums + r * _paddedWidth, store, channel, oh + r, directEnd, initial);
                    else
                        RowAlone<Two>(rows + r * rowStep, offset + first, weightPairs + first, end - first, sums + r * _paddedWidth, store, channel, oh + r, directEnd, initial);
                }
            }
            else if (g.StrideW == 1)
            {
                switch (count)
                {
                    case 4: Rows<Rows4, Unit>(rows, rowStep, offset, weightPairs, products, sums, store, channel, oh, directEnd, 0); break;
                    case 3: Rows<Rows3, Unit>(rows, rowStep, offset, weightPairs, products, sums, store, channel, oh, directEnd, 0); break;
                    case 2: Rows<Rows2, Unit>(rows, rowStep, offset, weightPairs, products, sums, store, channel, oh, directEnd, 0); break;
                    default: Rows<Rows1, Unit>(rows, rowStep, offset, weightPairs, products, sums, store, channel, oh, directEnd, 0); break;
                }
            }
            else
            {
                switch (count)
                {
                    case 4: Rows<Rows4, Two>(rows, rowStep, offset, weightPairs, products, sums, store, channel, oh, directEnd, 0); break;
                    case 3: Rows<Rows3, Two>(rows, rowStep, offset, weightPairs, products, sums, store, channel, oh, directEnd, 0); break;
                    case 2: Rows<Rows2, Two>(rows, rowStep, offset, weightPairs, products, sums, store, channel, oh, directEnd, 0); break;
                    default: Rows<Rows1, Two>(rows, rowStep, offset, weightPairs, products, sums, store, channel, oh, directEnd, 0); break;
                }
            }
            if (directEnd < g.OutWidth)
                for (int r = 0; r < count; r++)
                    store.StoreRow(sums + r * _paddedWidth + directEnd, g.OutWidth - directEnd, channel, (oh + r) * g.OutWidth + directEnd);
        }

        /// <summary>One output row over its own <paramref name="products"/> (starting at <paramref name="initial"/>):
        /// whole blocks four at a time, then the rest, then the last columns.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void RowAlone<TStride>(short* row, int* offset, int* weightPairs, int products, int* sums, in Int8Store store,
            int channel, int oh, int directEnd, int initial)
            where TStride : struct, IRowCount
        {
            int block = 2 * TPairs.Count, ow = 0;
            for (; ow + 4 * block <= _paddedWidth; ow += 4 * block)
                RowBlocks<Rows4, TStride>(row, offset, weightPairs, products, sums, store, channel, oh, ow, directEnd, initial);
            switch ((_paddedWidth - ow) / block)
            {
                case 3: RowBlocks<Rows3, TStride>(row, offset, weightPairs, products, sums, store, channel, oh, ow, directEnd, initial); break;
                case 2: RowBlocks<Rows2, TStride>(row, offset, weightPairs, products, sums, store, channel, oh, ow, directEnd, initial); break;
                case 1: RowBlocks<Rows1, TStride>(row, offset, weightPairs, products, sums, store, channel, oh, ow, directEnd, initial); break;
            }
            ow += (_paddedWidth - ow) / block * block;
            if (ow == _paddedWidth) return;
            if (TStride.Value == 1)
            {
                Tail<Rows1>(row + ow, 0, offset, weightPairs, products, sums + ow, initial);
                return;
            }
            // Stride 2: one vector left.
            TVector sum = TPairs.Splat(initial);
            for (int k = 0; k < products; k++)
                sum = TPairs.MultiplyAdd(sum, TPairs.Load(row + offset[k] + 2 * ow), TPairs.Splat(weightPairs[k]));
            TPairs.Store(sum, sums + ow);
        }

        /// <summary><typeparamref name="TBlocks"/> blocks of two vectors of one output row from column
        /// <paramref name="ow"/>, sharing each weight: on two- and three-row maps a row alone has few products, and one
        /// block per pass spent as many instructions on the loop as on the products.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void RowBlocks<TBlocks, TStride>(short* row, int* offset, int* weightPairs, int products, int* sums, in Int8Store store,
            int channel, int oh, int ow, int directEnd, int initial)
            where TBlocks : struct, IRowCount
            where TStride : struct, IRowCount
        {
            int blocks = TBlocks.Value, step = TStride.Value, lanes = TPairs.Count;
            // Where a block's second vector loads, past its first, and where the next block loads.
            nint second = step == 1 ? 1 : 2 * lanes, next = step * 2 * lanes;
            TVector a0 = TPairs.Splat(initial), a1 = a0, b0 = a0, b1 = a0, c0 = a0, c1 = a0, d0 = a0, d1 = a0;
            for (int k = 0; k < products; k++)
            {
                TVector weight = TPairs.Splat(weightPairs[k]);
                short* p = row + offset[k] + step * ow;
                a0 = TPairs.MultiplyAdd(a0, TPairs.Load(p), weight);
                a1 = TPairs.MultiplyAdd(a1, TPairs.Load(p + second), weight);
                if (blocks > 1)
                {
                    b0 = TPairs.MultiplyAdd(b0, TPairs.Load(p + next), weight);
                    b1 = TPairs.MultiplyAdd(b1, TPairs.Load(p + next + second), weight);
                }
                if (blocks > 2)
                {
                    c0 = TPairs.MultiplyAdd(c0, TPairs.Load(p + 2 * next), weight);
                    c1 = TPairs.MultiplyAdd(c1, TPairs.Load(p + 2 * next + second), weight);
                }
                if (blocks > 3)
                {
                    d0 = TPairs.MultiplyAdd(d0, TPairs.Load(p + 3 * next), weight);
                    d1 = TPairs.MultiplyAdd(d1, TPairs.Load(p + 3 * next + second), weight);
                }
            }
            int position = oh * _g.OutWidth;
            Finish(step, a0, a1, sums, store, channel, position, ow, directEnd);
            if (blocks > 1) Finish(step, b0, b1, sums, store, channel, position, ow + 2 * lanes, directEnd);
            if (blocks > 2) Finish(step, c0, c1, sums, store, channel, position, ow + 4 * lanes, directEnd);
            if (blocks > 3) Finish(step, d0, d1, sums, store, channel, position, ow + 6 * lanes, directEnd);
        }

        /// <summary>A block's two vectors at column <paramref name="col"/> of a row: requantized from the registers
        /// before <paramref name="directEnd"/>, else into the row's sums.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Finish(int step, TVector first, TVector second, int* sums, in Int8Store store, int channel, int position,
            int col, int directEnd)
        {
            if (col < directEnd) Requantize(step, first, second, store, channel, position + col);
            else Store<TPairs, TVector>(step, first, second, sums + col);
        }

        /// <summary>Widens one input channel's image into the rows and columns of <paramref name="plane"/> that hold it
        /// (the padding around them is written once per call).</summary>
        public void Widen(byte* input, short* plane)
        {
            var g = _g;
            int lo = Math.Min(_rowLength, g.PadLeft), hi = Math.Min(_rowLength, g.PadLeft + g.Width);
            int first = Math.Max(0, g.PadTop), last = Math.Min(_planeRows, g.PadTop + g.Height);
            for (int r = first; r < last; r++)
                WidenRow(input + (nint)(r - g.PadTop) * g.Width, plane + (nint)r * _rowLength + lo, hi - lo);
        }

        /// <summary>Zero-extends <paramref name="count"/> bytes to int16 in whole vectors, the last one overlapping the
        /// one before: a feature-map row is 2 to 200 bytes, where a general loop's tail costs as much as its body.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void WidenRow(byte* source, short* destination, int count)
        {
            if (count >= 32 && Avx512BW.IsSupported)
            {
                int i = 0;
                for (; i + 32 < count; i += 32) Avx512BW.ConvertToVector512Int16(Vector256.Load(source + i)).Store(destination + i);
                Avx512BW.ConvertToVector512Int16(Vector256.Load(source + count - 32)).Store(destination + count - 32);
            }
            else if (count >= 16)
            {
                int i = 0;
                for (; i + 16 < count; i += 16) Avx2.ConvertToVector256Int16(Vector128.Load(source + i)).Store(destination + i);
                Avx2.ConvertToVector256Int16(Vector128.Load(source + count - 16)).Store(destination + count - 16);
            }
            else
            {
                for (int i = 0; i < count; i++) destination[i] = source[i];
            }
        }

        /// <summary>The sums of output rows [oh, oh + TRows) into <paramref name="sums"/> (row r at r * paddedWidth):
        /// blocks of two vectors by up to four rows, eight independent chains; with stride 1 a block's two vectors are
        /// its even and odd columns, interleaved when stored.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Rows<TRows, TStride>(short* rows, nint rowStep, int* offset, int* weightPairs, int products, int* sums,
            in Int8Store store, int channel, int oh, int directEnd, int initial)
            where TRows : struct, IRowCount
            where TStride : struct, IRowCount
        {
            int count = TRows.Value, step = TStride.Value;
            int lanes = TPairs.Count, stride = _paddedWidth, outWidth = _g.OutWidth;
            // Where a block's second vector loads, past its first: the odd columns (stride 1) or the next vector's.
            nint second = step == 1 ? 1 : 2 * lanes;
            int ow = 0;
            for (; ow + 2 * lanes <= _paddedWidth; ow += 2 * lanes)
            {
                // Each sum starts at what the products left out would add (0 unless a row runs alone).
                TVector a00 = TPairs.Splat(initial), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
                for (int k = 0; k < products; k++)
                {
                    TVector weight = TPairs.Splat(weightPairs[k]);
                    short* p = rows + offset[k] + step * ow;
                    a00 = TPairs.MultiplyAdd(a00, TPairs.Load(p), weight);
                    a01 = TPairs.MultiplyAdd(a01, TPairs.Load(p + second), weight);
                    if (count > 1)
                    {
                        a10 = TPairs.MultiplyAdd(a10, TPairs.Load(p + rowStep), weight);
                        a11 = TPairs.MultiplyAdd(a11, TPairs.Load(p + rowStep + second), weight);
                    }
                    if (count > 2)
                    {
                        a20 = TPairs.MultiplyAdd(a20, TPairs.Load(p + 2 * rowStep), weight);
                        a21 = TPairs.MultiplyAdd(a21, TPairs.Load(p + 2 * rowStep + second), weight);
                    }
                    if (count > 3)
                    {
                        a30 = TPairs.MultiplyAdd(a30, TPairs.Load(p + 3 * rowStep), weight);
                        a31 = TPairs.MultiplyAdd(a31, TPairs.Load(p + 3 * rowStep + second), weight);
                    }
                }
                if (ow < directEnd)
                {
                    // Whole blocks of a requantized output go from the registers to the bytes.
                    int position = oh * outWidth + ow;
                    Requantize(step, a00, a01, store, channel, position);
                    if (count > 1) Requantize(step, a10, a11, store, channel, position + outWidth);
                    if (count > 2) Requantize(step, a20, a21, store, channel, position + 2 * outWidth);
                    if (count > 3) Requantize(step, a30, a31, store, channel, position + 3 * outWidth);
                    continue;
                }
                Store<TPairs, TVector>(step, a00, a01, sums + ow);
                if (count > 1) Store<TPairs, TVector>(step, a10, a11, sums + stride + ow);
                if (count > 2) Store<TPairs, TVector>(step, a20, a21, sums + 2 * stride + ow);
                if (count > 3) Store<TPairs, TVector>(step, a30, a31, sums + 3 * stride + ow);
            }
            if (ow == _paddedWidth) return;
            if (step == 1)
            {
                Tail<TRows>(rows + ow, rowStep, offset, weightPairs, products, sums + ow, initial);
                return;
            }
            // Stride 2: one vector left, four chains over the rows.
            TVector b0 = TPairs.Splat(initial), b1 = b0, b2 = b0, b3 = b0;
            for (int k = 0; k < products; k++)
            {
                TVector weight = TPairs.Splat(weightPairs[k]);
                short* p = rows + offset[k] + 2 * ow;
                b0 = TPairs.MultiplyAdd(b0, TPairs.Load(p), weight);
                if (count > 1) b1 = TPairs.MultiplyAdd(b1, TPairs.Load(p + rowStep), weight);
                if (count > 2) b2 = TPairs.MultiplyAdd(b2, TPairs.Load(p + 2 * rowStep), weight);
                if (count > 3) b3 = TPairs.MultiplyAdd(b3, TPairs.Load(p + 3 * rowStep), weight);
            }
            TPairs.Store(b0, sums + ow);
            if (count > 1) TPairs.Store(b1, sums + stride + ow);
            if (count > 2) TPairs.Store(b2, sums + 2 * stride + ow);
            if (count > 3) TPairs.Store(b3, sums + 3 * stride + ow);
        }

        /// <summary>Stride 1's last columns (one vector of <typeparamref name="TPairs"/>, from the plane's
        /// <paramref name="rows"/> at the first of them) as even and odd columns on the half-width lanes.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void Tail<TRows>(short* rows, nint rowStep, int* offset, int* weightPairs, int products, int* sums, int initial)
            where TRows : struct, IRowCount
        {
            int count = TRows.Value, stride = _paddedWidth;
            THalf e0 = THalfPairs.Splat(initial), o0 = e0, e1 = e0, o1 = e0, e2 = e0, o2 = e0, e3 = e0, o3 = e0;
            for (int k = 0; k < products; k++)
            {
                THalf weight = THalfPairs.Splat(weightPairs[k]);
                short* p = rows + offset[k];
                e0 = THalfPairs.MultiplyAdd(e0, THalfPairs.Load(p), weight);
                o0 = THalfPairs.MultiplyAdd(o0, THalfPairs.Load(p + 1), weight);
                if (count > 1)
                {
                    e1 = THalfPairs.MultiplyAdd(e1, THalfPairs.Load(p + rowStep), weight);
                    o1 = THalfPairs.MultiplyAdd(o1, THalfPairs.Load(p + rowStep + 1), weight);
                }
                if (count > 2)
                {
                    e2 = THalfPairs.MultiplyAdd(e2, THalfPairs.Load(p + 2 * rowStep), weight);
                    o2 = THalfPairs.MultiplyAdd(o2, THalfPairs.Load(p + 2 * rowStep + 1), weight);
                }
                if (count > 3)
                {
                    e3 = THalfPairs.MultiplyAdd(e3, THalfPairs.Load(p + 3 * rowStep), weight);
                    o3 = THalfPairs.MultiplyAdd(o3, THalfPairs.Load(p + 3 * rowStep + 1), weight);
                }
            }
            Store<THalfPairs, THalf>(1, e0, o0, sums);
            if (count > 1) Store<THalfPairs, THalf>(1, e1, o1, sums + stride);
            if (count > 2) Store<THalfPairs, THalf>(1, e2, o2, sums + 2 * stride);
            if (count > 3) Store<THalfPairs, THalf>(1, e3, o3, sums + 3 * stride);
        }

        /// <summary>Requantizes a block's two vectors into the output, interleaved first with stride 1.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Requantize(int step, TVector first, TVector second, in Int8Store store, int channel, int position)
        {
            if (step == 1) TPairs.Interleave(first, second, out first, out second);
            TPairs.Requantize(store, first, second, channel, position);
        }

        /// <summary>Stores a block's two vectors: with stride 1 (even and odd columns) interleaved, with stride 2 in order.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Store<TLanes, TV>(int step, TV first, TV second, int* destination)
            where TV : struct
            where TLanes : struct, IPairLanes<TV>
        {
            if (step == 1) TLanes.Interleave(first, second, out first, out second);
            TLanes.Store(first, destination);
            TLanes.Store(second, destination + TLanes.Count);
        }
    }

    /// <summary>Horizontal stride 1 (<see cref="IRowCount"/> reused as a compile-time constant).</summary>
    private struct Unit : IRowCount { public static int Value => 1; }

    /// <summary>Horizontal stride 2.</summary>
    private struct Two : IRowCount { public static int Value => 2; }
}

/// <summary>int32 lanes that each hold a pair of int16 values, and the pair product VPMADDWD.</summary>
internal unsafe interface IPairLanes<TVector> where TVector : struct
{
    /// <summary>True when the machine runs these lanes.</summary>
    static abstract bool IsAccelerated { get; }

    /// <summary>Lanes (pairs) per vector.</summary>
    static abstract int Count { get; }

    /// <summary>Every lane <paramref name="pair"/>.</summary>
    static abstract TVector Splat(int pair);

    /// <summary>Loads <see cref="Count"/> pairs: lane i holds <c>source[2i]</c> and <c>source[2i + 1]</c>.</summary>
    static abstract TVector Load(short* source);

    /// <summary>Stores <see cref="Count"/> int32 sums.</summary>
    static abstract void Store(TVector value, int* destination);

    /// <summary><c>accumulator + low(a) * low(b) + high(a) * high(b)</c> per lane (int16 halves, exact in int32).</summary>
    static abstract TVector MultiplyAdd(TVector accumulator, TVector a, TVector b);

    /// <summary>The columns in order from the sums of the even columns and of the odd ones: <paramref name="low"/> =
    /// e0, o0, e1, o1, ... (the first half of each), <paramref name="high"/> the second halves.</summary>
    static abstract void Interleave(TVector even, TVector odd, out TVector low, out TVector high);

    /// <summary>Requantizes two vectors of sums, columns [col, col + 2 <see cref="Count"/>) of output row
    /// <paramref name="row"/>, through <paramref name="store"/> (its kind is <see cref="Int8OutputKind.Requantize"/>).</summary>
    static abstract void Requantize(in Int8Store store, TVector first, TVector second, int row, int col);
}

/// <summary>AVX-512BW pair lanes: 16 output columns, 32 multiply-adds per instruction.</summary>
internal readonly unsafe struct Pairs512 : IPairLanes<Vector512<int>>
{
    public static bool IsAccelerated => Avx512BW.IsSupported && Vector512.IsHardwareAccelerated;

    public static int Count => 16;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<int> Splat(int pair) => Vector512.Create(pair);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<int> Load(short* source) => Vector512.Load((int*)source);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector512<int> value, int* destination) => value.Store(destination);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<int> MultiplyAdd(Vector512<int> accumulator, Vector512<int> a, Vector512<int> b) =>
        accumulator + Avx512BW.MultiplyAddAdjacent(a.AsInt16(), b.AsInt16());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Interleave(Vector512<int> even, Vector512<int> odd, out Vector512<int> low, out Vector512<int> high)
    {
        low = Avx512F.PermuteVar16x32x2(even, Vector512.Create(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23), odd);
        high = Avx512F.PermuteVar16x32x2(even, Vector512.Create(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31), odd);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Requantize(in Int8Store store, Vector512<int> first, Vector512<int> second, int row, int col) =>
        store.Requantize<Vector512<int>, Vector512<float>, Quantize512>(first, second, row, col);
}

/// <summary>AVX2 pair lanes: 8 output columns, 16 multiply-adds per instruction.</summary>
internal readonly unsafe struct Pairs256 : IPairLanes<Vector256<int>>
{
    public static bool IsAccelerated => Avx2.IsSupported;

    public static int Count => 8;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Splat(int pair) => Vector256.Create(pair);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Load(short* source) => Vector256.Load((int*)source);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector256<int> value, int* destination) => value.Store(destination);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> MultiplyAdd(Vector256<int> accumulator, Vector256<int> a, Vector256<int> b) =>
        accumulator + Avx2.MultiplyAddAdjacent(a.AsInt16(), b.AsInt16());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Interleave(Vector256<int> even, Vector256<int> odd, out Vector256<int> low, out Vector256<int> high)
    {
        // Unpacking works within 128-bit halves: e0 o0 e1 o1 | e4 o4 e5 o5 and e2 o2 e3 o3 | e6 o6 e7 o7.
        var a = Avx2.UnpackLow(even, odd);
        var b = Avx2.UnpackHigh(even, odd);
        low = Avx2.Permute2x128(a, b, 0x20);
        high = Avx2.Permute2x128(a, b, 0x31);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Requantize(in Int8Store store, Vector256<int> first, Vector256<int> second, int row, int col) =>
        store.Requantize<Vector256<int>, Vector256<float>, Quantize256>(first, second, row, col);
}

/// <summary>SSE2 pair lanes: 4 output columns, the tail of <see cref="Pairs256"/>'s rows.</summary>
internal readonly unsafe struct Pairs128 : IPairLanes<Vector128<int>>
{
    public static bool IsAccelerated => Sse2.IsSupported;

    public static int Count => 4;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> Splat(int pair) => Vector128.Create(pair);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> Load(short* source) => Vector128.Load((int*)source);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector128<int> value, int* destination) => value.Store(destination);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> MultiplyAdd(Vector128<int> accumulator, Vector128<int> a, Vector128<int> b) =>
        accumulator + Sse2.MultiplyAddAdjacent(a.AsInt16(), b.AsInt16());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Interleave(Vector128<int> even, Vector128<int> odd, out Vector128<int> low, out Vector128<int> high)
    {
        low = Sse2.UnpackLow(even, odd);
        high = Sse2.UnpackHigh(even, odd);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Requantize(in Int8Store store, Vector128<int> first, Vector128<int> second, int row, int col) =>
        store.Requantize<Vector128<int>, Vector128<float>, Quantize128>(first, second, row, col);
}
