namespace Squash.Runtime.Kernels;

/// <summary>How <see cref="Pad"/> fills the border.</summary>
public enum PadMode
{
    /// <summary>A constant value; negative pads crop.</summary>
    Constant,
    /// <summary>Mirror without repeating the edge element (NumPy's <c>reflect</c>).</summary>
    Reflect,
    /// <summary>Repeat the edge element.</summary>
    Edge,
    /// <summary>Wrap around (NumPy's <c>wrap</c>).</summary>
    Wrap,
}

/// <summary>
/// Padding of tensors of any element type (1, 2, 4 or 8 bytes). Each output axis gets an index map to its source
/// index (or "constant"); rows of the innermost axis are then written once each: a block copy for the interior
/// and the map for the borders.
/// </summary>
public static unsafe class Pad
{
    private const int TaskBytes = 32 * 1024;

    /// <summary>
    /// Pads <paramref name="source"/> (shape <paramref name="inputShape"/>) into <paramref name="destination"/>
    /// (shape <paramref name="outputShape"/>); output index <c>o</c> of axis <c>k</c> reads input index
    /// <c>o - begin[k]</c>, mapped into range by <paramref name="mode"/>.
    /// </summary>
    /// <param name="context">Threads.</param>
    /// <param name="inputShape">The source's shape.</param>
    /// <param name="source">The source's bytes.</param>
    /// <param name="outputShape">The destination's shape.</param>
    /// <param name="begin">Elements added before each axis (negative to crop).</param>
    /// <param name="mode">How the border is filled.</param>
    /// <param name="value">The constant's bytes (one element; its length is the element size).</param>
    /// <param name="destination">The destination's bytes.</param>
    /// <exception cref="ArgumentException">The arguments disagree, or a non-constant mode pads an empty axis.</exception>
    public static void Run(KernelContext context, ReadOnlySpan<int> inputShape, ReadOnlySpan<byte> source,
        ReadOnlySpan<int> outputShape, ReadOnlySpan<int> begin, PadMode mode, ReadOnlySpan<byte> value, Span<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(context);
        int es = value.Length, rank = inputShape.Length;
        if (es is not (1 or 2 or 4 or 8)) throw new ArgumentException("Elements must be 1, 2, 4 or 8 bytes.", nameof(value));
        if (outputShape.Length != rank || begin.Length != rank) throw new ArgumentException("The shapes and pads must have one rank.", nameof(outputShape));
        if (source.Length != Shapes.ElementCount(inputShape) * es || destination.Length != Shapes.ElementCount(outputShape) * es)
            throw new ArgumentException("The buffers do not match the shapes.", nameof(source));
        if (destination.Length == 0) return;
        if (rank == 0)
        {
            source.CopyTo(destination);
            return;
        }

        // maps[offsets[k] + o] is the source index of output index o on axis k, or -1 for the constant.
        var offsets = new int[rank + 1];
        for (int k = 0; k < rank; k++) offsets[k + 1] = offsets[k] + outputShape[k];
        var maps = new int[offsets[rank]];
        for (int k = 0; k < rank; k++)
        {
            int n = inputShape[k];
            if (n == 0 && mode != PadMode.Constant && outputShape[k] > 0)
                throw new ArgumentException($"Cannot pad an empty axis in {mode} mode.", nameof(inputShape));
            for (int o = 0; o < outputShape[k]; o++) maps[offsets[k] + o] = Map((long)o - begin[k], n, mode);
        }
        var inputStrides = new long[rank];
        long stride = 1;
        for (int k = rank - 1; k >= 0; k--)
        {
            inputStrides[k] = stride;
            stride *= inputShape[k];
        }

        int width = outputShape[rank - 1];
        int rows = destination.Length / es / width;
        // The interior of a row: output indices [first, last) read the contiguous source run from first - begin.
        int first = Math.Clamp(begin[rank - 1], 0, width);
        int last = Math.Clamp(begin[rank - 1] + inputShape[rank - 1], first, width);
        fixed (byte* src = source, dst = destination, fill = value)
        fixed (int* mapPtr = maps, offsetPtr = offsets, shapePtr = outputShape)
        fixed (long* stridePtr = inputStrides)
        {
            var body = new Rows
            {
                Src = src, Dst = dst, Value = fill, Es = es, Rank = rank, OutputShape = shapePtr,
                Maps = mapPtr, Offsets = offsetPtr, InputStrides = stridePtr, ConstantBorders = mode == PadMode.Constant,
                Width = width, First = first, Last = last, Begin = begin[rank - 1],
            };
            context.For(rows, body, Math.Max(1, TaskBytes / Math.Max(1, width * es)));
        }
    }

    private static int Map(long index, int n, PadMode mode)
    {
        if (index >= 0 && index < n) return (int)index;
        switch (mode)
        {
            case PadMode.Constant:
                return -1;
            case PadMode.Edge:
                return index < 0 ? 0 : n - 1;
            case PadMode.Wrap:
                long wrapped = index % n;
                return (int)(wrapped < 0 ? wrapped + n : wrapped);
            default:
                if (n == 1) return 0;
                // Reflection repeats with period 2(n - 1); far pads reflect again, as NumPy does.
                long period = 2L * (n - 1);
                long r = index % period;
                if (r < 0) r += period;
                return (int)(r < n ? r : period - r);
        }
    }

    private struct Rows : IRangeBody
    {
        public byte* Src;
        public byte* Dst;
        public byte* Value;
        public int Es;
        public int Rank;
        public int* OutputShape;
        public int* Maps;
        public int* Offsets;
        public long* InputStrides;
        /// <summary>Constant mode: the row borders are all constant (the map is consulted only otherwise).</summary>
        public bool ConstantBorders;
        public int Width;
        public int First;
        public int Last;
        public int Begin;

        public readonly void Invoke(int start, int end)
        {
            int outer = Rank - 1;
            for (int row = start; row < end; row++)
            {
                // Source row from the maps of the outer axes; any constant index makes the whole row constant.
                long srcRow = 0;
                bool constant = false;
                int rest = row;
                for (int k = outer - 1; k >= 0; k--)
                {
                    int o = rest % OutputShape[k];
                    rest /= OutputShape[k];
                    int m = Maps[Offsets[k] + o];
                    if (m < 0)
                    {
                        constant = true;
                        break;
                    }
                    srcRow += m * InputStrides[k];
                }
                byte* d = Dst + (long)row * Width * Es;
                if (constant)
                {
                    Fill(d, Width);
                    continue;
                }
                byte* s = Src + srcRow * Es;
                Border(s, d, 0, First);
                Buffer.MemoryCopy(s + (long)(First - Begin) * Es, d + (long)First * Es, (long)(Last - First) * Es, (long)(Last - First) * Es);
                Border(s, d, Last, Width);
            }
        }

        private readonly void Border(byte* s, byte* d, int from, int to)
        {
            if (ConstantBorders)
            {
                Fill(d + (long)from * Es, to - from);
                return;
            }
            int* map = Maps + Offsets[Rank - 1];
            for (int o = from; o < to; o++)
            {
                int m = map[o];
                Buffer.MemoryCopy(m < 0 ? Value : s + (long)m * Es, d + (long)o * Es, Es, Es);
            }
        }

        private readonly void Fill(byte* d, int count)
        {
            switch (Es)
            {
                case 1: new Span<byte>(d, count).Fill(*Value); break;
                case 2: new Span<ushort>(d, count).Fill(*(ushort*)Value); break;
                case 4: new Span<uint>(d, count).Fill(*(uint*)Value); break;
                default: new Span<ulong>(d, count).Fill(*(ulong*)Value); break;
            }
        }
    }
}
