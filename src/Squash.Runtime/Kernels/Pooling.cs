using System.Buffers;
using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Squash.Runtime.Kernels;

/// <summary>How ONNX pooling pads the input (the <c>auto_pad</c> attribute).</summary>
internal enum PoolAutoPad
{
    /// <summary>Explicit <c>pads</c>.</summary>
    NotSet,
    /// <summary>No padding.</summary>
    Valid,
    /// <summary>Output size ceil(input / stride); odd padding goes at the end.</summary>
    SameUpper,
    /// <summary>Output size ceil(input / stride); odd padding goes at the beginning.</summary>
    SameLower,
}

/// <summary>The attributes that shape a pooling window, shared by AveragePool, MaxPool and LpPool.</summary>
/// <param name="Kernel">Window size per spatial axis.</param>
/// <param name="Strides">Step per spatial axis.</param>
/// <param name="Dilations">Spacing of window taps per spatial axis.</param>
/// <param name="Pads">Explicit padding: all begins, then all ends (used when <paramref name="AutoPad"/> is NotSet).</param>
/// <param name="AutoPad">Automatic padding mode.</param>
/// <param name="CeilMode">Round the output size up instead of down (explicit padding only).</param>
/// <param name="CountIncludePad">Average over padded taps too.</param>
internal sealed record PoolSettings(int[] Kernel, int[] Strides, int[] Dilations, int[] Pads, PoolAutoPad AutoPad, bool CeilMode, bool CountIncludePad)
{
    /// <summary>Number of spatial axes.</summary>
    public int Rank => Kernel.Length;

    /// <summary>Extent of the dilated window on <paramref name="axis"/>.</summary>
    public int Extent(int axis) => (Kernel[axis] - 1) * Dilations[axis] + 1;

    /// <summary>Output size on <paramref name="axis"/> for an input of <paramref name="input"/> (-1 stays unknown);
    /// a value below 1 means the window does not fit.</summary>
    public int OutputSize(int axis, int input)
    {
        if (input < 0) return -1;
        int stride = Strides[axis], extent = Extent(axis);
        switch (AutoPad)
        {
            case PoolAutoPad.SameUpper:
            case PoolAutoPad.SameLower:
                return (input + stride - 1) / stride;
            case PoolAutoPad.Valid:
                return input < extent ? 0 : (input - extent) / stride + 1;
            default:
                long span = (long)input + Pads[axis] + Pads[axis + Rank] - extent;
                if (span < 0) return 0;
                long output = (CeilMode ? (span + stride - 1) / stride : span / stride) + 1;
                // A window that would start in the end padding is dropped (PyTorch and ONNX agree).
                if (CeilMode && (output - 1) * stride >= (long)input + Pads[axis]) output--;
                return (int)Math.Min(output, int.MaxValue);
        }
    }

    /// <summary>Padding (begin, end) on <paramref name="axis"/>, given the input and output sizes.</summary>
    public (int Begin, int End) Padding(int axis, int input, int output)
    {
        switch (AutoPad)
        {
            case PoolAutoPad.SameUpper:
            case PoolAutoPad.SameLower:
                int total = Math.Max(0, (output - 1) * Strides[axis] + Extent(axis) - input);
                int half = total / 2;
                return AutoPad == PoolAutoPad.SameUpper ? (half, total - half) : (total - half, half);
            case PoolAutoPad.Valid:
                return (0, 0);
            default:
                return (Pads[axis], Pads[axis + Rank]);
        }
    }
}

