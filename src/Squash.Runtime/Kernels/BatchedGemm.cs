namespace Squash.Runtime.Kernels;

/// <summary>
/// Many independent fp32 products <c>C[b] = A[aOffset[b]..] x B[bOffset[b]..]</c>, as MatMul's broadcast batch
/// dimensions and Einsum's batch labels need. Small products (attention heads) run one per thread; large ones one
/// after another, each split over the threads.
/// </summary>
internal static unsafe class BatchedGemm
{
    private static readonly KernelContext s_singleThread = new(1);

    /// <summary>
    /// For each batch b: <c>C[b * m * n ..] = op(A)[m,k] x op(B)[k,n]</c>, where A's matrix starts at
    /// <c>a[aOffsets[b]]</c> with row stride <paramref name="lda"/> (transposed when <paramref name="transA"/>), likewise
    /// B; or B is the pre-packed <paramref name="packedB"/> for every batch. Offsets were checked by the caller.
    /// </summary>
    public static void Multiply(KernelContext context, int m, int n, int k, ReadOnlySpan<float> a, long[] aOffsets, int lda, bool transA,
        ReadOnlySpan<float> b, long[] bOffsets, int ldb, bool transB, PackedMatrix? packedB, Span<float> c) =>
        Multiply(context, m, n, k, a, aOffsets, lda, transA, b, bOffsets, ldb, transB, packedB, c, new GemmEpilogue());

    /// <summary>
    /// As <see cref="Multiply(KernelContext, int, int, int, ReadOnlySpan{float}, long[], int, bool, ReadOnlySpan{float}, long[], int, bool, PackedMatrix?, Span{float})"/>,
    /// each product through <paramref name="epilogue"/>: its row and column members index every product's rows and
    /// columns, and its residual is shaped like all of C.
    /// </summary>
    public static void Multiply(KernelContext context, int m, int n, int k, ReadOnlySpan<float> a, long[] aOffsets, int lda, bool transA,
        ReadOnlySpan<float> b, long[] bOffsets, int ldb, bool transB, PackedMatrix? packedB, Span<float> c, in GemmEpilogue epilogue)
    {
        int batch = aOffsets.Length;
        if (batch == 0 || m == 0 || n == 0) return;
        fixed (float* pa = a)
        fixed (float* pb = b)
        fixed (float* pc = c)
        {
            // Below about 256k multiply-adds a product is not worth splitting over threads; the batch is.
            bool perThread = context.ThreadCount > 1 && batch > 1 && (long)m * n * k < 1 << 18;
            var body = new Body(perThread ? s_singleThread : context, m, n, k, pa, aOffsets, lda, transA, pb, bOffsets, ldb, transB, packedB, pc, default);
            epilogue.Pin(pc, new Call(context, body, batch, perThread));
        }
    }

    private readonly struct Call(KernelContext context, Body body, int batch, bool perThread) : IEpilogueUser
    {
        public void Run(in TileEpilogue epilogue)
        {
            var withEpilogue = body.With(epilogue);
            if (perThread) context.For(batch, withEpilogue);
            else withEpilogue.Invoke(0, batch);
        }
    }

    private readonly struct Body(KernelContext context, int m, int n, int k, float* a, long[] aOffsets, int lda, bool transA,
        float* b, long[] bOffsets, int ldb, bool transB, PackedMatrix? packedB, float* c, TileEpilogue epilogue) : IRangeBody
    {
        public Body With(in TileEpilogue tile) =>
            new(context, m, n, k, a, aOffsets, lda, transA, b, bOffsets, ldb, transB, packedB, c, tile);

        public void Invoke(int start, int end)
        {
            for (int i = start; i < end; i++)
            {
                var left = StridedPanels.Left(a + aOffsets[i], lda, transA);
                float* target = c + (long)i * m * n;
                if (packedB is not null)
                    Gemm.Run(context, packedB.Kernel, m, n, k, left, packedB.Source, target, n, epilogue);
                else
                    Gemm.Run(context, GemmKernel.Best, m, n, k, left, StridedPanels.Right(b + bOffsets[i], ldb, transB), target, n, epilogue);
            }
        }
    }

    /// <summary>
    /// Element offsets of the matrices of an operand with batch dimensions <paramref name="batch"/> (right-aligned
    /// against <paramref name="outputBatch"/>, size-1 dimensions broadcast) for each output batch index in row-major
    /// order, matrices being <paramref name="matrixSize"/> elements apart.
    /// </summary>
    public static long[] Offsets(ReadOnlySpan<int> outputBatch, ReadOnlySpan<int> batch, long matrixSize)
    {
        int count = Shapes.Product(outputBatch, 0, outputBatch.Length);
        var offsets = new long[count];
        int rank = outputBatch.Length, shift = rank - batch.Length;
        Span<long> stride = stackalloc long[rank];
        long s = matrixSize;
        for (int d = rank - 1; d >= 0; d--)
        {
            int size = d >= shift ? batch[d - shift] : 1;
            stride[d] = size == 1 ? 0 : s;
            s *= size;
        }
        Span<int> index = stackalloc int[rank];
        long offset = 0;
        for (int i = 0; i < count; i++)
        {
            offsets[i] = offset;
            // Odometer over the output batch index, keeping the operand offset in step.
            for (int d = rank - 1; d >= 0; d--)
            {
                offset += stride[d];
                if (++index[d] < outputBatch[d]) break;
                offset -= stride[d] * outputBatch[d];
                index[d] = 0;
            }
        }
        return offsets;
    }
}
