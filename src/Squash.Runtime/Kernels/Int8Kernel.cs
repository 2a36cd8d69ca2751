using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Squash.Runtime.Kernels;

/// <summary>The instruction sets an int8 GEMM micro-kernel is written for.</summary>
internal enum Int8KernelKind : byte
{
    /// <summary>Vector128 (SSSE3 where available, else portable operations): 4 x 8 tiles.</summary>
    Vector128,
    /// <summary>AVX2: 4 x 16 tiles (eight accumulators and the temporaries fit 16 registers).</summary>
    Vector256,
    /// <summary>AVX-512BW: 8 x 32 tiles.</summary>
    Vector512,
}

/// <summary>
/// A register-tiled int8 micro-kernel: it multiplies an MR-row panel of the packed left operand by an NR-column
/// panel of the packed right operand over the whole (padded) depth, keeping the MR x NR int32 sums in registers, and
/// stores them into a tile buffer for the epilogue. NR is two vectors of int32 lanes.
/// </summary>
/// <remarks>
/// Packed layouts (<see cref="Int8PackedWeights"/>) group the depth in quads of 4: a left panel holds, per quad, MR rows
/// of 4 bytes; a right panel holds, per quad, NR columns of 4 bytes. A step of the kernel broadcasts a row's quad to
/// every lane and multiplies it with two vectors of the right panel (<see cref="IInt8DotLanes{TVector}"/>). Which
/// side is unsigned (the activations) is a type argument, so one source serves weights on either side.
/// </remarks>
internal readonly record struct Int8Kernel(Int8KernelKind Kind, int Mr, int Nr)
{
    /// <summary>The fastest kernel this machine runs.</summary>
    public static readonly Int8Kernel Best = Create(
        IsSupported(Int8KernelKind.Vector512) ? Int8KernelKind.Vector512
        : IsSupported(Int8KernelKind.Vector256) ? Int8KernelKind.Vector256
        : Int8KernelKind.Vector128);

    /// <summary>The kernel for <paramref name="kind"/>.</summary>
    public static Int8Kernel Create(Int8KernelKind kind) => kind switch
    {
        Int8KernelKind.Vector512 => new(kind, 8, 32),
        Int8KernelKind.Vector256 => new(kind, 4, 16),
        _ => new(Int8KernelKind.Vector128, 4, 8),
    };

    /// <summary>True when this machine runs <paramref name="kind"/> in hardware (the portable one always runs).</summary>
    public static bool IsSupported(Int8KernelKind kind) => kind switch
    {
        Int8KernelKind.Vector512 => Vector512.IsHardwareAccelerated && Avx512BW.IsSupported,
        Int8KernelKind.Vector256 => Vector256.IsHardwareAccelerated && Avx2.IsSupported,
        _ => true,
    };

    /// <summary>
    /// <c>tile[r * Nr + c] = sum over the depth of left[r, k] * right[k, c]</c> for r &lt; <paramref name="rows"/>
    /// (1 to <see cref="Mr"/>) and c &lt; <see cref="Nr"/>, from panels of <paramref name="quads"/> quads.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public unsafe void Run<TSide>(int rows, int quads, byte* left, byte* right, int* tile) where TSide : struct, IInt8Side
    {
        switch (Kind)
        {
            case Int8KernelKind.Vector512: Int8MicroKernel<Vector512<int>, Int8Dot512, TSide>.Run(rows, quads, left, right, tile, Mr); break;
            case Int8KernelKind.Vector256: Int8MicroKernel<Vector256<int>, Int8Dot256, TSide>.Run(rows, quads, left, right, tile, Mr); break;
            default: Int8MicroKernel<Vector128<int>, Int8Dot128, TSide>.Run(rows, quads, left, right, tile, Mr); break;
        }
    }
}

/// <summary>Which GEMM operand holds the unsigned activations; the other holds the signed weights.</summary>
internal interface IInt8Side
{
    /// <summary>True when the left (broadcast) operand is the unsigned one.</summary>
    static abstract bool LeftIsUnsigned { get; }
}

/// <summary>Weights on the left (<c>Y[M,N] = W[M,K] x X[K,N]</c>, a convolution over NCHW): the right operand is unsigned.</summary>
internal struct WeightsLeft : IInt8Side
{
    public static bool LeftIsUnsigned => false;
}

/// <summary>Weights on the right (<c>Y[M,N] = X[M,K] x W[K,N]</c>, a MatMul): the left operand is unsigned.</summary>
internal struct WeightsRight : IInt8Side
{
    public static bool LeftIsUnsigned => true;
}

