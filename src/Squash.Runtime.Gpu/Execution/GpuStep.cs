using ILGPU.Runtime;

namespace Squash.Runtime.Gpu.Execution;

/// <summary>One node of the plan, lowered: launches that read and write the device arena.</summary>
internal abstract class GpuStep
{
    /// <summary>Enqueues the step's work on <paramref name="stream"/>.</summary>
    public abstract void Run(AcceleratorStream stream);
}

/// <summary>A step made of one action (most lowerings: one kernel launch with bound arguments).</summary>
internal sealed class ActionStep(Action<AcceleratorStream> run) : GpuStep
{
    public override void Run(AcceleratorStream stream) => run(stream);
}
