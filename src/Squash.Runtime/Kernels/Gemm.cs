using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Squash.Runtime.Kernels;

/// <summary>
/// Single-precision matrix multiplication, the kernel under MatMul, Gemm, Conv, ConvTranspose and the recurrent
/// layers: <c>C = activation(alpha * op(A) * op(B) + beta * C + bias)</c>, row-major with leading dimensions.
/// </summary>
/// <remarks>
/// A blocked GEMM in the Goto/BLIS arrangement: K is cut into blocks (<see cref="GemmKernel.BlockDepth"/>); for each
/// block a slab of op(B) (KC x NC) is packed into column panels and slabs of op(A) (MC x KC) into row panels, and a
/// register-tiled micro-kernel (<see cref="GemmKernel"/>) multiplies panel by panel. Either operand may be packed
/// once in advance (<see cref="PackedMatrix"/>). Work is split over column slabs (and row groups when columns are
/// few); one thread never touches the thread pool.
/// </remarks>
public static unsafe class Gemm
{
    /// <summary>
    /// <c>C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C[M,N]</c>, where op transposes when asked.
    /// A is [M,K] (or [K,M] when <paramref name="transA"/>) with row stride <paramref name="lda"/>; likewise B and C.
    /// With <paramref name="beta"/> = 0, C is not read (NaN in C does not propagate). Accumulates in fp32.
    /// </summary>
    public static void Multiply(KernelContext context, bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc) =>
        Multiply(context, transA, transB, m, n, k, a, lda, b, ldb, c, ldc, new GemmEpilogue { Alpha = alpha, Beta = beta });

    /// <summary><c>C = epilogue(op(A) * op(B))</c> with the shapes and strides of
    /// <see cref="Multiply(KernelContext, bool, bool, int, int, int, float, ReadOnlySpan{float}, int, ReadOnlySpan{float}, int, float, Span{float}, int)"/>.</summary>
    public static void Multiply(KernelContext context, bool transA, bool transB, int m, int n, int k,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, Span<float> c, int ldc, in GemmEpilogue epilogue) =>
        Multiply(context, GemmKernel.Best, transA, transB, m, n, k, a, lda, b, ldb, c, ldc, epilogue);

    /// <summary><c>C[M,N] = epilogue(A * op(B))</c> with A packed in advance (<see cref="PackedMatrix.PackLeft(ReadOnlySpan{float}, int, bool, int, int)"/>);
    /// M and K are A's.</summary>
    public static void Multiply(KernelContext context, PackedMatrix a, bool transB, int n, ReadOnlySpan<float> b, int ldb,
        Span<float> c, int ldc, in GemmEpilogue epilogue)
    {
        ArgumentNullException.ThrowIfNull(a);
        if (!a.IsLeft) throw new ArgumentException("The matrix was packed as a right operand.", nameof(a));
        int m = a.Count, k = a.Depth;
        CheckOperand(b.Length, transB ? n : k, transB ? k : n, ldb, nameof(b));
        CheckOperand(c.Length, m, n, ldc, nameof(c));
        CheckBias(epilogue, m, n, ldc);
        fixed (float* pb = b)
        fixed (float* pc = c)
            epilogue.Pin(pc, new Call<PrepackedPanels, StridedPanels>(context, a.Kernel, m, n, k, a.Source, StridedPanels.Right(pb, ldb, transB), pc, ldc));
    }

    /// <summary><c>C[M,N] = epilogue(op(A) * B)</c> with B packed in advance (<see cref="PackedMatrix.PackRight(ReadOnlySpan{float}, int, bool, int, int)"/>);
    /// K and N are B's.</summary>
    public static void Multiply(KernelContext context, bool transA, int m, ReadOnlySpan<float> a, int lda, PackedMatrix b,
        Span<float> c, int ldc, in GemmEpilogue epilogue)
    {
        ArgumentNullException.ThrowIfNull(b);
        if (b.IsLeft) throw new ArgumentException("The matrix was packed as a left operand.", nameof(b));
        int n = b.Count, k = b.Depth;
        CheckOperand(a.Length, transA ? k : m, transA ? m : k, lda, nameof(a));
        CheckOperand(c.Length, m, n, ldc, nameof(c));
        CheckBias(epilogue, m, n, ldc);
        fixed (float* pa = a)
        fixed (float* pc = c)
            epilogue.Pin(pc, new Call<StridedPanels, PrepackedPanels>(context, b.Kernel, m, n, k, StridedPanels.Left(pa, lda, transA), b.Source, pc, ldc));
    }

