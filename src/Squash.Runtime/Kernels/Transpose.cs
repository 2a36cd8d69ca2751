using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Squash.Runtime.Kernels;

/// <summary>
/// Transposition of tensors of any element type (1, 2, 4 or 8 bytes): the permutation is turned into a strided
/// view and handed to <see cref="StridedCopy"/>, which merges axes that stay adjacent and in order and moves the
/// remaining 2-D transpositions with the blocked tile kernels here.
/// </summary>
public static unsafe class Transpose
{
    /// <summary>
    /// <c>destination = transpose(source, perm)</c>: output axis <c>k</c> is input axis <c>perm[k]</c>. Both tensors
    /// are dense and row-major; <paramref name="inputShape"/> is the source's shape.
    /// </summary>
    /// <exception cref="ArgumentException">The permutation or the buffers do not match the shape.</exception>
    public static void Permute(KernelContext context, int elementSize, ReadOnlySpan<int> inputShape, ReadOnlySpan<int> perm,
        ReadOnlySpan<byte> source, Span<byte> destination)
    {
        int rank = inputShape.Length;
        if (perm.Length != rank) throw new ArgumentException($"A permutation of {perm.Length} axes does not fit rank {rank}.", nameof(perm));
        Span<int> shape = rank <= 16 ? stackalloc int[rank] : new int[rank];
        Span<long> sourceStrides = rank <= 16 ? stackalloc long[rank] : new long[rank];
        Span<long> inputStrides = rank <= 16 ? stackalloc long[rank] : new long[rank];
        long stride = 1;
        for (int k = rank - 1; k >= 0; k--)
        {
            inputStrides[k] = stride;
            stride *= inputShape[k];
        }
        Span<bool> seen = rank <= 16 ? stackalloc bool[rank] : new bool[rank];
        for (int k = 0; k < rank; k++)
        {
            int axis = perm[k];
            if ((uint)axis >= (uint)rank || seen[axis])
                throw new ArgumentException($"[{string.Join(",", perm.ToArray())}] is not a permutation of {rank} axes.", nameof(perm));
            seen[axis] = true;
            shape[k] = inputShape[axis];
            sourceStrides[k] = inputStrides[axis];
        }
        StridedCopy.Copy(context, elementSize, shape, source, 0, sourceStrides, destination);
    }

    /// <summary>
    /// Columns one work item transposes: 256 bytes (four cache lines) of each of <paramref name="rows"/> source rows,
    /// widened for short matrices so that an item moves at least 4 KiB.
    /// </summary>
    internal static int StripWidth(int elementSize, int rows) => Math.Max(256 / elementSize, 4096 / (elementSize * Math.Max(rows, 1)));

    /// <summary>
    /// <c>dst[i * dstRow + j] = src[j * srcRow + i]</c> for <c>j &lt; rows</c>, <c>i &lt; cols</c>: a source matrix
    /// with contiguous rows written as the destination's columns. Strides are in elements.
    /// </summary>
    internal static void Tile(int elementSize, byte* src, long srcRow, byte* dst, long dstRow, int rows, int cols)
    {
        switch (elementSize)
        {
            case 1: Tile1(src, srcRow, dst, dstRow, rows, cols); break;
            case 2: Tile2((ushort*)src, srcRow, (ushort*)dst, dstRow, rows, cols); break;
            case 4: Tile4((uint*)src, srcRow, (uint*)dst, dstRow, rows, cols); break;
            default: Tile8((ulong*)src, srcRow, (ulong*)dst, dstRow, rows, cols); break;
        }
    }

