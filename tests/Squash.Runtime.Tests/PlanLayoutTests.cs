using Squash.Runtime.Execution;
using Squash.Runtime.Ir;
using Squash.Runtime.Operators;

namespace Squash.Runtime.Tests;

/// <summary>
/// The memory plan's sharing: views (Reshape and friends) that take their input's memory and run nothing, and
/// elementwise outputs written over inputs that die. Every plan must give the interpreter's outputs bit for bit.
/// </summary>
public sealed class PlanLayoutTests
{
    /// <summary>Builds a graph with every type and shape set, node by node, by the operators' own inference.</summary>
    private sealed class Net
    {
        private int _next;

        public Graph Graph { get; } = new("test");

        public Net() => Graph.OpsetImports[""] = 17;

        public Value Input(string name, params int[] shape)
        {
            var v = new Value(name, DataType.Float, shape);
            Graph.Inputs.Add(v);
            return v;
        }

        public Value Constant(Tensor tensor)
        {
            var v = new Value($"c{_next++}", tensor);
            Graph.Initializers.Add(v);
            return v;
        }

        public Value Shape(params long[] dims) => Constant(Tensor.From<long>(dims, dims.Length));

        public Value Node(string opType, params Value?[] inputs) => Nodes(opType, 1, inputs)[0];

        public Value[] Nodes(string opType, int outputs, Value?[] inputs, params (string Name, AttributeValue Value)[] attributes)
        {
            var node = new Node(opType, $"{opType}{_next++}", "", 17);
            foreach (var (name, value) in attributes) node.Attributes[name] = value;
            foreach (var input in inputs) node.AddInput(input);
            var result = new Value[outputs];
            for (int k = 0; k < outputs; k++) node.AddOutput(result[k] = new Value($"{node.Name}_out{k}"));
            var context = new InferenceContext(node, inputs.Length, outputs);
            for (int i = 0; i < inputs.Length; i++)
                if (inputs[i] is { } v) context.SetInput(i, v.Type, v.Shape, v.Constant);
            OperatorRegistry.Create(node).InferOutputs(context);
            for (int k = 0; k < outputs; k++)
            {
                result[k].Type = context.OutputTypes[k];
                result[k].Shape = context.OutputShapes[k];
            }
            Graph.Nodes.Add(node);
            return result;
        }

        public void Output(params Value[] values) => Graph.Outputs.AddRange(values);

        public PlanLayout Layout(bool inputsInArena) =>
            PlanLayout.Compute(Graph, [.. Graph.Nodes.Select(OperatorRegistry.Create)], inputsInArena);
    }

    private static Tensor Random(int seed, params int[] shape)
    {
        var rng = new Random(seed);
        var t = new Tensor(DataType.Float, shape);
        var span = t.AsSpan<float>();
        for (int i = 0; i < span.Length; i++) span[i] = (float)(rng.NextDouble() * 4 - 2);
        return t;
    }

    private static int SlotOf(PlanLayout layout, Value v) => layout.Slots.ToList().IndexOf(v);

    /// <summary>The plan's outputs equal the interpreter's bit for bit, and the caller's inputs are left alone.</summary>
    private static void AssertPlanMatchesInterpreter(Graph graph, Dictionary<string, Tensor> inputs)
    {
        var copies = inputs.ToDictionary(p => p.Key, p => p.Value.Clone());
        var expected = new GraphExecutor(graph).Run(copies, new KernelContext(1));
        var plan = ExecutionPlan.Create(graph);
        for (int run = 0; run < 2; run++)
        {
            var actual = plan.Run(inputs, new KernelContext(1));
            foreach (var output in graph.Outputs)
                Assert.True(expected[output.Name].Bytes.SequenceEqual(actual[output.Name].Bytes), $"output {output.Name}, run {run}");
            foreach (var (name, tensor) in inputs)
                Assert.True(copies[name].Bytes.SequenceEqual(tensor.Bytes), $"input {name} was changed");
        }
    }

