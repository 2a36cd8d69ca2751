using Squash.Runtime.Execution;
using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;
using Squash.Runtime.Operators;

namespace Squash.Runtime.Tests;

public sealed class ReductionTests
{
    /// <summary>Shapes whose axis subsets cover every block pattern (kept/reduced, merged or not), plus sizes large
    /// enough to take the parallel paths: [reduced, kept] by column chunks, [kept, ...] by outer index, and
    /// reduce-everything by partial results.</summary>
    public static TheoryData<int[], int[]> Cases() => new()
    {
        { [7], [0] },
        { [1], [0] },
        { [], [] },
        { [3, 5], [0] },
        { [3, 5], [1] },
        { [3, 5], [0, 1] },
        { [2, 3, 4], [1] },
        { [2, 3, 4], [0, 2] },
        { [2, 1, 4], [1] },
        { [4, 3, 2, 5], [0, 2] },
        { [4, 3, 2, 5], [1, 3] },
        { [4, 3, 2, 5], [1, 2] },
        { [2, 3, 1, 37], [3] },
        { [2, 0, 3], [1] },
        { [2, 0, 3], [2] },
        { [90000], [0] },
        { [5, 20000], [0] },
        { [700, 130], [1] },
        { [3, 200, 2, 70], [1, 3] },
    };

    /// <summary>Tolerance: fp32 accumulation in another order than the fp64 reference, relative to the sum of
    /// magnitudes; 1e-5 bounds the rounding error for the sizes here.</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void FloatMatchesReferenceForEveryKind(int[] shape, int[] axes)
    {
        var rng = new Random(shape.Sum() * 31 + axes.Sum());
        int count = (int)Shapes.ElementCount(shape);
        var data = new float[count];
        for (int i = 0; i < count; i++) data[i] = (float)(rng.NextDouble() * 2 - 1);
        var positive = Array.ConvertAll(data, v => Math.Abs(v) + 0.5f);
        var nearOne = Array.ConvertAll(data, v => 1 + v / 64);
        foreach (var kind in Enum.GetValues<ReductionKind>())
        {
            var input = kind switch
            {
                ReductionKind.LogSum => positive,
                ReductionKind.Prod => nearOne,
                _ => data,
            };
            var expected = Reference(input, shape, axes, kind, out var magnitude);
            foreach (int threads in new[] { 1, 3 })
            {
                var actual = Run(Tensor.From<float>(input, shape), kind, axes, threads).AsSpan<float>();
                for (int i = 0; i < expected.Length; i++)
                {
                    double tolerance = 1e-5 * magnitude[i] + 1e-6;
                    bool ok = double.IsNaN(expected[i]) ? float.IsNaN(actual[i])
                        : double.IsInfinity(expected[i]) ? actual[i] == expected[i]
                        : Math.Abs(actual[i] - expected[i]) <= tolerance;
                    Assert.True(ok, $"{kind} {Shapes.Format(shape)} axes [{string.Join(",", axes)}] threads {threads}: [{i}] = {actual[i]}, expected {expected[i]}");
                }
            }
        }
    }

    [Fact]
    public void EmptySetGivesTheIdentity()
    {
        var input = new Tensor(DataType.Float, 2, 0);
        Assert.Equal(0f, Run(input, ReductionKind.Sum, [1]).AsSpan<float>()[0]);
        Assert.Equal(1f, Run(input, ReductionKind.Prod, [1]).AsSpan<float>()[0]);
        Assert.Equal(float.NegativeInfinity, Run(input, ReductionKind.Max, [1]).AsSpan<float>()[0]);
        Assert.Equal(float.PositiveInfinity, Run(input, ReductionKind.Min, [1]).AsSpan<float>()[0]);
        Assert.Equal(float.NegativeInfinity, Run(input, ReductionKind.LogSum, [1]).AsSpan<float>()[0]);
        Assert.Equal(float.NegativeInfinity, Run(input, ReductionKind.LogSumExp, [1]).AsSpan<float>()[0]);
        Assert.True(float.IsNaN(Run(input, ReductionKind.Mean, [1]).AsSpan<float>()[0]));
        var ints = new Tensor(DataType.Int32, 3, 0);
        Assert.Equal(int.MinValue, Run(ints, ReductionKind.Max, [1]).AsSpan<int>()[1]);
        var bools = new Tensor(DataType.Bool, 1, 0);
        Assert.True(Run(bools, ReductionKind.Min, [1]).AsSpan<bool>()[0]);
        Assert.False(Run(bools, ReductionKind.Max, [1]).AsSpan<bool>()[0]);
    }

