using Squash.Runtime;
using Squash.Runtime.Ir;
using Squash.Runtime.Operators;

namespace Squash.Compiler.Passes;

/// <summary>
/// Replaces nodes whose inputs are all known at build time by their results, computed with the operators the
/// runtime uses:
/// <code>
///   Constant -> c            becomes   c (an initializer)
///   Reshape(W_const, s_const) becomes  W' (an initializer)
///   Shape(x) with x's shape known      becomes its value
/// </code>
/// Handles: every deterministic operator without subgraphs; Shape and Size of values whose shape is known.
/// Does not handle: If (see the pruning of constant branches), nodes whose outputs would grow the weights by more
/// than <see cref="PassContext.MaxFoldedBytes"/> (ConstantOfShape of a huge shape stays a node), and any growth once all
/// folds together grew them by <see cref="PassContext.MaxTotalFoldedBytes"/>.
/// </summary>
public sealed class ConstantFolding : IGraphPass
{
    /// <inheritdoc/>
    public string Name => "ConstantFolding";

    /// <inheritdoc/>
    public bool Run(Graph graph, PassContext context)
    {
        var kernelContext = new KernelContext(1);
        var folded = new HashSet<Node>();
        foreach (var node in graph.Nodes)
        {
            if (node.Subgraphs.Any()) continue;
            Tensor[]? results = node.OpType is "Shape" or "Size" && node.Domain.Length == 0
                ? FoldShapeQuery(node)
                : Fold(node, kernelContext, context);
            if (results is null) continue;
            for (int k = 0; k < node.Outputs.Count; k++)
            {
                var output = node.Outputs[k];
                output.Constant = results[k];
                output.Producer = null;
                graph.Initializers.Add(output);
            }
            folded.Add(node);
        }
        // Removed in one sweep: removing each node from the list as it folds would be quadratic.
        graph.Nodes.RemoveAll(folded.Contains);
        return folded.Count > 0;
    }

    private static Tensor[]? Fold(Node node, KernelContext kernelContext, PassContext context)
    {
        // Each distinct input counts once: Concat(x, x) doubles x, and counting x twice would let a chain of them
        // double the weights at every step.
        long inputBytes = 0;
        var distinct = new HashSet<Value>();
        foreach (var input in node.Inputs)
        {
            if (input is null) continue;
            if (input.Constant is null) return null;
            if (distinct.Add(input)) inputBytes += input.Constant.ByteLength;
        }
        var op = OperatorRegistry.Create(node);
        var inference = ShapeInference.Infer(node, op);
        long outputBytes = 0;
        for (int k = 0; k < node.Outputs.Count; k++)
        {
            var shape = inference.OutputShapes[k];
            var type = inference.OutputTypes[k];
            // Too many elements for a tensor: left to the node (the plan reports it).
            if (shape is null || !Shapes.TryElementCount(shape, out long count) || type == DataType.Undefined) return null;
            outputBytes += count * DataTypes.SizeOf(type);
        }
        long growth = outputBytes - inputBytes;
        if (growth > context.MaxFoldedBytes) return null;
        if (growth > 0 && context.FoldedGrowth + growth > context.MaxTotalFoldedBytes) return null;
        if (growth > 0) context.FoldedGrowth += growth;
        var outputs = new Tensor[node.Outputs.Count];
        for (int k = 0; k < outputs.Length; k++) outputs[k] = new Tensor(inference.OutputTypes[k], inference.OutputShapes[k]!);
        var inputs = node.Inputs.Select(v => v?.Constant).ToArray();
        op.Run(kernelContext, inputs, outputs);
        return outputs;
    }

    private static Tensor[]? FoldShapeQuery(Node node)
    {
        if (node.Input(0)?.Shape is not { } shape || !Shapes.IsKnown(shape)) return null;
        if (node.Outputs.Count != 1)
            throw new SquashException(ErrorCodes.InvalidModel, $"{node.Describe()} has {node.Outputs.Count} outputs; {node.OpType} has one.", node.Name);
        if (node.OpType == "Size")
        {
            // A declared shape may hold more elements than a tensor can; Size still counts them, unless even a long cannot.
            long size = 1;
            foreach (int d in shape)
                if (long.MaxValue / Math.Max(d, 1) < size) return null;
                else size *= d;
            return [Tensor.Scalar(size)];
        }
        int rank = shape.Length;
        long start = node.Attributes.TryGetValue("start", out var s) ? s.IntValue : 0;
        long end = node.Attributes.TryGetValue("end", out var e) ? e.IntValue : rank;
        start = Math.Clamp(start < 0 ? start + rank : start, 0, rank);
        end = Math.Clamp(end < 0 ? end + rank : end, 0, rank);
        var dims = new long[Math.Max(0, end - start)];
        for (int i = 0; i < dims.Length; i++) dims[i] = shape[start + i];
        return [Tensor.From<long>(dims, dims.Length)];
    }
}