/// <summary>
/// The windows of one spatial axis of a pooling: for each output position, where its first in-bounds tap is,
/// how many taps are in bounds, and how many the average divides by.
/// </summary>
internal sealed class PoolAxis
{
    /// <summary>Computes the windows.</summary>
    public PoolAxis(int input, int output, int kernel, int stride, int dilation, int padBegin, int padEnd, bool countPad)
    {
        Input = input;
        Output = output;
        Kernel = kernel;
        Stride = stride;
        Dilation = dilation;
        PadBegin = padBegin;
        First = new int[output];
        Count = new int[output];
        Divisor = new int[output];
        InteriorBegin = InteriorEnd = 0;
        bool seenInterior = false;
        for (int o = 0; o < output; o++)
        {
            long start = (long)o * stride - padBegin;
            long lo = start >= 0 ? 0 : (-start + dilation - 1) / dilation;
            long last = input - 1 - start;
            long hi = last < 0 ? 0 : Math.Min(kernel, last / dilation + 1);
            First[o] = (int)(start + lo * dilation);
            Count[o] = (int)Math.Max(0, hi - lo);
            // With count_include_pad the explicit (or automatic) padding counts, but not the overhang that
            // ceil_mode adds past it.
            long padLast = (long)input + padEnd - 1 - start;
            Divisor[o] = countPad ? (int)(padLast < 0 ? 0 : Math.Min(kernel, padLast / dilation + 1)) : Count[o];
            if (Count[o] == kernel)
            {
                if (!seenInterior) InteriorBegin = o;
                seenInterior = true;
                InteriorEnd = o + 1;
            }
        }
    }

    /// <summary>An axis of size 1 pooled by a window of 1 (pads lower-rank pools up to three axes).</summary>
    public static PoolAxis Unit { get; } = new(1, 1, 1, 1, 1, 0, 0, false);

    /// <summary>Input size.</summary>
    public int Input { get; }

    /// <summary>Output size.</summary>
    public int Output { get; }

    /// <summary>Window size (taps).</summary>
    public int Kernel { get; }

    /// <summary>Step between windows.</summary>
    public int Stride { get; }

    /// <summary>Step between taps.</summary>
    public int Dilation { get; }

    /// <summary>Padding before the first input element.</summary>
    public int PadBegin { get; }

    /// <summary>Input index of each output's first in-bounds tap.</summary>
    public int[] First { get; }

    /// <summary>Number of in-bounds taps of each output.</summary>
    public int[] Count { get; }

    /// <summary>Number of taps each output's average divides by along this axis.</summary>
    public int[] Divisor { get; }

    /// <summary>First output whose whole window is in bounds.</summary>
    public int InteriorBegin { get; }

    /// <summary>One past the last output whose whole window is in bounds (the interior is contiguous).</summary>
    public int InteriorEnd { get; }
}

/// <summary>A pooling over planes of up to three spatial axes (D, H, W); lower ranks use unit leading axes.</summary>
internal sealed class PoolGeometry
{
    /// <summary>Creates the geometry of <paramref name="settings"/> over an input of <paramref name="inputShape"/> [N, C, spatial...].</summary>
    /// <exception cref="ArgumentException">The rank is not 3 to 5, or a window does not fit.</exception>
    public PoolGeometry(PoolSettings settings, ReadOnlySpan<int> inputShape)
    {
        int rank = settings.Rank;
        if (rank < 1 || rank > 3 || inputShape.Length != rank + 2)
            throw new ArgumentException($"Pooling supports 1 to 3 spatial axes; the input has shape {Shapes.Format(inputShape)}.");
        var axes = new PoolAxis[3];
        for (int i = 0; i < 3 - rank; i++) axes[i] = PoolAxis.Unit;
        for (int i = 0; i < rank; i++)
        {
            int input = inputShape[i + 2];
            int output = settings.OutputSize(i, input);
            if (output < 1) throw new ArgumentException($"The pooling window does not fit spatial axis {i} of size {input}.");
            var (begin, end) = settings.Padding(i, input, output);
            axes[3 - rank + i] = new PoolAxis(input, output, settings.Kernel[i], settings.Strides[i], settings.Dilations[i],
                begin, end, settings.CountIncludePad);
        }
        InputShape = inputShape.ToArray();
        Planes = inputShape[0] * inputShape[1];
        D = axes[0];
        H = axes[1];
        W = axes[2];
    }

    /// <summary>The input shape the geometry was computed for.</summary>
    public int[] InputShape { get; }

    /// <summary>N * C.</summary>
    public int Planes { get; }

    /// <summary>Outermost spatial axis.</summary>
    public PoolAxis D { get; }