    private static void TileScalar<T>(T* src, long srcRow, T* dst, long dstRow, int rowStart, int rows, int cols) where T : unmanaged
    {
        // Four source rows at a time: each destination row then gets four adjacent elements per visit. The 1 to 3
        // rows left over go in one pass too, so that a short matrix (a small channel count) is one sweep.
        int j = rowStart;
        for (; j + 4 <= rows; j += 4)
        {
            T* s0 = src + j * srcRow, s1 = s0 + srcRow, s2 = s1 + srcRow, s3 = s2 + srcRow;
            T* d = dst + j;
            for (int i = 0; i < cols; i++, d += dstRow)
            {
                d[0] = s0[i];
                d[1] = s1[i];
                d[2] = s2[i];
                d[3] = s3[i];
            }
        }
        switch (rows - j)
        {
            case 1:
            {
                T* s0 = src + j * srcRow, d = dst + j;
                for (int i = 0; i < cols; i++, d += dstRow) *d = s0[i];
                break;
            }
            case 2:
            {
                T* s0 = src + j * srcRow, s1 = s0 + srcRow, d = dst + j;
                for (int i = 0; i < cols; i++, d += dstRow)
                {
                    d[0] = s0[i];
                    d[1] = s1[i];
                }
                break;
            }
            case 3:
            {
                T* s0 = src + j * srcRow, s1 = s0 + srcRow, s2 = s1 + srcRow, d = dst + j;
                for (int i = 0; i < cols; i++, d += dstRow)
                {
                    d[0] = s0[i];
                    d[1] = s1[i];
                    d[2] = s2[i];
                }
                break;
            }
        }
    }

    private static void Tile4(uint* src, long srcRow, uint* dst, long dstRow, int rows, int cols)
    {
        int j = 0;
        if (Avx.IsSupported && cols >= 8)
        {
            for (; j + 8 <= rows; j += 8)
            {
                int i = 0;
                for (; i + 8 <= cols; i += 8) Transpose8x8(src + j * srcRow + i, srcRow, dst + i * dstRow + j, dstRow);
                if (i < cols) TileScalar(src + i, srcRow, dst + i * dstRow, dstRow, j, j + 8, cols - i);
            }
        }
        TileScalar(src, srcRow, dst, dstRow, j, rows, cols);
    }

    private static void Tile1(byte* src, long srcRow, byte* dst, long dstRow, int rows, int cols)
    {
        int j = 0;
        if (Sse2.IsSupported && cols >= 8)
        {
            for (; j + 8 <= rows; j += 8)
            {
                int i = 0;
                for (; i + 8 <= cols; i += 8) Transpose8x8(src + j * srcRow + i, srcRow, dst + i * dstRow + j, dstRow);
                if (i < cols) TileScalar(src + i, srcRow, dst + i * dstRow, dstRow, j, j + 8, cols - i);
            }
        }
        TileScalar(src, srcRow, dst, dstRow, j, rows, cols);
    }

    private static void Tile2(ushort* src, long srcRow, ushort* dst, long dstRow, int rows, int cols)
    {
        int j = 0;
        if (Sse2.IsSupported && cols >= 8)
        {
            for (; j + 8 <= rows; j += 8)
            {
                int i = 0;
                for (; i + 8 <= cols; i += 8) Transpose8x8(src + j * srcRow + i, srcRow, dst + i * dstRow + j, dstRow);
                if (i < cols) TileScalar(src + i, srcRow, dst + i * dstRow, dstRow, j, j + 8, cols - i);
            }
        }
        TileScalar(src, srcRow, dst, dstRow, j, rows, cols);
    }

    private static void Tile8(ulong* src, long srcRow, ulong* dst, long dstRow, int rows, int cols)
    {
        int j = 0;
        if (Avx.IsSupported && cols >= 4)
        {
            for (; j + 4 <= rows; j += 4)
            {
                int i = 0;
                for (; i + 4 <= cols; i += 4) Transpose4x4(src + j * srcRow + i, srcRow, dst + i * dstRow + j, dstRow);
                if (i < cols) TileScalar(src + i, srcRow, dst + i * dstRow, dstRow, j, j + 4, cols - i);
            }
        }
        TileScalar(src, srcRow, dst, dstRow, j, rows, cols);
    }

