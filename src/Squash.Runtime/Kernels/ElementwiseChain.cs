using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace Squash.Runtime.Kernels;

/// <summary>An operation of an elementwise chain: a binary one with an operand, or a function.</summary>
internal enum ChainOp : byte
{
    Add, Sub, Mul, Div,
    Relu, LeakyRelu, Sigmoid, HardSigmoid, HardSwish, Clip, Tanh, Exp, Erf, Neg, Abs, Sqrt,
}

/// <summary>How an operand lies against the output viewed as [rows, row length].</summary>
internal enum ChainLayout : byte
{
    /// <summary>The output's shape: element for element.</summary>
    Full,
    /// <summary>One value for everything.</summary>
    Scalar,
    /// <summary>One value per row, operand element <c>row % count</c> ([1, C, 1, 1] against [N, C, H, W]).</summary>
    PerRow,
    /// <summary>One vector for every row, element j at column j ([W] against [N, C, H, W]).</summary>
    PerColumn,
}

/// <summary>One step: <c>acc = acc op operand</c> (<c>operand op acc</c> when <paramref name="Reversed"/>) for binary
/// operations, <c>acc = f(acc)</c> for functions with parameters <paramref name="Alpha"/> and <paramref name="Beta"/>.</summary>
internal readonly record struct ChainStep(ChainOp Op, int Operand, bool Reversed, float Alpha, float Beta)
{
    /// <summary>True for Add, Sub, Mul and Div.</summary>
    public bool IsBinary => Op <= ChainOp.Div;
}

/// <summary>
/// A straight-line program of elementwise steps over one fp32 tensor: the accumulator starts as input 0 and each
/// step combines it with an operand or applies a function. The output is processed in blocks that stay in L1: each
/// step runs over the block with the same vectorized code (and so the same arithmetic) as its standalone operator,
/// so that the data crosses memory once instead of once per step.
/// </summary>
internal static unsafe class ElementwiseChain
{
    /// <summary>Most steps a chain has (each may read one operand).</summary>
    public const int MaxSteps = 8;

    /// <summary>Floats per block: 4 KB, a sixth of an L1 data cache.</summary>
    private const int BlockSize = 1024;

    /// <summary>
    /// How <paramref name="operand"/> (right-aligned, NumPy broadcasting) lies against <paramref name="output"/>, and for
    /// the per-row and per-column layouts, the axis where the output splits into rows and row elements (0 otherwise);
    /// null when the operand does not broadcast to the output in one of these layouts.
    /// </summary>
    public static (ChainLayout Layout, int Split)? Classify(int[] operand, int[] output)
    {
        int rank = output.Length;
        if (operand.Length > rank) return null;
        var b = new int[rank];
        for (int d = 0; d < rank; d++) b[d] = d < rank - operand.Length ? 1 : operand[d - (rank - operand.Length)];
        for (int d = 0; d < rank; d++)
            if (b[d] != 1 && b[d] != output[d]) return null;
        if (Shapes.ElementCount(b) == 1) return (ChainLayout.Scalar, 0);
        if (Shapes.Equal(b, output)) return (ChainLayout.Full, 0);
        // Per row: ones from the split on, and before it a run of the output's dimensions after leading ones.
        int split = rank;
        while (split > 0 && b[split - 1] == 1) split--;
        int first = 0;
        while (first < split && b[first] == 1) first++;
        bool perRow = true;
        for (int d = first; d < split; d++) perRow &= b[d] == output[d];
        if (perRow) return (ChainLayout.PerRow, split);
        // Per column: ones before the split, the output's dimensions from it on.
        int column = rank;
        while (column > 0 && b[column - 1] == output[column - 1]) column--;
        for (int d = 0; d < column; d++)
            if (b[d] != 1) return null;
        return (ChainLayout.PerColumn, column);
    }

    /// <summary>Most inputs a chain has: the start and one operand per step.</summary>
    public const int MaxInputs = MaxSteps + 1;

    /// <summary>The input tensors, held inline so that a run allocates nothing.</summary>
    [InlineArray(MaxInputs)]
    public struct Inputs
    {
        private Tensor? _first;
    }