    [Fact]
    public void MaxAndMinPropagateNaNInVectorAndScalarPaths()
    {
        foreach (int length in new[] { 5, 64, 67 })
        {
            foreach (int at in new[] { 0, length / 2, length - 1 })
            {
                var data = new float[length * 2];
                for (int i = 0; i < data.Length; i++) data[i] = i;
                data[at] = float.NaN;
                // Over the last axis rows fold to one value; over the first, rows combine element-wise.
                var rows = Run(Tensor.From<float>(data, 2, length), ReductionKind.Max, [1]).AsSpan<float>();
                Assert.True(float.IsNaN(rows[0]) && !float.IsNaN(rows[1]));
                var columns = Run(Tensor.From<float>(data, 2, length), ReductionKind.Min, [0]).AsSpan<float>();
                for (int c = 0; c < length; c++) Assert.Equal(c == at, float.IsNaN(columns[c]));
            }
        }
    }

    [Fact]
    public void IntegersWrapLikeNumPyAndMeansTruncate()
    {
        var data = Tensor.From<int>([int.MaxValue, 1, -7, -2, int.MinValue, 3], 2, 3);
        Assert.Equal([int.MaxValue - 6, int.MinValue + 1], Run(data, ReductionKind.Sum, [1]).AsSpan<int>().ToArray());
        Assert.Equal([int.MaxValue, 3], Run(data, ReductionKind.Max, [1]).AsSpan<int>().ToArray());
        Assert.Equal([-7, int.MinValue], Run(data, ReductionKind.Min, [1]).AsSpan<int>().ToArray());
        // (MaxValue + 1 - 7) / 3 and (-2 + MinValue + 3) / 3 in fp64, truncated toward zero.
        Assert.Equal([715827880, -715827882], Run(data, ReductionKind.Mean, [1]).AsSpan<int>().ToArray());
        var small = Tensor.From<long>([-3, 4, 5, -6], 4);
        Assert.Equal(18, Run(small, ReductionKind.L1, [0]).AsSpan<long>()[0]);
        Assert.Equal(9, Run(small, ReductionKind.L2, [0]).AsSpan<long>()[0]); // sqrt(86) = 9.27
        var unsigned = Tensor.From<ulong>([ulong.MaxValue, 2], 2);
        Assert.Equal(ulong.MaxValue, Run(unsigned, ReductionKind.Max, [0]).AsSpan<ulong>()[0]);
        var bools = Tensor.From<bool>([true, false, false, false, true, true], 2, 3);
        Assert.Equal([true, true], Run(bools, ReductionKind.Max, [1]).AsSpan<bool>().ToArray());
        Assert.Equal([false, false, false], Run(bools, ReductionKind.Min, [0]).AsSpan<bool>().ToArray());
    }

    [Fact]
    public void Float16AccumulatesInFloat()
    {
        // 4096 ones sum to 4096 in fp32; summed in fp16 the total would stall at 2048.
        var data = new Half[4096];
        Array.Fill(data, Half.One);
        Assert.Equal((Half)4096, Run(Tensor.From<Half>(data, 4096), ReductionKind.Sum, [0]).AsSpan<Half>()[0]);
        Assert.Equal(Half.One, Run(Tensor.From<Half>(data, 64, 64), ReductionKind.Mean, [0, 1]).AsSpan<Half>()[0]);
    }

