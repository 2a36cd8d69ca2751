using Squash.Runtime.Kernels;

namespace Squash.Runtime.Tests;

public sealed class BroadcastTests
{
    /// <summary>Subtraction (not commutative, so swapped operands show) through the engine against an
    /// index-by-index reference, for random shape pairs of rank 0 to 6, each range split into random pieces so that
    /// rows start and end mid-way as they do when the work is split across threads.</summary>
    [Fact]
    public void BinaryMatchesNaiveReferenceForRandomShapes()
    {
        var rng = new Random(1234);
        for (int trial = 0; trial < 2000; trial++)
        {
            var output = RandomShape(rng, maxRank: 6);
            var a = RandomOperandShape(rng, output);
            var b = RandomOperandShape(rng, output);
            // The output of a fold may be larger than either operand's broadcast; plans must handle that too.
            if (rng.Next(4) != 0) output = Shapes.Broadcast(a, b);
            var x = RandomValues(rng, Count(a));
            var y = RandomValues(rng, Count(b));
            Assert.True(BroadcastPlan.TryCreate(output, a, b, out var plan));
            Assert.Equal(Count(output), plan.ElementCount);

            var actual = new float[Count(output)];
            foreach (var (start, end) in RandomPieces(rng, actual.Length))
                Broadcast.Binary<float, float, float, ArithmeticRows<float, SubtractOp>>(in plan, x, y, actual, start, end);

            var expected = new float[actual.Length];
            for (int i = 0; i < expected.Length; i++)
                expected[i] = x[SourceIndex(output, a, i)] - y[SourceIndex(output, b, i)];
            Assert.True(expected.AsSpan().SequenceEqual(actual),
                $"{Shapes.Format(a)} - {Shapes.Format(b)} -> {Shapes.Format(output)} differs from the reference.");
        }
    }

    /// <summary>Every row of a three-operand plan addresses, for each element, exactly the operand elements the
    /// reference broadcasting rule picks.</summary>
    [Fact]
    public void RowsAddressTheReferenceElementsForThreeOperands()
    {
        var rng = new Random(99);
        for (int trial = 0; trial < 1000; trial++)
        {
            var output = RandomShape(rng, maxRank: 5);
            int[][] operands = [RandomOperandShape(rng, output), RandomOperandShape(rng, output), RandomOperandShape(rng, output)];
            Assert.True(BroadcastPlan.TryCreate(output, operands[0], operands[1], operands[2], out var plan));
            int count = Count(output);
            foreach (var (start, end) in RandomPieces(rng, count))
            {
                int next = start;
                var rows = plan.Rows(start, end);
                while (rows.MoveNext())
                {
                    Assert.Equal(next, rows.OutputOffset);
                    Assert.InRange(rows.Length, 1, plan.RowLength);
                    for (int j = 0; j < rows.Length; j++)
                    {
                        int flat = rows.OutputOffset + j;
                        int[] offsets = [rows.Offset0, rows.Offset1, rows.Offset2];
                        for (int k = 0; k < 3; k++)
                        {
                            int actual = offsets[k] + (plan.IsRowContiguous(k) ? j : 0);
                            Assert.Equal(SourceIndex(output, operands[k], flat), actual);
                        }
                    }
                    next += rows.Length;
                }
                Assert.Equal(end, next);
            }
        }
    }

    [Fact]
    public void ExpandMatchesNaiveReferenceForRandomShapes()
    {
        var rng = new Random(7);
        for (int trial = 0; trial < 500; trial++)
        {
            var output = RandomShape(rng, maxRank: 5);
            var shape = RandomOperandShape(rng, output);
            var input = Tensor.From<float>(RandomValues(rng, Count(shape)), shape);
            var actual = new Tensor(DataType.Float, output);
            Broadcast.Expand(new KernelContext(1), input, actual);
            var x = input.AsSpan<float>();
            var values = actual.AsSpan<float>();
            for (int i = 0; i < values.Length; i++)
                Assert.Equal(x[SourceIndex(output, shape, i)], values[i]);
        }
    }

    /// <summary>The real-model cases reduce to the loops the kernels are fast on.</summary>
    [Theory]
    [InlineData(new[] { 1, 64, 1, 1 }, new[] { 1, 64, 80, 80 }, 2, 6400, false, true)] // per-channel scale
    [InlineData(new[] { 2, 3, 4, 5 }, new[] { 2, 3, 4, 5 }, 1, 120, true, true)]     // same shape
    [InlineData(new int[0], new[] { 2, 3, 4 }, 1, 24, false, true)]                    // scalar
    [InlineData(new[] { 4, 7, 32 }, new[] { 32 }, 2, 32, true, true)]                  // bias rows
    [InlineData(new[] { 1, 7, 32 }, new[] { 1, 7, 1 }, 2, 32, true, false)]             // per-row normalizer
    public void RealModelShapesCollapseToFewLoops(int[] a, int[] b, int loops, int rowLength, bool aRow, bool bRow)
    {
        var output = Shapes.Broadcast(a, b);
        Assert.True(BroadcastPlan.TryCreate(output, a, b, out var plan));
        Assert.Equal(loops, plan.LoopCount);
        Assert.Equal(rowLength, plan.RowLength);
        Assert.Equal(aRow, plan.IsRowContiguous(0));
        Assert.Equal(bRow, plan.IsRowContiguous(1));
    }

