using ILGPU.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;
using Squash.Runtime.Operators;
using Squash.Runtime.Gpu.Lowering;

namespace Squash.Runtime.Gpu.Execution;

/// <summary>
/// A fully shaped graph lowered to device work: one step per node, in graph order, over one device arena. A run uploads
/// the inputs into their arena slots, queues every step on one stream (no host round trip between device steps), waits
/// once, and downloads the outputs.
/// </summary>
internal sealed class DeviceProgram : IDisposable
{
    private readonly Graph _graph;
    private readonly Accelerator _accelerator;
    private readonly DeviceMemory _memory;
    private readonly GpuStep[] _steps;
    private readonly PlanLayout _layout;

    private DeviceProgram(Graph graph, Accelerator accelerator, DeviceMemory memory, PlanLayout layout, GpuStep[] steps, KernelCache kernels)
    {
        _graph = graph;
        _accelerator = accelerator;
        _memory = memory;
        _layout = layout;
        _steps = steps;
        Kernels = kernels;
    }

    /// <summary>The kernels loaded for this program.</summary>
    public KernelCache Kernels { get; }

    /// <summary>The nodes that run on the host, each with the reason.</summary>
    public IReadOnlyList<(Node Node, string Reason)> HostNodes =>
        [.. _steps.Select((s, i) => (s, i)).Where(p => p.s is HostStep).Select(p => (_graph.Nodes[p.i], ((HostStep)p.s).Reason))];

    /// <summary>Bytes of the device arena.</summary>
    public long ArenaBytes => _memory.ArenaBytes;

    /// <summary>Bytes of the scratch buffer shared by fp16 nodes computed in fp32 (0 when there are none).</summary>
    public long ScratchBytes => _memory.AllocatedScratchBytes;

    /// <summary>Bytes of constants on the device.</summary>
    public long ConstantBytes => _memory.ConstantBytes;

    /// <summary>Lowers <paramref name="graph"/> onto <paramref name="accelerator"/>.</summary>
    public static DeviceProgram Create(Graph graph, Accelerator accelerator, KernelContext hostContext)
    {
        // The CPU operators check every node (attributes, opsets) exactly as the CPU runtime does, and run the nodes
        // that have no device kernel.
        var operators = graph.Nodes.Select(OperatorRegistry.Create).ToArray();
        var layout = PlanLayout.Compute(graph, operators, inputsInArena: true, shareMemory: false);
        var memory = new DeviceMemory(accelerator, layout);
        // fp16 nodes widened to fp32 share one scratch buffer, sized for the largest (allocated only if one is widened).
        memory.ScratchBytes = graph.Nodes.Where(n => DeviceOperators.Find(n) is not null)
            .Select(n => HalfLowering.ScratchBytes(n, memory.InArena)).DefaultIfEmpty(0).Max();
        var kernels = new KernelCache(accelerator);
        var context = new LoweringContext(accelerator, kernels, memory);
        var steps = new GpuStep[graph.Nodes.Count];
        try
        {
            for (int i = 0; i < steps.Length; i++)
            {
                var node = graph.Nodes[i];
                string reason;
                var lowering = DeviceOperators.Find(node);
                if (lowering is null) reason = $"no device kernel for {node.OpType}";
                else
                {
                    try
                    {
                        context.Node = node;
                        steps[i] = lowering(context);
                        continue;
                    }
                    catch (NotOnDeviceException e) { reason = e.Message; }
                }
                var inputs = layout.InputSlots[i].Select(s => s < 0 ? null : layout.Slots[s]).ToArray();
                var outputs = layout.OutputSlots[i].Select(s => layout.Slots[s]).ToArray();
                steps[i] = (GpuStep?)PrecomputedStep.TryCreate(operators[i], inputs, outputs, memory, hostContext)
                    ?? new HostStep(operators[i], inputs, outputs, memory, hostContext, reason);
            }
        }
        catch
        {
            memory.Dispose();
            throw;
        }
        return new DeviceProgram(graph, accelerator, memory, layout, steps, kernels);
    }

    /// <summary>Runs the program. Returned tensors are new host tensors.</summary>
    public Dictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs)
    {
        var stream = _accelerator.DefaultStream;
        for (int k = 0; k < _graph.Inputs.Count; k++)
        {
            var v = _graph.Inputs[k];
            if (!inputs.TryGetValue(v.Name, out var t))
                throw new SquashException(ErrorCodes.BadInput, $"Input '{v.Name}' is missing.");
            if (t.DataType != v.Type || !Shapes.Equal(t.Shape, v.Shape!))
                throw new SquashException(ErrorCodes.BadInput,
                    $"Input '{v.Name}' must be {DataTypes.Name(v.Type)}{Shapes.Format(v.Shape!)}, not {DataTypes.Name(t.DataType)}{Shapes.Format(t.Shape)}.");
            Transfers.Upload(stream, t.Bytes, _memory.Bytes(v));
        }
        foreach (var step in _steps) step.Run(stream);
        stream.Synchronize();
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        for (int k = 0; k < _graph.Outputs.Count; k++)
        {
            var v = _graph.Outputs[k];
            int slot = _layout.GraphOutputSlots[k];
            if (_layout.Offsets[slot] < 0)
            {
                result[v.Name] = (v.Constant ?? throw new SquashException(ErrorCodes.InvalidModel, $"Graph output '{v.Name}' has no value.")).Clone();
                continue;
            }
            var host = new Tensor(v.Type, (int[])v.Shape!.Clone());
            Transfers.Download(stream, _memory.Bytes(v), host.Bytes);
            result[v.Name] = host;
        }
        stream.Synchronize();
        return result;
    }

    public void Dispose() => _memory.Dispose();
}