    /// <summary>Softmax along a middle axis with more columns than one block, and along the last axis, against fp64;
    /// tolerance 1e-6 absolute on probabilities (fp32 exp and division).</summary>
    [Theory]
    [InlineData(3, 17, 1, false)]
    [InlineData(3, 17, 1, true)]
    [InlineData(2, 9, 300, false)]
    [InlineData(2, 9, 300, true)]
    [InlineData(40, 600, 1, false)]
    [InlineData(4, 6625, 1, false)]
    [InlineData(4, 33, 517, true)]
    public void SoftmaxMatchesReference(int outer, int length, int inner, bool log)
    {
        var rng = new Random(outer + length + inner);
        var data = new float[outer * length * inner];
        for (int i = 0; i < data.Length; i++) data[i] = (float)(rng.NextDouble() * 20 - 10);
        foreach (int threads in new[] { 1, 3 })
        {
            var output = new Tensor(DataType.Float, data.Length);
            Softmax.Compute(new KernelContext(threads), Tensor.From<float>(data, data.Length), output, outer, length, inner, log);
            var y = output.AsSpan<float>();
            for (int o = 0; o < outer; o++)
            {
                for (int c = 0; c < inner; c++)
                {
                    double max = double.NegativeInfinity, sum = 0;
                    for (int r = 0; r < length; r++) max = Math.Max(max, data[(o * length + r) * inner + c]);
                    for (int r = 0; r < length; r++) sum += Math.Exp(data[(o * length + r) * inner + c] - max);
                    for (int r = 0; r < length; r++)
                    {
                        int i = (o * length + r) * inner + c;
                        double z = data[i] - max;
                        double expected = log ? z - Math.Log(sum) : Math.Exp(z) / sum;
                        Assert.True(Math.Abs(y[i] - expected) <= 1e-6 + 1e-6 * Math.Abs(expected), $"[{i}] = {y[i]}, expected {expected}");
                    }
                }
            }
        }
    }

    /// <summary>Rows long enough for the one-pass exp and sum: inputs far below the maximum give exactly 0 (-1000,
    /// -infinity, just below the float exponent range), a NaN makes the row NaN, and a partial last vector.</summary>
    [Fact]
    public void LongSoftmaxRowsUnderflowToZeroAndPropagateNaN()
    {
        var data = new float[301];
        data.AsSpan().Fill(-1000);
        data[0] = data[300] = 5;
        data[1] = float.NegativeInfinity;
        data[2] = 5 - 88;
        var y = RunNode("Softmax", 13, [Tensor.From<float>(data, 1, 301)], _ => { }).AsSpan<float>().ToArray();
        var expected = new float[301];
        expected[0] = expected[300] = 0.5f;
        Assert.Equal(expected, y);
        data[7] = float.NaN;
        y = RunNode("Softmax", 13, [Tensor.From<float>(data, 1, 301)], _ => { }).AsSpan<float>().ToArray();
        Assert.All(y, v => Assert.True(float.IsNaN(v)));
    }

    [Fact]
    public void LogSumExpAndSoftmaxAreStableForLargeInputs()
    {
        var big = Tensor.From<float>([1000, 1000, -1000], 3);
        Assert.Equal(1000 + MathF.Log(2), Run(big, ReductionKind.LogSumExp, [0]).AsSpan<float>()[0], 3);
        var infinite = Tensor.From<float>([float.NegativeInfinity, float.NegativeInfinity, 1, float.PositiveInfinity], 2, 2);
        Assert.Equal([float.NegativeInfinity, float.PositiveInfinity], Run(infinite, ReductionKind.LogSumExp, [1]).AsSpan<float>().ToArray());
        var y = RunNode("Softmax", 13, [big], _ => { }).AsSpan<float>();
        Assert.Equal([0.5f, 0.5f, 0f], y.ToArray());
    }

