using ILGPU;

namespace Squash.Runtime.Gpu.Kernels;

/// <summary>A reduction: identity, per-element map, combine, and the final step given the element count.</summary>
internal interface IReduceOp
{
    float Identity { get; }
    float Map(float x);
    float Combine(float a, float b);
    float Finish(float acc, int count);
}

#pragma warning disable CS1591 // One line per ONNX reduction.
internal readonly struct SumReduce : IReduceOp { public float Identity => 0f; public float Map(float x) => x; public float Combine(float a, float b) => a + b; public float Finish(float acc, int count) => acc; }
internal readonly struct MeanReduce : IReduceOp { public float Identity => 0f; public float Map(float x) => x; public float Combine(float a, float b) => a + b; public float Finish(float acc, int count) => acc / count; }
internal readonly struct MaxReduce : IReduceOp { public float Identity => float.NegativeInfinity; public float Map(float x) => x; public float Combine(float a, float b) => float.IsNaN(a) || float.IsNaN(b) ? float.NaN : MathF.Max(a, b); public float Finish(float acc, int count) => acc; }
internal readonly struct MinReduce : IReduceOp { public float Identity => float.PositiveInfinity; public float Map(float x) => x; public float Combine(float a, float b) => float.IsNaN(a) || float.IsNaN(b) ? float.NaN : MathF.Min(a, b); public float Finish(float acc, int count) => acc; }
internal readonly struct ProdReduce : IReduceOp { public float Identity => 1f; public float Map(float x) => x; public float Combine(float a, float b) => a * b; public float Finish(float acc, int count) => acc; }
internal readonly struct SumSquareReduce : IReduceOp { public float Identity => 0f; public float Map(float x) => x * x; public float Combine(float a, float b) => a + b; public float Finish(float acc, int count) => acc; }
internal readonly struct L1Reduce : IReduceOp { public float Identity => 0f; public float Map(float x) => MathF.Abs(x); public float Combine(float a, float b) => a + b; public float Finish(float acc, int count) => acc; }
internal readonly struct L2Reduce : IReduceOp { public float Identity => 0f; public float Map(float x) => x * x; public float Combine(float a, float b) => a + b; public float Finish(float acc, int count) => MathF.Sqrt(acc); }
internal readonly struct LogSumReduce : IReduceOp { public float Identity => 0f; public float Map(float x) => x; public float Combine(float a, float b) => a + b; public float Finish(float acc, int count) => MathF.Log(acc); }
#pragma warning restore CS1591

/// <summary>Where the rows are: row r = (outer o, inner i) starts at o * Length * Inner + i, and its elements are
/// Inner apart. Inner is 1 when the reduced axes are the innermost.</summary>
internal struct RowParams
{
    public int Rows, Length, Inner;
    /// <summary>Channels (InstanceNormalization: row r normalizes channel r mod Channels).</summary>
    public int Channels;
    /// <summary>Threads per group, a power of two.</summary>
    public int Threads;
    public float Epsilon;
    public int Flag;
    /// <summary>ArgMax/ArgMin: 1 to pick the last of equal extremes (select_last_index).</summary>
    public int SelectLast;
}

/// <summary>
/// Row kernels: one group of <see cref="RowParams.Threads"/> threads per row (groups loop over rows when the grid is smaller). Each thread walks the row with a stride of the group
/// size (consecutive threads read consecutive elements when Inner is 1), then the group combines the partial results
/// by a tree in shared memory. Used for the reductions, the global pools, Softmax and LayerNormalization.
/// </summary>
internal static class RowKernels
{
    /// <summary>Threads per group (one row) on a GPU; a power of two.</summary>
    public const int GpuThreads = 128;

    /// <summary>Threads per group on the CPU accelerator, where each group thread is an OS thread.</summary>
    public const int EmulatorThreads = 16;

    private static int RowBase(int row, RowParams p)
    {
        int outer = row / p.Inner;
        return outer * p.Length * p.Inner + (row - outer * p.Inner);
    }

