using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Squash.Runtime.Kernels;

/// <summary>
/// Copies an N-dimensional strided view of fixed-size elements into another: the one kernel under Transpose,
/// Slice, Expand, Tile, Concat, Split, DepthToSpace and SpaceToDepth. It works on raw bytes with element sizes
/// 1, 2, 4 and 8, so one implementation serves every data type.
/// </summary>
/// <remarks>
/// The view is first simplified: axes of size 1 are dropped and neighbouring axes that stay in order in both
/// layouts are merged. The innermost axis then decides the inner loop: contiguous rows are block copies, a
/// broadcast (stride 0) row is a fill, a row gathered across another axis that is contiguous in the source is a
/// blocked 2-D transpose, and anything else is an element loop. Outer axes are walked with incremental offsets and
/// split across threads.
/// </remarks>
public static unsafe class StridedCopy
{
    /// <summary>Most axes a simplified view may keep; views with more are split on their outer axes.</summary>
    private const int MaxRank = 16;

    /// <summary>Bytes of work per thread task, so that scheduling costs little.</summary>
    private const int TaskBytes = 32 * 1024;

    /// <summary>Long rows are split into chunks of this many bytes so that one big copy still spreads over threads.</summary>
    private const int ChunkBytes = 64 * 1024;

    /// <summary>
    /// <c>destination[i] = source[sourceOffset + Σ i_k · sourceStrides[k]]</c> for every index <c>i</c> of
    /// <paramref name="shape"/>, with <paramref name="destination"/> dense and row-major. Offsets and strides are in
    /// elements; strides may be 0 (broadcast) or negative (reversed).
    /// </summary>
    /// <exception cref="ArgumentException">The view does not fit the buffers, or the arguments disagree.</exception>
    public static void Copy(KernelContext context, int elementSize, ReadOnlySpan<int> shape,
        ReadOnlySpan<byte> source, long sourceOffset, ReadOnlySpan<long> sourceStrides, Span<byte> destination)
    {
        int rank = shape.Length;
        Span<long> strides = rank <= MaxRank ? stackalloc long[rank] : new long[rank];
        long stride = 1;
        for (int k = rank - 1; k >= 0; k--)
        {
            strides[k] = stride;
            stride *= Math.Max(shape[k], 0);
        }
        Copy(context, elementSize, shape, source, sourceOffset, sourceStrides, destination, 0, strides);
    }

    /// <summary>
    /// <c>destination[destinationOffset + Σ i_k · destinationStrides[k]] = source[sourceOffset + Σ i_k · sourceStrides[k]]</c>
    /// for every index <c>i</c> of <paramref name="shape"/>. Offsets and strides are in elements. The destination
    /// view must not overlap itself or the source.
    /// </summary>
    /// <exception cref="ArgumentException">A view does not fit its buffer, or the arguments disagree.</exception>
    public static void Copy(KernelContext context, int elementSize, ReadOnlySpan<int> shape,
        ReadOnlySpan<byte> source, long sourceOffset, ReadOnlySpan<long> sourceStrides,
        Span<byte> destination, long destinationOffset, ReadOnlySpan<long> destinationStrides)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (elementSize is not (1 or 2 or 4 or 8))
            throw new ArgumentOutOfRangeException(nameof(elementSize), "Elements must be 1, 2, 4 or 8 bytes.");
        int rank = shape.Length;
        if (sourceStrides.Length != rank || destinationStrides.Length != rank)
            throw new ArgumentException($"The strides do not match the {rank} axes of the shape.", nameof(shape));
        long count = 1;
        foreach (int n in shape)
        {
            if (n < 0) throw new ArgumentException($"Shape {Shapes.Format(shape)} has a negative dimension.", nameof(shape));
            count *= n;
            if (count > int.MaxValue) throw new ArgumentException($"Shape {Shapes.Format(shape)} has too many elements.", nameof(shape));
        }
        if (count == 0) return;
        CheckBounds(shape, sourceOffset, sourceStrides, source.Length / elementSize, nameof(source));
        CheckBounds(shape, destinationOffset, destinationStrides, destination.Length / elementSize, nameof(destination));

