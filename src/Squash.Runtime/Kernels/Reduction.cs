using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace Squash.Runtime.Kernels;

/// <summary>What a reduction computes over the reduced axes (the ONNX Reduce* operators).</summary>
public enum ReductionKind
{
    /// <summary>Sum of the elements.</summary>
    Sum,
    /// <summary>Arithmetic mean (NaN over an empty set).</summary>
    Mean,
    /// <summary>Product of the elements.</summary>
    Prod,
    /// <summary>Maximum (NaN propagates; -inf or the type's minimum over an empty set).</summary>
    Max,
    /// <summary>Minimum (NaN propagates; +inf or the type's maximum over an empty set).</summary>
    Min,
    /// <summary>Sum of absolute values.</summary>
    L1,
    /// <summary>Square root of the sum of squares.</summary>
    L2,
    /// <summary>Sum of squares.</summary>
    SumSquare,
    /// <summary>Natural log of the sum.</summary>
    LogSum,
    /// <summary>Natural log of the sum of exponentials, computed with the maximum subtracted for stability.</summary>
    LogSumExp,
}

/// <summary>
/// Reductions over any set of axes. The input is viewed as alternating blocks of kept and reduced axes (size-1 axes
/// dropped, adjacent axes of the same kind merged) and walked once in memory order, one contiguous innermost row at a
/// time: a reduced innermost block folds each row to one value, a kept innermost block combines whole rows
/// element-wise into the output. Both are vectorized. Floating-point inputs accumulate in fp32 (fp16 and bf16 are
/// widened first) or fp64 for double; integer sums, products, extrema wrap in their own type like NumPy's, and integer
/// means, norms and logs go through fp64 and truncate back.
/// </summary>
public static class Reduction
{
    /// <summary>Elements per unit of parallel work: below this, threads cost more than they save.</summary>
    private const int ParallelGrainElements = 1 << 15;

    /// <summary>Columns per parallel unit when reducing the outermost block of a [reduced, kept] view.</summary>
    private const int ColumnChunk = 1024;