    /// <summary><c>C[M,N] = epilogue(A * B)</c> with A packed in advance and B's panels from a source that packs on demand
    /// (the int4 prompt GEMM dequantizes straight into them).</summary>
    internal static void Multiply<TB>(KernelContext context, PackedMatrix a, TB b, int n, Span<float> c, int ldc, in GemmEpilogue epilogue)
        where TB : struct, IPanelSource
    {
        ArgumentNullException.ThrowIfNull(a);
        if (!a.IsLeft) throw new ArgumentException("The matrix was packed as a right operand.", nameof(a));
        int m = a.Count, k = a.Depth;
        CheckOperand(c.Length, m, n, ldc, nameof(c));
        CheckBias(epilogue, m, n, ldc);
        fixed (float* pc = c)
            epilogue.Pin(pc, new Call<PrepackedPanels, TB>(context, a.Kernel, m, n, k, a.Source, b, pc, ldc));
    }

    /// <summary>The general product with a chosen micro-kernel (tests run every kernel the machine supports).</summary>
    internal static void Multiply(KernelContext context, GemmKernel kernel, bool transA, bool transB, int m, int n, int k,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, Span<float> c, int ldc, in GemmEpilogue epilogue)
    {
        CheckOperand(a.Length, transA ? k : m, transA ? m : k, lda, nameof(a));
        CheckOperand(b.Length, transB ? n : k, transB ? k : n, ldb, nameof(b));
        CheckOperand(c.Length, m, n, ldc, nameof(c));
        CheckBias(epilogue, m, n, ldc);
        fixed (float* pa = a)
        fixed (float* pb = b)
        fixed (float* pc = c)
            epilogue.Pin(pc, new Call<StridedPanels, StridedPanels>(context, kernel, m, n, k, StridedPanels.Left(pa, lda, transA), StridedPanels.Right(pb, ldb, transB), pc, ldc));
    }

    /// <summary>A product waiting for its epilogue to be pinned.</summary>
    private readonly struct Call<TA, TB>(KernelContext context, GemmKernel kernel, int m, int n, int k, TA a, TB b, float* c, nint ldc)
        : IEpilogueUser
        where TA : struct, IPanelSource
        where TB : struct, IPanelSource
    {
        public void Run(in TileEpilogue epilogue) => Gemm.Run(context, kernel, m, n, k, a, b, c, ldc, epilogue);
    }

    /// <summary>
    /// The driver: C[M,N] (row stride <paramref name="ldc"/>) = epilogue(A x B) with both operands given as panel
    /// sources. Callers have checked the bounds; pointers stay valid for the duration of the call.
    /// </summary>
    internal static void Run<TA, TB>(KernelContext context, GemmKernel kernel, int m, int n, int k, TA a, TB b,
        float* c, nint ldc, in TileEpilogue epilogue)
        where TA : struct, IPanelSource
        where TB : struct, IPanelSource =>
        Run<TA, PackedRight<TB>, PackedRows>(context, kernel, m, n, k, a, new PackedRight<TB>(b), c, ldc, epilogue);