/// <summary>The micro-kernel source, compiled per vector width, operand side and tile height.</summary>
internal static unsafe class Int8MicroKernel<TVector, TLanes, TSide>
    where TVector : struct
    where TLanes : struct, IInt8DotLanes<TVector>
    where TSide : struct, IInt8Side
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(int rows, int quads, byte* left, byte* right, int* tile, int mr)
    {
        switch (rows)
        {
            case 8: Tile<Rows8>(quads, left, right, tile, mr); break;
            case 7: Tile<Rows7>(quads, left, right, tile, mr); break;
            case 6: Tile<Rows6>(quads, left, right, tile, mr); break;
            case 5: Tile<Rows5>(quads, left, right, tile, mr); break;
            case 4: Tile<Rows4>(quads, left, right, tile, mr); break;
            case 3: Tile<Rows3>(quads, left, right, tile, mr); break;
            case 2: Tile<Rows2>(quads, left, right, tile, mr); break;
            case 1: Tile<Rows1>(quads, left, right, tile, mr); break;
            default: throw new ArgumentOutOfRangeException(nameof(rows));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TVector Dot(TVector accumulator, TVector leftQuad, TVector right) =>
        TSide.LeftIsUnsigned ? TLanes.DotAdd(accumulator, leftQuad, right) : TLanes.DotAdd(accumulator, right, leftQuad);

    /// <summary>A tile of <typeparamref name="TRows"/> rows; the JIT drops the accumulators of absent rows, so edge
    /// tiles of M run at full speed instead of on zero-padded rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile<TRows>(int quads, byte* left, byte* right, int* tile, int mr) where TRows : struct, IRows
    {
        int rows = TRows.Value;
        int lanes = TLanes.Count, nr = 2 * lanes;
        nint leftStep = 4 * mr, rightStep = 4 * nr;
        TVector c00 = default, c01 = default, c10 = default, c11 = default;
        TVector c20 = default, c21 = default, c30 = default, c31 = default;
        TVector c40 = default, c41 = default, c50 = default, c51 = default;
        TVector c60 = default, c61 = default, c70 = default, c71 = default;
        for (int q = 0; q < quads; q++)
        {
            TVector b0 = TLanes.Load(right), b1 = TLanes.Load(right + 4 * lanes);
            TVector a = TLanes.BroadcastQuad(left);
            c00 = Dot(c00, a, b0);
            c01 = Dot(c01, a, b1);
            if (rows > 1)
            {
                a = TLanes.BroadcastQuad(left + 4);
                c10 = Dot(c10, a, b0);
                c11 = Dot(c11, a, b1);
            }
            if (rows > 2)
            {
                a = TLanes.BroadcastQuad(left + 8);
                c20 = Dot(c20, a, b0);
                c21 = Dot(c21, a, b1);
            }
            if (rows > 3)
            {
                a = TLanes.BroadcastQuad(left + 12);
                c30 = Dot(c30, a, b0);
                c31 = Dot(c31, a, b1);
            }
            if (rows > 4)
            {
                a = TLanes.BroadcastQuad(left + 16);
                c40 = Dot(c40, a, b0);
                c41 = Dot(c41, a, b1);
            }
            if (rows > 5)
            {
                a = TLanes.BroadcastQuad(left + 20);
                c50 = Dot(c50, a, b0);
                c51 = Dot(c51, a, b1);
            }
            if (rows > 6)
            {
                a = TLanes.BroadcastQuad(left + 24);
                c60 = Dot(c60, a, b0);
                c61 = Dot(c61, a, b1);
            }
            if (rows > 7)
            {
                a = TLanes.BroadcastQuad(left + 28);
                c70 = Dot(c70, a, b0);
                c71 = Dot(c71, a, b1);
            }
            left += leftStep;
            right += rightStep;
        }
        TLanes.Store(c00, tile);
        TLanes.Store(c01, tile + lanes);
        if (rows > 1) { TLanes.Store(c10, tile + nr); TLanes.Store(c11, tile + nr + lanes); }
        if (rows > 2) { TLanes.Store(c20, tile + 2 * nr); TLanes.Store(c21, tile + 2 * nr + lanes); }
        if (rows > 3) { TLanes.Store(c30, tile + 3 * nr); TLanes.Store(c31, tile + 3 * nr + lanes); }
        if (rows > 4) { TLanes.Store(c40, tile + 4 * nr); TLanes.Store(c41, tile + 4 * nr + lanes); }
        if (rows > 5) { TLanes.Store(c50, tile + 5 * nr); TLanes.Store(c51, tile + 5 * nr + lanes); }
        if (rows > 6) { TLanes.Store(c60, tile + 6 * nr); TLanes.Store(c61, tile + 6 * nr + lanes); }
        if (rows > 7) { TLanes.Store(c70, tile + 7 * nr); TLanes.Store(c71, tile + 7 * nr + lanes); }
    }

    /// <summary>A tile height known to the JIT.</summary>
    private interface IRows
    {
        static abstract int Value { get; }
    }

    private struct Rows1 : IRows { public static int Value => 1; }
    private struct Rows2 : IRows { public static int Value => 2; }
    private struct Rows3 : IRows { public static int Value => 3; }
    private struct Rows4 : IRows { public static int Value => 4; }
    private struct Rows5 : IRows { public static int Value => 5; }
    private struct Rows6 : IRows { public static int Value => 6; }
    private struct Rows7 : IRows { public static int Value => 7; }
    private struct Rows8 : IRows { public static int Value => 8; }
}
