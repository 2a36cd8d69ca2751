using Squash.Runtime.Ir;
using Squash.Runtime.Operators;

namespace Squash.Runtime.Tests;

/// <summary>Runs one node through its operator the way the executor does (infer, allocate, run).</summary>
internal static class NodeRunner
{
    public static Tensor[] Run(string opType, Dictionary<string, AttributeValue>? attributes, int threads, int outputs,
        params Tensor?[] inputs) => Run(opType, 0, attributes, threads, outputs, inputs);

    public static Tensor[] Run(string opType, int opset, Dictionary<string, AttributeValue>? attributes, int threads,
        int outputs, params Tensor?[] inputs)
    {
        var node = new Node(opType, "n", "", opset);
        for (int i = 0; i < inputs.Length; i++)
            node.AddInput(inputs[i] is { } t ? new Value("in" + i, t.DataType, t.Shape) : null);
        for (int i = 0; i < outputs; i++) node.AddOutput(new Value("out" + i));
        foreach (var (name, value) in attributes ?? []) node.Attributes[name] = value;
        var op = OperatorRegistry.Create(node);
        var inference = new InferenceContext(node, inputs.Length, outputs);
        for (int i = 0; i < inputs.Length; i++)
            if (inputs[i] is { } t) inference.SetInput(i, t.DataType, t.Shape, t);
        op.InferOutputs(inference);
        var result = new Tensor[outputs];
        for (int i = 0; i < outputs; i++) result[i] = new Tensor(inference.OutputTypes[i], inference.OutputShapes[i]!);
        op.Run(new KernelContext(threads), inputs, result);
        return result;
    }

    public static float[] Random(Random rng, int n)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        return x;
    }
}

public sealed class IndexingTests
{
    [Theory]
    [InlineData(0, 1)]
    [InlineData(1, 1)]
    [InlineData(2, 1)]
    [InlineData(0, 4)]
    [InlineData(2, 4)]
    public void GatherMatchesNaiveIndexingForInt32NegativeIndices(int axis, int threads)
    {
        var rng = new Random(axis);
        int[] shape = [37, 5, 6];
        var data = Tensor.From<float>(NodeRunner.Random(rng, 37 * 5 * 6), shape);
        int dim = shape[axis];
        var idx = new int[2 * 3];
        for (int i = 0; i < idx.Length; i++) idx[i] = rng.Next(-dim, dim);
        var indices = Tensor.From<int>(idx, 2, 3);
        var y = NodeRunner.Run("Gather", new() { ["axis"] = AttributeValue.Int(axis) }, threads, 1, data, indices)[0];
        int[] expectedShape = [.. shape[..axis], 2, 3, .. shape[(axis + 1)..]];
        Assert.Equal(expectedShape, y.Shape);
        var ys = y.AsSpan<float>();
        var ds = data.AsSpan<float>();
        int outer = Shapes.Product(shape, 0, axis), inner = Shapes.Product(shape, axis + 1, 3);
        for (int o = 0; o < outer; o++)
            for (int j = 0; j < idx.Length; j++)
                for (int k = 0; k < inner; k++)
                {
                    int src = idx[j] < 0 ? idx[j] + dim : idx[j];
                    Assert.Equal(ds[(o * dim + src) * inner + k], ys[(o * idx.Length + j) * inner + k]);
                }
    }

    [Fact]
    public void GatherRejectsOutOfRangeIndex()
    {
        var data = Tensor.From<float>([1, 2, 3], 3);
        var ex = Assert.Throws<SquashException>(() => NodeRunner.Run("Gather", null, 1, 1, data, Tensor.From<long>([3], 1)));
        Assert.Equal(ErrorCodes.InvalidModel, ex.Code);
    }

    [Fact]
    public void GatherElementsAllowsIndicesSmallerThanDataOffTheAxis()
    {
        // data [3,4]; indices [2,2] along axis 1: out[i][j] = data[i][idx[i][j]].
        var data = Tensor.From<long>([0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23], 3, 4);
        var indices = Tensor.From<long>([3, -4, 1, 2], 2, 2);
        var y = NodeRunner.Run("GatherElements", new() { ["axis"] = AttributeValue.Int(1) }, 1, 1, data, indices)[0];
        Assert.Equal([3L, 0, 11, 12], y.AsSpan<long>().ToArray());
    }

    [Fact]
    public void GatherNDWithBatchDimsPicksPerBatchElements()
    {
        // data [2,2,3]; indices [2,1,2] with batch_dims 1: out[b][0] = data[b][i0][i1].
        var data = Tensor.From<int>([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 2, 2, 3);
        var indices = Tensor.From<long>([1, 2, 0, -1], 2, 1, 2);
        var y = NodeRunner.Run("GatherND", new() { ["batch_dims"] = AttributeValue.Int(1) }, 1, 1, data, indices)[0];
        Assert.Equal([2, 1], y.Shape);
        Assert.Equal([5, 8], y.AsSpan<int>().ToArray());
    }

    [Theory]
    [InlineData("none", new float[] { 1, 30, 3, 4, 1, 6 })]
    [InlineData("add", new float[] { 1, 42, 3, 4, 56, 6 })]
    [InlineData("mul", new float[] { 1, 600, 3, 4, 250, 6 })]
    [InlineData("max", new float[] { 1, 30, 3, 4, 50, 6 })]
    [InlineData("min", new float[] { 1, 2, 3, 4, 1, 6 })]
    public void ScatterElementsAppliesReductionsInOrderWithDuplicates(string reduction, float[] expected)
    {
        // Every update lands on column 1: row 0 gets 10 then 30, row 1 gets 50 then 1.
        var data = Tensor.From<float>([1, 2, 3, 4, 5, 6], 2, 3);
        var indices = Tensor.From<long>([1, 1, 1, 1], 2, 2);
        var updates = Tensor.From<float>([10, 30, 50, 1], 2, 2);
        var attributes = new Dictionary<string, AttributeValue> { ["axis"] = AttributeValue.Int(1), ["reduction"] = AttributeValue.String(reduction) };
        var y = NodeRunner.Run("ScatterElements", attributes, 1, 1, data, indices, updates)[0];
        Assert.Equal(expected, y.AsSpan<float>().ToArray());
    }

    [Fact]
    public void ScatterNDAddsBlocksWithInt32Data()
    {
        var data = Tensor.From<int>([1, 2, 3, 4, 5, 6], 3, 2);
        var indices = Tensor.From<long>([2, 0, -1], 3, 1);
        var updates = Tensor.From<int>([10, 20, 30, 40, 50, 60], 3, 2);
        var y = NodeRunner.Run("ScatterND", new() { ["reduction"] = AttributeValue.String("add") }, 1, 1, data, indices, updates)[0];
        Assert.Equal([31, 42, 3, 4, 5 + 10 + 50, 6 + 20 + 60], y.AsSpan<int>().ToArray());
    }
}
