using System.Diagnostics;
using Google.Protobuf;
using Squash.Compiler.Onnx;
using Squash.Compiler.Passes;
using Squash.Runtime;
using Squash.Runtime.Ir;
using P = global::Onnx;

namespace Squash.Compiler.Tests.Fuzzing;

/// <summary>Inputs too large for the corpus: long graphs that were quadratic to load or simplify, and folding that
/// could grow the weights without bound.</summary>
public sealed class HostileGraphTests
{
    // 50 000 nodes: about a second here when linear, hours when quadratic; the limit leaves room for a loaded machine.
    private const int ChainLength = 50_000;
    private static readonly TimeSpan s_limit = TimeSpan.FromSeconds(60);

    [Fact]
    public void ALongChainListedBackwardsLoadsAndSimplifiesInLinearTime()
    {
        var graph = new P.GraphProto { Name = "g" };
        graph.Input.Add(new P.ValueInfoProto
        {
            Name = "x",
            Type = new P.TypeProto { TensorType = new P.TypeProto.Types.Tensor { ElemType = 1, Shape = new P.TensorShapeProto { Dim = { new P.TensorShapeProto.Types.Dimension { DimValue = 2 } } } } },
        });
        // Identity chain x -> c0 -> c1 -> ... listed last node first: the loader must sort it, IdentityElimination
        // must remove it.
        for (int k = ChainLength - 1; k >= 0; k--)
            graph.Node.Add(new P.NodeProto { OpType = "Identity", Name = $"n{k}", Input = { k == 0 ? "x" : $"c{k - 1}" }, Output = { $"c{k}" } });
        graph.Node.Add(new P.NodeProto { OpType = "Relu", Name = "relu", Input = { $"c{ChainLength - 1}" }, Output = { "y" } });
        graph.Output.Add(new P.ValueInfoProto { Name = "y" });
        var bytes = new P.ModelProto { IrVersion = 8, Graph = graph, OpsetImport = { new P.OperatorSetIdProto { Version = 17 } } }.ToByteArray();

        var watch = Stopwatch.StartNew();
        var model = OnnxLoader.Load(bytes, null);
        Assert.Equal(ChainLength + 1, model.Graph.Nodes.Count);
        Assert.Equal("n0", model.Graph.Nodes[0].Name);
        ModelPreparation.Optimize(model);
        Assert.Single(model.Graph.Nodes);
        Assert.Same(model.Graph.Inputs[0], model.Graph.Nodes[0].Inputs[0]);
        Assert.True(watch.Elapsed < s_limit, $"{watch.Elapsed.TotalSeconds:0.0} s");
    }

    /// <summary>Found by the fuzzer (campaign 8, iteration 17 595, from test_unsqueeze_axis_1; 2 MB, too large for the
    /// corpus): an Unsqueeze with 524 288 axes ran a quadratic duplicate check for more than a minute. Axes are counted
    /// against the rank, and ranks above <see cref="Shapes.MaxRank"/> are refused, before any loop over them.</summary>
    [Fact]
    public void AnOutputOfAbsurdRankIsRefusedQuickly()
    {
        var graph = new P.GraphProto { Name = "g" };
        graph.Input.Add(new P.ValueInfoProto
        {
            Name = "x",
            Type = new P.TypeProto { TensorType = new P.TypeProto.Types.Tensor { ElemType = 1, Shape = new P.TensorShapeProto { Dim = { new P.TensorShapeProto.Types.Dimension { DimValue = 3 } } } } },
        });
        var axes = new P.AttributeProto { Name = "axes", Type = P.AttributeProto.Types.AttributeType.Ints };
        for (int k = 0; k < 524_288; k++) axes.Ints.Add(k);
        graph.Node.Add(new P.NodeProto { OpType = "Unsqueeze", Name = "u", Input = { "x" }, Output = { "y" }, Attribute = { axes } });
        graph.Output.Add(new P.ValueInfoProto { Name = "y" });
        var bytes = new P.ModelProto { IrVersion = 8, Graph = graph, OpsetImport = { new P.OperatorSetIdProto { Version = 11 } } }.ToByteArray();

        var watch = Stopwatch.StartNew();
        var e = Assert.Throws<SquashException>(() => ModelPreparation.Optimize(OnnxLoader.Load(bytes, null)));
        Assert.Equal(ErrorCodes.InvalidModel, e.Code);
        Assert.Contains("524289 dimensions", e.Message, StringComparison.Ordinal);
        Assert.True(watch.Elapsed < s_limit, $"{watch.Elapsed.TotalSeconds:0.0} s");
    }

    [Fact]
    public void TopologicalSortKeepsAValidOrderAndReportsCycles()
    {
        var g = new Graph();
        var x = new Value("x", DataType.Float, [1]);
        g.Inputs.Add(x);
        Node Add(string name, Value input)
        {
            var n = new Node("Relu", name).AddInput(input).AddOutput(new Value(name + "_out"));
            g.Nodes.Add(n);
            return n;
        }
        var a = Add("a", x);
        var b = Add("b", x);
        var c = Add("c", a.Outputs[0]);
        g.Nodes.Reverse(); // c, b, a
        g.SortTopologically();
        Assert.Equal(["b", "a", "c"], g.Nodes.Select(n => n.Name));
        g.SortTopologically();
        Assert.Equal(["b", "a", "c"], g.Nodes.Select(n => n.Name)); // a valid order stays as it is
        a.SetInput(0, c.Outputs[0]);
        var e = Assert.Throws<SquashException>(() => g.SortTopologically());
        Assert.Equal(ErrorCodes.InvalidModel, e.Code);
        Assert.Contains("cycle", e.Message);
    }

    [Fact]
    public void FoldingStopsWhenTheWeightsHaveGrownByTheBudget()
    {
        // x (1 KB) concatenated with itself ten times would be 1 MB; a 64 KB budget lets folding go only so far.
        var g = new Graph();
        g.OpsetImports[""] = 17;
        var x = new Value("x", new Tensor(DataType.Float, 256));
        g.Initializers.Add(x);
        var previous = x;
        for (int i = 0; i < 10; i++)
        {
            var n = new Node("Concat", $"c{i}", "", 17).AddInput(previous).AddInput(previous).AddOutput(new Value($"x{i}"));
            n.Attributes["axis"] = AttributeValue.Int(0);
            g.Nodes.Add(n);
            previous = n.Outputs[0];
        }
        g.Outputs.Add(previous);
        var context = new PassContext { MaxTotalFoldedBytes = 64 << 10 };
        Pipeline.Simplify().Run(g, context);
        Assert.True(context.FoldedGrowth <= 64 << 10, $"{context.FoldedGrowth} bytes");
        Assert.NotEmpty(g.Nodes); // the rest stays to run
        long constants = g.Initializers.Sum(v => (long)v.Constant!.ByteLength);
        Assert.True(constants <= (64 << 10) + 1024, $"{constants} bytes of constants");
    }
}
