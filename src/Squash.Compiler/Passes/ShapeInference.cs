using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;
using Squash.Runtime.Operators;

namespace Squash.Compiler.Passes;

/// <summary>
/// Sets the element type and shape of every node output by asking each node's <see cref="Operator"/> (the same code
/// that runs it). Dimensions the operator cannot determine stay -1; where the model declared a dimension the
/// operator left unknown, the declaration fills it in.
/// </summary>
/// <remarks>Reports a change only when some type or dimension became known, so it reaches a fixed point.</remarks>
public sealed class ShapeInference : IGraphPass
{
    /// <inheritdoc/>
    public string Name => "ShapeInference";

    /// <inheritdoc/>
    public bool Run(Graph graph, PassContext context)
    {
        bool changed = false;
        foreach (var node in graph.Nodes)
        {
            var op = OperatorRegistry.Create(node);
            var inference = Infer(node, op);
            for (int k = 0; k < node.Outputs.Count; k++)
            {
                var value = node.Outputs[k];
                var type = inference.OutputTypes[k];
                var shape = Merge(inference.OutputShapes[k], value.Shape);
                if (type != DataType.Undefined && type != value.Type)
                {
                    value.Type = type;
                    changed = true;
                }
                if (shape is not null && (value.Shape is null || !Shapes.Equal(shape, value.Shape)))
                {
                    changed |= Known(shape) > Known(value.Shape);
                    value.Shape = shape;
                }
            }
        }
        return changed;
    }

    /// <summary>Runs <paramref name="op"/>'s inference with what the IR knows about the node's inputs.</summary>
    internal static InferenceContext Infer(Node node, Operator op) => StaticInference.Infer(node, op);

    private static int[]? Merge(int[]? inferred, int[]? declared)
    {
        if (inferred is null) return declared;
        if (declared is null || declared.Length != inferred.Length) return inferred;
        var result = (int[])inferred.Clone();
        for (int i = 0; i < result.Length; i++)
            if (result[i] < 0) result[i] = declared[i];
        return result;
    }

    private static int Known(int[]? shape)
    {
        if (shape is null) return -1;
        int n = 0;
        foreach (int d in shape) if (d >= 0) n++;
        return n;
    }
}
