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
/// hands them to the epilogue: from the registers for a tile of full width, through a tile buffer otherwise. NR is two
/// vectors of int32 lanes.
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
        Int8KernelKind.Vector256 => Vector256.IsHardwareAccelerated && Avx2.IsSupported && Fma.IsSupported,
        _ => true,
    };

    /// <summary>
    /// The sums <c>sum over the depth of left[r, k] * right[k, c]</c> for r &lt; <paramref name="rows"/> (1 to
    /// <see cref="Mr"/>) and c &lt; <see cref="Nr"/>, from panels of <paramref name="quads"/> quads. With
    /// <see cref="Int8ToTile"/> they are stored in <paramref name="tile"/> (row stride Nr); otherwise a tile of full width
    /// goes from the registers through <paramref name="store"/>'s epilogue to C[row.., col..].
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public unsafe void Run<TSide, TOutput>(int rows, int quads, byte* left, byte* right, int* tile, in Int8Store store, int row, int col)
        where TSide : struct, IInt8Side
        where TOutput : struct, IInt8TileOutput
    {
        switch (Kind)
        {
            case Int8KernelKind.Vector512:
                Int8MicroKernel<Vector512<int>, Vector512<float>, Int8Dot512, Quantize512, TSide>.Run<TOutput>(rows, quads, left, right, tile, Mr, store, row, col);
                break;
            case Int8KernelKind.Vector256:
                Int8MicroKernel<Vector256<int>, Vector256<float>, Int8Dot256, Quantize256, TSide>.Run<TOutput>(rows, quads, left, right, tile, Mr, store, row, col);
                break;
            default:
                Int8MicroKernel<Vector128<int>, Vector128<float>, Int8Dot128, Quantize128, TSide>.Run<TOutput>(rows, quads, left, right, tile, Mr, store, row, col);
                break;
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

/// <summary>The micro-kernel source, compiled per vector width, operand side, tile height and output. The epilogue's
/// lanes (<typeparamref name="TQuantize"/>) share the int32 vector type of the dot lanes, so full tiles are stored
/// straight from the accumulators.</summary>
internal static unsafe class Int8MicroKernel<TVector, TFloat, TLanes, TQuantize, TSide>
    where TVector : struct
    where TFloat : struct
    where TLanes : struct, IInt8DotLanes<TVector>
    where TQuantize : struct, IQuantizeLanes<TVector, TFloat>
    where TSide : struct, IInt8Side
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run<TOutput>(int rows, int quads, byte* left, byte* right, int* tile, int mr, in Int8Store store, int row, int col)
        where TOutput : struct, IInt8TileOutput
    {
        switch (rows)
        {
            case 8: Tile<Rows8, TOutput>(quads, left, right, tile, mr, store, row, col); break;
            case 7: Tile<Rows7, TOutput>(quads, left, right, tile, mr, store, row, col); break;
            case 6: Tile<Rows6, TOutput>(quads, left, right, tile, mr, store, row, col); break;
            case 5: Tile<Rows5, TOutput>(quads, left, right, tile, mr, store, row, col); break;
            case 4: Tile<Rows4, TOutput>(quads, left, right, tile, mr, store, row, col); break;
            case 3: Tile<Rows3, TOutput>(quads, left, right, tile, mr, store, row, col); break;
            case 2: Tile<Rows2, TOutput>(quads, left, right, tile, mr, store, row, col); break;
            case 1: Tile<Rows1, TOutput>(quads, left, right, tile, mr, store, row, col); break;
            default: throw new ArgumentOutOfRangeException(nameof(rows));
        }
    }

    /// <summary>Row <paramref name="r"/> of a finished tile to its destination.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Emit<TOutput>(TVector sums0, TVector sums1, int r, int* tile, in Int8Store store, int row, int col)
        where TOutput : struct, IInt8TileOutput
    {
        if (typeof(TOutput) == typeof(Int8ToRequantized)) store.Requantize<TVector, TFloat, TQuantize>(sums0, sums1, row + r, col);
        else if (typeof(TOutput) == typeof(Int8ToDequantized)) store.Dequantize<TVector, TFloat, TQuantize>(sums0, sums1, row + r, col);
        else if (typeof(TOutput) == typeof(Int8ToInteger)) store.Offset<TVector, TFloat, TQuantize>(sums0, sums1, row + r, col);
        else
        {
            int nr = 2 * TLanes.Count;
            TLanes.Store(sums0, tile + r * nr);
            TLanes.Store(sums1, tile + r * nr + TLanes.Count);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TVector Dot(TVector accumulator, TVector leftQuad, TVector right) =>
        TSide.LeftIsUnsigned ? TLanes.DotAdd(accumulator, leftQuad, right) : TLanes.DotAdd(accumulator, right, leftQuad);

    /// <summary>A tile of <typeparamref name="TRows"/> rows; the JIT drops the accumulators of absent rows, so edge
    /// tiles of M run at full speed instead of on zero-padded rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile<TRows, TOutput>(int quads, byte* left, byte* right, int* tile, int mr, in Int8Store store, int row, int col)
        where TRows : struct, IRows
        where TOutput : struct, IInt8TileOutput
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
        // A local copy: through the reference the JIT reloads the store's fields after every byte store (they might
        // alias), per row of the tile.
        var local = store;
        Emit<TOutput>(c00, c01, 0, tile, local, row, col);
        if (rows > 1) Emit<TOutput>(c10, c11, 1, tile, local, row, col);
        if (rows > 2) Emit<TOutput>(c20, c21, 2, tile, local, row, col);
        if (rows > 3) Emit<TOutput>(c30, c31, 3, tile, local, row, col);
        if (rows > 4) Emit<TOutput>(c40, c41, 4, tile, local, row, col);
        if (rows > 5) Emit<TOutput>(c50, c51, 5, tile, local, row, col);
        if (rows > 6) Emit<TOutput>(c60, c61, 6, tile, local, row, col);
        if (rows > 7) Emit<TOutput>(c70, c71, 7, tile, local, row, col);
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
