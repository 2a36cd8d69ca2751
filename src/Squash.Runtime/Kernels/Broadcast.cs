using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Squash.Runtime.Kernels;

/// <summary>
/// How up to <see cref="MaxOperands"/> operands are read while an output of a broadcast (NumPy-style) operation is
/// written, reduced to the fewest nested loops. Dimensions of size 1 in the output are dropped, and adjacent
/// dimensions that every operand either reads contiguously or repeats are merged, so that:
/// same-shape operands become one loop; <c>[1,C,1,1]</c> with <c>[1,C,H,W]</c> becomes C rows of H*W elements
/// against one value each; <c>[N,T,C]</c> with <c>[C]</c> becomes N*T rows of C elements against the same C values.
/// </summary>
/// <remarks>
/// The output is always dense and row-major. In every loop an operand either advances (stride &gt; 0) or repeats
/// (stride 0). The innermost loop is a <em>row</em>: an operand whose innermost stride is 1 is read as a contiguous
/// span, one whose innermost stride is 0 as one value repeated along the row. Walk rows with
/// <see cref="BroadcastRows"/>; <see cref="Broadcast"/> has parallel drivers built on it.
/// A plan is a value (about 270 bytes); creating one does not allocate.
/// </remarks>
public struct BroadcastPlan
{
    /// <summary>The most operands a plan describes.</summary>
    public const int MaxOperands = 3;

    /// <summary>The most loops a plan may need after merging dimensions (see <see cref="TryCreate(ReadOnlySpan{int}, ReadOnlySpan{int}, out BroadcastPlan)"/>).</summary>
    public const int MaxLoops = 16;

    private LoopValues _dims;
    private StrideValues _strides; // operand k, loop l at k * MaxLoops + l
    private int _loopCount;
    private int _operandCount;
    private int _elementCount;

    /// <summary>Number of nested loops, the innermost being the row; 0 when the output is empty.</summary>
    public readonly int LoopCount => _loopCount;

    /// <summary>Number of operands the plan reads.</summary>
    public readonly int OperandCount => _operandCount;

    /// <summary>Number of output elements.</summary>
    public readonly int ElementCount => _elementCount;

    /// <summary>Length of the innermost loop (one row of the output); 0 when the output is empty.</summary>
    public readonly int RowLength => _loopCount == 0 ? 0 : _dims[_loopCount - 1];

    /// <summary>Extent of loop <paramref name="loop"/> (0 is outermost).</summary>
    public readonly int Dimension(int loop) => _dims[CheckLoop(loop)];

    /// <summary>Elements operand <paramref name="operand"/> advances by per step of loop <paramref name="loop"/>; 0 where it repeats.</summary>
    public readonly int Stride(int operand, int loop) => _strides[CheckOperand(operand) * MaxLoops + CheckLoop(loop)];

    /// <summary>True when operand <paramref name="operand"/> is read as a contiguous span along each row; false when
    /// one of its values is repeated along the row.</summary>
    public readonly bool IsRowContiguous(int operand) =>
        _loopCount > 0 && _strides[CheckOperand(operand) * MaxLoops + _loopCount - 1] != 0;

    /// <summary>Plans a unidirectional broadcast of one operand to <paramref name="output"/> (Expand).</summary>
    /// <returns>False when the broadcast needs more than <see cref="MaxLoops"/> loops.</returns>
    /// <exception cref="ArgumentException">The operand cannot be broadcast to <paramref name="output"/>.</exception>
    public static bool TryCreate(ReadOnlySpan<int> output, ReadOnlySpan<int> operand0, out BroadcastPlan plan) =>
        TryCreate(output, 1, operand0, default, default, out plan);

    /// <summary>Plans reading two operands for <paramref name="output"/> (binary elementwise operators).</summary>
    /// <returns>False when the broadcast needs more than <see cref="MaxLoops"/> loops.</returns>
    /// <exception cref="ArgumentException">An operand cannot be broadcast to <paramref name="output"/>.</exception>
    public static bool TryCreate(ReadOnlySpan<int> output, ReadOnlySpan<int> operand0, ReadOnlySpan<int> operand1,
        out BroadcastPlan plan) =>
        TryCreate(output, 2, operand0, operand1, default, out plan);