    /// <summary>Middle spatial axis.</summary>
    public PoolAxis H { get; }

    /// <summary>Innermost (contiguous) spatial axis.</summary>
    public PoolAxis W { get; }

    /// <summary>Elements per input plane.</summary>
    public int InputPlane => D.Input * H.Input * W.Input;

    /// <summary>Elements per output plane.</summary>
    public int OutputPlane => D.Output * H.Output * W.Output;
}

/// <summary>How a pooling window combines values (a static interface so each kernel is specialized).</summary>
internal interface IPoolCombine<T> where T : unmanaged, INumber<T>, IMinMaxValue<T>
{
    /// <summary>The result of a window with no in-bounds taps.</summary>
    static abstract T Empty { get; }

    /// <summary>Combines two values.</summary>
    static abstract T Combine(T a, T b);

    /// <summary>Combines two vectors lane by lane.</summary>
    static abstract Vector128<T> Combine(Vector128<T> a, Vector128<T> b);

    /// <summary>Combines two vectors lane by lane.</summary>
    static abstract Vector256<T> Combine(Vector256<T> a, Vector256<T> b);
}

/// <summary>Maximum; NaN propagates, as numpy's max does.</summary>
internal readonly struct MaxCombine<T> : IPoolCombine<T> where T : unmanaged, INumber<T>, IMinMaxValue<T>
{
    /// <summary>The lowest finite value, as ONNX Runtime gives for an all-padding window.</summary>
    public static T Empty => T.MinValue;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Combine(T a, T b) => T.Max(a, b);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<T> Combine(Vector128<T> a, Vector128<T> b) => Vector128.Max(a, b);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> Combine(Vector256<T> a, Vector256<T> b) => Vector256.Max(a, b);
}

/// <summary>Sum (AveragePool divides afterwards; LpPool sums powers).</summary>
internal readonly struct SumCombine<T> : IPoolCombine<T> where T : unmanaged, INumber<T>, IMinMaxValue<T>
{
    /// <inheritdoc/>
    public static T Empty => T.Zero;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Combine(T a, T b) => a + b;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<T> Combine(Vector128<T> a, Vector128<T> b) => a + b;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> Combine(Vector256<T> a, Vector256<T> b) => a + b;
}

/// <summary>
/// Pooling kernels over NCHW-style tensors. Windows are boxes, so a pooling is separable: each output row first
/// combines the window's input rows element by element (contiguous, vectorized), then slides the window along the
/// combined row (vectorized for strides 1 and 2).
/// </summary>
internal static class Pooling
{
    /// <summary>
    /// Pools <paramref name="x"/> into <paramref name="y"/> with <typeparamref name="TCombine"/>; when
    /// <paramref name="divide"/>, each output is divided by its window's divisor (AveragePool).
    /// </summary>
    public static void Run<T, TCombine>(KernelContext context, PoolGeometry geometry, Tensor x, Tensor y, bool divide)
        where T : unmanaged, INumber<T>, IMinMaxValue<T>
        where TCombine : struct, IPoolCombine<T>
    {
        int rows = geometry.Planes * geometry.D.Output * geometry.H.Output;
        long work = (long)geometry.D.Kernel * geometry.H.Kernel * geometry.W.Input + (long)geometry.W.Output * geometry.W.Kernel;
        if (typeof(T) == typeof(byte) && typeof(TCombine) == typeof(MaxCombine<T>) && IsByteMaxPool2x2(geometry))
        {
            context.For(rows, new ByteMaxPool2x2(geometry, x, y), Grain(work));
            return;
        }
        context.For(rows, new RowBody<T, TCombine>(geometry, x, y, divide), Grain(work));
    }

    /// <summary>A 2-D 2x2 window, stride 2, no padding or dilation, over rows of even width that it covers exactly:
    /// int8 models' max pool (cls: [200, 2, 96] to [200, 1, 48]).</summary>
    private static bool IsByteMaxPool2x2(PoolGeometry g) =>
        g.D.Kernel == 1 && g.D.Stride == 1 && g.D.Input == g.D.Output
        && IsPairAxis(g.H) && IsPairAxis(g.W) && g.W.Input >= 32 && Vector128.IsHardwareAccelerated;

