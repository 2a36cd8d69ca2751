using Squash.Compiler.Passes;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Tests.Passes;

/// <summary>What each pass rewrites, and the cases where it must not fire.</summary>
public sealed class PassBehaviourTests
{
    private static readonly PassContext s_context = new();

    [Fact]
    public void ConstantFoldingReplacesConstantSubgraphsByTheirValue()
    {
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 3);
        var c = b.NodeWith("Constant", [("value", AttributeValue.FromTensor(Tensor.From<float>([1f, 2f, 3f], 3)))], [])[0];
        var y = b.Node("Identity", c);
        var z = b.Node("Identity", x);
        b.Output(y);
        b.Output(z);
        Assert.True(new ConstantFolding().Run(b.Graph, s_context));
        Assert.Equal([1f, 2f, 3f], y.Constant!.AsSpan<float>().ToArray());
        Assert.Single(b.Graph.Nodes); // the Identity of the runtime input stays
        Assert.Same(x, b.Graph.Nodes[0].Inputs[0]);
    }

    [Fact]
    public void ConstantFoldingFoldsShapeOfAKnownShapeButNotOfAnUnknownOne()
    {
        var b = new GraphBuilder();
        var known = b.Input("a", DataType.Float, 2, 5);
        var unknown = b.Input("b", DataType.Float, -1, 5);
        var s1 = b.Node("Shape", known);
        var s2 = b.Node("Shape", unknown);
        b.Output(s1);
        b.Output(s2);
        new ConstantFolding().Run(b.Graph, s_context);
        Assert.Equal([2L, 5L], s1.Constant!.AsSpan<long>().ToArray());
        Assert.Null(s2.Constant);
    }

    [Fact]
    public void ConstantFoldingDoesNotInflateTheWeightsBeyondTheLimit()
    {
        var b = new GraphBuilder();
        var c = b.Constant(Tensor.From<float>([1f], 1));
        var y = b.Node("Identity", c);
        b.Output(y);
        var tight = new PassContext { MaxFoldedBytes = -1 };
        Assert.False(new ConstantFolding().Run(b.Graph, tight));
        Assert.Single(b.Graph.Nodes);
    }

    [Fact]
    public void DeadNodeEliminationRemovesUnreadNodesAndConstants()
    {
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 2);
        var unused = b.Constant(Tensor.From<float>([1f, 2f], 2));
        var dead = b.Node("Identity", unused);
        var live = b.Node("Identity", x);
        _ = dead;
        b.Output(live);
        Assert.True(new DeadNodeElimination().Run(b.Graph, s_context));
        Assert.Single(b.Graph.Nodes);
        Assert.Empty(b.Graph.Initializers);
        Assert.False(new DeadNodeElimination().Run(b.Graph, s_context));
    }

    [Fact]
    public void IdentityEliminationRewiresConsumersAndKeepsOutputNames()
    {
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 2);
        var d = b.NodeWith("Dropout", [], [x], outputs: 1)[0];
        var y = b.Node("Identity", d);
        var z = b.Node("Identity", y);
        b.Output(z);
        string outputName = z.Name;
        new PassManager([new IdentityElimination()]).Run(b.Graph, s_context);
        // x is a graph input, so the last Identity must stay to give the output its own name.
        Assert.Single(b.Graph.Nodes);
        Assert.Equal(outputName, b.Graph.Outputs[0].Name);
        Assert.Same(x, b.Graph.Nodes[0].Inputs[0]);
    }

    [Fact]
    public void IdentityEliminationKeepsDropoutWhoseMaskIsRead()
    {
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 2);
        var outs = b.NodeWith("Dropout", [], [x], outputs: 2);
        b.Output(outs[0]);
        b.Output(outs[1]);
        Assert.False(new IdentityElimination().Run(b.Graph, s_context));
    }

    [Fact]
    public void ShapeInferenceFillsShapesAndReachesAFixedPoint()
    {
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 4, 3);
        var y = b.Node("Identity", x);
        b.Output(y);
        Assert.True(new ShapeInference().Run(b.Graph, s_context));
        Assert.Equal([4, 3], y.Shape!);
        Assert.Equal(DataType.Float, y.Type);
        Assert.False(new ShapeInference().Run(b.Graph, s_context));
    }
}