    private static float GroupCombine<TOp>(float v, ArrayView<float> shared, int threads) where TOp : struct, IReduceOp
    {
        int t = Group.IdxX;
        shared[t] = v;
        Group.Barrier();
        for (int s = threads / 2; s > 0; s >>= 1)
        {
            if (t < s) shared[t] = default(TOp).Combine(shared[t], shared[t + s]);
            Group.Barrier();
        }
        float r = shared[0];
        Group.Barrier();
        return r;
    }

    /// <summary>y[row] = reduce(row).</summary>
    public static void Reduce<TOp>(ArrayView<float> x, ArrayView<float> y, RowParams p) where TOp : struct, IReduceOp
    {
        var shared = SharedMemory.GetDynamic<float>();
        for (int row = Grid.IdxX; row < p.Rows; row += Grid.DimX)
        {
            int b = RowBase(row, p);
            var op = default(TOp);
            float acc = op.Identity;
            for (int j = Group.IdxX; j < p.Length; j += p.Threads) acc = op.Combine(acc, op.Map(x[b + j * p.Inner]));
            acc = GroupCombine<TOp>(acc, shared, p.Threads);
            if (Group.IdxX == 0) y[row] = op.Finish(acc, p.Length);
        }
    }

    /// <summary>Softmax (Flag 0) or LogSoftmax (Flag 1) of each row: max, then the sum of exp(x - max), then the outputs.</summary>
    public static void Softmax(ArrayView<float> x, ArrayView<float> y, RowParams p)
    {
        var shared = SharedMemory.GetDynamic<float>();
        for (int row = Grid.IdxX; row < p.Rows; row += Grid.DimX)
        {
            int b = RowBase(row, p);
            float m = float.NegativeInfinity;
            for (int j = Group.IdxX; j < p.Length; j += p.Threads) m = MathF.Max(m, x[b + j * p.Inner]);
            m = GroupCombine<MaxReduce>(m, shared, p.Threads);
            float sum = 0;
            for (int j = Group.IdxX; j < p.Length; j += p.Threads) sum += MathF.Exp(x[b + j * p.Inner] - m);
            sum = GroupCombine<SumReduce>(sum, shared, p.Threads);
            if (p.Flag == 0)
            {
                float inv = 1f / sum;
                for (int j = Group.IdxX; j < p.Length; j += p.Threads) y[b + j * p.Inner] = MathF.Exp(x[b + j * p.Inner] - m) * inv;
            }
            else
            {
                float shift = m + MathF.Log(sum);
                for (int j = Group.IdxX; j < p.Length; j += p.Threads) y[b + j * p.Inner] = x[b + j * p.Inner] - shift;
            }
        }
    }

    /// <summary>LayerNormalization of each (contiguous) row: mean, then the variance as the mean squared deviation
    /// (two passes, no cancellation), then y = (x - mean) / sqrt(var + eps) * scale + bias. Flag 1: a bias is given.</summary>
    public static void LayerNorm(ArrayView<float> x, ArrayView<float> y, ArrayView<float> scale, ArrayView<float> bias, RowParams p)
    {
        var shared = SharedMemory.GetDynamic<float>();
        for (int row = Grid.IdxX; row < p.Rows; row += Grid.DimX)
        {
            int b = row * p.Length;
            float sum = 0;
            for (int j = Group.IdxX; j < p.Length; j += p.Threads) sum += x[b + j];
            float mean = GroupCombine<SumReduce>(sum, shared, p.Threads) / p.Length;
            float sq = 0;
            for (int j = Group.IdxX; j < p.Length; j += p.Threads)
            {
                float d = x[b + j] - mean;
                sq += d * d;
            }
            float inv = 1f / MathF.Sqrt(GroupCombine<SumReduce>(sq, shared, p.Threads) / p.Length + p.Epsilon);
            for (int j = Group.IdxX; j < p.Length; j += p.Threads)
            {
                float v = (x[b + j] - mean) * inv * scale[j];
                y[b + j] = p.Flag != 0 ? v + bias[j] : v;
            }
        }
    }