    private static bool IsPairAxis(PoolAxis a) =>
        a.Kernel == 2 && a.Stride == 2 && a.Dilation == 1 && a.PadBegin == 0 && a.Input == 2 * a.Output;

    /// <summary>Output rows [start, end) of <see cref="IsByteMaxPool2x2"/>: the two input rows' maximum, then that of
    /// each even and odd byte, sixteen outputs a step (the last step overlapping the one before). The general row
    /// loop, which combines rows into scratch and then slides, spent 30 ns a row on cls's 48-output rows.</summary>
    private readonly struct ByteMaxPool2x2(PoolGeometry g, Tensor x, Tensor y) : IRangeBody
    {
        public void Invoke(int start, int end)
        {
            int width = g.W.Input, outWidth = g.W.Output;
            ref byte xs = ref MemoryMarshal.GetReference(x.AsSpan<byte>());
            ref byte ys = ref MemoryMarshal.GetReference(y.AsSpan<byte>());
            for (int r = start; r < end; r++)
            {
                // Output row r reads input rows 2r and 2r + 1 of the same plane (the planes' rows are consecutive).
                nuint top = (nuint)(2 * r) * (nuint)width, bottom = top + (nuint)width, o0 = (nuint)r * (nuint)outWidth;
                for (int o = 0; o < outWidth; o += 16)
                {
                    int at = Math.Min(o, outWidth - 16);
                    nuint offset = (nuint)(2 * at);
                    var a = Vector128.Max(Vector128.LoadUnsafe(ref xs, top + offset), Vector128.LoadUnsafe(ref xs, bottom + offset)).AsUInt16();
                    var b = Vector128.Max(Vector128.LoadUnsafe(ref xs, top + offset + 16), Vector128.LoadUnsafe(ref xs, bottom + offset + 16)).AsUInt16();
                    Vector128.Max(Evens(a, b), Odds(a, b)).StoreUnsafe(ref ys, o0 + (nuint)at);
                }
            }
        }
    }

    /// <summary>
    /// MaxPool that also returns the flat input index of each maximum (the first one in row-major window order),
    /// row-major within the plane, or column-major when <paramref name="columnMajor"/> (storage_order = 1).
    /// </summary>
    public static void MaxWithIndices<T>(KernelContext context, PoolGeometry geometry, Tensor x, Tensor y, Tensor indices, bool columnMajor)
        where T : unmanaged, INumber<T>, IMinMaxValue<T>
    {
        int rows = geometry.Planes * geometry.D.Output * geometry.H.Output;
        long work = (long)geometry.W.Output * geometry.D.Kernel * geometry.H.Kernel * geometry.W.Kernel;
        context.For(rows, new IndicesBody<T>(geometry, x, y, indices, columnMajor), Grain(work));
    }

    /// <summary>Global pooling of each of <paramref name="planes"/> contiguous planes to one value.</summary>
    public static void Global<T>(KernelContext context, GlobalPool kind, float p, Tensor x, Tensor y, int planes)
        where T : unmanaged, IFloatingPointIeee754<T>, IMinMaxValue<T>
    {
        int size = planes == 0 ? 0 : x.ElementCount / planes;
        context.For(planes, new GlobalBody<T>(kind, T.CreateChecked(p), x, y, size), Grain(size));
    }

    // Enough elements per chunk that scheduling stays a small fraction of the work.
    private static int Grain(long workPerItem) => (int)Math.Clamp(32768 / Math.Max(1, workPerItem), 1, int.MaxValue);