    /// <summary>An 8x8 block of 32-bit elements (unpack, shuffle, swap lanes: moves only, so NaN payloads survive).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8x8(uint* src, long srcRow, uint* dst, long dstRow)
    {
        var r0 = Avx.LoadVector256((float*)src);
        var r1 = Avx.LoadVector256((float*)(src + srcRow));
        var r2 = Avx.LoadVector256((float*)(src + 2 * srcRow));
        var r3 = Avx.LoadVector256((float*)(src + 3 * srcRow));
        var r4 = Avx.LoadVector256((float*)(src + 4 * srcRow));
        var r5 = Avx.LoadVector256((float*)(src + 5 * srcRow));
        var r6 = Avx.LoadVector256((float*)(src + 6 * srcRow));
        var r7 = Avx.LoadVector256((float*)(src + 7 * srcRow));
        var t0 = Avx.UnpackLow(r0, r1);
        var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3);
        var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5);
        var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7);
        var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44);
        var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44);
        var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44);
        var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44);
        var u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store((float*)dst, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store((float*)(dst + dstRow), Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store((float*)(dst + 2 * dstRow), Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store((float*)(dst + 3 * dstRow), Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store((float*)(dst + 4 * dstRow), Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store((float*)(dst + 5 * dstRow), Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store((float*)(dst + 6 * dstRow), Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store((float*)(dst + 7 * dstRow), Avx.Permute2x128(u3, u7, 0x31));
    }

    /// <summary>An 8x8 block of bytes: rows loaded as 64-bit halves, then interleaved at 8, 16 and 32 bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8x8(byte* src, long srcRow, byte* dst, long dstRow)
    {
        var r0 = Sse2.LoadScalarVector128((ulong*)src).AsByte();
        var r1 = Sse2.LoadScalarVector128((ulong*)(src + srcRow)).AsByte();
        var r2 = Sse2.LoadScalarVector128((ulong*)(src + 2 * srcRow)).AsByte();
        var r3 = Sse2.LoadScalarVector128((ulong*)(src + 3 * srcRow)).AsByte();
        var r4 = Sse2.LoadScalarVector128((ulong*)(src + 4 * srcRow)).AsByte();
        var r5 = Sse2.LoadScalarVector128((ulong*)(src + 5 * srcRow)).AsByte();
        var r6 = Sse2.LoadScalarVector128((ulong*)(src + 6 * srcRow)).AsByte();
        var r7 = Sse2.LoadScalarVector128((ulong*)(src + 7 * srcRow)).AsByte();
        var t0 = Sse2.UnpackLow(r0, r1).AsUInt16();
        var t1 = Sse2.UnpackLow(r2, r3).AsUInt16();
        var t2 = Sse2.UnpackLow(r4, r5).AsUInt16();
        var t3 = Sse2.UnpackLow(r6, r7).AsUInt16();
        var u0 = Sse2.UnpackLow(t0, t1).AsUInt32();
        var u1 = Sse2.UnpackHigh(t0, t1).AsUInt32();
        var u2 = Sse2.UnpackLow(t2, t3).AsUInt32();
        var u3 = Sse2.UnpackHigh(t2, t3).AsUInt32();
        var v0 = Sse2.UnpackLow(u0, u2).AsDouble();
        var v1 = Sse2.UnpackHigh(u0, u2).AsDouble();
        var v2 = Sse2.UnpackLow(u1, u3).AsDouble();
        var v3 = Sse2.UnpackHigh(u1, u3).AsDouble();
        Sse2.StoreLow((double*)dst, v0);
        Sse2.StoreHigh((double*)(dst + dstRow), v0);
        Sse2.StoreLow((double*)(dst + 2 * dstRow), v1);
        Sse2.StoreHigh((double*)(dst + 3 * dstRow), v1);
        Sse2.StoreLow((double*)(dst + 4 * dstRow), v2);
        Sse2.StoreHigh((double*)(dst + 5 * dstRow), v2);
        Sse2.StoreLow((double*)(dst + 6 * dstRow), v3);
        Sse2.StoreHigh((double*)(dst + 7 * dstRow), v3);
    }

    /// <summary>An 8x8 block of 16-bit elements: three rounds of interleaving (16, 32, 64 bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8x8(ushort* src, long srcRow, ushort* dst, long dstRow)
    {
        var r0 = Sse2.LoadVector128(src);
        var r1 = Sse2.LoadVector128(src + srcRow);
        var r2 = Sse2.LoadVector128(src + 2 * srcRow);
        var r3 = Sse2.LoadVector128(src + 3 * srcRow);
        var r4 = Sse2.LoadVector128(src + 4 * srcRow);
        var r5 = Sse2.LoadVector128(src + 5 * srcRow);
        var r6 = Sse2.LoadVector128(src + 6 * srcRow);
        var r7 = Sse2.LoadVector128(src + 7 * srcRow);
        var t0 = Sse2.UnpackLow(r0, r1).AsUInt32();
        var t1 = Sse2.UnpackHigh(r0, r1).AsUInt32();
        var t2 = Sse2.UnpackLow(r2, r3).AsUInt32();
        var t3 = Sse2.UnpackHigh(r2, r3).AsUInt32();
        var t4 = Sse2.UnpackLow(r4, r5).AsUInt32();
        var t5 = Sse2.UnpackHigh(r4, r5).AsUInt32();
        var t6 = Sse2.UnpackLow(r6, r7).AsUInt32();
        var t7 = Sse2.UnpackHigh(r6, r7).AsUInt32();
        var u0 = Sse2.UnpackLow(t0, t2).AsUInt64();
        var u1 = Sse2.UnpackHigh(t0, t2).AsUInt64();
        var u2 = Sse2.UnpackLow(t1, t3).AsUInt64();
        var u3 = Sse2.UnpackHigh(t1, t3).AsUInt64();
        var u4 = Sse2.UnpackLow(t4, t6).AsUInt64();
        var u5 = Sse2.UnpackHigh(t4, t6).AsUInt64();
        var u6 = Sse2.UnpackLow(t5, t7).AsUInt64();
        var u7 = Sse2.UnpackHigh(t5, t7).AsUInt64();
        Sse2.Store(dst, Sse2.UnpackLow(u0, u4).AsUInt16());
        Sse2.Store(dst + dstRow, Sse2.UnpackHigh(u0, u4).AsUInt16());
        Sse2.Store(dst + 2 * dstRow, Sse2.UnpackLow(u1, u5).AsUInt16());
        Sse2.Store(dst + 3 * dstRow, Sse2.UnpackHigh(u1, u5).AsUInt16());
        Sse2.Store(dst + 4 * dstRow, Sse2.UnpackLow(u2, u6).AsUInt16());
        Sse2.Store(dst + 5 * dstRow, Sse2.UnpackHigh(u2, u6).AsUInt16());
        Sse2.Store(dst + 6 * dstRow, Sse2.UnpackLow(u3, u7).AsUInt16());
        Sse2.Store(dst + 7 * dstRow, Sse2.UnpackHigh(u3, u7).AsUInt16());
    }

    /// <summary>A 4x4 block of 64-bit elements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose4x4(ulong* src, long srcRow, ulong* dst, long dstRow)
    {
        var r0 = Avx.LoadVector256((double*)src);
        var r1 = Avx.LoadVector256((double*)(src + srcRow));
        var r2 = Avx.LoadVector256((double*)(src + 2 * srcRow));
        var r3 = Avx.LoadVector256((double*)(src + 3 * srcRow));
        var t0 = Avx.UnpackLow(r0, r1);
        var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3);
        var t3 = Avx.UnpackHigh(r2, r3);
        Avx.Store((double*)dst, Avx.Permute2x128(t0, t2, 0x20));
        Avx.Store((double*)(dst + dstRow), Avx.Permute2x128(t1, t3, 0x20));
        Avx.Store((double*)(dst + 2 * dstRow), Avx.Permute2x128(t0, t2, 0x31));
        Avx.Store((double*)(dst + 3 * dstRow), Avx.Permute2x128(t1, t3, 0x31));
    }
}
