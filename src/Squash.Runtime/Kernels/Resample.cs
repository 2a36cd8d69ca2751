using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Squash.Runtime.Kernels;

/// <summary>
/// The interpolation taps of one axis of a separable resampling: for each output position, <see cref="Count"/>
/// source indices (already clamped into the input) and weights. Positions marked in <see cref="Extrapolate"/>
/// take a constant instead.
/// </summary>
public sealed class AxisTaps
{
    /// <summary>Creates taps for <paramref name="outLength"/> positions of <paramref name="count"/> taps each.</summary>
    public AxisTaps(int inLength, int outLength, int count)
    {
        InLength = inLength;
        OutLength = outLength;
        Count = count;
        Index = new int[outLength * count];
        Weight = new double[outLength * count];
    }

    /// <summary>Input length of the axis.</summary>
    public int InLength { get; }

    /// <summary>Output length of the axis.</summary>
    public int OutLength { get; }

    /// <summary>Taps per output position.</summary>
    public int Count { get; }

    /// <summary>Source index of tap <c>k</c> of position <c>i</c> at <c>[i * Count + k]</c>.</summary>
    public int[] Index { get; }

    /// <summary>Weight of tap <c>k</c> of position <c>i</c> at <c>[i * Count + k]</c>.</summary>
    public double[] Weight { get; }

    /// <summary>Positions that take the extrapolation value (null when none do).</summary>
    public bool[]? Extrapolate { get; set; }

    /// <summary>True when the taps copy the input unchanged (so the pass can be skipped).</summary>
    public bool IsIdentity
    {
        get
        {
            if (InLength != OutLength || Extrapolate is not null) return false;
            for (int i = 0; i < OutLength; i++)
                for (int k = 0; k < Count; k++)
                {
                    double w = Weight[i * Count + k];
                    if (w != 0 && (Index[i * Count + k] != i || w != 1)) return false;
                }
            return true;
        }
    }
}

/// <summary>
/// Resampling kernels under Resize and Upsample: a nearest-neighbour gather that works row by row (copying
/// repeated rows and expanding integer factors with vector stores), and a separable pass that interpolates one
/// axis with precomputed taps.
/// </summary>
public static class Resample
{
    /// <summary>
    /// Nearest-neighbour resampling of a row-major tensor of elements of size <c>sizeof(T)</c>. For every axis,
    /// <paramref name="maps"/> gives the source index of each output position, or -1 for positions that take
    /// <paramref name="extrapolation"/>.
    /// </summary>
    public static void Nearest<T>(KernelContext context, Tensor input, Tensor output, int[][] maps, T extrapolation)
        where T : unmanaged
    {
        int rank = input.Rank;
        if (output.ElementCount == 0) return;
        if (rank == 0)
        {
            input.Bytes.CopyTo(output.Bytes);
            return;
        }
        int outW = output.Shape[rank - 1], inW = input.Shape[rank - 1];
        var xmap = maps[rank - 1];
        int factor = ReplicationFactor(xmap, inW);
        int rows = output.ElementCount / outW;
        int grain = Math.Max(1, 16384 / Math.Max(1, outW * Unsafe.SizeOf<T>()));
        context.For(rows, new NearestBody<T>(input, output, maps, factor, extrapolation), grain);
    }

    /// <summary>
    /// 1 when <paramref name="map"/> is the identity; <c>s</c> &gt; 1 when it repeats every input index <c>s</c>
    /// times in order (an integer upscale); 0 otherwise.
    /// </summary>
    internal static int ReplicationFactor(int[] map, int inLength)
    {
        if (inLength == 0 || map.Length % inLength != 0) return 0;
        int s = map.Length / inLength;
        for (int i = 0; i < map.Length; i++)
            if (map[i] != i / s) return 0;
        return s;
    }