    private readonly struct RowBody<T, TCombine>(PoolGeometry g, Tensor x, Tensor y, bool divide) : IRangeBody
        where T : unmanaged, INumber<T>, IMinMaxValue<T>
        where TCombine : struct, IPoolCombine<T>
    {
        public void Invoke(int start, int end)
        {
            ReadOnlySpan<T> xs = x.AsSpan<T>();
            Span<T> ys = y.AsSpan<T>();
            PoolAxis ad = g.D, ah = g.H, aw = g.W;
            int width = aw.Input, rowsPerPlane = ad.Input * ah.Input;
            T[] rented = ArrayPool<T>.Shared.Rent(width);
            Span<T> combined = rented.AsSpan(0, width);
            int maxRows = ad.Kernel * ah.Kernel;
            Span<int> offsets = maxRows <= 256 ? stackalloc int[maxRows] : new int[maxRows];
            for (int r = start; r < end; r++)
            {
                int oh = r % ah.Output, t = r / ah.Output;
                int od = t % ad.Output, plane = t / ad.Output;
                Span<T> yRow = ys.Slice(r * aw.Output, aw.Output);
                int rowDivisor = ad.Divisor[od] * ah.Divisor[oh];
                // The window's input rows.
                int rows = 0;
                for (int i = 0; i < ad.Count[od]; i++)
                {
                    int id = ad.First[od] + i * ad.Dilation;
                    for (int j = 0; j < ah.Count[oh]; j++)
                        offsets[rows++] = (plane * rowsPerPlane + id * ah.Input + ah.First[oh] + j * ah.Dilation) * width;
                }
                if (rows == 0)
                {
                    // Only when padding spans a whole window: max gives its empty value, average 0 / divisor.
                    for (int o = 0; o < yRow.Length; o++)
                        yRow[o] = divide ? TCombine.Empty / T.CreateChecked(rowDivisor * aw.Divisor[o]) : TCombine.Empty;
                    continue;
                }
                // Combine the rows element by element (a single row is used in place), then slide along the result.
                ReadOnlySpan<T> source = xs.Slice(offsets[0], width);
                if (rows > 1)
                {
                    CombineRows<T, TCombine>(xs, offsets[..rows], combined);
                    source = combined;
                }
                Slide<T, TCombine>(source, yRow, aw, divide, rowDivisor);
            }
            ArrayPool<T>.Shared.Return(rented);
        }
    }