    [Fact]
    public void SoftmaxBeforeOpset13CoercesTo2D()
    {
        // Opset 11, axis 0 of [2, 3]: one row of all six elements.
        var x = Tensor.From<float>([0, 0, 0, 0, 0, 0], 2, 3);
        var y = RunNode("Softmax", 11, [x], n => n.Attributes["axis"] = AttributeValue.Int(0)).AsSpan<float>();
        foreach (float v in y) Assert.Equal(1f / 6, v, 6);
        // Opset 13, axis 0: each column of two.
        y = RunNode("Softmax", 13, [x], n => n.Attributes["axis"] = AttributeValue.Int(0)).AsSpan<float>();
        foreach (float v in y) Assert.Equal(0.5f, v, 6);
        var log = RunNode("LogSoftmax", 11, [x], _ => { }).AsSpan<float>();
        foreach (float v in log) Assert.Equal(-MathF.Log(3), v, 6);
    }

    [Fact]
    public void HardmaxMarksTheFirstMaximum()
    {
        var x = Tensor.From<float>([1, 3, 3, 2, 0, 5], 2, 3);
        Assert.Equal([0f, 1, 0, 0, 0, 1], RunNode("Hardmax", 13, [x], _ => { }).AsSpan<float>().ToArray());
        Assert.Equal([0f, 1, 0, 1, 0, 1], RunNode("Hardmax", 13, [x], n => n.Attributes["axis"] = AttributeValue.Int(0)).AsSpan<float>().ToArray());
        // Opset 11 with axis 0: the whole tensor is one row; the maximum 5 is last.
        Assert.Equal([0f, 0, 0, 0, 0, 1], RunNode("Hardmax", 11, [x], n => n.Attributes["axis"] = AttributeValue.Int(0)).AsSpan<float>().ToArray());
    }

    [Fact]
    public void TopKBreaksTiesByLowerIndexAndRanksNaNHighest()
    {
        var x = Tensor.From<float>([3, 1, 3, float.NaN, 1, 3], 6);
        var k = Tensor.From<long>([4], 1);
        var (values, indices) = RunTopK(x, k, largest: 1);
        Assert.Equal([3, 0, 2, 5], indices.AsSpan<long>().ToArray());
        Assert.True(float.IsNaN(values.AsSpan<float>()[0]));
        (values, indices) = RunTopK(x, k, largest: 0);
        Assert.Equal([1, 4, 0, 2], indices.AsSpan<long>().ToArray());
        Assert.Equal([1f, 1, 3, 3], values.AsSpan<float>().ToArray());
    }

    [Fact]
    public void TopKAlongAMiddleAxis()
    {
        // [2, 4, 3], k = 2 along axis 1, largest.
        var data = new int[24];
        for (int i = 0; i < data.Length; i++) data[i] = (i * 7) % 11;
        var (values, indices) = RunTopK(Tensor.From<int>(data, 2, 4, 3), Tensor.From<long>([2], 1), largest: 1, axis: 1);
        Assert.Equal([2, 2, 3], values.Shape);
        for (int o = 0; o < 2; o++)
            for (int c = 0; c < 3; c++)
            {
                var column = Enumerable.Range(0, 4).Select(r => (Value: data[(o * 4 + r) * 3 + c], Index: r))
                    .OrderByDescending(e => e.Value).ThenBy(e => e.Index).Take(2).ToArray();
                for (int j = 0; j < 2; j++)
                {
                    Assert.Equal(column[j].Value, values.AsSpan<int>()[(o * 2 + j) * 3 + c]);
                    Assert.Equal(column[j].Index, indices.AsSpan<long>()[(o * 2 + j) * 3 + c]);
                }
            }
    }

