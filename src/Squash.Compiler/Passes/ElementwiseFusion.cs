using Squash.Runtime;
using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;
using Squash.Runtime.Operators;

namespace Squash.Compiler.Passes;

/// <summary>
/// Replaces a chain of elementwise nodes on one fp32 tensor with one com.squash FusedElementwise node, which makes a
/// single pass over the data (block by block, in L1) instead of one per node:
/// <code>
///   X ─ Mul(S) ─ t;  X, t ─ Add ─ Y                 (X + X * S, a squeeze-excitation with a skip)
///   X ─ Mul(c) ─ Sigmoid ─ s;  X, s ─ Mul ─ Y        (swish)
///   becomes   X, S ─ FusedElementwise(ops = [Mul, Add], operands = [1, 0]) ─ Y
///   acc = X;  acc = acc op_i operand_i  or  acc = f_i(acc);  Y = acc
/// </code>
/// Steps: Add, Sub, Mul, Div with an operand that is the chain's input X, a constant, or another tensor broadcasting
/// to X's shape element for element, as a scalar, per row ([1, C, 1, 1]) or per column ([W]); Relu, LeakyRelu,
/// Sigmoid, HardSigmoid, HardSwish, Clip (constant bounds), Tanh, Exp, Erf, Neg, Abs, Sqrt. Two to
/// <see cref="ElementwiseChain.MaxSteps"/> steps; each computes what its node did, so outputs keep their bits.
/// Does not handle: intermediate values read elsewhere or graph outputs, steps that change the shape (broadcasting
/// X up), other element types, Pow, Max, Min and comparisons. A node right after a convolution or matrix product
/// whose output only it reads is left to <see cref="ActivationFusion"/> and <see cref="EpilogueFusion"/>, which fuse it
/// into the product's store.
/// </summary>
public sealed class ElementwiseFusion : IGraphPass
{
    /// <inheritdoc/>
    public string Name => "ElementwiseFusion";

    /// <summary>A recognized step: the node, its operation, the operand (null for functions) and whether it is on the left.</summary>
    private readonly record struct Step(Node Node, ChainOp Op, Value? Operand, bool Reversed, float Alpha, float Beta);

    /// <inheritdoc/>
    public bool Run(Graph graph, PassContext context)
    {
        // The fused node needs the com.squash import, which only the main graph holds.
        if (graph.OpsetImports.Count == 0) return false;
        // One walk with the rewrites applied at the end: re-sorting per match made hostile models quadratic.
        var rewrite = new GraphRewrite(graph);
        foreach (var node in graph.Nodes)
        {
            if (!rewrite.IsLive(node) || Chain(rewrite, node) is not var (x, steps)) continue;
            Replace(rewrite, graph, x, steps);
        }
        return rewrite.Apply();
    }

    /// <summary>The longest chain starting at <paramref name="first"/>, with its input, when it has two steps or more.</summary>
    private static (Value X, List<Step> Steps)? Chain(GraphRewrite rewrite, Node first)
    {
        if (first.Domain.Length != 0 || first.Outputs.Count != 1 || first.Outputs[0] is not { Type: DataType.Float, Shape: { } shape }
            || !Shapes.IsKnown(shape))
            return null;
        // The chain's input: the operand already of the output's shape (the first one when both are).
        var x = first.Inputs.FirstOrDefault(i => i is { Type: DataType.Float, Shape: { } s } && Shapes.Equal(s, shape));
        if (x is null || AsStep(first, x, shape) is not { } step) return null;
        if (x.Producer is { } producer && FusedProduct.IsProduct(producer) && rewrite.SoleConsumer(x) == first
            && (first.OpType is "Add" or "Mul" || FusedProduct.Activation(first) is not null))
            return null;
        var steps = new List<Step> { step };
        int split = -1;
        if (!Fits(step, shape, ref split)) return null;
        var acc = first.Outputs[0];
        // An operand cannot be computed from an earlier step: each step's output has the next step as its only reader.
        while (steps.Count < ElementwiseChain.MaxSteps && rewrite.SoleConsumer(acc) is { } next && rewrite.IsLive(next)
            && next.Outputs.Count == 1 && next.Outputs[0] is { Type: DataType.Float, Shape: { } s } && Shapes.Equal(s, shape)
            && AsStep(next, acc, shape) is { } nextStep && Fits(nextStep, shape, ref split))
        {
            steps.Add(nextStep);
            acc = next.Outputs[0];
        }
        return steps.Count >= 2 ? (x, steps) : null;
    }

