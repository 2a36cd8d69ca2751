using System.Runtime.CompilerServices;

namespace Squash.Runtime.Kernels;

/// <summary>
/// Int8 matrix multiplication: uint8 activations times int8 weights, exact int32 sums, and a fused per-channel
/// epilogue (<see cref="Int8Epilogue"/>: requantize to uint8, dequantize to fp32, or int32). The weights are packed
/// once (<see cref="Int8PackedWeights"/>) on either side: on the right for a MatMul (<c>C = A x W</c>), on the left
/// for a convolution over NCHW (<c>C = W x B</c>, channels by pixels), so that the output comes out in the layout the
/// next layer reads without a transpose.
/// </summary>
/// <remarks>
/// <para>The number formats (docs/quantization.md): activations are asymmetric uint8 per tensor (scale, zero point zx),
/// weights symmetric int8 per output channel in [-64, 64], bias int32. uint8 x int8 is what VPMADDUBSW multiplies; it
/// sums pairs of products into int16 with saturation, and weights of 7 bits keep every pair sum exact for all uint8
/// activations (2 x 255 x 64 &lt; 32767) at the full speed of VPMADDUBSW + VPMADDWD, measured at twice the fp32 FMA
/// rate and 1.37 times the exact int16 (VPMADDWD) path. Seven-bit activations would run at the same speed, but per-channel
/// weights lose less from a bit than per-tensor activations, and activations keep the standard uint8 range. The zero
/// point is folded: <c>sum (x - zx) * w = sum x * w - zx * sum w</c>, the weight sums precomputed at packing.</para>
/// <para>A blocked GEMM in the Goto/BLIS arrangement of the fp32 <see cref="Gemm"/>, with one difference: K is not split.
/// An int8 panel of K is a quarter of an fp32 one and each byte loaded feeds twice the multiply-adds, so a left panel
/// (Mr x K bytes: 4.6 KB at K = 576) stays in L1 and a slab of right panels (K x NC bytes, NC chosen so that it stays
/// within <see cref="SlabBytes"/>) in L2 for any K of a real network, and the int32 sums never leave the registers
/// until the epilogue. Work is split over column slabs (and row groups when columns are few); one thread never
/// touches the thread pool.</para>
/// </remarks>
public static unsafe class Int8Gemm
{
    /// <summary>The budget for a slab of packed right panels (and a block of left ones): half of a 1 MB L2.</summary>
    internal const int SlabBytes = 512 * 1024;