    [Fact]
    public void ChainsOfViewsShareOneMemoryAndRunNothing()
    {
        var net = new Net();
        var x = net.Input("x", 2, 3, 4);
        var r = net.Node("Relu", x);
        var v1 = net.Node("Reshape", r, net.Shape(4, 6));
        var v2 = net.Node("Flatten", v1);
        var v3 = net.Node("Unsqueeze", v2, net.Shape(0));
        var v4 = net.Node("Squeeze", v3, net.Shape(0));
        var v5 = net.Node("Identity", v4);
        var y = net.Node("Sigmoid", v5);
        net.Output(y);

        var layout = net.Layout(inputsInArena: false);
        Assert.Equal([false, true, true, true, true, true, false], layout.IsView);
        long offset = layout.Offsets[SlotOf(layout, r)];
        foreach (var v in new[] { v1, v2, v3, v4, v5 })
        {
            Assert.Equal(offset, layout.Offsets[SlotOf(layout, v)]);
            Assert.Equal(SlotOf(layout, r), layout.Storage[SlotOf(layout, v)]);
        }
        // Nothing reads r or its views after Sigmoid, so Sigmoid writes over them: one tensor of memory in all.
        Assert.True(layout.IsInPlace[6]);
        Assert.Equal(offset, layout.Offsets[SlotOf(layout, y)]);
        Assert.Equal(MemoryPlanner.Alignment * 2, layout.ArenaBytes);
        AssertPlanMatchesInterpreter(net.Graph, new() { ["x"] = Random(1, 2, 3, 4) });
    }

    [Fact]
    public void InPlaceOnlyOverInputsNothingReadsLater()
    {
        var net = new Net();
        var x = net.Input("x", 2, 3, 8);
        var a = net.Node("Relu", x);
        var b = net.Node("Sigmoid", a);       // a is read again by Add: not in place
        var c = net.Node("Add", a, b);        // both die here: over a, the first
        var small = net.Node("Neg", net.Constant(Random(2, 3, 1)));
        var d = net.Node("Mul", small, c);    // the broadcast operand [3,1] cannot hold the output; c can
        var e = net.Node("Sub", d, net.Constant(Random(3, 8)));
        net.Output(e);

        var layout = net.Layout(inputsInArena: false);
        Assert.Equal([false, false, true, false, true, true], layout.IsInPlace);
        int aSlot = SlotOf(layout, a);
        Assert.Equal(aSlot, layout.Storage[SlotOf(layout, c)]);
        Assert.Equal(aSlot, layout.Storage[SlotOf(layout, d)]);
        Assert.Equal(aSlot, layout.Storage[SlotOf(layout, e)]);
        Assert.NotEqual(layout.Offsets[aSlot], layout.Offsets[SlotOf(layout, b)]);
        // Relu does not write over x: graph inputs belong to the caller unless the plan copies them in.
        Assert.False(layout.IsInPlace[0]);
        Assert.True(net.Layout(inputsInArena: true).IsInPlace[0]);
        AssertPlanMatchesInterpreter(net.Graph, new() { ["x"] = Random(4, 2, 3, 8) });
    }

    [Fact]
    public void ViewsOfGraphInputsFollowTheBoundTensor()
    {
        var net = new Net();
        var x = net.Input("x", 2, 6);
        var v = net.Node("Reshape", x, net.Shape(3, 4));
        var y = net.Node("Relu", v);
        net.Output(y, v);

        var layout = net.Layout(inputsInArena: false);
        Assert.True(layout.IsView[0]);
        Assert.Equal(-1, layout.Offsets[SlotOf(layout, v)]);
        Assert.Equal(SlotOf(layout, x), layout.Storage[SlotOf(layout, v)]);
        Assert.False(layout.IsInPlace[1]);
        var arena = net.Layout(inputsInArena: true);
        Assert.Equal(arena.Offsets[SlotOf(arena, x)], arena.Offsets[SlotOf(arena, v)]);
        Assert.False(arena.IsInPlace[1]); // v is a graph output: its memory lives to the end

        var plan = ExecutionPlan.Create(net.Graph);
        var first = Random(5, 2, 6);
        var second = Random(6, 2, 6);
        foreach (var input in new[] { first, second, first })
        {
            var outputs = plan.Run(new Dictionary<string, Tensor> { ["x"] = input });
            Assert.Equal([3, 4], outputs[v.Name].Shape);
            Assert.Equal(input.AsSpan<float>().ToArray(), outputs[v.Name].AsSpan<float>().ToArray());
            Assert.Equal(input.AsSpan<float>().ToArray().Select(f => Math.Max(f, 0)), outputs[y.Name].AsSpan<float>().ToArray());
        }
        // The same tensor with new contents is read again, not a stale copy.
        first.AsSpan<float>().Fill(-1);
        Assert.All(plan.Run(new Dictionary<string, Tensor> { ["x"] = first })[v.Name].AsSpan<float>().ToArray(), f => Assert.Equal(-1, f));
    }

