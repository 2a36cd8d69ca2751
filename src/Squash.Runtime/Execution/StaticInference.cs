using Squash.Runtime.Ir;
using Squash.Runtime.Operators;

namespace Squash.Runtime.Execution;

/// <summary>
/// Output types and shapes of a node from what is known before any run: the types and shapes of its inputs and the
/// values of its constant inputs. Shape inference at build time and the execution plan both use it.
/// </summary>
/// <remarks>
/// An operator with subgraphs (If) runs its branch when every input value is known, and a branch may hold exactly
/// what constant folding refused to compute for its size (a huge ConstantOfShape). So before a run such a node sees
/// constant values only where that cannot happen: all of them when its branches are empty (fully folded), otherwise
/// the regular inputs' values (the If condition picks its branch's inferred shapes) but not the outer-scope ones; and
/// none when it has no outer-scope inputs (its condition alone would make it run the branch).
/// </remarks>
public static class StaticInference
{
    /// <summary>Runs <paramref name="op"/>'s inference for <paramref name="node"/> with what the IR knows.</summary>
    /// <exception cref="SquashException">The operator rejects its inputs (see <see cref="Run"/>).</exception>
    public static InferenceContext Infer(Node node, Operator op)
    {
        var implicitInputs = op.ImplicitInputs;
        var inference = new InferenceContext(node, node.Inputs.Count + implicitInputs.Count, node.Outputs.Count);
        bool evaluates = node.Subgraphs.Any(g => g.Nodes.Count > 0);
        bool regularValues = !evaluates || implicitInputs.Count > 0;
        for (int i = 0; i < node.Inputs.Count; i++)
            if (node.Inputs[i] is { } v) inference.SetInput(i, v.Type, v.Shape, regularValues ? v.Constant : null);
        for (int i = 0; i < implicitInputs.Count; i++)
        {
            var v = implicitInputs[i];
            inference.SetInput(node.Inputs.Count + i, v.Type, v.Shape, evaluates ? null : v.Constant);
        }
        Run(op, inference);
        return inference;
    }

    /// <summary>Runs <paramref name="op"/>'s inference, turning what shape arithmetic throws on a bad model into the
    /// model error it is (SQ1005): an ArgumentException (shapes that do not broadcast, a dimension out of range) or an
    /// OverflowException (checked arithmetic on sizes from the model, such as a pad of 2^40).</summary>
    public static void Run(Operator op, InferenceContext inference)
    {
        try
        {
            op.InferOutputs(inference);
        }
        catch (ArgumentException e)
        {
            throw new SquashException(ErrorCodes.InvalidModel, $"{op.Node.Describe()}: {e.Message}", op.Node.Name, e);
        }
        catch (OverflowException e)
        {
            throw new SquashException(ErrorCodes.InvalidModel,
                $"{op.Node.Describe()}: a size computed from its attributes and input shapes overflows; check them.", op.Node.Name, e);
        }
    }
}