    /// <summary>
    /// Reduces <paramref name="input"/> over the axes flagged in <paramref name="reducedAxes"/> into
    /// <paramref name="output"/>, which must have the input's type and the element count of the kept axes (its shape,
    /// with or without the reduced axes as 1, does not matter). Bool inputs are accepted for Max and Min.
    /// </summary>
    /// <exception cref="NotSupportedException">The element type is not supported for <paramref name="kind"/>.</exception>
    public static void Reduce(KernelContext context, ReductionKind kind, Tensor input, Tensor output, ReadOnlySpan<bool> reducedAxes)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(output);
        var layout = Layout.Create(input.Shape, reducedAxes);
        if (output.ElementCount != layout.OutputCount || output.DataType != input.DataType)
            throw new ArgumentException($"Output {output} does not match the reduction of {input}.", nameof(output));
        bool widening = kind is ReductionKind.Mean or ReductionKind.L2 or ReductionKind.LogSum or ReductionKind.LogSumExp;
        switch (input.DataType)
        {
            case DataType.Float: Floating<float>(context, kind, input, output, layout); break;
            case DataType.Double: Floating<double>(context, kind, input, output, layout); break;
            case DataType.Float16:
            case DataType.BFloat16:
                {
                    // Widen to fp32, reduce, round back to nearest-even.
                    var buffer = context.Scratch((layout.InputCount + layout.OutputCount) * sizeof(float));
                    var wideIn = new Tensor(DataType.Float, [layout.InputCount], buffer, 0);
                    var wideOut = new Tensor(DataType.Float, [layout.OutputCount], buffer, layout.InputCount * sizeof(float));
                    FloatBridge.Widen(input, wideIn.AsSpan<float>());
                    Floating<float>(context, kind, wideIn, wideOut, layout);
                    FloatBridge.Narrow(wideOut.AsSpan<float>(), output);
                    break;
                }
            case DataType.Bool when kind is ReductionKind.Max or ReductionKind.Min:
                // false/true are bytes 0/1: max is OR, min is AND. Min over an empty set is true, not 255.
                InElementType<byte>(context, kind, input, output, layout);
                if (kind == ReductionKind.Min && layout.ReduceCount == 0) output.Bytes.Fill(1);
                break;
            case DataType.Int8 when !widening: InElementType<sbyte>(context, kind, input, output, layout); break;
            case DataType.UInt8 when !widening: InElementType<byte>(context, kind, input, output, layout); break;
            case DataType.Int16 when !widening: InElementType<short>(context, kind, input, output, layout); break;
            case DataType.UInt16 when !widening: InElementType<ushort>(context, kind, input, output, layout); break;
            case DataType.Int32 when !widening: InElementType<int>(context, kind, input, output, layout); break;
            case DataType.UInt32 when !widening: InElementType<uint>(context, kind, input, output, layout); break;
            case DataType.Int64 when !widening: InElementType<long>(context, kind, input, output, layout); break;
            case DataType.UInt64 when !widening: InElementType<ulong>(context, kind, input, output, layout); break;
            case var t when widening && DataTypes.IsInteger(t):
                {
                    var buffer = context.Scratch((layout.InputCount + layout.OutputCount) * sizeof(double));
                    var wideIn = new Tensor(DataType.Double, [layout.InputCount], buffer, 0);
                    var wideOut = new Tensor(DataType.Double, [layout.OutputCount], buffer, layout.InputCount * sizeof(double));
                    var wide = wideIn.AsSpan<double>();
                    for (int i = 0; i < wide.Length; i++) wide[i] = input.GetAsDouble(i);
                    Floating<double>(context, kind, wideIn, wideOut, layout);
                    FloatBridge.NarrowToInteger(wideOut.AsSpan<double>(), output);
                    break;
                }
            default:
                throw new NotSupportedException($"Reduce{kind} does not support {DataTypes.Name(input.DataType)}.");
        }
    }

    /// <summary>The reductions that accumulate in the element type itself.</summary>
    private static void InElementType<T>(KernelContext context, ReductionKind kind, Tensor input, Tensor output, Layout layout)
        where T : unmanaged, INumber<T>
    {
        switch (kind)
        {
            case ReductionKind.Sum: Walk<T, Plain<T, SumOp<T>>>(context, input, output, null, layout); break;
            case ReductionKind.Prod: Walk<T, Plain<T, ProdOp<T>>>(context, input, output, null, layout); break;
            case ReductionKind.Max: Walk<T, Plain<T, MaxOp<T>>>(context, input, output, null, layout); break;
            case ReductionKind.Min: Walk<T, Plain<T, MinOp<T>>>(context, input, output, null, layout); break;
            case ReductionKind.L1: Walk<T, Plain<T, AbsSumOp<T>>>(context, input, output, null, layout); break;
            case ReductionKind.SumSquare: Walk<T, Plain<T, SquareSumOp<T>>>(context, input, output, null, layout); break;
            default: throw new NotSupportedException($"Reduce{kind} needs a floating-point accumulator.");
        }
    }

    private static void Floating<T>(KernelContext context, ReductionKind kind, Tensor input, Tensor output, Layout layout)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (kind == ReductionKind.LogSumExp)
        {
            // log(sum(exp(x - m))) + m with m the maximum: exp cannot overflow and the largest term is exactly 1.
            // An infinite maximum shifts by 0 instead, so that all -inf gives -inf and +inf gives +inf, not NaN.
            var max = new Tensor(input.DataType, [layout.OutputCount]);
            Walk<T, Plain<T, MaxOp<T>>>(context, input, max, null, layout);
            var m = max.AsSpan<T>();
            for (int i = 0; i < m.Length; i++) if (T.IsInfinity(m[i])) m[i] = T.Zero;
            Walk<T, ShiftedExpSum<T>>(context, input, output, max, layout);
            var o = output.AsSpan<T>();
            TensorPrimitives.Log<T>(o, o);
            TensorPrimitives.Add<T>(o, max.AsSpan<T>(), o);
            return;
        }
        InElementType<T>(context, kind switch
        {
            ReductionKind.Mean or ReductionKind.LogSum => ReductionKind.Sum,
            ReductionKind.L2 => ReductionKind.SumSquare,
            _ => kind,
        }, input, output, layout);
        var span = output.AsSpan<T>();
        switch (kind)
        {
            case ReductionKind.Mean: TensorPrimitives.Divide<T>(span, T.CreateChecked(layout.ReduceCount), span); break;
            case ReductionKind.L2: TensorPrimitives.Sqrt<T>(span, span); break;
            case ReductionKind.LogSum: TensorPrimitives.Log<T>(span, span); break;
        }
    }

    /// <summary>
    /// For each of the <paramref name="outer"/> x <paramref name="inner"/> lines of <paramref name="length"/> elements
    /// along the middle axis of <paramref name="x"/> ([outer, length, inner], row-major), the index of the largest
    /// (or smallest) element into <paramref name="indices"/> ([outer, inner]). Ties go to the first index, or the
    /// last with <paramref name="lastIndex"/>; NaN counts as the extreme (NumPy's argmax/argmin).
    /// </summary>
    public static void ArgExtreme<T>(ReadOnlySpan<T> x, Span<long> indices, int outer, int length, int inner, bool max, bool lastIndex, Span<T> scratch)
        where T : unmanaged, INumber<T>
    {
        if (length <= 0) throw new ArgumentOutOfRangeException(nameof(length), "An arg-reduction needs at least one element per line.");
        for (int o = 0; o < outer; o++)
        {
            var block = x.Slice(o * length * inner, length * inner);
            if (inner == 1)
            {
                indices[o] = !lastIndex ? FirstExtreme(block, max) : LastExtreme(block, max);
                continue;
            }
            // Columns: keep the best value and its index per column, streaming the rows in memory order.
            var best = scratch[..inner];
            var index = indices.Slice(o * inner, inner);
            block[..inner].CopyTo(best);
            index.Clear();
            for (int r = 1; r < length; r++)
            {
                var row = block.Slice(r * inner, inner);
                for (int i = 0; i < inner; i++)
                {
                    if (Better(row[i], best[i], max, lastIndex))
                    {
                        best[i] = row[i];
                        index[i] = r;
                    }
                }
            }
        }

        static int FirstExtreme(ReadOnlySpan<T> row, bool max)
        {
            int at = max ? TensorPrimitives.IndexOfMax(row) : TensorPrimitives.IndexOfMin(row);
            // TensorPrimitives ranks +0 above -0; ONNX (NumPy) holds them equal, so the first zero wins.
            if (T.IsZero(row[at]))
                for (int i = 0; i < at; i++)
                    if (T.IsZero(row[i])) return i;
            return at;
        }

        static int LastExtreme(ReadOnlySpan<T> row, bool max)
        {
            T best = row[0];
            int at = 0;
            for (int i = 1; i < row.Length; i++)
            {
                if (Better(row[i], best, max, true))
                {
                    best = row[i];
                    at = i;
                }
            }
            return at;
        }
    }

    /// <summary>Whether <paramref name="candidate"/> replaces <paramref name="best"/> when scanning forward.</summary>
    private static bool Better<T>(T candidate, T best, bool max, bool orEqual) where T : unmanaged, INumber<T>
    {
        if (T.IsNaN(candidate)) return orEqual || !T.IsNaN(best);
        if (T.IsNaN(best)) return false;
        return max
            ? (orEqual ? candidate >= best : candidate > best)
            : (orEqual ? candidate <= best : candidate < best);
    }

    /// <summary>Runs the row walk, in parallel where the view allows output-disjoint units of work.</summary>
    private static void Walk<T, TRow>(KernelContext context, Tensor input, Tensor output, Tensor? aux, Layout layout)
        where T : unmanaged, INumber<T>
        where TRow : struct, IRowOp<T>
    {
        MemoryMarshal.Cast<byte, T>(output.Bytes).Fill(TRow.Identity);
        if (layout.InputCount == 0) return;
        var body = new WalkBody<T, TRow>(input, output, aux, layout);
        var dims = layout.Dims;
        if (dims.Length >= 2 && !layout.Reduced[0])
        {
            int perOuter = layout.InputCount / dims[0];
            context.For(dims[0], body, Math.Max(1, ParallelGrainElements / Math.Max(1, perOuter)));
        }
        else if (dims.Length == 2)
        {
            // [reduced, kept]: every unit owns a slice of columns through all rows.
            int chunks = (dims[1] + ColumnChunk - 1) / ColumnChunk;
            context.For(chunks, new ColumnBody<T, TRow>(body), Math.Max(1, ParallelGrainElements / Math.Max(1, dims[0] * ColumnChunk)));
        }
        else if (dims.Length == 1 && layout.Reduced[0] && layout.InputCount > 2 * ParallelGrainElements)
        {
            // Reduce everything: fixed-size partial results (the same whatever the thread count), then combine.
            int chunks = (layout.InputCount + ParallelGrainElements - 1) / ParallelGrainElements;
            var partials = new T[chunks];
            context.For(chunks, new PartialBody<T, TRow>(body, partials));
            T total = TRow.Identity;
            foreach (var p in partials) total = TRow.Combine(total, p);
            MemoryMarshal.Cast<byte, T>(output.Bytes)[0] = total;
        }
        else
        {
            body.Invoke(0, dims[0]);
        }
    }

    /// <summary>The input viewed as merged blocks of kept and reduced axes.</summary>
    private sealed class Layout
    {
        /// <summary>Merged dimensions, outermost first; never empty.</summary>
        public required int[] Dims { get; init; }

        /// <summary>Whether each merged dimension is reduced.</summary>
        public required bool[] Reduced { get; init; }

        /// <summary>Output strides per merged dimension (0 for reduced ones).</summary>
        public required int[] OutStrides { get; init; }

        public int InputCount { get; init; }

        public int OutputCount { get; init; }

        /// <summary>Number of input elements folded into each output element.</summary>
        public int ReduceCount { get; init; }

        public static Layout Create(ReadOnlySpan<int> shape, ReadOnlySpan<bool> reduced)
        {
            if (reduced.Length != shape.Length) throw new ArgumentException("One flag per axis is required.", nameof(reduced));
            var dims = new List<int>(shape.Length);
            var kinds = new List<bool>(shape.Length);
            int inputCount = 1, outputCount = 1, reduceCount = 1;
            for (int i = 0; i < shape.Length; i++)
            {
                inputCount *= shape[i];
                if (reduced[i]) reduceCount *= shape[i];
                else outputCount *= shape[i];
                if (shape[i] == 1) continue;
                if (dims.Count > 0 && kinds[^1] == reduced[i]) dims[^1] *= shape[i];
                else
                {
                    dims.Add(shape[i]);
                    kinds.Add(reduced[i]);
                }
            }
            if (dims.Count == 0)
            {
                dims.Add(1);
                kinds.Add(true);
            }
            var outStrides = new int[dims.Count];
            int stride = 1;
            for (int i = dims.Count - 1; i >= 0; i--)
            {
                if (kinds[i]) continue;
                outStrides[i] = stride;
                stride *= dims[i];
            }
            return new Layout
            {
                Dims = [.. dims],
                Reduced = [.. kinds],
                OutStrides = outStrides,
                InputCount = inputCount,
                OutputCount = outputCount,
                ReduceCount = reduceCount,
            };
        }
    }

    /// <summary>Walks the rows under outermost indices [start, end).</summary>
    private readonly struct WalkBody<T, TRow>(Tensor input, Tensor output, Tensor? aux, Layout layout) : IRangeBody
        where T : unmanaged, INumber<T>
        where TRow : struct, IRowOp<T>
    {
        public readonly Tensor Input = input;
        public readonly Tensor Output = output;
        public readonly Tensor? Aux = aux;
        public readonly Layout Layout = layout;

        public void Invoke(int start, int end)
        {
            var x = MemoryMarshal.Cast<byte, T>(Input.Bytes);
            var acc = MemoryMarshal.Cast<byte, T>(Output.Bytes);
            ReadOnlySpan<T> shift = Aux is null ? default : MemoryMarshal.Cast<byte, T>(Aux.Bytes);
            var dims = Layout.Dims;
            var outStrides = Layout.OutStrides;
            int n = dims.Length;
            int rowLength = dims[n - 1];
            bool innerReduced = Layout.Reduced[n - 1];
            if (n == 1)
            {
                // One row: the whole input (start/end are 0/1 here).
                if (innerReduced) acc[0] = TRow.Combine(acc[0], TRow.FoldRow(x, shift.IsEmpty ? default : shift[0]));
                else TRow.CombineRow(x, acc, shift);
                return;
            }
            // Odometer over the outer merged dims [0, n-1), starting at index `start` of dimension 0.
            Span<int> index = stackalloc int[n - 1];
            int rowsPerOuter = 1;
            for (int d = 1; d < n - 1; d++) rowsPerOuter *= dims[d];
            int rows = (end - start) * rowsPerOuter;
            index[0] = start;
            int outOffset = start * outStrides[0];
            int inOffset = start * rowsPerOuter * rowLength;
            int last = n - 2;
            for (int r = 0; r < rows; r++)
            {
                var row = x.Slice(inOffset, rowLength);
                if (innerReduced)
                    acc[outOffset] = TRow.Combine(acc[outOffset], TRow.FoldRow(row, shift.IsEmpty ? default : shift[outOffset]));
                else
                    TRow.CombineRow(row, acc.Slice(outOffset, rowLength), shift.IsEmpty ? default : shift.Slice(outOffset, rowLength));
                inOffset += rowLength;
                int d = last;
                index[d]++;
                outOffset += outStrides[d];
                while (d > 0 && index[d] == dims[d])
                {
                    outOffset -= dims[d] * outStrides[d];
                    index[d] = 0;
                    d--;
                    index[d]++;
                    outOffset += outStrides[d];
                }
            }
        }
    }

    /// <summary>[reduced R, kept K]: columns [start*ColumnChunk, end*ColumnChunk) through all R rows.</summary>
    private readonly struct ColumnBody<T, TRow>(WalkBody<T, TRow> walk) : IRangeBody
        where T : unmanaged, INumber<T>
        where TRow : struct, IRowOp<T>
    {
        public void Invoke(int start, int end)
        {
            var x = MemoryMarshal.Cast<byte, T>(walk.Input.Bytes);
            var acc = MemoryMarshal.Cast<byte, T>(walk.Output.Bytes);
            ReadOnlySpan<T> shift = walk.Aux is null ? default : MemoryMarshal.Cast<byte, T>(walk.Aux.Bytes);
            int rows = walk.Layout.Dims[0], columns = walk.Layout.Dims[1];
            int c0 = start * ColumnChunk, width = Math.Min(columns, end * ColumnChunk) - c0;
            var target = acc.Slice(c0, width);
            var shiftSlice = shift.IsEmpty ? default : shift.Slice(c0, width);
            for (int r = 0; r < rows; r++) TRow.CombineRow(x.Slice(r * columns + c0, width), target, shiftSlice);
        }
    }

    /// <summary>A reduction of everything: chunk c folds elements [c*grain, (c+1)*grain) into partials[c].</summary>
    private readonly struct PartialBody<T, TRow>(WalkBody<T, TRow> walk, T[] partials) : IRangeBody
        where T : unmanaged, INumber<T>
        where TRow : struct, IRowOp<T>
    {
        public void Invoke(int start, int end)
        {
            var x = MemoryMarshal.Cast<byte, T>(walk.Input.Bytes);
            T shift = walk.Aux is null ? default : MemoryMarshal.Cast<byte, T>(walk.Aux.Bytes)[0];
            for (int c = start; c < end; c++)
            {
                int from = c * ParallelGrainElements;
                partials[c] = TRow.FoldRow(x.Slice(from, Math.Min(ParallelGrainElements, x.Length - from)), shift);
            }
        }
    }

    /// <summary>How rows fold into the output. <c>shift</c> is the auxiliary value per output (the maximum for
    /// LogSumExp); plain reductions ignore it.</summary>
    private interface IRowOp<T> where T : unmanaged, INumber<T>
    {
        /// <summary>The value an output starts from (the result over an empty set).</summary>
        static abstract T Identity { get; }

        /// <summary>Combines two partial results.</summary>
        static abstract T Combine(T a, T b);

        /// <summary>Folds a whole row into one partial result.</summary>
        static abstract T FoldRow(ReadOnlySpan<T> row, T shift);

        /// <summary>Combines each element of a row into the matching accumulator.</summary>
        static abstract void CombineRow(ReadOnlySpan<T> row, Span<T> acc, ReadOnlySpan<T> shift);
    }

    /// <summary>A reduction described by an element map and an associative combine, scalar and vector.</summary>
    private interface IElementOp<T> where T : unmanaged, INumber<T>
    {
        static abstract T Identity { get; }

        static abstract T Map(T x);

        static abstract Vector<T> Map(Vector<T> x);

        static abstract T Combine(T a, T b);

        static abstract Vector<T> Combine(Vector<T> a, Vector<T> b);
    }

    /// <summary>Row folding for an <see cref="IElementOp{T}"/>, vectorized with four independent accumulators.</summary>
    private readonly struct Plain<T, TOp> : IRowOp<T>
        where T : unmanaged, INumber<T>
        where TOp : struct, IElementOp<T>
    {
        public static T Identity => TOp.Identity;

        public static T Combine(T a, T b) => TOp.Combine(a, b);

        public static T FoldRow(ReadOnlySpan<T> row, T shift)
        {
            T result = TOp.Identity;
            int i = 0;
            if (Vector.IsHardwareAccelerated && row.Length >= Vector<T>.Count)
            {
                var vectors = MemoryMarshal.Cast<T, Vector<T>>(row);
                var a0 = new Vector<T>(TOp.Identity);
                Vector<T> a1 = a0, a2 = a0, a3 = a0;
                int v = 0;
                for (; v + 4 <= vectors.Length; v += 4)
                {
                    a0 = TOp.Combine(a0, TOp.Map(vectors[v]));
                    a1 = TOp.Combine(a1, TOp.Map(vectors[v + 1]));
                    a2 = TOp.Combine(a2, TOp.Map(vectors[v + 2]));
                    a3 = TOp.Combine(a3, TOp.Map(vectors[v + 3]));
                }
                for (; v < vectors.Length; v++) a0 = TOp.Combine(a0, TOp.Map(vectors[v]));
                a0 = TOp.Combine(TOp.Combine(a0, a1), TOp.Combine(a2, a3));
                for (int lane = 0; lane < Vector<T>.Count; lane++) result = TOp.Combine(result, a0[lane]);
                i = vectors.Length * Vector<T>.Count;
            }
            for (; i < row.Length; i++) result = TOp.Combine(result, TOp.Map(row[i]));
            return result;
        }

        public static void CombineRow(ReadOnlySpan<T> row, Span<T> acc, ReadOnlySpan<T> shift)
        {
            int i = 0;
            if (Vector.IsHardwareAccelerated && row.Length >= Vector<T>.Count)
            {
                var xs = MemoryMarshal.Cast<T, Vector<T>>(row);
                var ys = MemoryMarshal.Cast<T, Vector<T>>(acc);
                for (int v = 0; v < xs.Length; v++) ys[v] = TOp.Combine(ys[v], TOp.Map(xs[v]));
                i = xs.Length * Vector<T>.Count;
            }
            for (; i < row.Length; i++) acc[i] = TOp.Combine(acc[i], TOp.Map(row[i]));
        }
    }

    /// <summary>Sum of exp(x - shift), the second pass of LogSumExp.</summary>
    private readonly struct ShiftedExpSum<T> : IRowOp<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        private const int Block = 256;

        public static T Identity => T.Zero;

        public static T Combine(T a, T b) => a + b;

        public static T FoldRow(ReadOnlySpan<T> row, T shift)
        {
            Span<T> buffer = stackalloc T[Block];
            T sum = T.Zero;
            for (int i = 0; i < row.Length; i += Block)
            {
                var chunk = row.Slice(i, Math.Min(Block, row.Length - i));
                var t = buffer[..chunk.Length];
                TensorPrimitives.Subtract<T>(chunk, shift, t);
                TensorPrimitives.Exp<T>(t, t);
                sum += TensorPrimitives.Sum<T>(t);
            }
            return sum;
        }

        public static void CombineRow(ReadOnlySpan<T> row, Span<T> acc, ReadOnlySpan<T> shift)
        {
            Span<T> buffer = stackalloc T[Block];
            for (int i = 0; i < row.Length; i += Block)
            {
                int n = Math.Min(Block, row.Length - i);
                var t = buffer[..n];
                TensorPrimitives.Subtract<T>(row.Slice(i, n), shift.Slice(i, n), t);
                TensorPrimitives.Exp<T>(t, t);
                TensorPrimitives.Add<T>(acc.Slice(i, n), t, acc.Slice(i, n));
            }
        }
    }

    private readonly struct SumOp<T> : IElementOp<T> where T : unmanaged, INumber<T>
    {
        public static T Identity => T.Zero;
        public static T Map(T x) => x;
        public static Vector<T> Map(Vector<T> x) => x;
        public static T Combine(T a, T b) => a + b;
        public static Vector<T> Combine(Vector<T> a, Vector<T> b) => a + b;
    }

    private readonly struct AbsSumOp<T> : IElementOp<T> where T : unmanaged, INumber<T>
    {
        public static T Identity => T.Zero;
        // Not T.Abs: it throws for the most negative integer, where NumPy wraps.
        public static T Map(T x) => T.IsNegative(x) ? T.Zero - x : x;
        public static Vector<T> Map(Vector<T> x) => Vector.Abs(x);
        public static T Combine(T a, T b) => a + b;
        public static Vector<T> Combine(Vector<T> a, Vector<T> b) => a + b;
    }

    private readonly struct SquareSumOp<T> : IElementOp<T> where T : unmanaged, INumber<T>
    {
        public static T Identity => T.Zero;
        public static T Map(T x) => x * x;
        public static Vector<T> Map(Vector<T> x) => x * x;
        public static T Combine(T a, T b) => a + b;
        public static Vector<T> Combine(Vector<T> a, Vector<T> b) => a + b;
    }

    private readonly struct ProdOp<T> : IElementOp<T> where T : unmanaged, INumber<T>
    {
        public static T Identity => T.One;
        public static T Map(T x) => x;
        public static Vector<T> Map(Vector<T> x) => x;
        public static T Combine(T a, T b) => a * b;
        public static Vector<T> Combine(Vector<T> a, Vector<T> b) => a * b;
    }

    private readonly struct MaxOp<T> : IElementOp<T> where T : unmanaged, INumber<T>
    {
        // -inf for floating point, the minimum for integers.
        public static T Identity => T.CreateSaturating(double.NegativeInfinity);
        public static T Map(T x) => x;
        public static Vector<T> Map(Vector<T> x) => x;
        public static T Combine(T a, T b) => T.Max(a, b);
        public static Vector<T> Combine(Vector<T> a, Vector<T> b) => Vector.Max(a, b);
    }

    private readonly struct MinOp<T> : IElementOp<T> where T : unmanaged, INumber<T>
    {
        public static T Identity => T.CreateSaturating(double.PositiveInfinity);
        public static T Map(T x) => x;
        public static Vector<T> Map(Vector<T> x) => x;
        public static T Combine(T a, T b) => T.Min(a, b);
        public static Vector<T> Combine(Vector<T> a, Vector<T> b) => Vector.Min(a, b);
    }
}

