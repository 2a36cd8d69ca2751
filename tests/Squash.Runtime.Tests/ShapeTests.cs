using Squash.Runtime.Ir;
using Squash.Runtime.Operators;

namespace Squash.Runtime.Tests;

/// <summary>Build-time shape inference of the shape and movement operators with unknown (-1) dimensions, and run-time
/// results the conformance cases do not cover.</summary>
public sealed class ShapeTests
{
    private static Tensor Ints(params long[] values) => Tensor.From<long>(values, values.Length);

    /// <summary>An input known by type and shape only (value null) or also by value.</summary>
    private static (DataType, int[]?, Tensor?) Input(int[]? shape, DataType type = DataType.Float) => (type, shape, null);

    private static (DataType, int[]?, Tensor?) Known(Tensor value) => (value.DataType, value.Shape, value);

    private static Node MakeNode(string opType, int inputs, int outputs = 1, params (string Name, AttributeValue Value)[] attributes)
    {
        var node = new Node(opType, opType.ToLowerInvariant(), "", 25);
        for (int i = 0; i < inputs; i++) node.AddInput(new Value($"in{i}"));
        for (int i = 0; i < outputs; i++) node.AddOutput(new Value($"out{i}"));
        foreach (var (name, value) in attributes) node.Attributes[name] = value;
        return node;
    }

    private static int[]?[] Infer(Node node, params (DataType Type, int[]? Shape, Tensor? Value)[] inputs)
    {
        var op = OperatorRegistry.Create(node);
        var context = new InferenceContext(node, inputs.Length, node.Outputs.Count);
        for (int i = 0; i < inputs.Length; i++) context.SetInput(i, inputs[i].Type, inputs[i].Shape, inputs[i].Value);
        op.InferOutputs(context);
        return context.OutputShapes;
    }

    private static Tensor[] Run(Node node, params Tensor[] inputs)
    {
        var op = OperatorRegistry.Create(node);
        var context = new InferenceContext(node, inputs.Length, node.Outputs.Count);
        for (int i = 0; i < inputs.Length; i++) context.SetInput(i, inputs[i].DataType, inputs[i].Shape, inputs[i]);
        op.InferOutputs(context);
        var outputs = new Tensor[node.Outputs.Count];
        for (int i = 0; i < outputs.Length; i++) outputs[i] = new Tensor(context.OutputTypes[i], context.OutputShapes[i]!);
        op.Run(new KernelContext(1), inputs, outputs);
        return outputs;
    }

    [Fact]
    public void ReshapeInfersMinusOneWhenOnlyCopiedDimensionsAreUnknown()
    {
        var node = MakeNode("Reshape", 2);
        Assert.Equal([-1, 12], Infer(node, Input([-1, 3, 4]), Known(Ints(0, -1)))[0]!);
        Assert.Equal([3, -1], Infer(node, Input([3, -1, 4]), Known(Ints(3, -1)))[0]!);
        Assert.Equal([4, 6], Infer(node, Input([2, 3, 4]), Known(Ints(4, -1)))[0]!);
        Assert.Equal([-1, -1, -1], Infer(node, Input([2, 3, 4]), Input([3], DataType.Int64))[0]!);
        Assert.Throws<SquashException>(() => Infer(node, Input([2, 3, 4]), Known(Ints(5, -1))));
        Assert.Throws<SquashException>(() => Infer(node, Input([2, 3, 4]), Known(Ints(-1, -1))));
    }

    [Fact]
    public void ReshapeWithAllowZeroKeepsZeroDimensions()
    {
        var node = MakeNode("Reshape", 2, 1, ("allowzero", AttributeValue.Int(1)));
        Assert.Equal([3, 0], Infer(node, Input([0, 3]), Known(Ints(3, 0)))[0]!);
    }