    /// <summary>The driver for any right operand, packed or read in place.</summary>
    internal static void Run<TA, TB, TRows>(KernelContext context, GemmKernel kernel, int m, int n, int k, TA a, TB b,
        float* c, nint ldc, in TileEpilogue epilogue)
        where TA : struct, IPanelSource
        where TB : struct, IRightOperand<TRows>
        where TRows : struct, IPanelRows<TRows>
    {
        if (m <= 0 || n <= 0) return;
        if (k <= 0)
        {
            // An empty sum: only beta * C, the biases and the activation remain.
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                    c[i * ldc + j] = epilogue.Apply(0, c + i * ldc + j, i, j);
            return;
        }
        int nc = Math.Min(kernel.Nc, RoundUp(n, kernel.Nr));
        int columnSlabs = (n + nc - 1) / nc;
        int rowGroups = 1;
        int threads = context.ThreadCount;
        // Below about a million multiply-adds the cost of waking threads exceeds the gain.
        if (threads > 1 && (long)m * n * k >= 1 << 20)
        {
            // About three tasks per thread balance uneven finishing times. Columns split first: a column slab packs
            // its B once for all rows, while A is usually packed in advance (weights).
            int want = threads * 3;
            if (columnSlabs < want)
            {
                nc = Math.Max(kernel.Nr, RoundUp((n + want - 1) / want, kernel.Nr));
                columnSlabs = (n + nc - 1) / nc;
            }
            if (columnSlabs < want)
                rowGroups = Math.Min((want + columnSlabs - 1) / columnSlabs, (m + kernel.Mr - 1) / kernel.Mr);
        }
        int groupRows = RoundUp((m + rowGroups - 1) / rowGroups, kernel.Mr);
        rowGroups = (m + groupRows - 1) / groupRows;
        var body = new Body<TA, TB, TRows>(kernel, m, n, k, a, b, c, ldc, epilogue, nc, groupRows, rowGroups);
        if (threads == 1) body.Invoke(0, rowGroups * columnSlabs);
        else context.For(rowGroups * columnSlabs, body);
    }

    /// <summary>One task: a group of rows of one column slab of C, over all of K.</summary>
    private readonly struct Body<TA, TB, TRows>(GemmKernel kernel, int m, int n, int k, TA a, TB b, float* c, nint ldc,
        TileEpilogue epilogue, int nc, int groupRows, int rowGroups) : IRangeBody
        where TA : struct, IPanelSource
        where TB : struct, IRightOperand<TRows>
        where TRows : struct, IPanelRows<TRows>
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Invoke(int start, int end)
        {
            int mr = kernel.Mr, nr = kernel.Nr, mc = kernel.Mc;
            int blockDepth = GemmKernel.BlockDepth(k);
            float* packedA = GemmScratch.A(mc * blockDepth);
            float* packedB = GemmScratch.B(RoundUp(nc, nr) * blockDepth);
            float* edge = stackalloc float[mr * nr];
            for (int task = start; task < end; task++)
            {
                int j0 = task / rowGroups * nc, nLength = Math.Min(nc, n - j0);
                int rowStart = task % rowGroups * groupRows, rowEnd = Math.Min(m, rowStart + groupRows);
                for (int p0 = 0; p0 < k; p0 += blockDepth)
                {
                    int kc = Math.Min(blockDepth, k - p0);
                    var blockEpilogue = epilogue.ForBlock(p0, kc, k);
                    var bPanels = b.Slab(j0, nLength, p0, kc, nr, packedB);
                    for (int i0 = rowStart; i0 < rowEnd; i0 += mc)
                    {
                        int mLength = Math.Min(mc, rowEnd - i0);
                        float* aPanels = a.Panels(i0, mLength, p0, kc, mr, packedA);
                        Macro(aPanels, bPanels, i0, mLength, j0, nLength, kc, blockEpilogue, edge);
                    }
                }
            }
        }