    /// <summary>
    /// Runs <paramref name="steps"/> on input 0 into <paramref name="y"/>, viewed as [<paramref name="rows"/>,
    /// <paramref name="rowLength"/>]; step operands index <paramref name="inputs"/> (input 0 being the start itself),
    /// laid out as <paramref name="layouts"/> says.
    /// </summary>
    public static void Run(KernelContext context, ChainStep[] steps, ChainLayout[] layouts, in Inputs inputs, Tensor y, int rows, int rowLength)
    {
        int blocksPerRow = Math.Max(1, (rowLength + BlockSize - 1) / BlockSize);
        var body = new Body(steps, layouts, inputs, y, rowLength, blocksPerRow);
        int grain = Math.Max(1, UnaryGrain / Math.Min(rowLength, BlockSize));
        context.For(rows * blocksPerRow, body, grain);
    }

    /// <summary>Elements per parallel task, as for unary operators.</summary>
    private const int UnaryGrain = 1 << 15;

    private readonly struct Body(ChainStep[] steps, ChainLayout[] layouts, Inputs inputs, Tensor y, int rowLength, int blocksPerRow) : IRangeBody
    {
        private readonly Inputs _inputs = inputs;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Invoke(int start, int end)
        {
            Span<float> buffer = stackalloc float[BlockSize];
            var output = y.AsSpan<float>();
            var first = _inputs[0]!.AsSpan<float>();
            for (int item = start; item < end; item++)
            {
                int row = item / blocksPerRow, column = item % blocksPerRow * BlockSize;
                int count = Math.Min(BlockSize, rowLength - column);
                int offset = row * rowLength + column;
                var block = buffer[..count];
                for (int s = 0; s < steps.Length; s++)
                {
                    ReadOnlySpan<float> x = s == 0 ? first.Slice(offset, count) : block;
                    var destination = s == steps.Length - 1 ? output.Slice(offset, count) : block;
                    Step(steps[s], x, destination, row, column, offset);
                }
            }
        }

        private void Step(in ChainStep step, ReadOnlySpan<float> x, Span<float> y, int row, int column, int offset)
        {
            switch (step.Op)
            {
                case ChainOp.Relu: Elementwise.Map(new ReluFunction(), x, y); return;
                case ChainOp.LeakyRelu: Elementwise.Map(new LeakyReluFunction(step.Alpha), x, y); return;
                case ChainOp.Sigmoid: Elementwise.Map(new SigmoidFunction(), x, y); return;
                case ChainOp.HardSigmoid: Elementwise.Map(new HardSigmoidFunction(step.Alpha, step.Beta), x, y); return;
                case ChainOp.HardSwish: Elementwise.Map(new HardSwishFunction(), x, y); return;
                case ChainOp.Clip: Elementwise.Map(new ClipFunction(step.Alpha, step.Beta), x, y); return;
                case ChainOp.Tanh: Elementwise.Map(new TanhFunction(), x, y); return;
                case ChainOp.Exp: Elementwise.Map(new ExpFunction(), x, y); return;
                case ChainOp.Erf: Elementwise.Map(new ErfFunction(), x, y); return;
                case ChainOp.Neg: TensorPrimitives.Negate(x, y); return;
                case ChainOp.Abs: TensorPrimitives.Abs(x, y); return;
                case ChainOp.Sqrt: TensorPrimitives.Sqrt(x, y); return;
            }
            var layout = layouts[step.Operand];
            var values = _inputs[step.Operand]!.AsSpan<float>();
            if (layout is ChainLayout.Full or ChainLayout.PerColumn)
            {
                ReadOnlySpan<float> other = values.Slice(layout == ChainLayout.Full ? offset : column, x.Length);
                if (step.Reversed) Binary(step.Op, other, x, y);
                else Binary(step.Op, x, other, y);
                return;
            }
            float value = layout == ChainLayout.Scalar ? values[0] : values[row % values.Length];
            switch (step.Op, step.Reversed)
            {
                case (ChainOp.Add, _): TensorPrimitives.Add(x, value, y); break;
                case (ChainOp.Mul, _): TensorPrimitives.Multiply(x, value, y); break;
                case (ChainOp.Sub, false): TensorPrimitives.Subtract(x, value, y); break;
                case (ChainOp.Sub, true): TensorPrimitives.Subtract(value, x, y); break;
                case (ChainOp.Div, false): TensorPrimitives.Divide(x, value, y); break;
                default: TensorPrimitives.Divide(value, x, y); break;
            }
        }

        private static void Binary(ChainOp op, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y)
        {
            switch (op)
            {
                case ChainOp.Add: TensorPrimitives.Add(a, b, y); break;
                case ChainOp.Sub: TensorPrimitives.Subtract(a, b, y); break;
                case ChainOp.Mul: TensorPrimitives.Multiply(a, b, y); break;
                default: TensorPrimitives.Divide(a, b, y); break;
            }
        }
    }
}