    [Fact]
    public void ViewsOfConstantsViewTheConstant()
    {
        var net = new Net();
        var x = net.Input("x", 2, 3);
        var c = net.Constant(Random(7, 6));
        var v = net.Node("Reshape", c, net.Shape(2, 3));
        var y = net.Node("Add", x, v);
        var z = net.Node("Flatten", v);
        net.Output(y, z);

        foreach (bool inArena in new[] { false, true })
        {
            var layout = net.Layout(inArena);
            Assert.Equal(SlotOf(layout, c), layout.Storage[SlotOf(layout, v)]);
            Assert.Equal(-1, layout.Offsets[SlotOf(layout, v)]);
            Assert.Equal(SlotOf(layout, c), layout.Storage[SlotOf(layout, z)]);
            Assert.Equal(inArena, layout.IsInPlace[1]); // over x when x is the plan's copy, never over the constant
        }
        AssertPlanMatchesInterpreter(net.Graph, new() { ["x"] = Random(8, 2, 3) });
    }

    [Fact]
    public void GraphOutputsAreNeverWrittenOver()
    {
        var net = new Net();
        var x = net.Input("x", 4, 4);
        var a = net.Node("Relu", x);
        var b = net.Node("Reshape", a, net.Shape(16));
        var y = net.Node("Sigmoid", b);
        net.Output(a, y);

        var layout = net.Layout(inputsInArena: true);
        Assert.True(layout.IsView[1]);
        Assert.False(layout.IsInPlace[2]);
        Assert.NotEqual(layout.Offsets[SlotOf(layout, a)], layout.Offsets[SlotOf(layout, y)]);
        AssertPlanMatchesInterpreter(net.Graph, new() { ["x"] = Random(9, 4, 4) });
    }

    [Fact]
    public void VariadicOperatorsWriteOnlyOverTheirFirstTwoInputs()
    {
        var net = new Net();
        var x = net.Input("x", 3, 5);
        var a = net.Node("Relu", x);
        var b = net.Node("Sigmoid", x);
        var c = net.Node("Tanh", x);
        // a is also input 2, which Sum reads after its first write: only b may hold the result.
        var s = net.Node("Sum", a, b, a);
        // c is only input 2 here: no input may hold the result.
        var t = net.Node("Max", s, net.Constant(Random(10, 5)), c);
        net.Output(t);

        var layout = net.Layout(inputsInArena: false);
        Assert.Equal(SlotOf(layout, b), layout.Storage[SlotOf(layout, s)]);
        Assert.Equal(SlotOf(layout, b), layout.Storage[SlotOf(layout, t)]); // s, input 0, dies at Max
        var other = net.Graph;
        AssertPlanMatchesInterpreter(other, new() { ["x"] = Random(11, 3, 5) });

        var net2 = new Net();
        var x2 = net2.Input("x", 3, 5);
        var p = net2.Node("Relu", x2);
        var q = net2.Node("Sigmoid", x2);
        var r = net2.Node("Tanh", x2);
        var m = net2.Node("Max", p, q, r);
        var u = net2.Node("Mean", net2.Constant(Random(12, 5)), m, m);
        net2.Output(u);
        var layout2 = net2.Layout(inputsInArena: false);
        Assert.Equal(SlotOf(layout2, p), layout2.Storage[SlotOf(layout2, m)]);
        Assert.False(layout2.IsInPlace[4]); // m is input 1 and input 2
        AssertPlanMatchesInterpreter(net2.Graph, new() { ["x"] = Random(13, 3, 5) });
    }

    [Fact]
    public void DropoutIsAViewOnlyWithoutAMask()
    {
        var net = new Net();
        var x = net.Input("x", 2, 5);
        var a = net.Node("Relu", x);
        var d = net.Node("Dropout", a);
        var masked = net.Nodes("Dropout", 2, [d]);
        net.Output(masked);

        var layout = net.Layout(inputsInArena: false);
        Assert.Equal([false, true, false], layout.IsView);
        AssertPlanMatchesInterpreter(net.Graph, new() { ["x"] = Random(14, 2, 5) });
    }

    [Fact]
    public void WhereWritesOverItsValuesNotItsCondition()
    {
        var net = new Net();
        var x = net.Input("x", 4, 6);
        var a = net.Node("Relu", x);
        var b = net.Node("Neg", x);
        var condition = net.Node("Greater", a, net.Constant(Tensor.Scalar(0.5f)));
        var y = net.Node("Where", condition, b, a);
        net.Output(y);

        var layout = net.Layout(inputsInArena: false);
        Assert.True(layout.IsInPlace[3]);
        Assert.Equal(SlotOf(layout, b), layout.Storage[SlotOf(layout, y)]);
        AssertPlanMatchesInterpreter(net.Graph, new() { ["x"] = Random(15, 4, 6) });
    }
}