    /// <summary>Plans reading three operands for <paramref name="output"/> (Where).</summary>
    /// <returns>False when the broadcast needs more than <see cref="MaxLoops"/> loops.</returns>
    /// <exception cref="ArgumentException">An operand cannot be broadcast to <paramref name="output"/>.</exception>
    public static bool TryCreate(ReadOnlySpan<int> output, ReadOnlySpan<int> operand0, ReadOnlySpan<int> operand1,
        ReadOnlySpan<int> operand2, out BroadcastPlan plan) =>
        TryCreate(output, 3, operand0, operand1, operand2, out plan);

    /// <summary>The rows of output elements [<paramref name="start"/>, <paramref name="end"/>), in order.</summary>
    [UnscopedRef]
    public readonly BroadcastRows Rows(int start, int end) => new(in this, start, end);

    private static bool TryCreate(ReadOnlySpan<int> output, int operandCount, ReadOnlySpan<int> s0, ReadOnlySpan<int> s1,
        ReadOnlySpan<int> s2, out BroadcastPlan plan)
    {
        plan = default;
        plan._operandCount = operandCount;
        plan._elementCount = (int)Shapes.ElementCount(output);
        for (int k = 0; k < operandCount; k++)
        {
            var shape = k == 0 ? s0 : k == 1 ? s1 : s2;
            if (shape.Length > output.Length || !Shapes.IsKnown(shape))
                throw new ArgumentException($"Shape {Shapes.Format(shape)} cannot be broadcast to {Shapes.Format(output)}.");
            for (int i = 0; i < shape.Length; i++)
            {
                int d = shape[i], o = output[output.Length - shape.Length + i];
                if (d != o && d != 1)
                    throw new ArgumentException($"Shape {Shapes.Format(shape)} cannot be broadcast to {Shapes.Format(output)}.");
            }
        }
        if (plan._elementCount == 0) return true;

        // Classify each output dimension by which operands repeat along it (bit k set: operand k has size 1 there)
        // and merge runs of dimensions with the same pattern into one loop.
        Span<int> patterns = stackalloc int[MaxLoops];
        int loops = 0;
        for (int i = 0; i < output.Length; i++)
        {
            int d = output[i];
            if (d == 1) continue;
            int pattern = 0;
            for (int k = 0; k < operandCount; k++)
            {
                var shape = k == 0 ? s0 : k == 1 ? s1 : s2;
                int at = i - (output.Length - shape.Length);
                if (at < 0 || shape[at] == 1) pattern |= 1 << k;
            }
            if (loops > 0 && patterns[loops - 1] == pattern)
            {
                plan._dims[loops - 1] *= d;
                continue;
            }
            if (loops == MaxLoops) return false;
            plan._dims[loops] = d;
            patterns[loops] = pattern;
            loops++;
        }
        if (loops == 0)
        {
            // One element: every operand is a one-element span.
            plan._dims[0] = 1;
            patterns[0] = 0;
            loops = 1;
        }
        plan._loopCount = loops;
        for (int k = 0; k < operandCount; k++)
        {
            int stride = 1;
            for (int l = loops - 1; l >= 0; l--)
            {
                if ((patterns[l] & (1 << k)) != 0) continue; // stays 0: the operand repeats along this loop
                plan._strides[k * MaxLoops + l] = stride;
                stride *= plan._dims[l];
            }
        }
        return true;
    }

    private readonly int CheckLoop(int loop) =>
        (uint)loop < (uint)_loopCount ? loop : throw new ArgumentOutOfRangeException(nameof(loop));

    private readonly int CheckOperand(int operand) =>
        (uint)operand < (uint)_operandCount ? operand : throw new ArgumentOutOfRangeException(nameof(operand));

    internal readonly int DimensionAt(int loop) => _dims[loop];

    internal readonly int StrideAt(int operand, int loop) => _strides[operand * MaxLoops + loop];

    [InlineArray(MaxLoops)]
    private struct LoopValues
    {
        private int _element;
    }

    [InlineArray(MaxLoops * MaxOperands)]
    private struct StrideValues
    {
        private int _element;
    }
}