    /// <summary><c>destination[i]</c> = the combination of <c>x[offset + i]</c> over <paramref name="offsets"/>.</summary>
    private static void CombineRows<T, TCombine>(ReadOnlySpan<T> x, ReadOnlySpan<int> offsets, Span<T> destination)
        where T : unmanaged, INumber<T>, IMinMaxValue<T>
        where TCombine : struct, IPoolCombine<T>
    {
        ref T xr = ref MemoryMarshal.GetReference(x);
        ref T dr = ref MemoryMarshal.GetReference(destination);
        int i = 0, n = destination.Length;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= n - Vector256<T>.Count; i += Vector256<T>.Count)
            {
                Vector256<T> acc = Vector256.LoadUnsafe(ref xr, (nuint)(offsets[0] + i));
                for (int r = 1; r < offsets.Length; r++)
                    acc = TCombine.Combine(acc, Vector256.LoadUnsafe(ref xr, (nuint)(offsets[r] + i)));
                acc.StoreUnsafe(ref dr, (nuint)i);
            }
        }
        if (Vector128.IsHardwareAccelerated)
        {
            for (; i <= n - Vector128<T>.Count; i += Vector128<T>.Count)
            {
                Vector128<T> acc = Vector128.LoadUnsafe(ref xr, (nuint)(offsets[0] + i));
                for (int r = 1; r < offsets.Length; r++)
                    acc = TCombine.Combine(acc, Vector128.LoadUnsafe(ref xr, (nuint)(offsets[r] + i)));
                acc.StoreUnsafe(ref dr, (nuint)i);
            }
        }
        for (; i < n; i++)
        {
            T acc = x[offsets[0] + i];
            for (int r = 1; r < offsets.Length; r++) acc = TCombine.Combine(acc, x[offsets[r] + i]);
            destination[i] = acc;
        }
    }

    /// <summary>Slides the window along a combined row, dividing by <paramref name="rowDivisor"/> times the
    /// axis divisor when <paramref name="divide"/>.</summary>
    private static void Slide<T, TCombine>(ReadOnlySpan<T> src, Span<T> dst, PoolAxis aw, bool divide, int rowDivisor)
        where T : unmanaged, INumber<T>, IMinMaxValue<T>
        where TCombine : struct, IPoolCombine<T>
    {
        int k = aw.Kernel, stride = aw.Stride, dilation = aw.Dilation, pad = aw.PadBegin;
        int o = aw.InteriorBegin, end = aw.InteriorEnd;
        SlideScalar<T, TCombine>(src, dst, aw, 0, o, divide, rowDivisor);
        // Interior: every tap is in bounds, so a vector of consecutive outputs reads a vector per tap.
        ref T s = ref MemoryMarshal.GetReference(src);
        ref T d = ref MemoryMarshal.GetReference(dst);
        T divisor = T.CreateChecked(rowDivisor * k);
        if (stride == 1 && Vector256.IsHardwareAccelerated)
        {
            for (; o <= end - Vector256<T>.Count; o += Vector256<T>.Count)
            {
                nuint b = (nuint)(o - pad);
                Vector256<T> acc = Vector256.LoadUnsafe(ref s, b);
                for (int t = 1; t < k; t++) acc = TCombine.Combine(acc, Vector256.LoadUnsafe(ref s, b + (nuint)(t * dilation)));
                if (divide) acc /= Vector256.Create(divisor);
                acc.StoreUnsafe(ref d, (nuint)o);
            }
        }
        if (stride == 1 && Vector128.IsHardwareAccelerated)
        {
            for (; o <= end - Vector128<T>.Count; o += Vector128<T>.Count)
            {
                nuint b = (nuint)(o - pad);
                Vector128<T> acc = Vector128.LoadUnsafe(ref s, b);
                for (int t = 1; t < k; t++) acc = TCombine.Combine(acc, Vector128.LoadUnsafe(ref s, b + (nuint)(t * dilation)));
                if (divide) acc /= Vector128.Create(divisor);
                acc.StoreUnsafe(ref d, (nuint)o);
            }
        }
        if (stride == 2 && typeof(T) == typeof(float) && Avx2.IsSupported)
        {
            // Eight outputs per step: the even lanes of sixteen consecutive inputs, per tap.
            int last = (k - 1) * dilation;
            for (; o + 8 <= end && 2 * o - pad + last + 16 <= src.Length; o += 8)
            {
                nuint b = (nuint)(2 * o - pad);
                Vector256<T> acc = Evens8(ref s, b);
                for (int t = 1; t < k; t++) acc = TCombine.Combine(acc, Evens8(ref s, b + (nuint)(t * dilation)));
                if (divide) acc /= Vector256.Create(divisor);
                acc.StoreUnsafe(ref d, (nuint)o);
            }
        }
        if (stride == 2 && typeof(T) == typeof(float) && Sse.IsSupported)
        {
            int last = (k - 1) * dilation;
            for (; o + 4 <= end && 2 * o - pad + last + 8 <= src.Length; o += 4)
            {
                nuint b = (nuint)(2 * o - pad);
                Vector128<T> acc = Evens4(ref s, b);
                for (int t = 1; t < k; t++) acc = TCombine.Combine(acc, Evens4(ref s, b + (nuint)(t * dilation)));
                if (divide) acc /= Vector128.Create(divisor);
                acc.StoreUnsafe(ref d, (nuint)o);
            }
        }
        if (stride == 2 && k == 2 && dilation == 1 && Unsafe.SizeOf<T>() == 1 && !divide && Vector128.IsHardwareAccelerated)
        {
            // The 2x2 / stride 2 max pool of int8 models: both taps from one load of 32 bytes (its even and odd bytes),
            // so the loads stay inside the row up to its last output (the general loop below reads one byte more per
            // tap and left a row's last sixteen outputs to the scalar loop: a third of cls's MaxPool).
            for (; o + 16 <= end && 2 * o - pad + 32 <= src.Length; o += 16)
            {
                nuint b = (nuint)(2 * o - pad);
                TCombine.Combine(EvenBytes(ref s, b), OddBytes(ref s, b)).StoreUnsafe(ref d, (nuint)o);
            }
        }
        if (stride == 2 && Unsafe.SizeOf<T>() == 1 && !divide && Vector128.IsHardwareAccelerated)
        {
            // uint8/int8 max pooling of int8 models: sixteen outputs per step, the even bytes of 32 inputs per tap.
            int last = (k - 1) * dilation;
            for (; o + 16 <= end && 2 * o - pad + last + 32 <= src.Length; o += 16)
            {
                nuint b = (nuint)(2 * o - pad);
                Vector128<T> acc = EvenBytes(ref s, b);
                for (int t = 1; t < k; t++) acc = TCombine.Combine(acc, EvenBytes(ref s, b + (nuint)(t * dilation)));
                acc.StoreUnsafe(ref d, (nuint)o);
            }
        }
        SlideScalar<T, TCombine>(src, dst, aw, o, aw.Output, divide, rowDivisor);
    }

    /// <summary>Bytes 1, 3, .., 31 from <paramref name="offset"/> (T is one byte wide).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<T> OddBytes<T>(ref T source, nuint offset)
    {
        ref ushort pairs = ref Unsafe.As<T, ushort>(ref Unsafe.Add(ref source, offset));
        return Odds(Vector128.LoadUnsafe(ref pairs), Vector128.LoadUnsafe(ref pairs, 8)).As<byte, T>();
    }

    /// <summary>Bytes 0, 2, .., 30 from <paramref name="offset"/> (T is one byte wide).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<T> EvenBytes<T>(ref T source, nuint offset)
    {
        ref ushort pairs = ref Unsafe.As<T, ushort>(ref Unsafe.Add(ref source, offset));
        return Evens(Vector128.LoadUnsafe(ref pairs), Vector128.LoadUnsafe(ref pairs, 8)).As<byte, T>();
    }

    /// <summary>The odd bytes of 32 held as 16-bit lanes (an even byte low, an odd one high): the high ones shifted
    /// down and narrowed.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> Odds(Vector128<ushort> first, Vector128<ushort> second) =>
        Vector128.Narrow(Vector128.ShiftRightLogical(first, 8), Vector128.ShiftRightLogical(second, 8));

    /// <summary>The even bytes of 32 held as 16-bit lanes: the low ones kept and narrowed.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> Evens(Vector128<ushort> first, Vector128<ushort> second)
    {
        var mask = Vector128.Create((ushort)0xFF);
        return Vector128.Narrow(first & mask, second & mask);
    }

    private static void SlideScalar<T, TCombine>(ReadOnlySpan<T> src, Span<T> dst, PoolAxis aw, int from, int to, bool divide, int rowDivisor)
        where T : unmanaged, INumber<T>, IMinMaxValue<T>
        where TCombine : struct, IPoolCombine<T>
    {
        int dilation = aw.Dilation;
        for (int i = from; i < to; i++)
        {
            int n = aw.Count[i];
            T acc = TCombine.Empty;
            if (n > 0)
            {
                int first = aw.First[i];
                acc = src[first];
                for (int t = 1; t < n; t++) acc = TCombine.Combine(acc, src[first + t * dilation]);
            }
            // An average of an empty window is 0 / 0 = NaN without count_include_pad, as in ONNX's reference.
            if (divide) acc /= T.CreateChecked(rowDivisor * aw.Divisor[i]);
            dst[i] = acc;
        }
    }

    /// <summary>Elements 0, 2, .., 14 from <paramref name="offset"/> (T is float).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<T> Evens8<T>(ref T source, nuint offset)
    {
        ref float f = ref Unsafe.As<T, float>(ref source);
        // Shuffle picks the evens within each 128-bit lane; the permute puts the lanes' halves in order.
        Vector256<float> mixed = Avx.Shuffle(Vector256.LoadUnsafe(ref f, offset), Vector256.LoadUnsafe(ref f, offset + 8), 0b10_00_10_00);
        return Avx2.Permute4x64(mixed.AsDouble(), 0b11_01_10_00).As<double, T>();
    }

    /// <summary>Elements 0, 2, 4, 6 from <paramref name="offset"/> (T is float).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<T> Evens4<T>(ref T source, nuint offset)
    {
        ref float f = ref Unsafe.As<T, float>(ref source);
        return Sse.Shuffle(Vector128.LoadUnsafe(ref f, offset), Vector128.LoadUnsafe(ref f, offset + 4), 0b10_00_10_00).As<float, T>();
    }

    private readonly struct IndicesBody<T>(PoolGeometry g, Tensor x, Tensor y, Tensor indices, bool columnMajor) : IRangeBody
        where T : unmanaged, INumber<T>, IMinMaxValue<T>
    {
        public void Invoke(int start, int end)
        {
            ReadOnlySpan<T> xs = x.AsSpan<T>();
            Span<T> ys = y.AsSpan<T>();
            Span<long> zs = indices.AsSpan<long>();
            PoolAxis ad = g.D, ah = g.H, aw = g.W;
            int inPlane = g.InputPlane;
            // Strides of (d, h, w) in the reported index: row-major, or column-major within the plane.
            int sd = columnMajor ? 1 : ah.Input * aw.Input;
            int sh = columnMajor ? ad.Input : aw.Input;
            int sw = columnMajor ? ad.Input * ah.Input : 1;
            for (int r = start; r < end; r++)
            {
                int oh = r % ah.Output, t = r / ah.Output;
                int od = t % ad.Output, plane = t / ad.Output;
                ReadOnlySpan<T> px = xs.Slice(plane * inPlane, inPlane);
                for (int ow = 0; ow < aw.Output; ow++)
                {
                    T best = T.MinValue;
                    long at = -1;
                    bool any = false;
                    for (int i = 0; i < ad.Count[od]; i++)
                    {
                        int id = ad.First[od] + i * ad.Dilation;
                        for (int j = 0; j < ah.Count[oh]; j++)
                        {
                            int ih = ah.First[oh] + j * ah.Dilation;
                            int rowBase = (id * ah.Input + ih) * aw.Input;
                            for (int l = 0; l < aw.Count[ow]; l++)
                            {
                                int iw = aw.First[ow] + l * aw.Dilation;
                                T v = px[rowBase + iw];
                                if (!any || v > best)
                                {
                                    best = v;
                                    at = (long)plane * inPlane + (long)id * sd + (long)ih * sh + (long)iw * sw;
                                    any = true;
                                }
                            }
                        }
                    }
                    int index = r * aw.Output + ow;
                    ys[index] = best;
                    zs[index] = at;
                }
            }
        }
    }

    private readonly struct GlobalBody<T>(GlobalPool kind, T p, Tensor x, Tensor y, int size) : IRangeBody
        where T : unmanaged, IFloatingPointIeee754<T>, IMinMaxValue<T>
    {
        public void Invoke(int start, int end)
        {
            ReadOnlySpan<T> xs = x.AsSpan<T>();
            Span<T> ys = y.AsSpan<T>();
            for (int i = start; i < end; i++)
            {
                ReadOnlySpan<T> plane = xs.Slice(i * size, size);
                ys[i] = kind switch
                {
                    GlobalPool.Average => TensorPrimitives.Sum(plane) / T.CreateChecked(size),
                    GlobalPool.Max => size == 0 ? T.MinValue : TensorPrimitives.Max(plane),
                    _ => LpNorm(plane, p),
                };
            }
        }
    }

    /// <summary><c>(sum |x|^p)^(1/p)</c>; p = 1 and p = 2 take the vectorized sums.</summary>
    public static T LpNorm<T>(ReadOnlySpan<T> values, T p) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (p == T.One) return TensorPrimitives.SumOfMagnitudes(values);
        if (p == T.CreateChecked(2)) return T.Sqrt(TensorPrimitives.SumOfSquares(values));
        T sum = T.Zero;
        foreach (T v in values) sum += T.Pow(T.Abs(v), p);
        return T.Pow(sum, T.One / p);
    }
}

/// <summary>The global pooling operators.</summary>
internal enum GlobalPool
{
    /// <summary>GlobalAveragePool.</summary>
    Average,
    /// <summary>GlobalMaxPool.</summary>
    Max,
    /// <summary>GlobalLpPool.</summary>
    Lp,
}