        /// <summary>Multiplies a slab of A by a slab of B into C[i0.., j0..]. Each A panel (MR x KC) stays in L1
        /// while the B panels of the slab stream from L2.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Macro(float* aPanels, TRows bPanels, int i0, int mLength, int j0, int nLength, int kc,
            in TileEpilogue blockEpilogue, float* edge)
        {
            int mr = kernel.Mr, nr = kernel.Nr;
            for (int ir = 0; ir < mLength; ir += mr)
            {
                int rows = Math.Min(mr, mLength - ir);
                float* aPanel = aPanels + (nint)ir * kc;
                float* cRow = c + (i0 + ir) * ldc + j0;
                for (int jr = 0; jr < nLength; jr += nr)
                {
                    var bPanel = bPanels.Advance(jr, kc);
                    int cols = nLength - jr;
                    if (cols >= nr)
                    {
                        kernel.Run(rows, kc, aPanel, bPanel, cRow + jr, ldc, blockEpilogue.InRegisters, i0 + ir, j0 + jr);
                        if (blockEpilogue.NeedsPass)
                        {
                            var after = blockEpilogue.AfterStore;
                            for (int r = 0; r < rows; r++)
                                after.ApplyRow(cRow + r * ldc + jr, cRow + r * ldc + jr, nr, i0 + ir + r, j0 + jr);
                        }
                        continue;
                    }
                    // A partial tile: compute it whole into scratch, then merge the valid columns.
                    kernel.Run(rows, kc, aPanel, bPanel, edge, nr, TileEpilogue.Raw, 0, 0);
                    for (int r = 0; r < rows; r++)
                        blockEpilogue.ApplyRow(edge + r * nr, cRow + r * ldc + jr, cols, i0 + ir + r, j0 + jr);
                }
            }
        }
    }

    /// <summary>Throws unless a [rows, cols] matrix with row stride <paramref name="ld"/> fits <paramref name="length"/> floats.</summary>
    internal static void CheckOperand(int length, int rows, int cols, int ld, string name)
    {
        if (rows < 0 || cols < 0) throw new ArgumentOutOfRangeException(name, "Matrix dimensions must not be negative.");
        if (rows == 0 || cols == 0) return;
        if (ld < cols) throw new ArgumentException($"The row stride {ld} is less than the {cols} columns.", name);
        if ((long)(rows - 1) * ld + cols > length)
            throw new ArgumentException($"A [{rows},{cols}] matrix with row stride {ld} does not fit {length} elements.", name);
    }

    private static void CheckBias(in GemmEpilogue epilogue, int m, int n, int ldc)
    {
        CheckVector(epilogue.RowBias, m, "row bias");
        CheckVector(epilogue.RowScale, m, "row scale");
        CheckVector(epilogue.RowShift, m, "row shift");
        CheckVector(epilogue.ColumnBias, n, "column bias");
        CheckVector(epilogue.ColumnScale, n, "column scale");
        CheckVector(epilogue.ColumnShift, n, "column shift");
        if (!epilogue.Residual.IsEmpty) CheckOperand(epilogue.Residual.Length, m, n, ldc, "residual");
    }

    private static void CheckVector(ReadOnlySpan<float> values, int count, string what)
    {
        if (!values.IsEmpty && values.Length < count)
            throw new ArgumentException($"The {what} has {values.Length} values for {count}.", "epilogue");
    }

    private static int RoundUp(int value, int multiple) => (value + multiple - 1) / multiple * multiple;
}

/// <summary>Per-thread packing buffers, reused across calls so that a GEMM allocates nothing after warm-up.</summary>
internal static unsafe class GemmScratch
{
    [ThreadStatic] private static float[]? t_a;
    [ThreadStatic] private static float[]? t_b;

    /// <summary>At least <paramref name="floats"/> floats for packed A, 64-byte aligned.</summary>
    public static float* A(int floats) => Get(ref t_a, floats);

    /// <summary>At least <paramref name="floats"/> floats for packed B, 64-byte aligned.</summary>
    public static float* B(int floats) => Get(ref t_b, floats);

    /// <summary>An aligned pointer into a pinned per-thread array of at least <paramref name="floats"/> floats.</summary>
    public static float* Get(ref float[]? buffer, int floats)
    {
        if (buffer is null || buffer.Length < floats + 16)
            buffer = GC.AllocateUninitializedArray<float>(floats + 16, pinned: true);
        nint address = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(buffer));
        return (float*)((address + 63) & ~(nint)63);
    }
}
