using Squash.Runtime.Ir;
using Squash.Runtime.Operators;

namespace Squash.Runtime.Execution;

/// <summary>
/// A graph whose every shape is known, prepared to run with no allocation: operators created once, every
/// intermediate tensor a fixed view into one arena laid out by <see cref="PlanLayout"/>. This is what the generated
/// code does, step for step; the compiler uses it to calibrate and profile.
/// </summary>
/// <remarks>An instance serves one run at a time (the arena is shared by its runs). Create one per thread to run
/// concurrently. A step whose output shape depends on input values (the plan took it from the model's declared
/// shapes) re-infers its outputs on each run and throws SQ1005 when the declaration does not hold; only such steps
/// allocate.</remarks>
public sealed class ExecutionPlan
{
    private readonly Graph _graph;
    private readonly Operator[] _operators;
    private readonly Tensor?[][] _stepInputs;
    private readonly Tensor[][] _stepOutputs;
    private readonly PlanLayout _layout;
    private readonly Tensor?[] _slotTensors;
    private readonly bool[] _checked;

    private ExecutionPlan(Graph graph, Operator[] operators, PlanLayout layout, Tensor?[] slotTensors, bool[] checkedSteps)
    {
        _graph = graph;
        _operators = operators;
        _checked = checkedSteps;
        _layout = layout;
        _slotTensors = slotTensors;
        _stepInputs = [.. layout.InputSlots.Select(slots => slots.Select(s => s < 0 ? null : slotTensors[s]).ToArray())];
        _stepOutputs = [.. layout.OutputSlots.Select(slots => slots.Select(s => slotTensors[s]!).ToArray())];
    }

    /// <summary>Bytes of the arena holding every intermediate tensor.</summary>
    public long ArenaBytes => _layout.ArenaBytes;

    /// <summary>The graph this plan runs.</summary>
    public Graph Graph => _graph;

    /// <summary>Where each value lives, which nodes are views and which run in place.</summary>
    public PlanLayout Layout => _layout;

    /// <summary>Called after each step with the node and its outputs (calibration observes activations here).</summary>
    public Action<Node, ReadOnlySpan<Tensor>>? NodeCompleted { get; set; }

    /// <summary>When set, receives each step's elapsed stopwatch ticks, indexed like <see cref="Graph"/>'s nodes
    /// (profiling; adds two timestamp reads per step).</summary>
    public long[]? StepTicks { get; set; }

    /// <summary>True when every value of <paramref name="graph"/> has a known type and shape.</summary>
    public static bool CanPlan(Graph graph) =>
        graph.AllValues().All(v => v.Type != DataType.Undefined && v.HasKnownShape);

    /// <summary>Plans <paramref name="graph"/>, whose shapes must all be known (pin the input shapes and run shape
    /// inference first).</summary>
    /// <exception cref="SquashException">A shape is unknown (SQ1008) or a node is unsupported.</exception>
    public static ExecutionPlan Create(Graph graph)
    {
        var operators = graph.Nodes.Select(OperatorRegistry.Create).ToArray();
        var layout = PlanLayout.Compute(graph, operators, inputsInArena: false);
        var arena = Arena.Allocate(layout.ArenaBytes, out int baseOffset);
        // Arbitrary bytes, like a reused arena: an operator that relies on zeroed outputs fails early.
        arena.AsSpan().Fill(0xFF);
        var tensors = new Tensor?[layout.Slots.Count];
        for (int s = 0; s < tensors.Length; s++)
        {
            var v = layout.Slots[s];
            if (layout.Offsets[s] >= 0) tensors[s] = new Tensor(v.Type, v.Shape!, arena, baseOffset + (int)layout.Offsets[s]);
            else if (layout.Storage[s] == s && v.Constant is not null) tensors[s] = v.Constant;
        }
        // Views of constants; views of graph inputs outside the arena are made when the inputs are bound.
        for (int s = 0; s < tensors.Length; s++)
            if (layout.Offsets[s] < 0 && layout.Storage[s] != s && tensors[layout.Storage[s]] is { } owner)
                tensors[s] = owner.Reshape(layout.Slots[s].Shape!);
        var checkedSteps = new bool[operators.Length];
        for (int i = 0; i < operators.Length; i++) checkedSteps[i] = !IsStatic(operators[i]);
        return new ExecutionPlan(graph, operators, layout, tensors, checkedSteps);
    }

    /// <summary>True when the operator's inference, from the planned input shapes and the constants alone, gives
    /// exactly the planned output types and shapes. Otherwise the plan took them from the model's declarations (a
    /// shape that depends on input values), and each run checks that the declaration holds.</summary>
    private static bool IsStatic(Operator op)
    {
        var node = op.Node;
        var inference = StaticInference.Infer(node, op);
        for (int k = 0; k < node.Outputs.Count; k++)
        {
            var planned = node.Outputs[k];
            if (inference.OutputTypes[k] != planned.Type || inference.OutputShapes[k] is not { } shape || !Shapes.Equal(shape, planned.Shape!))
                return false;
        }
        return true;
    }