    [Fact]
    public void SliceResolvesKnownAxesAndLeavesOthers()
    {
        var node = MakeNode("Slice", 4);
        Assert.Equal([-1, 10, 17], Infer(node, Input([-1, 10, 20]), Known(Ints(2)), Known(Ints(-1)), Known(Ints(2)))[0]!);
        Assert.Equal([-1, -1, 20], Infer(node, Input([-1, 10, 20]), Input([1], DataType.Int64), Input([1], DataType.Int64), Known(Ints(1)))[0]!);
        var stepped = MakeNode("Slice", 5);
        // Negative steps clamp start to dim - 1 and end to -1: indices 9, 6, 3, 0.
        Assert.Equal([4], Infer(stepped, Input([10]), Known(Ints(long.MaxValue)), Known(Ints(long.MinValue)), Known(Ints(0)), Known(Ints(-3)))[0]!);
    }

    [Fact]
    public void SliceWithNegativeStepsReverses()
    {
        var node = MakeNode("Slice", 5);
        var result = Run(node, Tensor.From<int>([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 10), Ints(-2), Ints(-100), Ints(0), Ints(-3));
        Assert.Equal([8, 5, 2], result[0].AsSpan<int>().ToArray());
    }

    [Fact]
    public void ConcatSumsTheAxisAndMergesOtherDimensions()
    {
        var node = MakeNode("Concat", 2, 1, ("axis", AttributeValue.Int(-1)));
        Assert.Equal([2, 7], Infer(node, Input([2, 3]), Input([-1, 4]))[0]!);
        Assert.Equal([2, -1], Infer(node, Input([-1, 3]), Input([2, -1]))[0]!);
        Assert.Throws<SquashException>(() => Infer(node, Input([2, 3]), Input([3, 4])));
    }

    [Fact]
    public void ExpandKeepsCertainDimensionsWhenTheShapeIsUnknown()
    {
        var node = MakeNode("Expand", 2);
        Assert.Equal([-1, 3, -1], Infer(node, Input([3, 1]), Input([3], DataType.Int64))[0]!);
        Assert.Equal([2, 3, 5], Infer(node, Input([3, 1]), Known(Ints(2, 1, 5)))[0]!);
    }

    [Fact]
    public void SqueezeAndUnsqueezePropagateUnknownDimensions()
    {
        Assert.Null(Infer(MakeNode("Squeeze", 1), Input([-1, 1, 4]))[0]);
        Assert.Equal([-1, 4], Infer(MakeNode("Squeeze", 2), Input([-1, 1, 4]), Known(Ints(1)))[0]!);
        Assert.Equal([1, -1, 5, 1], Infer(MakeNode("Unsqueeze", 2), Input([-1, 5]), Known(Ints(3, 0)))[0]!);
        var old = MakeNode("Unsqueeze", 1, 1, ("axes", AttributeValue.IntList(-1)));
        Assert.Equal([-1, 5, 1], Infer(old, Input([-1, 5]))[0]!);
    }

    [Fact]
    public void SplitWithNumOutputsMakesTheLastPartSmaller()
    {
        var node = MakeNode("Split", 1, 3, ("num_outputs", AttributeValue.Int(3)));
        var shapes = Infer(node, Input([7, 2]));
        Assert.Equal([3, 2], shapes[0]!);
        Assert.Equal([3, 2], shapes[1]!);
        Assert.Equal([1, 2], shapes[2]!);
    }

    [Fact]
    public void ShapeClampsStartAndEnd()
    {
        var node = MakeNode("Shape", 1, 1, ("start", AttributeValue.Int(1)), ("end", AttributeValue.Int(-1)));
        Assert.Equal([2], Infer(node, Input([2, -1, 4, 5]))[0]!);
        Assert.Equal([3L, 4L], Run(node, new Tensor(DataType.Float, 2, 3, 4, 5))[0].AsSpan<long>().ToArray());
        var clipped = MakeNode("Shape", 1, 1, ("start", AttributeValue.Int(-10)), ("end", AttributeValue.Int(10)));
        Assert.Equal([3], Infer(clipped, Input([2, 3, 4]))[0]!);
        Assert.Equal([-1], Infer(clipped, Input(null))[0]!);
    }

    [Fact]
    public void SplitWithAnEmptySplitInputMakesEqualParts()
    {
        var node = MakeNode("Split", 2, 2, ("axis", AttributeValue.Int(1)));
        var shapes = Infer(node, Input([2, 6]), Known(Tensor.From<long>([], 0)));
        Assert.Equal([2, 3], shapes[0]!);
        Assert.Equal([2, 3], shapes[1]!);
    }

    [Fact]
    public void RangeCountsWithCeilingForEitherSign()
    {
        var node = MakeNode("Range", 3);
        Assert.Equal([10L, 7, 4], Run(node, Tensor.Scalar(10L), Tensor.Scalar(1L), Tensor.Scalar(-3L))[0].AsSpan<long>().ToArray());
        Assert.Equal([0, 0.25f, 0.5f, 0.75f], Run(node, Tensor.Scalar(0f), Tensor.Scalar(1f), Tensor.Scalar(0.25f))[0].AsSpan<float>().ToArray());
        Assert.Equal([(short)5], Run(node, Tensor.Scalar((short)5), Tensor.Scalar((short)6), Tensor.Scalar((short)3))[0].AsSpan<short>().ToArray());
        Assert.Empty(Run(node, Tensor.Scalar(1.0), Tensor.Scalar(0.0), Tensor.Scalar(1.0))[0].AsSpan<double>().ToArray());
        Assert.Equal([-1], Infer(node, Input([], DataType.Int32), Input([], DataType.Int32), Input([], DataType.Int32))[0]!);
    }

    [Fact]
    public void TileTransposeAndPadPropagateUnknownDimensions()
    {
        Assert.Equal([-1, 0], Infer(MakeNode("Tile", 2), Input([-1, 2]), Known(Ints(3, 0)))[0]!);
        Assert.Equal([3, 2, -1], Infer(MakeNode("Transpose", 1), Input([-1, 2, 3]))[0]!);
        Assert.Equal([-1, -1], Infer(MakeNode("Pad", 2), Input([2, 3]), Input([4], DataType.Int64))[0]!);
        Assert.Equal([-1, 6], Infer(MakeNode("Pad", 2), Input([-1, 3]), Known(Ints(1, 1, 0, 2)))[0]!);
        // Unknown input rank: the perm, repeats or pads still give it.
        Assert.Equal([-1, -1, -1], Infer(MakeNode("Transpose", 1, 1, ("perm", AttributeValue.IntList(2, 0, 1))), Input(null))[0]!);
        Assert.Equal([-1, 0], Infer(MakeNode("Tile", 2), Input(null), Known(Ints(2, 0)))[0]!);
        Assert.Equal([-1, -1], Infer(MakeNode("Pad", 2), Input(null), Known(Ints(1, 1, 0, 2)))[0]!);
    }

    [Fact]
    public void PadBeforeOpset11ReadsPadsAndValueAttributes()
    {
        var node = MakeNode("Pad", 1, 1, ("pads", AttributeValue.IntList(0, 1, 0, 1)), ("value", AttributeValue.Float(2.5f)));
        node.OpsetVersion = 7;
        var result = Run(node, Tensor.From<int>([1, 2], 1, 2))[0];
        Assert.Equal([1, 4], result.Shape);
        Assert.Equal([2, 1, 2, 2], result.AsSpan<int>().ToArray());
    }

    [Fact]
    public void TriluHandlesBatchesAndFarDiagonals()
    {
        var input = Tensor.From<byte>([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 2, 2, 3);
        var lower = MakeNode("Trilu", 2, 1, ("upper", AttributeValue.Int(0)));
        Assert.Equal([1, 0, 0, 4, 5, 0, 7, 0, 0, 10, 11, 0], Run(lower, input, Tensor.Scalar(0L))[0].AsSpan<byte>().ToArray());
        Assert.Equal(new byte[12], Run(MakeNode("Trilu", 2), input, Tensor.Scalar(long.MaxValue))[0].AsSpan<byte>().ToArray());
    }
}