    private readonly struct NearestBody<T>(Tensor input, Tensor output, int[][] maps, int factor, T extrapolation) : IRangeBody
        where T : unmanaged
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Invoke(int start, int end)
        {
            var src = MemoryMarshal.Cast<byte, T>(input.Bytes);
            var dst = MemoryMarshal.Cast<byte, T>(output.Bytes);
            var inShape = input.Shape;
            var outShape = output.Shape;
            int rank = inShape.Length;
            int outW = outShape[rank - 1], inW = inShape[rank - 1];
            var xmap = maps[rank - 1];
            long previous = -1;
            for (int row = start; row < end; row++)
            {
                // Source row: the outer coordinates of this output row mapped through their axes.
                long offset = 0, stride = inW;
                int rest = row;
                for (int d = rank - 2; d >= 0; d--)
                {
                    int c = rest % outShape[d];
                    rest /= outShape[d];
                    int m = maps[d][c];
                    if (m < 0)
                    {
                        offset = -1;
                        break;
                    }
                    offset += m * stride;
                    stride *= inShape[d];
                }
                var target = dst.Slice(row * outW, outW);
                if (offset < 0)
                {
                    target.Fill(extrapolation);
                }
                else if (offset == previous)
                {
                    dst.Slice((row - 1) * outW, outW).CopyTo(target);
                }
                else
                {
                    var source = src.Slice((int)offset, inW);
                    if (factor == 1) source.CopyTo(target);
                    else if (factor > 1) Expand(source, target, factor);
                    else
                        for (int x = 0; x < outW; x++)
                        {
                            int m = xmap[x];
                            target[x] = m < 0 ? extrapolation : source[m];
                        }
                }
                previous = offset;
            }
        }
    }

    /// <summary>Writes every element of <paramref name="source"/> <paramref name="factor"/> times in a row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Expand<T>(ReadOnlySpan<T> source, Span<T> target, int factor) where T : unmanaged
    {
        int n = source.Length;
        if (target.Length < n * factor) throw new ArgumentException("The target is too short.", nameof(target));
        int i = 0;
        if (Unsafe.SizeOf<T>() == 4 && Vector128.IsHardwareAccelerated)
        {
            ref uint s = ref Unsafe.As<T, uint>(ref MemoryMarshal.GetReference(source));
            ref uint d = ref Unsafe.As<T, uint>(ref MemoryMarshal.GetReference(target));
            if (factor == 2)
            {
                for (; i + 4 <= n; i += 4)
                {
                    var v = Vector128.LoadUnsafe(ref s, (nuint)i);
                    Vector128.Shuffle(v, Vector128.Create(0u, 0, 1, 1)).StoreUnsafe(ref d, (nuint)(2 * i));
                    Vector128.Shuffle(v, Vector128.Create(2u, 2, 3, 3)).StoreUnsafe(ref d, (nuint)(2 * i + 4));
                }
            }
            else if (factor == 4)
            {
                for (; i < n; i++) Vector128.Create(Unsafe.Add(ref s, i)).StoreUnsafe(ref d, (nuint)(4 * i));
            }
            else if (factor % 8 == 0 && Vector256.IsHardwareAccelerated)
            {
                for (; i < n; i++)
                {
                    var v = Vector256.Create(Unsafe.Add(ref s, i));
                    for (int k = 0; k < factor; k += 8) v.StoreUnsafe(ref d, (nuint)(i * factor + k));
                }
            }
            else if (factor % 4 == 0)
            {
                for (; i < n; i++)
                {
                    var v = Vector128.Create(Unsafe.Add(ref s, i));
                    for (int k = 0; k < factor; k += 4) v.StoreUnsafe(ref d, (nuint)(i * factor + k));
                }
            }
        }
        else if (Unsafe.SizeOf<T>() == 1 && factor == 2 && Vector128.IsHardwareAccelerated)
        {
            // uint8 feature maps in int8 models (an FPN's 2x upsampling): each byte twice, 16 in and 32 out per step.
            ref byte s = ref Unsafe.As<T, byte>(ref MemoryMarshal.GetReference(source));
            ref byte d = ref Unsafe.As<T, byte>(ref MemoryMarshal.GetReference(target));
            var low = Vector128.Create((byte)0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
            var high = Vector128.Create((byte)8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
            for (; i + 16 <= n; i += 16)
            {
                var v = Vector128.LoadUnsafe(ref s, (nuint)i);
                Vector128.Shuffle(v, low).StoreUnsafe(ref d, (nuint)(2 * i));
                Vector128.Shuffle(v, high).StoreUnsafe(ref d, (nuint)(2 * i + 16));
            }
        }
        for (; i < n; i++)
        {
            T value = source[i];
            var run = target.Slice(i * factor, factor);
            if (factor <= 8)
                for (int k = 0; k < run.Length; k++) run[k] = value;
            else
                run.Fill(value);
        }
    }

    /// <summary>
    /// One separable pass: interpolates the middle axis of <paramref name="source"/>, viewed as
    /// <c>[outer, taps.InLength, inner]</c>, into <paramref name="target"/>, viewed as <c>[outer, taps.OutLength, inner]</c>.
    /// </summary>
    public static void Pass<T>(KernelContext context, ResampleBuffer<T> source, ResampleBuffer<T> target, int outer,
        int inner, AxisTaps taps, T extrapolation) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var weights = new T[taps.Weight.Length];
        for (int i = 0; i < weights.Length; i++) weights[i] = T.CreateChecked(taps.Weight[i]);
        var body = new PassBody<T>(source, target, inner, taps, weights, extrapolation);
        if (inner == 1)
            context.For(outer, body, Math.Max(1, 8192 / Math.Max(1, taps.OutLength * taps.Count)));
        else
            context.For(outer * taps.OutLength, body, Math.Max(1, 8192 / Math.Max(1, inner * taps.Count)));
    }

    private readonly struct PassBody<T>(ResampleBuffer<T> source, ResampleBuffer<T> target, int inner, AxisTaps taps,
        T[] weights, T extrapolation) : IRangeBody where T : unmanaged, IFloatingPointIeee754<T>
    {
        // Kernels run a few times per model call: compile them optimized at once rather than through tier 0.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Invoke(int start, int end)
        {
            var src = source.Span;
            var dst = target.Span;
            int n = taps.Count, inLen = taps.InLength, outLen = taps.OutLength;
            var index = taps.Index;
            var extrapolate = taps.Extrapolate;
            if (inner == 1)
            {
                // Interpolating the innermost axis: items are whole rows; each output element sums its taps.
                for (int row = start; row < end; row++)
                {
                    var s = src.Slice(row * inLen, inLen);
                    var d = dst.Slice(row * outLen, outLen);
                    if (n == 2)
                    {
                        for (int i = 0; i < outLen; i++)
                            d[i] = s[index[2 * i]] * weights[2 * i] + s[index[2 * i + 1]] * weights[2 * i + 1];
                    }
                    else
                    {
                        for (int i = 0, t = 0; i < outLen; i++)
                        {
                            T sum = T.Zero;
                            for (int k = 0; k < n; k++, t++) sum += s[index[t]] * weights[t];
                            d[i] = sum;
                        }
                    }
                    if (extrapolate is not null)
                        for (int i = 0; i < outLen; i++)
                            if (extrapolate[i]) d[i] = extrapolation;
                }
                return;
            }
            // Items are output rows of `inner` contiguous elements: each is a weighted sum of input rows.
            for (int item = start; item < end; item++)
            {
                int o = item / outLen, i = item - o * outLen;
                var d = dst.Slice(item * inner, inner);
                if (extrapolate is not null && extrapolate[i])
                {
                    d.Fill(extrapolation);
                    continue;
                }
                int rowBase = o * inLen;
                int t = i * n;
                TensorPrimitives.Multiply(src.Slice((rowBase + index[t]) * inner, inner), weights[t], d);
                for (int k = 1; k < n; k++)
                {
                    T w = weights[t + k];
                    if (w == T.Zero) continue;
                    TensorPrimitives.MultiplyAdd(src.Slice((rowBase + index[t + k]) * inner, inner), w, d, d);
                }
            }
        }
    }
}

/// <summary>Elements of a resampling stage: a pooled array or a tensor of the working type.</summary>
public readonly struct ResampleBuffer<T> where T : unmanaged
{
    private readonly T[]? _array;
    private readonly Tensor? _tensor;
    private readonly int _length;

    /// <summary>The first <paramref name="length"/> elements of <paramref name="array"/>.</summary>
    public ResampleBuffer(T[] array, int length)
    {
        _array = array;
        _length = length;
    }

    /// <summary>The elements of <paramref name="tensor"/>, whose type must be <typeparamref name="T"/>.</summary>
    public ResampleBuffer(Tensor tensor)
    {
        _tensor = tensor;
        _length = tensor.ElementCount;
    }

    /// <summary>The elements.</summary>
    public Span<T> Span => _array is not null ? _array.AsSpan(0, _length) : _tensor!.AsSpan<T>();
}