    /// <summary>
    /// <c>C[M,N] = epilogue(A[M,K] x W)</c> with uint8 A (row stride <paramref name="lda"/>) and weights packed on the
    /// right (<see cref="Int8PackedWeights.PackRight(ReadOnlySpan{sbyte}, int, bool, int, int)"/>); K and N are the weights'. <typeparamref name="T"/> is byte, float or
    /// int as the epilogue's <see cref="Int8Epilogue.Kind"/> says; the epilogue's channels are the columns.
    /// </summary>
    public static void Multiply<T>(KernelContext context, int m, ReadOnlySpan<byte> a, int lda, Int8PackedWeights b,
        Int8Epilogue epilogue, Span<T> c, int ldc) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(b);
        if (b.IsLeft) throw new ArgumentException("The weights were packed as a left operand.", nameof(b));
        int n = b.Channels, k = b.Depth;
        CheckOperand(a.Length, m, k, lda, nameof(a));
        CheckOperand(c.Length, m, n, ldc, nameof(c));
        CheckEpilogue<T>(epilogue, n, k);
        fixed (byte* pa = a)
        fixed (T* pc = c)
        {
            Run<WeightsRight, Int8LeftRows, PrepackedInt8Panels>(context, b.Kernel, m, n, k, new Int8LeftRows(pa, lda, k), b.Source,
                new Int8Store(epilogue, pc, ldc, 0, channelsOnRows: false));
        }
    }

    /// <summary>
    /// <c>C[M,N] = epilogue(W x B[K,N])</c> with weights packed on the left (<see cref="Int8PackedWeights.PackLeft(ReadOnlySpan{sbyte}, int, int, int)"/>)
    /// and uint8 B (row stride <paramref name="ldb"/>); M and K are the weights'. <typeparamref name="T"/> is byte,
    /// float or int as the epilogue's <see cref="Int8Epilogue.Kind"/> says; the epilogue's channels are the rows.
    /// </summary>
    public static void Multiply<T>(KernelContext context, Int8PackedWeights a, int n, ReadOnlySpan<byte> b, int ldb,
        Int8Epilogue epilogue, Span<T> c, int ldc) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(a);
        if (!a.IsLeft) throw new ArgumentException("The weights were packed as a right operand.", nameof(a));
        int m = a.Channels, k = a.Depth;
        CheckOperand(b.Length, k, n, ldb, nameof(b));
        CheckOperand(c.Length, m, n, ldc, nameof(c));
        CheckEpilogue<T>(epilogue, m, k);
        fixed (byte* pb = b)
        fixed (T* pc = c)
        {
            Run<WeightsLeft, PrepackedInt8Panels, Int8RightRows>(context, a.Kernel, m, n, k, a.Source, new Int8RightRows(pb, ldb, k),
                new Int8Store(epilogue, pc, ldc, 0, channelsOnRows: true));
        }
    }

    /// <summary>
    /// The driver: C[M,N] = store(left x right) over the whole depth <paramref name="k"/>, both operands given as panel
    /// sources. Callers have checked the bounds; pointers stay valid for the duration of the call.
    /// </summary>
    internal static void Run<TSide, TLeft, TRight>(KernelContext context, Int8Kernel kernel, int m, int n, int k,
        TLeft left, TRight right, in Int8Store store)
        where TSide : struct, IInt8Side
        where TLeft : struct, IInt8PanelSource
        where TRight : struct, IInt8PanelSource
    {
        if (m <= 0 || n <= 0) return;
        int mr = kernel.Mr, nr = kernel.Nr;
        int quads = (k + 3) / 4;
        int depthBytes = Math.Max(4, 4 * quads);
        int nc = Math.Clamp(SlabBytes / depthBytes / nr * nr, nr, 16 * nr);
        int mc = Math.Clamp(SlabBytes / depthBytes / mr * mr, mr, 16 * mr);
        nc = Math.Min(nc, RoundUp(n, nr));
        int columnSlabs = (n + nc - 1) / nc;
        int rowGroups = 1;
        int threads = context.ThreadCount;
        // Below about two million multiply-adds the cost of waking threads exceeds the gain.
        if (threads > 1 && (long)m * n * k >= 1 << 21)
        {
            // About three tasks per thread balance uneven finishing times. Every task packs its share of the operand
            // that is packed on the fly, so the split goes first along that operand: columns when the left operand is
            // pre-packed (a convolution packs its image slab once for all rows), rows when the right one is (a MatMul
            // packs its activation rows once for all columns).
            int want = threads * 3;
            int panelRows = (m + mr - 1) / mr;
            if (typeof(TRight) == typeof(PrepackedInt8Panels) && typeof(TLeft) != typeof(PrepackedInt8Panels))
            {
                rowGroups = Math.Min(want, panelRows);
                int slabs = (want + rowGroups - 1) / rowGroups;
                if (columnSlabs < slabs)
                {
                    nc = Math.Max(nr, RoundUp((n + slabs - 1) / slabs, nr));
                    columnSlabs = (n + nc - 1) / nc;
                }
            }
            else
            {
                if (columnSlabs < want)
                {
                    nc = Math.Max(nr, RoundUp((n + want - 1) / want, nr));
                    columnSlabs = (n + nc - 1) / nc;
                }
                // Each row group packs the same slab again: split rows only when there are fewer slabs than threads
                // (det's 96-to-24 3x3 at 20x20, five slabs of im2col, was slower on two threads than on one).
                if (columnSlabs < threads)
                    rowGroups = Math.Min((want + columnSlabs - 1) / columnSlabs, panelRows);
            }
        }
        int groupRows = RoundUp((m + rowGroups - 1) / rowGroups, mr);
        rowGroups = (m + groupRows - 1) / groupRows;
        int tasks = rowGroups * columnSlabs;
        switch (store.Kind)
        {
            case Int8OutputKind.Requantize:
                Start(context, tasks, new Body<TSide, TLeft, TRight, Int8ToRequantized>(kernel, m, n, quads, left, right, store, nc, mc, groupRows, rowGroups));
                break;
            case Int8OutputKind.Dequantize:
                Start(context, tasks, new Body<TSide, TLeft, TRight, Int8ToDequantized>(kernel, m, n, quads, left, right, store, nc, mc, groupRows, rowGroups));
                break;
            default:
                Start(context, tasks, new Body<TSide, TLeft, TRight, Int8ToInteger>(kernel, m, n, quads, left, right, store, nc, mc, groupRows, rowGroups));
                break;
        }
    }

    private static void Start<TBody>(KernelContext context, int tasks, TBody body) where TBody : struct, IRangeBody
    {
        if (context.ThreadCount == 1) body.Invoke(0, tasks);
        else context.For(tasks, body);
    }

    /// <summary>One task: a group of rows of one column slab of C. Full tiles go through the epilogue
    /// <typeparamref name="TOutput"/> in registers; partial ones through a tile buffer.</summary>
    private readonly struct Body<TSide, TLeft, TRight, TOutput>(Int8Kernel kernel, int m, int n, int quads, TLeft left, TRight right,
        Int8Store store, int nc, int mc, int groupRows, int rowGroups) : IRangeBody
        where TSide : struct, IInt8Side
        where TLeft : struct, IInt8PanelSource
        where TRight : struct, IInt8PanelSource
        where TOutput : struct, IInt8TileOutput
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Invoke(int start, int end)
        {
            int mr = kernel.Mr, nr = kernel.Nr;
            nint depthBytes = 4 * (nint)quads;
            byte* packedLeft = Int8Scratch.Left(checked((int)(mc * depthBytes) + left.ExtraScratch(mc)));
            byte* packedRight = Int8Scratch.Right(checked((int)(nc * depthBytes) + right.ExtraScratch(nc)));
            int* tile = stackalloc int[mr * nr];
            for (int task = start; task < end; task++)
            {
                int j0 = task / rowGroups * nc, nLength = Math.Min(nc, n - j0);
                int rowStart = task % rowGroups * groupRows, rowEnd = Math.Min(m, rowStart + groupRows);
                byte* rightPanels = right.Panels(j0, nLength, nr, packedRight);
                for (int i0 = rowStart; i0 < rowEnd; i0 += mc)
                {
                    int mLength = Math.Min(mc, rowEnd - i0);
                    byte* leftPanels = left.Panels(i0, mLength, mr, packedLeft);
                    // Each left panel stays in L1 while the right panels of the slab stream from L2.
                    for (int ir = 0; ir < mLength; ir += mr)
                    {
                        int rows = Math.Min(mr, mLength - ir);
                        byte* leftPanel = leftPanels + ir * depthBytes;
                        for (int jr = 0; jr < nLength; jr += nr)
                        {
                            int cols = nLength - jr;
                            if (cols >= nr)
                            {
                                kernel.Run<TSide, TOutput>(rows, quads, leftPanel, rightPanels + jr * depthBytes, null, store, i0 + ir, j0 + jr);
                                continue;
                            }
                            kernel.Run<TSide, Int8ToTile>(rows, quads, leftPanel, rightPanels + jr * depthBytes, tile, store, i0 + ir, j0 + jr);
                            for (int r = 0; r < rows; r++)
                                store.StoreRow(tile + r * nr, cols, i0 + ir + r, j0 + jr);
                        }
                    }
                }
            }
        }
    }

    /// <summary>Throws unless a [rows, cols] matrix with row stride <paramref name="ld"/> fits <paramref name="length"/> elements.</summary>
    internal static void CheckOperand(int length, int rows, int cols, int ld, string name)
    {
        if (rows < 0 || cols < 0) throw new ArgumentOutOfRangeException(name, "Matrix dimensions must not be negative.");
        if (rows == 0 || cols == 0) return;
        if (ld < cols) throw new ArgumentException($"The row stride {ld} is less than the {cols} columns.", name);
        if ((long)(rows - 1) * ld + cols > length)
            throw new ArgumentException($"A [{rows},{cols}] matrix with row stride {ld} does not fit {length} elements.", name);
    }

    /// <summary>Throws unless the epilogue has <paramref name="channels"/> channels, writes <typeparamref name="T"/>, and
    /// the depth keeps the sums exact.</summary>
    internal static void CheckEpilogue<T>(Int8Epilogue epilogue, int channels, int k) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(epilogue);
        if (epilogue.Channels != channels)
            throw new ArgumentException($"The epilogue has {epilogue.Channels} channels for {channels} output channels.", nameof(epilogue));
        var expected = epilogue.Kind switch
        {
            Int8OutputKind.Requantize => typeof(byte),
            Int8OutputKind.Dequantize => typeof(float),
            _ => typeof(int),
        };
        if (typeof(T) != expected)
            throw new ArgumentException($"A {epilogue.Kind} epilogue writes {expected.Name}, not {typeof(T).Name}.", nameof(epilogue));
        if (k > Int8Epilogue.MaxDepth)
            throw new ArgumentException($"The depth {k} exceeds {Int8Epilogue.MaxDepth}, beyond which int32 sums may overflow.");
    }

    private static int RoundUp(int value, int multiple) => (value + multiple - 1) / multiple * multiple;
}