    [Fact]
    public void ReduceAxesComeFromTheAttributeOrTheInput()
    {
        var x = Tensor.From<float>([1, 2, 3, 4, 5, 6], 2, 3);
        // Opset 11: attribute.
        var y = RunNode("ReduceSum", 11, [x], n => n.Attributes["axes"] = AttributeValue.IntList(-1));
        Assert.Equal([2, 1], y.Shape);
        Assert.Equal([6f, 15], y.AsSpan<float>().ToArray());
        // Opset 18: input, keepdims = 0.
        y = RunNode("ReduceMax", 18, [x, Tensor.From<long>([0], 1)], n => n.Attributes["keepdims"] = AttributeValue.Int(0));
        Assert.Equal([3], y.Shape);
        Assert.Equal([4f, 5, 6], y.AsSpan<float>().ToArray());
        // Empty axes: everything, or nothing with noop_with_empty_axes.
        y = RunNode("ReduceSum", 13, [x, new Tensor(DataType.Int64, 0)], _ => { });
        Assert.Equal([1, 1], y.Shape);
        Assert.Equal(21f, y.AsSpan<float>()[0]);
        y = RunNode("ReduceL1", 18, [Tensor.From<float>([-1, 2], 2)], n => n.Attributes["noop_with_empty_axes"] = AttributeValue.Int(1));
        Assert.Equal([-1f, 2], y.AsSpan<float>().ToArray());
        var error = Assert.Throws<SquashException>(() => RunNode("ReduceSum", 13, [x, Tensor.From<long>([1, -1], 2)], _ => { }));
        Assert.Equal(ErrorCodes.InvalidModel, error.Code);
    }

    [Fact]
    public void ArgMaxSelectsFirstOrLastAlongAnyAxis()
    {
        var x = Tensor.From<float>([1, 5, 5, 2, 7, 7], 2, 3);
        Assert.Equal([1L, 1], RunNode("ArgMax", 13, [x], n => n.Attributes["axis"] = AttributeValue.Int(1)).AsSpan<long>().ToArray());
        Assert.Equal([2L, 2], RunNode("ArgMax", 13, [x], n =>
        {
            n.Attributes["axis"] = AttributeValue.Int(1);
            n.Attributes["select_last_index"] = AttributeValue.Int(1);
        }).AsSpan<long>().ToArray());
        Assert.Equal([0L, 0, 0], RunNode("ArgMin", 13, [x], _ => { }).AsSpan<long>().ToArray());
        // -0 and +0 are equal: the first one is the maximum (or minimum).
        var zeros = Tensor.From<float>([-1, -0f, 0f, -0f], 4);
        Assert.Equal(1L, RunNode("ArgMax", 13, [zeros], _ => { }).AsSpan<long>()[0]);
        Assert.Equal(3L, RunNode("ArgMax", 13, [zeros], n => n.Attributes["select_last_index"] = AttributeValue.Int(1)).AsSpan<long>()[0]);
    }

    [Fact]
    public void CumSumAlongAnInnerAxisReverseExclusive()
    {
        var x = Tensor.From<double>([1, 2, 3, 4, 5, 6], 3, 2);
        var y = RunNode("CumSum", 14, [x, Tensor.Scalar(0L)], n =>
        {
            n.Attributes["reverse"] = AttributeValue.Int(1);
            n.Attributes["exclusive"] = AttributeValue.Int(1);
        });
        Assert.Equal([8.0, 10, 5, 6, 0, 0], y.AsSpan<double>().ToArray());
    }

