using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Squash.Runtime.Kernels;

/// <summary>The instruction sets a GEMM micro-kernel is written for.</summary>
internal enum GemmKernelKind : byte
{
    /// <summary>Vector128 (SSE, NEON, or software): 4x8 tiles; the portable fallback.</summary>
    Vector128,
    /// <summary>AVX2 with FMA: 6x16 tiles.</summary>
    Vector256,
    /// <summary>AVX-512: 8x32 tiles.</summary>
    Vector512,
}

/// <summary>
/// A register-tiled micro-kernel: it multiplies an MR-row panel of packed A by an NR-column panel of packed B over
/// one block of K, keeping the MR x NR sums in registers, and stores the tile through a <see cref="TileEpilogue"/>.
/// Packed layouts depend on MR and NR, so a <see cref="PackedMatrix"/> remembers the kernel it was packed for.
/// </summary>
internal readonly record struct GemmKernel(GemmKernelKind Kind, int Mr, int Nr)
{
    /// <summary>The fastest kernel this machine runs.</summary>
    public static readonly GemmKernel Best = Create(
        Vector512.IsHardwareAccelerated && Avx512F.IsSupported ? GemmKernelKind.Vector512
        : Vector256.IsHardwareAccelerated && Fma.IsSupported ? GemmKernelKind.Vector256
        : GemmKernelKind.Vector128);

    /// <summary>The deepest K block. A panel of A (10 KB for MR = 8) stays in L1 while panels of B stream from L2, and
    /// a KC x NC slab of B (640 KB) with an MC x KC slab of A (160 KB) fits a 1 MB L2. Each block loads and stores
    /// every C tile once, so fewer, deeper blocks also mean fewer passes over C, which matters when C is an image
    /// larger than the caches.</summary>
    public const int MaxKc = 320;

    /// <summary>The depth of every K block but the last for a product of depth <paramref name="k"/>: K split into
    /// the fewest blocks of at most <see cref="MaxKc"/>, evenly (288 = 3x3x32 is one block, 576 two of 288).
    /// Packing in advance and multiplying must agree on it.</summary>
    public static int BlockDepth(int k)
    {
        int blocks = Math.Max(1, (k + MaxKc - 1) / MaxKc);
        return (k + blocks - 1) / blocks;
    }

    /// <summary>Rows of C per slab of A: MC x KC of packed A sits in L2 beside the B slab.</summary>
    public int Mc => Mr * (Kind == GemmKernelKind.Vector256 ? 24 : 16);

    /// <summary>Columns of C per slab of B (see <see cref="MaxKc"/>).</summary>
    public int Nc => Nr * (Kind == GemmKernelKind.Vector512 ? 16 : 32);

    /// <summary>The kernel for <paramref name="kind"/>.</summary>
    public static GemmKernel Create(GemmKernelKind kind) => kind switch
    {
        GemmKernelKind.Vector512 => new(kind, GemmKernel512.Mr, GemmKernel512.Nr),
        GemmKernelKind.Vector256 => new(kind, GemmKernel256.Mr, GemmKernel256.Nr),
        _ => new(GemmKernelKind.Vector128, GemmKernel128.Mr, GemmKernel128.Nr),
    };

    /// <summary>True when this machine runs <paramref name="kind"/> in hardware.</summary>
    public static bool IsSupported(GemmKernelKind kind) => kind switch
    {
        GemmKernelKind.Vector512 => Vector512.IsHardwareAccelerated && Avx512F.IsSupported,
        GemmKernelKind.Vector256 => Vector256.IsHardwareAccelerated && Fma.IsSupported,
        _ => true,
    };

    /// <summary>
    /// C[0..rows, 0..Nr) (row stride <paramref name="ldc"/>) = epilogue(A panel x B panel) over <paramref name="kc"/>;
    /// <paramref name="row"/> and <paramref name="col"/> locate the tile in C for the biases.
    /// </summary>
    public unsafe void Run<TPanel>(int rows, int kc, float* a, TPanel b, float* c, nint ldc, in TileEpilogue epilogue, int row, int col)
        where TPanel : struct, IPanelRows<TPanel>
    {
        switch (Kind)
        {
            case GemmKernelKind.Vector512: GemmKernel512.Run(rows, kc, a, b, c, ldc, epilogue, row, col); break;
            case GemmKernelKind.Vector256: GemmKernel256.Run(rows, kc, a, b, c, ldc, epilogue, row, col); break;
            default: GemmKernel128.Run(rows, kc, a, b, c, ldc, epilogue, row, col); break;
        }
    }
}

/// <summary>A row count known to the JIT, so that one kernel source compiles to a variant per tile height with
/// the unused accumulators removed (edge tiles of M run at full speed instead of on zero-padded rows).</summary>
internal interface IRowCount
{
    /// <summary>The number of rows.</summary>
    static abstract int Value { get; }
}

internal struct Rows1 : IRowCount { public static int Value => 1; }
internal struct Rows2 : IRowCount { public static int Value => 2; }
internal struct Rows3 : IRowCount { public static int Value => 3; }
internal struct Rows4 : IRowCount { public static int Value => 4; }
internal struct Rows5 : IRowCount { public static int Value => 5; }
internal struct Rows6 : IRowCount { public static int Value => 6; }
internal struct Rows7 : IRowCount { public static int Value => 7; }
internal struct Rows8 : IRowCount { public static int Value => 8; }
