using System.Buffers;
using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace Squash.Runtime.Kernels;

/// <summary>How a scatter combines an update with the value already in the output.</summary>
public enum ScatterReduction
{
    /// <summary>The update replaces the value.</summary>
    None,
    /// <summary>Sum.</summary>
    Add,
    /// <summary>Product.</summary>
    Mul,
    /// <summary>Maximum (NaN propagates).</summary>
    Max,
    /// <summary>Minimum (NaN propagates).</summary>
    Min,
}

/// <summary>
/// Kernels shared by the indexing operators (Gather, GatherElements, GatherND, ScatterND, ScatterElements) and
/// Resize's nearest mode: copies of elements or contiguous blocks chosen by index. Copies are typed by element
/// size only (1, 2, 4 or 8 bytes), so one instantiation serves every data type of that size.
/// </summary>
public static class Indexing
{
    /// <summary>
    /// Reads the elements of an int32 or int64 index tensor, checks each against [-<paramref name="dim"/>,
    /// <paramref name="dim"/>) and writes it, made non-negative, to <paramref name="destination"/>.
    /// </summary>
    /// <returns>The position of the first out-of-range index, or -1 when all are valid.</returns>
    public static int Normalize(Tensor indices, int dim, Span<int> destination)
    {
        if (indices.DataType == DataType.Int64)
        {
            var src = indices.AsSpan<long>();
            for (int i = 0; i < src.Length; i++)
            {
                long v = src[i];
                if (v < 0) v += dim;
                if ((ulong)v >= (ulong)dim) return i;
                destination[i] = (int)v;
            }
        }
        else
        {
            var src = indices.AsSpan<int>();
            for (int i = 0; i < src.Length; i++)
            {
                int v = src[i];
                if (v < 0) v += dim;
                if ((uint)v >= (uint)dim) return i;
                destination[i] = v;
            }
        }
        return -1;
    }

    /// <summary>
    /// Gather: <c>dst[o, j, :] = src[o, index[j], :]</c> for the items <c>o * index.Length + j</c> in
    /// [<paramref name="start"/>, <paramref name="end"/>), where each <c>:</c> is a block of <paramref name="block"/>
    /// elements. Blocks are copied with one memmove each.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void GatherBlocks<T>(ReadOnlySpan<T> src, Span<T> dst, ReadOnlySpan<int> index, int axisDim,
        int block, int start, int end) where T : unmanaged
    {
        int n = index.Length;
        if (start >= end) return;
        int o = start / n, j = start - o * n;
        if (block == 1)
        {
            for (int p = start; p < end; p++)
            {
                dst[p] = src[o * axisDim + index[j]];
                if (++j == n)
                {
                    j = 0;
                    o++;
                }
            }
            return;
        }
        for (int p = start; p < end; p++)
        {
            src.Slice((o * axisDim + index[j]) * block, block).CopyTo(dst.Slice(p * block, block));
            if (++j == n)
            {
                j = 0;
                o++;
            }
        }
    }

    /// <summary>Combines <paramref name="update"/> into <paramref name="target"/> element-wise.</summary>
    public static void Combine<T>(Span<T> target, ReadOnlySpan<T> update, ScatterReduction reduction)
        where T : unmanaged, INumber<T>
    {
        switch (reduction)
        {
            case ScatterReduction.None: update.CopyTo(target); break;
            case ScatterReduction.Add: TensorPrimitives.Add(target, update, target); break;
            case ScatterReduction.Mul: TensorPrimitives.Multiply(target, update, target); break;
            case ScatterReduction.Max: TensorPrimitives.Max(target, update, target); break;
            case ScatterReduction.Min: TensorPrimitives.Min(target, update, target); break;
        }
    }

    /// <summary>Combines one update with one value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Combine<T>(T target, T update, ScatterReduction reduction) where T : unmanaged, INumber<T> =>
        reduction switch
        {
            ScatterReduction.Add => target + update,
            ScatterReduction.Mul => target * update,
            ScatterReduction.Max => T.Max(target, update),
            ScatterReduction.Min => T.Min(target, update),
            _ => update,
        };

    /// <summary>A pooled int buffer of at least <paramref name="length"/> elements; return it with <see cref="Return"/>.</summary>
    internal static int[] Rent(int length) => ArrayPool<int>.Shared.Rent(Math.Max(length, 1));

    /// <summary>Returns a buffer from <see cref="Rent"/>.</summary>
    internal static void Return(int[] buffer) => ArrayPool<int>.Shared.Return(buffer);
}