    [Fact]
    public void ParallelRunMatchesSingleThreaded()
    {
        // Large enough to split; the odd row length makes ranges start inside rows.
        int[] a = [3, 1, 997], b = [1, 70, 997];
        var rng = new Random(5);
        var x = Tensor.From<float>(RandomValues(rng, Count(a)), a);
        var y = Tensor.From<float>(RandomValues(rng, Count(b)), b);
        var output = Shapes.Broadcast(a, b);
        Assert.True(BroadcastPlan.TryCreate(output, a, b, out var plan));
        var one = new Tensor(DataType.Float, output);
        var many = new Tensor(DataType.Float, output);
        Broadcast.Binary<float, float, float, ArithmeticRows<float, SubtractOp>>(new KernelContext(1), plan, x, y, one);
        Broadcast.Binary<float, float, float, ArithmeticRows<float, SubtractOp>>(new KernelContext(4), plan, x, y, many);
        Assert.True(one.Bytes.SequenceEqual(many.Bytes));
    }

    [Fact]
    public void EmptyOutputsAndIncompatibleShapes()
    {
        Assert.True(BroadcastPlan.TryCreate([2, 0, 3], [1, 0, 3], [3], out var plan));
        Assert.Equal(0, plan.ElementCount);
        Assert.Equal(0, plan.LoopCount);
        var empty = new Tensor(DataType.Float, 2, 0, 3);
        Broadcast.Binary<float, float, float, ArithmeticRows<float, AddOp>>(new KernelContext(1), plan,
            new Tensor(DataType.Float, 1, 0, 3), new Tensor(DataType.Float, 3), empty);

        Assert.Throws<ArgumentException>(() => BroadcastPlan.TryCreate([2, 3], [2, 4], [3], out _));
        Assert.Throws<ArgumentException>(() => BroadcastPlan.TryCreate([3], [2, 3], [3], out _));
    }

    [Fact]
    public void TooManyLoopsIsReported()
    {
        // Alternating broadcast patterns cannot merge: 17 dimensions need 17 loops.
        var output = new int[17];
        var a = new int[17];
        var b = new int[17];
        for (int i = 0; i < 17; i++)
        {
            output[i] = 2;
            a[i] = i % 2 == 0 ? 2 : 1;
            b[i] = i % 2 == 0 ? 1 : 2;
        }
        Assert.False(BroadcastPlan.TryCreate(output, a, b, out _));
        Assert.True(BroadcastPlan.TryCreate(output[1..], a[1..], b[1..], out var plan));
        Assert.Equal(16, plan.LoopCount);
    }

    private static int[] RandomShape(Random rng, int maxRank)
    {
        var shape = new int[rng.Next(maxRank + 1)];
        for (int i = 0; i < shape.Length; i++) shape[i] = rng.Next(4) == 0 ? 1 : rng.Next(1, 6);
        return shape;
    }

    private static int[] RandomOperandShape(Random rng, int[] output)
    {
        var shape = new int[rng.Next(output.Length + 1)];
        for (int i = 0; i < shape.Length; i++)
            shape[i] = rng.Next(3) == 0 ? 1 : output[output.Length - shape.Length + i];
        return shape;
    }

    private static float[] RandomValues(Random rng, int count)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++) values[i] = rng.Next(-1000, 1000);
        return values;
    }

    private static int Count(int[] shape) => (int)Shapes.ElementCount(shape);

    /// <summary>Up to four consecutive ranges covering [0, count).</summary>
    private static List<(int Start, int End)> RandomPieces(Random rng, int count)
    {
        var cuts = new List<int> { 0, count };
        for (int i = rng.Next(4); i > 0; i--) cuts.Add(rng.Next(count + 1));
        cuts.Sort();
        var pieces = new List<(int, int)>();
        for (int i = 0; i + 1 < cuts.Count; i++) pieces.Add((cuts[i], cuts[i + 1]));
        return pieces;
    }

    /// <summary>The reference rule: right-align the shapes; where the operand has size 1 it repeats.</summary>
    private static int SourceIndex(int[] output, int[] operand, int flat)
    {
        int index = 0, stride = 1;
        for (int d = output.Length - 1; d >= 0; d--)
        {
            int coordinate = flat % output[d];
            flat /= output[d];
            int k = d - (output.Length - operand.Length);
            if (k < 0) continue;
            if (operand[k] != 1) index += coordinate * stride;
            stride *= operand[k];
        }
        return index;
    }
}