/// <summary>
/// Walks the rows of a <see cref="BroadcastPlan"/> over a range of output elements: each step gives a run of
/// <see cref="Length"/> output elements starting at <see cref="OutputOffset"/> and, per operand, the offset of its
/// first element (a contiguous run when <see cref="BroadcastPlan.IsRowContiguous"/>, else one repeated value).
/// The first and last rows may be partial when the range starts or ends inside a row. Index arithmetic happens
/// once per row, never per element.
/// </summary>
public ref struct BroadcastRows
{
    private readonly ref readonly BroadcastPlan _plan;
    private readonly int _end;
    private int _position;
    private int _column;
    private bool _started;
    private OuterIndex _index;
    private int _base0, _base1, _base2;

    /// <summary>Starts before the row holding output element <paramref name="start"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The range is outside the output.</exception>
    public BroadcastRows(ref readonly BroadcastPlan plan, int start, int end)
    {
        if (start < 0 || end > plan.ElementCount || start > end) throw new ArgumentOutOfRangeException(nameof(start));
        _plan = ref plan;
        _end = end;
        _position = start;
        if (start == end) return;
        int inner = plan.LoopCount - 1;
        int n = plan.DimensionAt(inner);
        int row = start / n;
        _column = start - row * n;
        for (int l = inner - 1; l >= 0; l--)
        {
            int d = plan.DimensionAt(l);
            int i = row % d;
            row /= d;
            _index[l] = i;
            // Operands the plan does not have keep stride 0, so their offsets stay 0.
            _base0 += i * plan.StrideAt(0, l);
            _base1 += i * plan.StrideAt(1, l);
            _base2 += i * plan.StrideAt(2, l);
        }
    }

    /// <summary>Elements in the current row.</summary>
    public int Length { get; private set; }

    /// <summary>Offset in the output of the current row's first element.</summary>
    public int OutputOffset { get; private set; }

    /// <summary>Offset in operand 0 of the current row's first element.</summary>
    public int Offset0 { get; private set; }

    /// <summary>Offset in operand 1 of the current row's first element.</summary>
    public int Offset1 { get; private set; }

    /// <summary>Offset in operand 2 of the current row's first element.</summary>
    public int Offset2 { get; private set; }

    /// <summary>Moves to the next row; false after the last.</summary>
    public bool MoveNext()
    {
        if (_position >= _end) return false;
        ref readonly var plan = ref _plan;
        int inner = plan.LoopCount - 1;
        if (_started) Advance(in plan, inner);
        _started = true;
        int length = Math.Min(plan.DimensionAt(inner) - _column, _end - _position);
        OutputOffset = _position;
        Offset0 = _base0 + _column * plan.StrideAt(0, inner);
        Offset1 = _base1 + _column * plan.StrideAt(1, inner);
        Offset2 = _base2 + _column * plan.StrideAt(2, inner);
        Length = length;
        _position += length;
        _column = 0;
        return true;
    }

    /// <summary>Steps the outer loops to the next row, carrying like an odometer.</summary>
    private void Advance(ref readonly BroadcastPlan plan, int inner)
    {
        for (int l = inner - 1; l >= 0; l--)
        {
            int s0 = plan.StrideAt(0, l), s1 = plan.StrideAt(1, l), s2 = plan.StrideAt(2, l);
            _base0 += s0;
            _base1 += s1;
            _base2 += s2;
            if (++_index[l] < plan.DimensionAt(l)) return;
            int d = plan.DimensionAt(l);
            _index[l] = 0;
            _base0 -= d * s0;
            _base1 -= d * s1;
            _base2 -= d * s2;
        }
    }

    [InlineArray(BroadcastPlan.MaxLoops)]
    private struct OuterIndex
    {
        private int _element;
    }
}

/// <summary>
/// A binary elementwise operation on one row of a broadcast: both operands contiguous, or one of them a single
/// value repeated along the row. Implementations are structs so that the calls inline; the destination may be the
/// same memory as a contiguous operand (exactly, not shifted), so read each element before writing it.
/// </summary>
/// <typeparam name="TLeft">Element type of the first operand.</typeparam>
/// <typeparam name="TRight">Element type of the second operand.</typeparam>
/// <typeparam name="TResult">Element type of the result.</typeparam>
public interface IBinaryRowKernel<TLeft, TRight, TResult>
{
    /// <summary><c>destination[i] = op(x[i], y[i])</c>; all three have the length of <paramref name="destination"/>.</summary>
    static abstract void SpanSpan(ReadOnlySpan<TLeft> x, ReadOnlySpan<TRight> y, Span<TResult> destination);

    /// <summary><c>destination[i] = op(x[i], y)</c>.</summary>
    static abstract void SpanScalar(ReadOnlySpan<TLeft> x, TRight y, Span<TResult> destination);

    /// <summary><c>destination[i] = op(x, y[i])</c>.</summary>
    static abstract void ScalarSpan(TLeft x, ReadOnlySpan<TRight> y, Span<TResult> destination);
}

