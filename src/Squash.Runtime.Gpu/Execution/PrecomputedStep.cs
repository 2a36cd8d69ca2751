using ILGPU;
using ILGPU.Runtime;
using Squash.Runtime.Ir;
using Squash.Runtime.Operators;

namespace Squash.Runtime.Gpu.Execution;

/// <summary>
/// A node without a device kernel whose outputs are the same on every run: all its inputs are constants, or it only
/// reads its input's shape (Shape, Size), which the plan fixes. Its CPU operator runs once when the model is created;
/// each run copies the uploaded results into the output slots on the device. (The optimizer folds most such nodes
/// already; this catches what it leaves.)
/// </summary>
internal sealed class PrecomputedStep : GpuStep
{
    private static readonly HashSet<string> s_shapeOnly = ["Shape", "Size"];
    private readonly (ArrayView<byte> Source, ArrayView<byte> Target)[] _copies;

    private PrecomputedStep((ArrayView<byte>, ArrayView<byte>)[] copies) => _copies = copies;

    /// <summary>The step, or null when the node's outputs depend on computed values.</summary>
    public static PrecomputedStep? TryCreate(Operator op, Value?[] inputs, Value[] outputs, DeviceMemory memory, KernelContext context)
    {
        var node = op.Node;
        bool shapeOnly = node.Domain.Length == 0 && s_shapeOnly.Contains(node.OpType);
        if (!shapeOnly && inputs.Any(v => v is not null && v.Constant is null)) return null;
        // Shape and Size read no element: a zero tensor of the planned shape stands in for the input.
        var hostInputs = inputs.Select(v => v is null ? null : v.Constant ?? new Tensor(v.Type, v.Shape!)).ToArray();
        var hostOutputs = outputs.Select(v => new Tensor(v.Type, v.Shape!)).ToArray();
        op.Run(context, hostInputs, hostOutputs);
        var copies = new (ArrayView<byte>, ArrayView<byte>)[outputs.Length];
        for (int k = 0; k < outputs.Length; k++) copies[k] = (memory.Upload(hostOutputs[k].Bytes.ToArray()), memory.Bytes(outputs[k]));
        return new PrecomputedStep(copies);
    }

    public override void Run(AcceleratorStream stream)
    {
        foreach (var (source, target) in _copies)
            if (source.Length > 0) source.CopyTo(stream, target);
    }
}
