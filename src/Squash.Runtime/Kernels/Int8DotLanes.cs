using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Squash.Runtime.Kernels;

/// <summary>
/// The one operation the int8 GEMM micro-kernels need, over one vector width: per 32-bit lane, the sum of the four
/// products of an unsigned byte and a signed byte, added to an int32 accumulator. The kernels are written once
/// against this interface and the JIT compiles them per width.
/// </summary>
/// <remarks>
/// On x86 this is VPMADDUBSW (u8 x s8 -> pairs summed into s16, saturating) then VPMADDWD by ones (s16 pairs -> s32)
/// and VPADDD. .NET 10 exposes no 512-bit VPDPBUSD (AVX512-VNNI), and AVX-VNNI is absent on AVX-512 machines such as
/// Zen 4. The s16 step saturates unless each pair sum fits: with weights in [-64, 64] and activations in [0, 255],
/// |u0*s0 + u1*s1| &lt;= 2 * 255 * 64 = 32640 &lt; 32767, so the result is exact (see docs/quantization.md).
/// </remarks>
internal unsafe interface IInt8DotLanes<TVector> where TVector : struct
{
    /// <summary>Int32 lanes per vector (4 bytes of each operand per lane).</summary>
    static abstract int Count { get; }

    /// <summary>Loads 4 x <see cref="Count"/> bytes.</summary>
    static abstract TVector Load(byte* source);

    /// <summary>The 4 bytes at <paramref name="source"/> in every 32-bit lane.</summary>
    static abstract TVector BroadcastQuad(byte* source);

    /// <summary><c>acc + sum over j &lt; 4 of unsigned[4i+j] * signed[4i+j]</c> per int32 lane i.</summary>
    static abstract TVector DotAdd(TVector accumulator, TVector unsigned, TVector signed);

    static abstract void Store(TVector value, int* destination);
}

internal unsafe struct Int8Dot512 : IInt8DotLanes<Vector512<int>>
{
    public static int Count => 16;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<int> Load(byte* source) => Vector512.Load((int*)source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<int> BroadcastQuad(byte* source) => Vector512.Create(*(int*)source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector512<int> value, int* destination) => value.Store(destination);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<int> DotAdd(Vector512<int> accumulator, Vector512<int> unsigned, Vector512<int> signed) =>
        Avx512BW.Add(accumulator, Avx512BW.MultiplyAddAdjacent(
            Avx512BW.MultiplyAddAdjacent(unsigned.AsByte(), signed.AsSByte()), Vector512.Create((short)1)));
}

internal unsafe struct Int8Dot256 : IInt8DotLanes<Vector256<int>>
{
    public static int Count => 8;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<int> Load(byte* source) => Vector256.Load((int*)source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<int> BroadcastQuad(byte* source) => Vector256.Create(*(int*)source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector256<int> value, int* destination) => value.Store(destination);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> DotAdd(Vector256<int> accumulator, Vector256<int> unsigned, Vector256<int> signed) =>
        Avx2.Add(accumulator, Avx2.MultiplyAddAdjacent(
            Avx2.MultiplyAddAdjacent(unsigned.AsByte(), signed.AsSByte()), Vector256.Create((short)1)));
}

internal unsafe struct Int8Dot128 : IInt8DotLanes<Vector128<int>>
{
    public static int Count => 4;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<int> Load(byte* source) => Vector128.Load((int*)source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<int> BroadcastQuad(byte* source) => Vector128.Create(*(int*)source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector128<int> value, int* destination) => value.Store(destination);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> DotAdd(Vector128<int> accumulator, Vector128<int> unsigned, Vector128<int> signed)
    {
        if (Ssse3.IsSupported)
            return Sse2.Add(accumulator, Sse2.MultiplyAddAdjacent(
                Ssse3.MultiplyAddAdjacent(unsigned.AsByte(), signed.AsSByte()), Vector128.Create((short)1)));
        return DotAddPortable(accumulator, unsigned, signed);
    }

    /// <summary>The same sums with portable operations only (no saturation at all): each byte position of the quad
    /// is extracted into its own int32 lane and multiplied there.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> DotAddPortable(Vector128<int> accumulator, Vector128<int> unsigned, Vector128<int> signed)
    {
        var mask = Vector128.Create(0xFF);
        var u0 = unsigned & mask;
        var u1 = Vector128.ShiftRightLogical(unsigned, 8) & mask;
        var u2 = Vector128.ShiftRightLogical(unsigned, 16) & mask;
        var u3 = Vector128.ShiftRightLogical(unsigned, 24);
        var s0 = Vector128.ShiftRightArithmetic(Vector128.ShiftLeft(signed, 24), 24);
        var s1 = Vector128.ShiftRightArithmetic(Vector128.ShiftLeft(signed, 16), 24);
        var s2 = Vector128.ShiftRightArithmetic(Vector128.ShiftLeft(signed, 8), 24);
        var s3 = Vector128.ShiftRightArithmetic(signed, 24);
        return accumulator + u0 * s0 + u1 * s1 + u2 * s2 + u3 * s3;
    }
}