/// <summary>Parallel drivers for <see cref="BroadcastPlan"/>s: binary elementwise operations and Expand.</summary>
public static class Broadcast
{
    /// <summary>Output elements below which a broadcast runs on one thread; above, work is split into ranges
    /// of at least this many elements (enough that scheduling costs little next to streaming the data).</summary>
    public const int ParallelGrain = 32 * 1024;

    /// <summary>
    /// <c>output = op(x, y)</c> with both operands broadcast to <paramref name="output"/> as
    /// <paramref name="plan"/> (made for <c>output.Shape, x.Shape, y.Shape</c>) says. Tensors are read as their
    /// raw elements, so a bool tensor may be read as <see cref="byte"/>. <paramref name="output"/> may be
    /// <paramref name="x"/> or <paramref name="y"/> when that operand has the output's shape.
    /// </summary>
    /// <exception cref="ArgumentException">The tensors do not match the plan or the element types' sizes.</exception>
    public static void Binary<TLeft, TRight, TResult, TKernel>(KernelContext context, in BroadcastPlan plan,
        Tensor x, Tensor y, Tensor output)
        where TLeft : unmanaged where TRight : unmanaged where TResult : unmanaged
        where TKernel : IBinaryRowKernel<TLeft, TRight, TResult>
    {
        ArgumentNullException.ThrowIfNull(context);
        CheckOperands(in plan, 2, output, Unsafe.SizeOf<TResult>());
        CheckElementSize(x, Unsafe.SizeOf<TLeft>());
        CheckElementSize(y, Unsafe.SizeOf<TRight>());
        For(context, plan.ElementCount, new BinaryBody<TLeft, TRight, TResult, TKernel> { Plan = plan, X = x, Y = y, Output = output });
    }

    /// <summary>
    /// The single-threaded core of <see cref="Binary{TLeft, TRight, TResult, TKernel}(KernelContext, in BroadcastPlan, Tensor, Tensor, Tensor)"/>:
    /// writes output elements [<paramref name="start"/>, <paramref name="end"/>).
    /// </summary>
    public static void Binary<TLeft, TRight, TResult, TKernel>(in BroadcastPlan plan, ReadOnlySpan<TLeft> x,
        ReadOnlySpan<TRight> y, Span<TResult> output, int start, int end)
        where TLeft : unmanaged where TRight : unmanaged where TResult : unmanaged
        where TKernel : IBinaryRowKernel<TLeft, TRight, TResult>
    {
        if (start >= end) return;
        var rows = new BroadcastRows(in plan, start, end);
        bool xRow = plan.IsRowContiguous(0), yRow = plan.IsRowContiguous(1);
        if (xRow && yRow)
        {
            while (rows.MoveNext())
                TKernel.SpanSpan(x.Slice(rows.Offset0, rows.Length), y.Slice(rows.Offset1, rows.Length),
                    output.Slice(rows.OutputOffset, rows.Length));
        }
        else if (xRow)
        {
            while (rows.MoveNext())
                TKernel.SpanScalar(x.Slice(rows.Offset0, rows.Length), y[rows.Offset1], output.Slice(rows.OutputOffset, rows.Length));
        }
        else if (yRow)
        {
            while (rows.MoveNext())
                TKernel.ScalarSpan(x[rows.Offset0], y.Slice(rows.Offset1, rows.Length), output.Slice(rows.OutputOffset, rows.Length));
        }
        else
        {
            // Both repeat along the row (a fold into an output larger than either operand): compute once, fill.
            TResult value = default;
            var one = MemoryMarshal.CreateSpan(ref value, 1);
            while (rows.MoveNext())
            {
                TKernel.SpanSpan(x.Slice(rows.Offset0, 1), y.Slice(rows.Offset1, 1), one);
                output.Slice(rows.OutputOffset, rows.Length).Fill(value);
            }
        }
    }