    [Fact]
    public void IfRunsTheChosenBranchWithOuterValuesAndShapesOfEitherBranch()
    {
        // then: Identity(x) of x's shape; else: a constant of another shape, behind a nested If on the same condition.
        var graph = new Graph();
        graph.OpsetImports[""] = 21;
        var cond = new Value("cond", DataType.Bool, []);
        var x = new Value("x", DataType.Float, [-1]);
        graph.Inputs.Add(cond);
        graph.Inputs.Add(x);
        var thenBranch = new Graph("then");
        var thenOut = new Value("then_out", DataType.Float, [-1]);
        thenBranch.Nodes.Add(new Node("Identity", "id", opsetVersion: 21).AddInput(x).AddOutput(thenOut));
        thenBranch.Outputs.Add(thenOut);
        var elseBranch = new Graph("else");
        var elseOut = new Value("else_out", DataType.Float, [2]);
        var constant = new Node("Constant", "c", opsetVersion: 21);
        constant.Attributes["value"] = AttributeValue.FromTensor(Tensor.From<float>([7, 8], 2));
        var innerOut = new Value("inner_out", DataType.Float, [2]);
        elseBranch.Nodes.Add(constant.AddOutput(innerOut));
        var innerThen = new Graph("inner_then");
        var innerThenOut = new Value("inner_then_out", DataType.Float, [-1]);
        innerThen.Nodes.Add(new Node("Identity", "id2", opsetVersion: 21).AddInput(x).AddOutput(innerThenOut));
        innerThen.Outputs.Add(innerThenOut);
        var innerElse = new Graph("inner_else");
        innerElse.Outputs.Add(innerOut);
        var nested = new Node("If", "nested", opsetVersion: 21).AddInput(cond).AddOutput(elseOut);
        nested.Attributes["then_branch"] = AttributeValue.FromGraph(innerThen);
        nested.Attributes["else_branch"] = AttributeValue.FromGraph(innerElse);
        elseBranch.Nodes.Add(nested);
        elseBranch.Outputs.Add(elseOut);
        var result = new Value("y", DataType.Float, null);
        var node = new Node("If", "if", opsetVersion: 21).AddInput(cond).AddOutput(result);
        node.Attributes["then_branch"] = AttributeValue.FromGraph(thenBranch);
        node.Attributes["else_branch"] = AttributeValue.FromGraph(elseBranch);
        graph.Nodes.Add(node);
        graph.Outputs.Add(result);

        var op = OperatorRegistry.Create(node);
        Assert.Equal([cond, x], op.ImplicitInputs.OrderBy(v => v.Name).ToArray());
        var inference = new InferenceContext(node, 1 + op.ImplicitInputs.Count, 1);
        inference.SetInput(0, DataType.Bool, [], null);
        op.InferOutputs(inference);
        Assert.Equal([-1], inference.OutputShapes[0]!);

        var executor = new GraphExecutor(graph);
        var input = Tensor.From<float>([1, 2, 3], 3);
        foreach (var threads in new[] { 1, 2 })
        {
            var yes = executor.Run(new Dictionary<string, Tensor> { ["cond"] = Tensor.Scalar(true), ["x"] = input }, new KernelContext(threads));
            Assert.Equal([1f, 2, 3], yes["y"].AsSpan<float>().ToArray());
            var no = executor.Run(new Dictionary<string, Tensor> { ["cond"] = Tensor.Scalar(false), ["x"] = input }, new KernelContext(threads));
            Assert.Equal([7f, 8], no["y"].AsSpan<float>().ToArray());
        }
    }

    private static Tensor Run(Tensor input, ReductionKind kind, int[] axes, int threads = 1)
    {
        var reduced = new bool[input.Rank];
        foreach (int a in axes) reduced[a] = true;
        var shape = input.Shape.Where((_, i) => !reduced[i]).ToArray();
        var output = new Tensor(input.DataType, shape);
        Reduction.Reduce(new KernelContext(threads), kind, input, output, reduced);
        return output;
    }

