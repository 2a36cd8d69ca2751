using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Squash.Runtime.Kernels;

/// <summary>
/// One GEMM operand packed once into the micro-kernel's panel layout, for operands that do not change between
/// calls (the weights of Conv, MatMul and Gemm). Multiplying with it skips the packing of that operand.
/// </summary>
/// <remarks>Immutable and safe to share between threads. The layout depends on the machine's micro-kernel, so a
/// packed matrix is built at run time, never serialized.</remarks>
public sealed unsafe class PackedMatrix
{
    private readonly float[] _storage;
    private readonly int _offset;

    private PackedMatrix(GemmKernel kernel, bool isLeft, int count, int depth)
    {
        Kernel = kernel;
        IsLeft = isLeft;
        Count = count;
        Depth = depth;
        int width = isLeft ? kernel.Mr : kernel.Nr;
        PaddedCount = (count + width - 1) / width * width;
        long floats = (long)PaddedCount * depth + 16;
        if (floats > Array.MaxLength) throw new ArgumentException("The matrix is too large to pack.");
        // Pinned so that kernels can hold a pointer without fixing it; 16 spare floats to align panels to 64 bytes.
        _storage = GC.AllocateUninitializedArray<float>((int)floats, pinned: true);
        nint address = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_storage));
        _offset = (int)((64 - (address & 63)) & 63) / sizeof(float);
    }

    /// <summary>The micro-kernel the panels are laid out for.</summary>
    internal GemmKernel Kernel { get; }

    /// <summary>True for a packed op(A) (panels of rows), false for a packed op(B) (panels of columns).</summary>
    public bool IsLeft { get; }

    /// <summary>Rows of op(A) (M), or columns of op(B) (N).</summary>
    public int Count { get; }

    /// <summary>The shared dimension K.</summary>
    public int Depth { get; }

    /// <summary><see cref="Count"/> rounded up to whole panels.</summary>
    internal int PaddedCount { get; }

    /// <summary>The first packed float.</summary>
    internal float* Data => (float*)Unsafe.AsPointer(ref _storage[_offset]);

    /// <summary>A source of this matrix's panels for the GEMM driver.</summary>
    internal PrepackedPanels Source => new(Data, PaddedCount);

    /// <summary>Packs op(A) [<paramref name="m"/>, <paramref name="k"/>], where A is [m,k] (or [k,m] when
    /// <paramref name="transA"/>) with row stride <paramref name="lda"/>, as the left operand of later products.</summary>
    public static PackedMatrix PackLeft(ReadOnlySpan<float> a, int lda, bool transA, int m, int k) =>
        PackLeft(a, lda, transA, m, k, GemmKernel.Best);

    /// <summary>Packs op(B) [<paramref name="k"/>, <paramref name="n"/>], where B is [k,n] (or [n,k] when
    /// <paramref name="transB"/>) with row stride <paramref name="ldb"/>, as the right operand of later products.</summary>
    public static PackedMatrix PackRight(ReadOnlySpan<float> b, int ldb, bool transB, int k, int n) =>
        PackRight(b, ldb, transB, k, n, GemmKernel.Best);

    internal static PackedMatrix PackLeft(ReadOnlySpan<float> a, int lda, bool transA, int m, int k, GemmKernel kernel)
    {
        Gemm.CheckOperand(a.Length, transA ? k : m, transA ? m : k, lda, nameof(a));
        var packed = new PackedMatrix(kernel, true, m, k);
        fixed (float* pa = a) packed.Fill(StridedPanels.Left(pa, lda, transA), kernel.Mr);
        return packed;
    }

    internal static PackedMatrix PackRight(ReadOnlySpan<float> b, int ldb, bool transB, int k, int n, GemmKernel kernel)
    {
        Gemm.CheckOperand(b.Length, transB ? n : k, transB ? k : n, ldb, nameof(b));
        var packed = new PackedMatrix(kernel, false, n, k);
        fixed (float* pb = b) packed.Fill(StridedPanels.Right(pb, ldb, transB), kernel.Nr);
        return packed;
    }

    private void Fill(StridedPanels source, int width)
    {
        if (Count == 0) return;
        int blockDepth = GemmKernel.BlockDepth(Depth);
        for (int p0 = 0; p0 < Depth; p0 += blockDepth)
        {
            int kc = Math.Min(blockDepth, Depth - p0);
            source.Panels(0, Count, p0, kc, width, Data + (nint)p0 * PaddedCount);
        }
    }
}