    /// <summary>InstanceNormalization: each row is one (image, channel) plane; y = (x - mean) / sqrt(var + eps) *
    /// scale[c] + bias[c], the variance as the mean squared deviation.</summary>
    public static void InstanceNorm(ArrayView<float> x, ArrayView<float> y, ArrayView<float> scale, ArrayView<float> bias, RowParams p)
    {
        var shared = SharedMemory.GetDynamic<float>();
        for (int row = Grid.IdxX; row < p.Rows; row += Grid.DimX)
        {
            int b = row * p.Length;
            int ch = row % p.Channels;
            float sum = 0;
            for (int j = Group.IdxX; j < p.Length; j += p.Threads) sum += x[b + j];
            float mean = GroupCombine<SumReduce>(sum, shared, p.Threads) / p.Length;
            float sq = 0;
            for (int j = Group.IdxX; j < p.Length; j += p.Threads)
            {
                float d = x[b + j] - mean;
                sq += d * d;
            }
            float a = scale[ch] / MathF.Sqrt(GroupCombine<SumReduce>(sq, shared, p.Threads) / p.Length + p.Epsilon);
            for (int j = Group.IdxX; j < p.Length; j += p.Threads) y[b + j] = (x[b + j] - mean) * a + bias[ch];
        }
    }

    /// <summary>RMSNormalization of each contiguous row: y = x / sqrt(mean(x^2) + eps) * scale.</summary>
    public static void RmsNorm(ArrayView<float> x, ArrayView<float> y, ArrayView<float> scale, RowParams p)
    {
        var shared = SharedMemory.GetDynamic<float>();
        for (int row = Grid.IdxX; row < p.Rows; row += Grid.DimX)
        {
            int b = row * p.Length;
            float sq = 0;
            for (int j = Group.IdxX; j < p.Length; j += p.Threads) sq += x[b + j] * x[b + j];
            float inv = 1f / MathF.Sqrt(GroupCombine<SumReduce>(sq, shared, p.Threads) / p.Length + p.Epsilon);
            for (int j = Group.IdxX; j < p.Length; j += p.Threads) y[b + j] = x[b + j] * inv * scale[j];
        }
    }

    /// <summary>ArgMax (Flag 1) or ArgMin (Flag 0) along rows of stride Inner, one thread per output: the first extreme,
    /// or the last with SelectLast (select_last_index). NaN never compares, as on the CPU.</summary>
    public static void ArgExtreme(Index1D index, Range1D r, ArrayView<float> x, ArrayView<long> y, RowParams p)
    {
        for (int i = index; i < r.Count; i += r.Stride)
        {
            int outer = i / p.Inner;
            int b = outer * p.Length * p.Inner + (i - outer * p.Inner);
            float best = x[b];
            int at = 0;
            for (int j = 1; j < p.Length; j++)
            {
                float v = x[b + j * p.Inner];
                bool better = p.Flag != 0 ? v > best : v < best;
                if (better || (p.SelectLast != 0 && v == best))
                {
                    best = v;
                    at = j;
                }
            }
            y[i] = at;
        }
    }

    /// <summary>CumSum along rows of stride Inner, one thread per row, in order (Flag bit 0: exclusive, bit 1:
    /// reverse); the sum is kept in fp32 as on the CPU.</summary>
    public static void CumSum(Index1D index, Range1D r, ArrayView<float> x, ArrayView<float> y, RowParams p)
    {
        for (int i = index; i < r.Count; i += r.Stride)
        {
            int outer = i / p.Inner;
            int b = outer * p.Length * p.Inner + (i - outer * p.Inner);
            bool exclusive = (p.Flag & 1) != 0, reverse = (p.Flag & 2) != 0;
            float sum = 0;
            for (int k = 0; k < p.Length; k++)
            {
                int j = reverse ? p.Length - 1 - k : k;
                float v = x[b + j * p.Inner];
                if (exclusive)
                {
                    y[b + j * p.Inner] = sum;
                    sum += v;
                }
                else
                {
                    sum += v;
                    y[b + j * p.Inner] = sum;
                }
            }
        }
    }
}
