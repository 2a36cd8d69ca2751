using System.Numerics;

namespace Squash.Runtime.Kernels;

/// <summary>
/// Matrix products for the element types the fp32 GEMM does not cover (double and integers): a plain i-p-j loop
/// that streams rows of B and C. These types are rare in inference models; exactness (integers wrap like NumPy,
/// doubles sum in double) matters more than speed.
/// </summary>
internal static class GenericGemm
{
    /// <summary><c>C[M,N] = op(A)[M,K] * op(B)[K,N]</c> (C is overwritten), row-major with leading dimensions.</summary>
    public static void Multiply<T>(bool transA, bool transB, int m, int n, int k, ReadOnlySpan<T> a, int lda,
        ReadOnlySpan<T> b, int ldb, Span<T> c, int ldc)
        where T : unmanaged, INumber<T>
    {
        for (int i = 0; i < m; i++)
        {
            var row = c.Slice(i * ldc, n);
            row.Clear();
            for (int p = 0; p < k; p++)
            {
                T av = transA ? a[p * lda + i] : a[i * lda + p];
                if (!transB)
                {
                    var bRow = b.Slice(p * ldb, n);
                    for (int j = 0; j < n; j++) row[j] += av * bRow[j];
                }
                else
                {
                    for (int j = 0; j < n; j++) row[j] += av * b[j * ldb + p];
                }
            }
        }
    }
}