    /// <summary>Infers the outputs of step <paramref name="i"/> from the actual inputs and throws unless they have the
    /// planned types and shapes (the arena was laid out for those).</summary>
    private void CheckOutputs(int i)
    {
        var op = _operators[i];
        var node = op.Node;
        var inputs = _stepInputs[i];
        var outputs = _stepOutputs[i];
        var inference = new InferenceContext(node, inputs.Length, outputs.Length);
        for (int k = 0; k < inputs.Length; k++)
            if (inputs[k] is { } t) inference.SetInput(k, t.DataType, t.Shape, t);
        StaticInference.Run(op, inference);
        for (int k = 0; k < outputs.Length; k++)
        {
            var shape = inference.OutputShapes[k];
            if (inference.OutputTypes[k] != outputs[k].DataType || shape is null || !Shapes.Equal(shape, outputs[k].Shape))
                throw new SquashException(ErrorCodes.InvalidModel,
                    $"{node.Describe()}: output '{node.Outputs[k].Name}' is {DataTypes.Name(inference.OutputTypes[k])}{(shape is null ? "[?]" : Shapes.Format(shape))} for these inputs, " +
                    $"but the model declares {outputs[k]}, which the plan was laid out for. Fix the declared shape (value_info) in the model.", node.Name);
        }
    }

    /// <summary>Runs the plan. Returned tensors are copies the caller owns.</summary>
    /// <exception cref="SquashException">An input is missing or does not match its planned type and shape.</exception>
    public Dictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs, KernelContext? context = null)
    {
        for (int k = 0; k < _graph.Inputs.Count; k++)
        {
            var v = _graph.Inputs[k];
            if (!inputs.TryGetValue(v.Name, out var t))
                throw new SquashException(ErrorCodes.BadInput, $"Input '{v.Name}' is missing.");
            if (t.DataType != v.Type || !Shapes.Equal(t.Shape, v.Shape!))
                throw new SquashException(ErrorCodes.BadInput,
                    $"Input '{v.Name}' must be {DataTypes.Name(v.Type)}{Shapes.Format(v.Shape!)}, not {DataTypes.Name(t.DataType)}{Shapes.Format(t.Shape)}.");
            Bind(_layout.GraphInputSlots[k], t);
        }
        context ??= new KernelContext();
        var ticks = StepTicks;
        for (int i = 0; i < _operators.Length; i++)
        {
            long start = ticks is null ? 0 : System.Diagnostics.Stopwatch.GetTimestamp();
            if (_checked[i]) CheckOutputs(i);
            // A view's output already is its input's memory.
            if (!_layout.IsView[i]) _operators[i].Run(context, _stepInputs[i], _stepOutputs[i]);
            if (ticks is not null) ticks[i] += System.Diagnostics.Stopwatch.GetTimestamp() - start;
            NodeCompleted?.Invoke(_operators[i].Node, _stepOutputs[i]);
        }
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        for (int k = 0; k < _graph.Outputs.Count; k++)
        {
            // An output listed several times is copied once (a model listing one output 100 000 times made 5 GB).
            if (result.ContainsKey(_graph.Outputs[k].Name)) continue;
            result[_graph.Outputs[k].Name] = (_slotTensors[_layout.GraphOutputSlots[k]]
                ?? throw new SquashException(ErrorCodes.InvalidModel, $"Graph output '{_graph.Outputs[k].Name}' has no value.")).Clone();
        }
        return result;
    }

    /// <summary>Makes <paramref name="tensor"/> the value of graph input <paramref name="slot"/> and of the views of
    /// it, unless it already is.</summary>
    private void Bind(int slot, Tensor tensor)
    {
        if (ReferenceEquals(_slotTensors[slot], tensor)) return;
        for (int s = 0; s < _slotTensors.Length; s++)
        {
            if (s != slot && _layout.Storage[s] != slot) continue;
            var value = s == slot ? tensor : tensor.Reshape(_layout.Slots[s].Shape!);
            _slotTensors[s] = value;
            for (int i = 0; i < _stepInputs.Length; i++)
            {
                var slots = _layout.InputSlots[i];
                for (int k = 0; k < slots.Length; k++)
                    if (slots[k] == s) _stepInputs[i][k] = value;
                slots = _layout.OutputSlots[i];
                for (int k = 0; k < slots.Length; k++)
                    if (slots[k] == s) _stepOutputs[i][k] = value;
            }
        }
    }
}

/// <summary>Allocation of 64-byte aligned, pinned arenas.</summary>
public static class Arena
{
    /// <summary>Allocates a pinned buffer holding <paramref name="bytes"/> bytes from <paramref name="baseOffset"/>,
    /// which is aligned to <see cref="MemoryPlanner.Alignment"/>.</summary>
    public static unsafe byte[] Allocate(long bytes, out int baseOffset)
    {
        var arena = GC.AllocateUninitializedArray<byte>((int)bytes + MemoryPlanner.Alignment, pinned: true);
        nint address = (nint)System.Runtime.CompilerServices.Unsafe.AsPointer(ref arena[0]);
        baseOffset = (int)((MemoryPlanner.Alignment - address % MemoryPlanner.Alignment) % MemoryPlanner.Alignment);
        return arena;
    }
}