        Span<int> dims = rank <= MaxRank ? stackalloc int[rank] : new int[rank];
        Span<long> src = rank <= MaxRank ? stackalloc long[rank] : new long[rank];
        Span<long> dst = rank <= MaxRank ? stackalloc long[rank] : new long[rank];
        int r = 0;
        for (int k = 0; k < rank; k++)
        {
            int n = shape[k];
            if (n == 1) continue;
            long ss = sourceStrides[k], ds = destinationStrides[k];
            if (r > 0 && src[r - 1] == ss * n && dst[r - 1] == ds * n)
            {
                // The axis continues its outer neighbour in both layouts: one longer axis.
                dims[r - 1] *= n;
                src[r - 1] = ss;
                dst[r - 1] = ds;
            }
            else
            {
                dims[r] = n;
                src[r] = ss;
                dst[r] = ds;
                r++;
            }
        }
        fixed (byte* s = source, d = destination)
            CopySimplified(context, elementSize, dims[..r], src[..r], dst[..r], s + sourceOffset * elementSize, d + destinationOffset * elementSize);
    }

    /// <summary>Fills <paramref name="destination"/> with copies of one element (<paramref name="element"/>: 1, 2, 4 or 8 bytes).</summary>
    /// <exception cref="ArgumentException">The element size is not supported or does not divide the destination.</exception>
    public static void Fill(Span<byte> destination, ReadOnlySpan<byte> element)
    {
        if (destination.Length % Math.Max(element.Length, 1) != 0)
            throw new ArgumentException("The destination is not a whole number of elements.", nameof(destination));
        switch (element.Length)
        {
            case 1: destination.Fill(element[0]); break;
            case 2: MemoryMarshal.Cast<byte, ushort>(destination).Fill(MemoryMarshal.Read<ushort>(element)); break;
            case 4: MemoryMarshal.Cast<byte, uint>(destination).Fill(MemoryMarshal.Read<uint>(element)); break;
            case 8: MemoryMarshal.Cast<byte, ulong>(destination).Fill(MemoryMarshal.Read<ulong>(element)); break;
            default: throw new ArgumentException("Elements must be 1, 2, 4 or 8 bytes.", nameof(element));
        }
    }

    private static void CheckBounds(ReadOnlySpan<int> shape, long offset, ReadOnlySpan<long> strides, long length, string name)
    {
        long low = offset, high = offset;
        for (int k = 0; k < shape.Length; k++)
        {
            long extent = (shape[k] - 1) * strides[k];
            if (extent < 0) low += extent;
            else high += extent;
        }
        if (low < 0 || high >= length)
            throw new ArgumentException($"The strided view reaches outside the {name} buffer.", name);
    }

    private static void CopySimplified(KernelContext context, int es, ReadOnlySpan<int> n, ReadOnlySpan<long> s, ReadOnlySpan<long> d,
        byte* src, byte* dst)
    {
        int r = n.Length;
        if (r == 0)
        {
            Buffer.MemoryCopy(src, dst, es, es);
            return;
        }
        if (r > MaxRank)
        {
            for (int i = 0; i < n[0]; i++)
                CopySimplified(context, es, n[1..], s[1..], d[1..], src + i * s[0] * es, dst + i * d[0] * es);
            return;
        }

        int last = r - 1, split = last;
        var plan = new Plan { Src = src, Dst = dst, Es = es, Mode = Mode.Strided };
        if (d[last] == 1 && s[last] == 1) plan.Mode = Mode.Contiguous;
        else if (d[last] == 1 && s[last] == 0) plan.Mode = Mode.Broadcast;
        else if (d[last] == 1)
        {
            // Another axis that is contiguous in the source: transpose tiles between it and the last axis.
            int p = s[..last].IndexOf(1L);
            if (p >= 0)
            {
                plan.Mode = Mode.Transpose;
                plan.Rows = n[last];
                plan.RowStride = s[last];
                split = p;
            }
        }
        plan.InnerCount = n[split];
        plan.InnerSource = s[split];
        plan.InnerDestination = d[split];
        // Chunks of about the target size, evened out so that no small remainder is left (and a multiple of 8, the
        // SIMD tile width, for transposes). Tall transposes also split their rows, so that one big matrix still
        // spreads over threads.
        int target = plan.Mode == Mode.Transpose ? Transpose.StripWidth(es, plan.Rows) : Math.Max(1, ChunkBytes / es);
        plan.Chunk = EvenChunk(plan.InnerCount, target, plan.Mode == Mode.Transpose);
        plan.Columns = (plan.InnerCount + plan.Chunk - 1) / plan.Chunk;
        plan.RowChunk = plan.Mode == Mode.Transpose ? EvenChunk(plan.Rows, RowBlock, true) : 1;
        plan.RowChunks = plan.Mode == Mode.Transpose ? (plan.Rows + plan.RowChunk - 1) / plan.RowChunk : 1;
        plan.Chunks = plan.Columns * plan.RowChunks;
        long outerCount = 1;
        for (int k = 0; k < r; k++)
        {
            if (k == split || plan.Mode == Mode.Transpose && k == last) continue;
            plan.OuterDims[plan.OuterRank] = n[k];
            plan.OuterSource[plan.OuterRank] = s[k];
            plan.OuterDestination[plan.OuterRank] = d[k];
            plan.OuterRank++;
            outerCount *= n[k];
        }
        long leafBytes = (long)Math.Min(plan.Chunk, plan.InnerCount) * es * (plan.Mode == Mode.Transpose ? Math.Min(plan.Rows, plan.RowChunk) : 1);
        int grain = (int)Math.Max(1, TaskBytes / leafBytes);
        context.For((int)(outerCount * plan.Chunks), plan, grain);
    }

    /// <summary>Rows of a transpose per work item at most (a multiple of 8).</summary>
    private const int RowBlock = 256;

    /// <summary>A chunk length near <paramref name="target"/> that splits <paramref name="count"/> evenly.</summary>
    private static int EvenChunk(int count, int target, bool multipleOf8)
    {
        int chunks = (count + target - 1) / target;
        if (chunks <= 1) return Math.Max(count, 1);
        int chunk = (count + chunks - 1) / chunks;
        return multipleOf8 ? (chunk + 7) & ~7 : chunk;
    }

    private enum Mode : byte
    {
        Contiguous,
        Broadcast,
        Transpose,
        Strided,
    }

    [InlineArray(MaxRank)]
    private struct Dims
    {
        private int _element;
    }

    [InlineArray(MaxRank)]
    private struct Strides
    {
        private long _element;
    }

    /// <summary>The simplified copy: work items are (outer index, chunk) pairs, row-major.</summary>
    private struct Plan : IRangeBody
    {
        public byte* Src;
        public byte* Dst;
        public int Es;
        public Mode Mode;
        public int OuterRank;
        public Dims OuterDims;
        public Strides OuterSource;
        public Strides OuterDestination;
        /// <summary>The axis split into chunks: the last one, or for transposes the one contiguous in the source.</summary>
        public int InnerCount;
        public long InnerSource;
        public long InnerDestination;
        /// <summary>Length of a chunk of the split axis, and how many chunks it has.</summary>
        public int Chunk;
        public int Columns;
        /// <summary>Transposes only: the length and source stride of the last axis (destination stride 1), and
        /// its blocks.</summary>
        public int Rows;
        public long RowStride;
        public int RowChunk;
        public int RowChunks;
        /// <summary>Work items per outer index: <see cref="Columns"/> x <see cref="RowChunks"/>.</summary>
        public int Chunks;

        public void Invoke(int start, int end)
        {
            Dims index = default;
            int outer = start / Chunks, chunk = start % Chunks;
            long so = 0, dO = 0;
            for (int k = OuterRank - 1; k >= 0; k--)
            {
                int i = outer % OuterDims[k];
                outer /= OuterDims[k];
                index[k] = i;
                so += i * OuterSource[k];
                dO += i * OuterDestination[k];
            }
            int item = start, lastAxis = OuterRank - 1;
            while (item < end)
            {
                int step = 1;
                if (Chunks == 1 && lastAxis >= 0)
                {
                    // A run of whole rows along the last outer axis: one tight loop, no odometer per row.
                    step = Math.Min(end - item, OuterDims[lastAxis] - index[lastAxis]);
                    Run(so, dO, step, OuterSource[lastAxis], OuterDestination[lastAxis]);
                    so += (step - 1) * OuterSource[lastAxis];
                    dO += (step - 1) * OuterDestination[lastAxis];
                    index[lastAxis] += step - 1;
                }
                else
                {
                    Leaf(so, dO, chunk);
                }
                item += step;
                if (++chunk < Chunks) continue;
                chunk = 0;
                for (int k = lastAxis; k >= 0; k--)
                {
                    so += OuterSource[k];
                    dO += OuterDestination[k];
                    if (++index[k] < OuterDims[k]) break;
                    so -= OuterSource[k] * OuterDims[k];
                    dO -= OuterDestination[k] * OuterDims[k];
                    index[k] = 0;
                }
            }
        }

        /// <summary>One work item: a chunk of the split axis (and for transposes a block of rows).</summary>
        private readonly void Leaf(long sourceOffset, long destinationOffset, int chunk)
        {
            int column = chunk, rowBlock = 0;
            if (Mode == Mode.Transpose)
            {
                column = chunk / RowChunks;
                rowBlock = chunk % RowChunks;
            }
            int first = column * Chunk;
            int count = Math.Min(Chunk, InnerCount - first);
            byte* s = Src + (sourceOffset + first * InnerSource) * Es;
            byte* d = Dst + (destinationOffset + first * InnerDestination) * Es;
            switch (Mode)
            {
                case Mode.Contiguous:
                    Buffer.MemoryCopy(s, d, (long)count * Es, (long)count * Es);
                    break;
                case Mode.Broadcast:
                    FillElements(s, d, count, Es);
                    break;
                case Mode.Transpose:
                    int firstRow = rowBlock * RowChunk;
                    Transpose.Tile(Es, s + firstRow * RowStride * Es, RowStride, d + (long)firstRow * Es, InnerDestination,
                        Math.Min(RowChunk, Rows - firstRow), count);
                    break;
                default:
                    CopyElements(s, InnerSource, d, InnerDestination, count, Es);
                    break;
            }
        }

        /// <summary><paramref name="count"/> whole items (one chunk each) that follow each other with the given strides.</summary>
        private readonly void Run(long sourceOffset, long destinationOffset, int count, long sourceStep, long destinationStep)
        {
            byte* s = Src + sourceOffset * Es, d = Dst + destinationOffset * Es;
            long ss = sourceStep * Es, ds = destinationStep * Es;
            switch (Mode)
            {
                case Mode.Contiguous:
                    long bytes = (long)InnerCount * Es;
                    for (int i = 0; i < count; i++, s += ss, d += ds) Buffer.MemoryCopy(s, d, bytes, bytes);
                    break;
                case Mode.Broadcast:
                    for (int i = 0; i < count; i++, s += ss, d += ds) FillElements(s, d, InnerCount, Es);
                    break;
                case Mode.Transpose:
                    for (int i = 0; i < count; i++, s += ss, d += ds) Transpose.Tile(Es, s, RowStride, d, InnerDestination, Rows, InnerCount);
                    break;
                default:
                    for (int i = 0; i < count; i++, s += ss, d += ds) CopyElements(s, InnerSource, d, InnerDestination, InnerCount, Es);
                    break;
            }
        }
    }

    private static void FillElements(byte* element, byte* dst, int count, int es)
    {
        switch (es)
        {
            case 1: new Span<byte>(dst, count).Fill(*element); break;
            case 2: new Span<ushort>(dst, count).Fill(*(ushort*)element); break;
            case 4: new Span<uint>(dst, count).Fill(*(uint*)element); break;
            default: new Span<ulong>(dst, count).Fill(*(ulong*)element); break;
        }
    }

    private static void CopyElements(byte* src, long srcStride, byte* dst, long dstStride, int count, int es)
    {
        switch (es)
        {
            case 1: CopyElements((byte*)src, srcStride, (byte*)dst, dstStride, count); break;
            case 2: CopyElements((ushort*)src, srcStride, (ushort*)dst, dstStride, count); break;
            case 4: CopyElements((uint*)src, srcStride, (uint*)dst, dstStride, count); break;
            default: CopyElements((ulong*)src, srcStride, (ulong*)dst, dstStride, count); break;
        }
    }

    private static void CopyElements<T>(T* src, long srcStride, T* dst, long dstStride, int count) where T : unmanaged
    {
        for (int i = 0; i < count; i++, src += srcStride, dst += dstStride) *dst = *src;
    }
}