    /// <summary>The step <paramref name="node"/> applies to <paramref name="acc"/>, or null when it is not a chain step.</summary>
    private static Step? AsStep(Node node, Value acc, int[] shape)
    {
        if (node.Domain.Length != 0 || node.Outputs.Count != 1) return null;
        if (node.OpType is "Add" or "Sub" or "Mul" or "Div")
        {
            if (node.Inputs.Count != 2 || node.Input(0) == node.Input(1)) return null;
            bool reversed = node.Input(1) == acc;
            if (!reversed && node.Input(0) != acc) return null;
            var operand = node.Input(reversed ? 0 : 1);
            if (operand is not { Type: DataType.Float, Shape: { } s } || !Shapes.IsKnown(s)) return null;
            return new Step(node, Enum.Parse<ChainOp>(node.OpType), operand, reversed, 0, 0);
        }
        if (node.Input(0) != acc) return null;
        if (FusedProduct.Activation(node) is { } activation)
        {
            var op = activation.Kind switch
            {
                GemmActivationKind.Relu => ChainOp.Relu,
                GemmActivationKind.Clip => ChainOp.Clip,
                GemmActivationKind.LeakyRelu => ChainOp.LeakyRelu,
                GemmActivationKind.HardSigmoid => ChainOp.HardSigmoid,
                GemmActivationKind.HardSwish => ChainOp.HardSwish,
                _ => ChainOp.Sigmoid,
            };
            return new Step(node, op, null, false, activation.Alpha, activation.Beta);
        }
        if (node.Inputs.Count != 1) return null;
        return node.OpType switch
        {
            "Tanh" => new Step(node, ChainOp.Tanh, null, false, 0, 0),
            "Exp" => new Step(node, ChainOp.Exp, null, false, 0, 0),
            "Erf" => new Step(node, ChainOp.Erf, null, false, 0, 0),
            "Neg" => new Step(node, ChainOp.Neg, null, false, 0, 0),
            "Abs" => new Step(node, ChainOp.Abs, null, false, 0, 0),
            "Sqrt" => new Step(node, ChainOp.Sqrt, null, false, 0, 0),
            _ => null,
        };
    }

    /// <summary>True when the step's operand broadcasts to <paramref name="shape"/> in a layout the kernel runs, with the
    /// same row split as the chain's other operands (<paramref name="split"/>, -1 while none is fixed).</summary>
    private static bool Fits(Step step, int[] shape, ref int split)
    {
        if (step.Operand is null) return true;
        if (ElementwiseChain.Classify(step.Operand.Shape!, shape) is not var (layout, at)) return false;
        if (layout is ChainLayout.Full or ChainLayout.Scalar) return true;
        if (split >= 0 && split != at) return false;
        split = at;
        return true;
    }

    private static void Replace(GraphRewrite rewrite, Graph graph, Value x, List<Step> steps)
    {
        var first = steps[0].Node;
        var fused = new Node("FusedElementwise", first.Name + "_chain", OperatorRegistry.SquashDomain, FusedOperators.Opset);
        var inputs = new List<Value> { x };
        int Index(Value v)
        {
            int i = inputs.IndexOf(v);
            if (i >= 0) return i;
            inputs.Add(v);
            return inputs.Count - 1;
        }
        var operands = steps.Select(s => s.Operand is null ? -1L : Index(s.Operand)).ToArray();
        fused.Attributes["ops"] = AttributeValue.StringList(steps.Select(s => s.Op.ToString()).ToArray());
        fused.Attributes["operands"] = AttributeValue.IntList(operands);
        fused.Attributes["reversed"] = AttributeValue.IntList(steps.Select(s => s.Reversed ? 1L : 0L).ToArray());
        fused.Attributes["params"] = AttributeValue.FloatList(steps.SelectMany(s => new[] { s.Alpha, s.Beta }).ToArray());
        foreach (var input in inputs) fused.AddInput(input);
        fused.AddOutput(steps[^1].Node.Outputs[0]);
        rewrite.Replace(steps.Select(s => s.Node), first, fused);
        graph.OpsetImports[OperatorRegistry.SquashDomain] = FusedOperators.Opset;
    }
}
