namespace Squash.Runtime.Kernels;

/// <summary>
/// Single-precision matrix multiplication, the kernel under MatMul, Gemm, Conv, ConvTranspose and the recurrent
/// layers: <c>C = alpha * op(A) * op(B) + beta * C</c>, row-major with leading dimensions.
/// </summary>
public static class Gemm
{
    /// <summary>
    /// <c>C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C[M,N]</c>, where op transposes when asked.
    /// A is [M,K] (or [K,M] when <paramref name="transA"/>) with row stride <paramref name="lda"/>; likewise B and C.
    /// With <paramref name="beta"/> = 0, C is not read (NaN in C does not propagate). Accumulates in fp32.
    /// </summary>
    public static void Multiply(KernelContext context, bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc)
    {
        _ = context;
        // Reference implementation: i-k-j loop order so the inner loop streams rows of B and C.
        for (int i = 0; i < m; i++)
        {
            var row = c.Slice(i * ldc, n);
            if (beta == 0) row.Clear();
            else if (beta != 1) System.Numerics.Tensors.TensorPrimitives.Multiply(row, beta, row);
            for (int p = 0; p < k; p++)
            {
                float av = alpha * (transA ? a[p * lda + i] : a[i * lda + p]);
                if (av == 0 && !float.IsNaN(av)) continue;
                if (!transB)
                {
                    System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(b.Slice(p * ldb, n), av, row, row);
                }
                else
                {
                    for (int j = 0; j < n; j++) row[j] += av * b[j * ldb + p];
                }
            }
        }
    }
}
