using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Squash.Runtime.Kernels;

/// <summary>
/// Softmax and LogSoftmax along the middle axis of a [outer, length, inner] view, numerically stable (the maximum is
/// subtracted before exp). Contiguous lines (inner = 1) run as whole-row TensorPrimitives passes; strided lines run
/// over blocks of columns, so every pass still streams contiguous memory.
/// </summary>
public static class Softmax
{
    /// <summary>Columns per unit of work for strided lines; the per-column max and sum live on the stack.</summary>
    private const int ColumnBlock = 256;

    /// <summary>Rows at least this long run the one-pass exp and sum (<see cref="ExpShiftedSum"/>); shorter ones spend
    /// their time on the partial last vector.</summary>
    private const int FusedRowMinimum = 256;

    /// <summary>Elements per unit of parallel work.</summary>
    private const int GrainElements = 1 << 14;

    /// <summary>Softmax (or LogSoftmax with <paramref name="log"/>) of one contiguous row.</summary>
    public static void Row<T>(ReadOnlySpan<T> x, Span<T> y, bool log) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (x.Length == 0) return;
        T max = TensorPrimitives.Max(x);
        if (!log && typeof(T) == typeof(float) && x.Length >= FusedRowMinimum && Vector512.IsHardwareAccelerated)
        {
            var xf = MemoryMarshal.Cast<T, float>(x);
            var yf = MemoryMarshal.Cast<T, float>(y);
            TensorPrimitives.Multiply(yf, 1f / ExpShiftedSum(xf, float.CreateTruncating(max), yf), yf);
            return;
        }
        TensorPrimitives.Subtract(x, max, y);
        if (!log)
        {
            TensorPrimitives.Exp<T>(y, y);
            // One reciprocal and a multiply per element (within an ulp of dividing, and much cheaper).
            T scale = T.One / TensorPrimitives.Sum<T>(y);
            TensorPrimitives.Multiply(y, scale, y);
            return;
        }
        // y = (x - max) - log(sum(exp(x - max))); exp goes through a small buffer to keep y.
        Span<T> buffer = stackalloc T[ColumnBlock];
        T total = T.Zero;
        for (int i = 0; i < y.Length; i += ColumnBlock)
        {
            var chunk = y.Slice(i, Math.Min(ColumnBlock, y.Length - i));
            var t = buffer[..chunk.Length];
            TensorPrimitives.Exp<T>(chunk, t);
            total += TensorPrimitives.Sum<T>(t);
        }
        TensorPrimitives.Subtract(y, T.Log(total), y);
    }

    /// <summary>
    /// <c>y = exp(x - max)</c> and its sum in one pass over the row: subtracting, exponentiating and summing as separate
    /// TensorPrimitives passes read and wrote the row three times, and TensorPrimitives.Exp computes in double (rec's
    /// 6625-class rows spent 0.2 ms here). The exponential is the kernels' own <see cref="FloatMath.Exp{TV}"/> (ONNX
    /// Runtime's MLAS algorithm, within 0.9 ulp; NaN kept), with terms more than 87.34 below the maximum set to 0. The last partial vector goes
    /// through a buffer padded with -infinity (exp gives 0), so every element takes the same path. Sums in fp32 over
    /// two chains.
    /// </summary>
    private static unsafe float ExpShiftedSum(ReadOnlySpan<float> x, float max, Span<float> y)
    {
        var shift = Vector512.Create(max);
        Vector512<float> sum0 = Vector512<float>.Zero, sum1 = Vector512<float>.Zero;
        int n = x.Length, i = 0;
        float* buffer = stackalloc float[16];
        fixed (float* px = x)
        fixed (float* py = y)
        {
            for (; i + 32 <= n; i += 32)
            {
                var e0 = Exp(Vector512.Load(px + i) - shift);
                var e1 = Exp(Vector512.Load(px + i + 16) - shift);
                e0.Store(py + i);
                e1.Store(py + i + 16);
                sum0 += e0;
                sum1 += e1;
            }
            for (; i < n; i += 16)
            {
                int count = Math.Min(16, n - i);
                new Span<float>(buffer, 16).Fill(float.NegativeInfinity);
                new ReadOnlySpan<float>(px + i, count).CopyTo(new Span<float>(buffer, count));
                var e = Exp(Vector512.Load(buffer) - shift);
                e.Store(buffer);
                new ReadOnlySpan<float>(buffer, count).CopyTo(new Span<float>(py + i, count));
                sum0 += e;
            }
        }
        return Vector512.Sum(sum0 + sum1);

        // Terms below e^-87.34 (where 2^n would be subnormal) are 0, as this one-pass row has always given.
        static Vector512<float> Exp(Vector512<float> x) =>
            Vector512.ConditionalSelect(Vector512.LessThan(x, Vector512.Create(-87.33654f)), Vector512<float>.Zero, FloatMath.Exp(new Float512(x)).Value);
    }

    /// <summary>
    /// Softmax (or LogSoftmax) of <paramref name="input"/> viewed as [outer, length, inner] along the middle axis into
    /// <paramref name="output"/> (same type and element count). Float, double, float16 and bfloat16 (computed in fp32).
    /// </summary>
    /// <exception cref="NotSupportedException">The element type is not floating point.</exception>
    public static void Compute(KernelContext context, Tensor input, Tensor output, int outer, int length, int inner, bool log)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(output);
        if ((long)outer * length * inner != input.ElementCount || output.ElementCount != input.ElementCount)
            throw new ArgumentException($"[{outer},{length},{inner}] does not match {input} -> {output}.");
        if (input.ElementCount == 0) return;
        switch (input.DataType)
        {
            case DataType.Float: Run<float>(context, input, output, outer, length, inner, log); break;
            case DataType.Double: Run<double>(context, input, output, outer, length, inner, log); break;
            case DataType.Float16:
            case DataType.BFloat16:
                {
                    int n = input.ElementCount;
                    var buffer = context.Scratch(2 * n * sizeof(float));
                    var wideIn = new Tensor(DataType.Float, [n], buffer, 0);
                    var wideOut = new Tensor(DataType.Float, [n], buffer, n * sizeof(float));
                    FloatBridge.Widen(input, wideIn.AsSpan<float>());
                    Run<float>(context, wideIn, wideOut, outer, length, inner, log);
                    FloatBridge.Narrow(wideOut.AsSpan<float>(), output);
                    break;
                }
            default: throw new NotSupportedException($"Softmax does not support {DataTypes.Name(input.DataType)}.");
        }
    }

    private static void Run<T>(KernelContext context, Tensor input, Tensor output, int outer, int length, int inner, bool log)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (inner == 1)
        {
            context.For(outer, new RowBody<T>(input, output, length, log), Math.Max(1, GrainElements / Math.Max(1, length)));
            return;
        }
        int blocks = (inner + ColumnBlock - 1) / ColumnBlock;
        int work = length * Math.Min(inner, ColumnBlock);
        context.For(outer * blocks, new ColumnBody<T>(input, output, length, inner, blocks, log), Math.Max(1, GrainElements / Math.Max(1, work)));
    }

    private readonly struct RowBody<T>(Tensor input, Tensor output, int length, bool log) : IRangeBody
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        public void Invoke(int start, int end)
        {
            var x = MemoryMarshal.Cast<byte, T>(input.Bytes);
            var y = MemoryMarshal.Cast<byte, T>(output.Bytes);
            for (int r = start; r < end; r++) Row(x.Slice(r * length, length), y.Slice(r * length, length), log);
        }
    }

    /// <summary>Unit u is outer index u / blocks and columns [(u % blocks) * ColumnBlock, +ColumnBlock).</summary>
    private readonly struct ColumnBody<T>(Tensor input, Tensor output, int length, int inner, int blocks, bool log) : IRangeBody
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        public void Invoke(int start, int end)
        {
            var x = MemoryMarshal.Cast<byte, T>(input.Bytes);
            var y = MemoryMarshal.Cast<byte, T>(output.Bytes);
            Span<T> maxBuffer = stackalloc T[ColumnBlock];
            Span<T> sumBuffer = stackalloc T[ColumnBlock];
            Span<T> expBuffer = stackalloc T[ColumnBlock];
            for (int u = start; u < end; u++)
            {
                int o = u / blocks, c0 = u % blocks * ColumnBlock;
                int width = Math.Min(ColumnBlock, inner - c0);
                int baseOffset = o * length * inner + c0;
                var max = maxBuffer[..width];
                var sum = sumBuffer[..width];
                var e = expBuffer[..width];
                x.Slice(baseOffset, width).CopyTo(max);
                for (int r = 1; r < length; r++) TensorPrimitives.Max(max, x.Slice(baseOffset + r * inner, width), max);
                sum.Clear();
                for (int r = 0; r < length; r++)
                {
                    var yr = y.Slice(baseOffset + r * inner, width);
                    TensorPrimitives.Subtract(x.Slice(baseOffset + r * inner, width), max, yr);
                    if (log)
                    {
                        TensorPrimitives.Exp<T>(yr, e);
                        TensorPrimitives.Add(sum, e, sum);
                    }
                    else
                    {
                        TensorPrimitives.Exp<T>(yr, yr);
                        TensorPrimitives.Add(sum, yr, sum);
                    }
                }
                // From here `sum` holds log(sum) to subtract, or 1/sum to multiply by.
                if (log) TensorPrimitives.Log<T>(sum, sum);
                else TensorPrimitives.Divide(T.One, sum, sum);
                for (int r = 0; r < length; r++)
                {
                    var yr = y.Slice(baseOffset + r * inner, width);
                    if (log) TensorPrimitives.Subtract(yr, sum, yr);
                    else TensorPrimitives.Multiply(yr, sum, yr);
                }
            }
        }
    }

    /// <summary>
    /// Hardmax: 1 at the first maximum of each line along the middle axis of [outer, length, inner], 0 elsewhere
    /// (NaN counts as the maximum, as NumPy's argmax).
    /// </summary>
    public static void Hardmax<T>(ReadOnlySpan<T> x, Span<T> y, int outer, int length, int inner, Span<long> indexScratch, Span<T> valueScratch)
        where T : unmanaged, INumber<T>
    {
        y.Clear();
        if (length == 0 || outer * inner == 0) return;
        var index = indexScratch[..(outer * inner)];
        Reduction.ArgExtreme(x, index, outer, length, inner, max: true, lastIndex: false, valueScratch);
        for (int o = 0; o < outer; o++)
            for (int c = 0; c < inner; c++)
                y[(o * length + (int)index[o * inner + c]) * inner + c] = T.One;
    }
}