    /// <summary>
    /// Expand: copies <paramref name="input"/> into <paramref name="output"/>, repeating it along the dimensions
    /// where it has size 1 (unidirectional broadcasting; the output's shape is the broadcast shape).
    /// Works for any element type.
    /// </summary>
    /// <exception cref="ArgumentException">The types differ or the input cannot be broadcast to the output.</exception>
    /// <exception cref="NotSupportedException">The broadcast needs more than <see cref="BroadcastPlan.MaxLoops"/> loops.</exception>
    public static void Expand(KernelContext context, Tensor input, Tensor output)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(output);
        if (input.DataType != output.DataType)
            throw new ArgumentException($"Cannot expand {input} into {output}: the element types differ.");
        if (!BroadcastPlan.TryCreate(output.Shape, input.Shape, out var plan))
            throw new NotSupportedException($"Expanding {Shapes.Format(input.Shape)} to {Shapes.Format(output.Shape)} needs more than {BroadcastPlan.MaxLoops} loops.");
        switch (DataTypes.SizeOf(input.DataType))
        {
            case 1: For(context, plan.ElementCount, new ExpandBody<byte> { Plan = plan, Input = input, Output = output }); break;
            case 2: For(context, plan.ElementCount, new ExpandBody<ushort> { Plan = plan, Input = input, Output = output }); break;
            case 4: For(context, plan.ElementCount, new ExpandBody<uint> { Plan = plan, Input = input, Output = output }); break;
            default: For(context, plan.ElementCount, new ExpandBody<ulong> { Plan = plan, Input = input, Output = output }); break;
        }
    }

    /// <summary>The single-threaded core of <see cref="Expand(KernelContext, Tensor, Tensor)"/> for elements
    /// [<paramref name="start"/>, <paramref name="end"/>) of a one-operand plan.</summary>
    public static void Expand<T>(in BroadcastPlan plan, ReadOnlySpan<T> input, Span<T> output, int start, int end)
    {
        if (start >= end) return;
        var rows = new BroadcastRows(in plan, start, end);
        if (plan.IsRowContiguous(0))
        {
            while (rows.MoveNext()) input.Slice(rows.Offset0, rows.Length).CopyTo(output.Slice(rows.OutputOffset, rows.Length));
        }
        else
        {
            while (rows.MoveNext()) output.Slice(rows.OutputOffset, rows.Length).Fill(input[rows.Offset0]);
        }
    }

    /// <summary>
    /// Runs <paramref name="body"/> over [0, <paramref name="count"/>) output elements, split across threads in
    /// ranges of at least <see cref="ParallelGrain"/> when that gives more than one range.
    /// </summary>
    /// <remarks>The single-range case calls the body directly: <see cref="KernelContext.For{TBody}"/> captures its
    /// body in a closure before it checks the thread count, which would allocate on every call.</remarks>
    internal static void For<TBody>(KernelContext context, int count, TBody body) where TBody : struct, IRangeBody
    {
        if (context.ThreadCount == 1 || count <= ParallelGrain) body.Invoke(0, count);
        else context.For(count, body, ParallelGrain);
    }

    /// <summary>The elements of <paramref name="tensor"/> viewed as <typeparamref name="T"/>, which must have the
    /// element type's size (for example bool as <see cref="byte"/>, float16 as <see cref="ushort"/>).</summary>
    internal static Span<T> Elements<T>(Tensor tensor) where T : unmanaged =>
        MemoryMarshal.Cast<byte, T>(tensor.Bytes);

    private static void CheckOperands(in BroadcastPlan plan, int operands, Tensor output, int outputSize)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (plan.OperandCount != operands || plan.ElementCount != output.ElementCount)
            throw new ArgumentException($"The broadcast plan does not describe a {operands}-operand operation into {output}.");
        CheckElementSize(output, outputSize);
    }

    private static void CheckElementSize(Tensor tensor, int size)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (DataTypes.SizeOf(tensor.DataType) != size)
            throw new ArgumentException($"A {tensor} cannot be read as elements of {size} bytes.");
    }

    private struct BinaryBody<TLeft, TRight, TResult, TKernel> : IRangeBody
        where TLeft : unmanaged where TRight : unmanaged where TResult : unmanaged
        where TKernel : IBinaryRowKernel<TLeft, TRight, TResult>
    {
        public BroadcastPlan Plan;
        public Tensor X, Y, Output;

        public readonly void Invoke(int start, int end) =>
            Binary<TLeft, TRight, TResult, TKernel>(in Plan, Elements<TLeft>(X), Elements<TRight>(Y), Elements<TResult>(Output), start, end);
    }

    private struct ExpandBody<T> : IRangeBody where T : unmanaged
    {
        public BroadcastPlan Plan;
        public Tensor Input, Output;

        public readonly void Invoke(int start, int end) => Expand<T>(in Plan, Elements<T>(Input), Elements<T>(Output), start, end);
    }
}