    /// <summary>An fp64 reduction by coordinates, and per output the sum of |terms| (for tolerances).</summary>
    private static double[] Reference(float[] data, int[] shape, int[] axes, ReductionKind kind, out double[] magnitude)
    {
        var strides = Shapes.Strides(shape);
        var keptShape = Enumerable.Range(0, shape.Length).Where(i => !axes.Contains(i)).Select(i => shape[i]).ToArray();
        var keptStrides = Shapes.Strides(keptShape);
        int outCount = (int)Shapes.ElementCount(keptShape);
        var terms = new List<double>[outCount];
        for (int i = 0; i < outCount; i++) terms[i] = [];
        for (int flat = 0; flat < data.Length; flat++)
        {
            int o = 0, k = 0;
            for (int d = 0; d < shape.Length; d++)
            {
                int coordinate = flat / strides[d] % shape[d];
                if (!axes.Contains(d)) o += coordinate * keptStrides[k++];
            }
            terms[o].Add(data[flat]);
        }
        magnitude = new double[outCount];
        var result = new double[outCount];
        for (int i = 0; i < outCount; i++)
        {
            var t = terms[i];
            magnitude[i] = t.Sum(v => Math.Abs(kind is ReductionKind.SumSquare or ReductionKind.L2 ? v * v : v)) + 1;
            result[i] = kind switch
            {
                ReductionKind.Sum => t.Sum(),
                ReductionKind.Mean => t.Count == 0 ? double.NaN : t.Average(),
                ReductionKind.Prod => t.Aggregate(1.0, (a, b) => a * b),
                ReductionKind.Max => t.Count == 0 ? double.NegativeInfinity : t.Max(),
                ReductionKind.Min => t.Count == 0 ? double.PositiveInfinity : t.Min(),
                ReductionKind.L1 => t.Sum(Math.Abs),
                ReductionKind.L2 => Math.Sqrt(t.Sum(v => v * v)),
                ReductionKind.SumSquare => t.Sum(v => v * v),
                ReductionKind.LogSum => Math.Log(t.Sum()),
                ReductionKind.LogSumExp => Math.Log(t.Sum(Math.Exp)),
                _ => throw new ArgumentOutOfRangeException(nameof(kind)),
            };
            if (kind is ReductionKind.Mean) magnitude[i] /= Math.Max(1, t.Count);
            if (kind is ReductionKind.L2 or ReductionKind.LogSum or ReductionKind.LogSumExp or ReductionKind.Prod) magnitude[i] = Math.Abs(result[i]) + 1;
        }
        return result;
    }

    private static (Tensor Values, Tensor Indices) RunTopK(Tensor x, Tensor k, int largest, int axis = -1)
    {
        var graph = SingleNode("TopK", 11, [x, k], n =>
        {
            n.Attributes["largest"] = AttributeValue.Int(largest);
            n.Attributes["axis"] = AttributeValue.Int(axis);
        }, outputs: 2, out var feeds);
        var result = new GraphExecutor(graph).Run(feeds);
        return (result["out0"], result["out1"]);
    }

    private static Tensor RunNode(string opType, int opset, Tensor[] inputs, Action<Node> configure)
    {
        var graph = SingleNode(opType, opset, inputs, configure, outputs: 1, out var feeds);
        return new GraphExecutor(graph).Run(feeds)["out0"];
    }

    private static Graph SingleNode(string opType, int opset, Tensor[] inputs, Action<Node> configure, int outputs, out Dictionary<string, Tensor> feeds)
    {
        var graph = new Graph();
        graph.OpsetImports[""] = opset;
        var node = new Node(opType, "node", opsetVersion: opset);
        feeds = [];
        for (int i = 0; i < inputs.Length; i++)
        {
            var v = new Value($"in{i}", inputs[i].DataType, inputs[i].Shape);
            graph.Inputs.Add(v);
            node.AddInput(v);
            feeds[v.Name] = inputs[i];
        }
        for (int i = 0; i < outputs; i++)
        {
            var v = new Value($"out{i}");
            node.AddOutput(v);
            graph.Outputs.Add(v);
        }
        configure(node);
        graph.Nodes.Add(node);
        return graph;
    }
}