/// <summary>Conversions between fp16/bf16 tensors and fp32 working buffers (round to nearest-even on the way back).</summary>
internal static class FloatBridge
{
    /// <summary>Widens a float16 or bfloat16 tensor into <paramref name="destination"/>.</summary>
    public static void Widen(Tensor source, Span<float> destination)
    {
        if (source.DataType == DataType.Float16)
        {
            FloatConversions.ToSingle(source.AsSpan<Half>(), destination);
            return;
        }
        var bits = source.AsSpan<BFloat16>();
        for (int i = 0; i < bits.Length; i++) destination[i] = (float)bits[i];
    }

    /// <summary>Rounds <paramref name="source"/> into a float16 or bfloat16 tensor.</summary>
    public static void Narrow(ReadOnlySpan<float> source, Tensor destination)
    {
        if (destination.DataType == DataType.Float16)
        {
            TensorPrimitives.ConvertToHalf(source, destination.AsSpan<Half>());
            return;
        }
        var bits = destination.AsSpan<BFloat16>();
        for (int i = 0; i < bits.Length; i++) bits[i] = (BFloat16)source[i];
    }

    /// <summary>Converts to an integer tensor, truncating toward zero and saturating (as NumPy's astype does in range).</summary>
    public static void NarrowToInteger(ReadOnlySpan<double> source, Tensor destination)
    {
        switch (destination.DataType)
        {
            case DataType.Int8: Convert<sbyte>(source, destination); break;
            case DataType.UInt8: Convert<byte>(source, destination); break;
            case DataType.Int16: Convert<short>(source, destination); break;
            case DataType.UInt16: Convert<ushort>(source, destination); break;
            case DataType.Int32: Convert<int>(source, destination); break;
            case DataType.UInt32: Convert<uint>(source, destination); break;
            case DataType.Int64: Convert<long>(source, destination); break;
            case DataType.UInt64: Convert<ulong>(source, destination); break;
            default: throw new NotSupportedException(DataTypes.Name(destination.DataType));
        }

        static void Convert<T>(ReadOnlySpan<double> source, Tensor destination) where T : unmanaged, INumber<T>
        {
            var d = destination.AsSpan<T>();
            for (int i = 0; i < d.Length; i++) d[i] = double.IsNaN(source[i]) ? T.Zero : T.CreateSaturating(source[i]);
        }
    }
}
