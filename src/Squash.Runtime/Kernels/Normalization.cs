using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace Squash.Runtime.Kernels;

/// <summary>
/// Normalization kernels (BatchNormalization, InstanceNormalization, LayerNormalization, RMSNormalization, LRN,
/// MeanVarianceNormalization) over float or double. Statistics are computed in two passes (mean, then the sum of
/// squared deviations), which stays accurate where the one-pass E[x^2] - E[x]^2 cancels.
/// </summary>
internal static class Normalization
{
    /// <summary>
    /// <c>y = x * scale[p] + shift[p]</c> where element i uses parameter <c>p = (i / run) % scale.Length</c>:
    /// BatchNormalization folded to one multiply-add per element (run = spatial size, or 1 for per-element parameters).
    /// </summary>
    public static void Affine<T>(KernelContext context, Tensor x, Tensor y, T[] scale, T[] shift, int run)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (run == 1)
        {
            // Per-element parameters (BatchNormalization with spatial = 0): one vector operation per batch item.
            int batches = scale.Length == 0 ? 0 : x.ElementCount / scale.Length;
            context.For(batches, new AffineBlocks<T>(x, y, scale, shift), Grain(scale.Length));
            return;
        }
        int blocks = x.ElementCount / run;
        context.For(blocks, new AffineRuns<T>(x, y, scale, shift, run), Grain(run));
    }

    private readonly struct AffineRuns<T>(Tensor x, Tensor y, T[] scale, T[] shift, int run) : IRangeBody
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        public void Invoke(int start, int end)
        {
            ReadOnlySpan<T> xs = x.AsSpan<T>();
            Span<T> ys = y.AsSpan<T>();
            for (int b = start; b < end; b++)
            {
                int p = b % scale.Length;
                MultiplyAdd(xs.Slice(b * run, run), scale[p], shift[p], ys.Slice(b * run, run));
            }
        }
    }

    private readonly struct AffineBlocks<T>(Tensor x, Tensor y, T[] scale, T[] shift) : IRangeBody
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        public void Invoke(int start, int end)
        {
            ReadOnlySpan<T> xs = x.AsSpan<T>();
            Span<T> ys = y.AsSpan<T>();
            int n = scale.Length;
            for (int b = start; b < end; b++)
                TensorPrimitives.MultiplyAdd(xs.Slice(b * n, n), scale, shift, ys.Slice(b * n, n));
        }
    }

    /// <summary>
    /// InstanceNormalization: each contiguous plane of <paramref name="planeSize"/> elements is normalized by its own
    /// mean and variance, then scaled and shifted by its channel's <paramref name="scale"/> and <paramref name="bias"/>.
    /// </summary>
    public static void Instance<T>(KernelContext context, Tensor x, Tensor y, T[] scale, T[] bias, int planeSize, T epsilon)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int planes = planeSize == 0 ? 0 : x.ElementCount / planeSize;
        context.For(planes, new InstanceBody<T>(x, y, scale, bias, planeSize, epsilon), Grain(planeSize));
    }

    private readonly struct InstanceBody<T>(Tensor x, Tensor y, T[] scale, T[] bias, int size, T epsilon) : IRangeBody
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        public void Invoke(int start, int end)
        {
            ReadOnlySpan<T> xs = x.AsSpan<T>();
            Span<T> ys = y.AsSpan<T>();
            T count = T.CreateChecked(size);
            for (int p = start; p < end; p++)
            {
                ReadOnlySpan<T> xp = xs.Slice(p * size, size);
                Span<T> yp = ys.Slice(p * size, size);
                T mean = TensorPrimitives.Sum(xp) / count;
                T variance = CenterAndSumSquares(xp, mean, yp) / count;
                int c = p % scale.Length;
                T a = scale[c] / T.Sqrt(variance + epsilon);
                MultiplyAdd(yp, a, bias[c], yp);
            }
        }
    }

    /// <summary>
    /// LayerNormalization over rows of <paramref name="scale"/>.Length elements:
    /// <c>y = (x - mean) / sqrt(var + epsilon) * scale + bias</c>. Writes each row's mean and 1 / sqrt(var + epsilon)
    /// to <paramref name="mean"/> and <paramref name="invStdDev"/> when given; an empty <paramref name="bias"/> means none.
    /// </summary>
    public static void Layer<T>(KernelContext context, Tensor x, Tensor y, T[] scale, T[] bias, T epsilon, Tensor? mean, Tensor? invStdDev)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int size = scale.Length;
        int rows = size == 0 ? 0 : x.ElementCount / size;
        context.For(rows, new LayerBody<T>(x, y, scale, bias, epsilon, mean, invStdDev, rms: false), Grain(size));
    }

    /// <summary>RMSNormalization over rows of <paramref name="scale"/>.Length elements:
    /// <c>y = x / sqrt(mean(x^2) + epsilon) * scale</c>.</summary>
    public static void Rms<T>(KernelContext context, Tensor x, Tensor y, T[] scale, T epsilon)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int size = scale.Length;
        int rows = size == 0 ? 0 : x.ElementCount / size;
        context.For(rows, new LayerBody<T>(x, y, scale, [], epsilon, null, null, rms: true), Grain(size));
    }

    private readonly struct LayerBody<T>(Tensor x, Tensor y, T[] scale, T[] bias, T epsilon, Tensor? meanOut, Tensor? invOut, bool rms) : IRangeBody
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        public void Invoke(int start, int end)
        {
            ReadOnlySpan<T> xs = x.AsSpan<T>();
            Span<T> ys = y.AsSpan<T>();
            Span<float> means = meanOut is null ? default : meanOut.AsSpan<float>();
            Span<float> invs = invOut is null ? default : invOut.AsSpan<float>();
            int size = scale.Length;
            T count = T.CreateChecked(size);
            for (int r = start; r < end; r++)
            {
                ReadOnlySpan<T> xr = xs.Slice(r * size, size);
                Span<T> yr = ys.Slice(r * size, size);
                if (rms)
                {
                    T inv = T.One / T.Sqrt(TensorPrimitives.SumOfSquares(xr) / count + epsilon);
                    ScaleShift(xr, inv, scale, bias, yr);
                    continue;
                }
                T mean = TensorPrimitives.Sum(xr) / count;
                T invStd = T.One / T.Sqrt(CenterAndSumSquares(xr, mean, yr) / count + epsilon);
                ScaleShift(yr, invStd, scale, bias, yr);
                if (!means.IsEmpty) means[r] = float.CreateTruncating(mean);
                if (!invs.IsEmpty) invs[r] = float.CreateTruncating(invStd);
            }
        }
    }

    /// <summary>
    /// LRN across channels: <c>y = x / (bias + alpha / size * sum of x^2 over nearby channels)^beta</c>, where
    /// channel c sums channels [c - floor((size - 1) / 2), c + ceil((size - 1) / 2)] clipped to the tensor.
    /// </summary>
    public static void LocalResponse<T>(KernelContext context, Tensor x, Tensor y, int channels, int planeSize, int size, T alpha, T beta, T bias)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int planes = planeSize == 0 ? 0 : x.ElementCount / planeSize;
        context.For(planes, new LrnBody<T>(x, y, channels, planeSize, size, alpha, beta, bias), Grain((long)planeSize * size));
    }

    private readonly struct LrnBody<T>(Tensor x, Tensor y, int channels, int planeSize, int size, T alpha, T beta, T bias) : IRangeBody
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        public void Invoke(int start, int end)
        {
            ReadOnlySpan<T> xs = x.AsSpan<T>();
            Span<T> ys = y.AsSpan<T>();
            int before = (size - 1) / 2, after = size - 1 - before;
            T coefficient = alpha / T.CreateChecked(size);
            for (int p = start; p < end; p++)
            {
                int c = p % channels, batchBase = p - c;
                Span<T> yp = ys.Slice(p * planeSize, planeSize);
                // The output row accumulates the sum of squares, then becomes the divisor, then the result.
                yp.Clear();
                for (int k = Math.Max(0, c - before); k <= Math.Min(channels - 1, c + after); k++)
                {
                    ReadOnlySpan<T> xk = xs.Slice((batchBase + k) * planeSize, planeSize);
                    TensorPrimitives.MultiplyAdd(xk, xk, yp, yp);
                }
                MultiplyAdd(yp, coefficient, bias, yp);
                TensorPrimitives.Pow(yp, -beta, yp);
                TensorPrimitives.Multiply(xs.Slice(p * planeSize, planeSize), yp, yp);
            }
        }
    }

    /// <summary>
    /// MeanVarianceNormalization: <c>y = (x - mean) / (sqrt(var) + 1e-9)</c>, statistics over the axes where
    /// <paramref name="reduced"/> is true (per ONNX's function body, the epsilon is added to the standard deviation).
    /// </summary>
    public static void MeanVariance<T>(Tensor x, Tensor y, bool[] reduced)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int[] shape = x.Shape;
        int rank = shape.Length;
        // Statistics are indexed by the kept axes; each element's statistic index is found with an odometer.
        int[] statStrides = new int[rank];
        int statCount = 1;
        for (int d = rank - 1; d >= 0; d--)
        {
            statStrides[d] = reduced[d] ? 0 : statCount;
            if (!reduced[d]) statCount *= shape[d];
        }
        int groupSize = statCount == 0 ? 0 : x.ElementCount / statCount;
        ReadOnlySpan<T> xs = x.AsSpan<T>();
        Span<T> ys = y.AsSpan<T>();
        var sums = new double[statCount];
        var squares = new double[statCount];
        Span<int> index = stackalloc int[rank];
        for (int pass = 0; pass < 3; pass++)
        {
            index.Clear();
            int stat = 0;
            for (int i = 0; i < xs.Length; i++)
            {
                double v = double.CreateChecked(xs[i]);
                if (pass == 0) sums[stat] += v;
                else if (pass == 1) squares[stat] += (v - sums[stat]) * (v - sums[stat]);
                else ys[i] = T.CreateChecked((v - sums[stat]) / (Math.Sqrt(squares[stat]) + 1e-9));
                for (int d = rank - 1; d >= 0; d--)
                {
                    stat += statStrides[d];
                    if (++index[d] < shape[d]) break;
                    stat -= statStrides[d] * shape[d];
                    index[d] = 0;
                }
            }
            if (pass == 0)
                for (int s = 0; s < statCount; s++) sums[s] /= groupSize;
            else if (pass == 1)
                for (int s = 0; s < statCount; s++) squares[s] /= groupSize;
        }
    }

    /// <summary>Writes <c>x - mean</c> to <paramref name="centered"/> and returns the sum of its squares.</summary>
    public static T CenterAndSumSquares<T>(ReadOnlySpan<T> x, T mean, Span<T> centered)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        T sum = T.Zero;
        if (Vector.IsHardwareAccelerated && x.Length >= 2 * Vector<T>.Count)
        {
            ref T xr = ref MemoryMarshal.GetReference(x);
            ref T yr = ref MemoryMarshal.GetReference(centered);
            var m = new Vector<T>(mean);
            Vector<T> acc0 = Vector<T>.Zero, acc1 = Vector<T>.Zero;
            int n = Vector<T>.Count;
            for (; i <= x.Length - 2 * n; i += 2 * n)
            {
                Vector<T> d0 = Vector.LoadUnsafe(ref xr, (nuint)i) - m;
                Vector<T> d1 = Vector.LoadUnsafe(ref xr, (nuint)(i + n)) - m;
                d0.StoreUnsafe(ref yr, (nuint)i);
                d1.StoreUnsafe(ref yr, (nuint)(i + n));
                acc0 += d0 * d0;
                acc1 += d1 * d1;
            }
            sum = Vector.Sum(acc0 + acc1);
        }
        for (; i < x.Length; i++)
        {
            T d = x[i] - mean;
            centered[i] = d;
            sum += d * d;
        }
        return sum;
    }

    /// <summary><c>y = x * a + b</c> with scalar <paramref name="a"/> and <paramref name="b"/>; <paramref name="x"/> and
    /// <paramref name="y"/> may be the same memory.</summary>
    public static void MultiplyAdd<T>(ReadOnlySpan<T> x, T a, T b, Span<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= Vector<T>.Count)
        {
            ref T xr = ref MemoryMarshal.GetReference(x);
            ref T yr = ref MemoryMarshal.GetReference(y);
            var va = new Vector<T>(a);
            var vb = new Vector<T>(b);
            int n = Vector<T>.Count;
            for (; i <= x.Length - 2 * n; i += 2 * n)
            {
                Vector<T> v0 = Vector.LoadUnsafe(ref xr, (nuint)i);
                Vector<T> v1 = Vector.LoadUnsafe(ref xr, (nuint)(i + n));
                (v0 * va + vb).StoreUnsafe(ref yr, (nuint)i);
                (v1 * va + vb).StoreUnsafe(ref yr, (nuint)(i + n));
            }
            for (; i <= x.Length - n; i += n)
                (Vector.LoadUnsafe(ref xr, (nuint)i) * va + vb).StoreUnsafe(ref yr, (nuint)i);
        }
        for (; i < x.Length; i++) y[i] = x[i] * a + b;
    }

    /// <summary><c>y = x * factor * scale + bias</c> element by element (no bias when <paramref name="bias"/> is empty).
    /// <paramref name="x"/> and <paramref name="y"/> may be the same memory.</summary>
    public static void ScaleShift<T>(ReadOnlySpan<T> x, T factor, ReadOnlySpan<T> scale, ReadOnlySpan<T> bias, Span<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        bool hasBias = !bias.IsEmpty;
        if (Vector.IsHardwareAccelerated && x.Length >= Vector<T>.Count)
        {
            ref T xr = ref MemoryMarshal.GetReference(x);
            ref T sr = ref MemoryMarshal.GetReference(scale);
            ref T br = ref MemoryMarshal.GetReference(bias);
            ref T yr = ref MemoryMarshal.GetReference(y);
            var f = new Vector<T>(factor);
            int n = Vector<T>.Count;
            for (; i <= x.Length - n; i += n)
            {
                Vector<T> v = Vector.LoadUnsafe(ref xr, (nuint)i) * f * Vector.LoadUnsafe(ref sr, (nuint)i);
                if (hasBias) v += Vector.LoadUnsafe(ref br, (nuint)i);
                v.StoreUnsafe(ref yr, (nuint)i);
            }
        }
        for (; i < x.Length; i++)
        {
            T v = x[i] * factor * scale[i];
            y[i] = hasBias ? v + bias[i] : v;
        }
    }

    // Enough elements per chunk that scheduling stays a small fraction of the work.
    private static int Grain(long workPerItem) => (int)Math.Clamp(32768 / Math.Max(1, workPerItem), 1, int.MaxValue);
}
