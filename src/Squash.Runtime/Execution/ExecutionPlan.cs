using System.Runtime.CompilerServices;
using Squash.Runtime.Ir;
using Squash.Runtime.Operators;

namespace Squash.Runtime.Execution;

/// <summary>
/// A graph whose every shape is known, prepared to run with no allocation: operators created once, every
/// intermediate tensor a fixed view into one arena laid out by <see cref="MemoryPlanner"/>. This is what the generated
/// code does, step for step; the compiler uses it to calibrate and profile.
/// </summary>
/// <remarks>An instance serves one run at a time (the arena is shared by its runs). Create one per thread to run
/// concurrently.</remarks>
public sealed class ExecutionPlan
{
    private readonly Graph _graph;
    private readonly Operator[] _operators;
    private readonly Tensor?[][] _stepInputs;
    private readonly Tensor[][] _stepOutputs;
    private readonly int[][] _inputSlots;
    private readonly Value[] _graphInputs;
    private readonly Tensor?[] _graphOutputs;
    private readonly byte[] _arena;

    private ExecutionPlan(Graph graph, Operator[] operators, Tensor?[][] stepInputs, Tensor[][] stepOutputs,
        int[][] inputSlots, Tensor?[] graphOutputs, byte[] arena, long arenaBytes)
    {
        _graph = graph;
        _operators = operators;
        _stepInputs = stepInputs;
        _stepOutputs = stepOutputs;
        _inputSlots = inputSlots;
        _graphInputs = [.. graph.Inputs];
        _graphOutputs = graphOutputs;
        _arena = arena;
        ArenaBytes = arenaBytes;
    }

    /// <summary>Bytes of the arena holding every intermediate tensor.</summary>
    public long ArenaBytes { get; }

    /// <summary>The graph this plan runs.</summary>
    public Graph Graph => _graph;

    /// <summary>Called after each step with the node and its outputs (calibration observes activations here).</summary>
    public Action<Node, ReadOnlySpan<Tensor>>? NodeCompleted { get; set; }

    /// <summary>True when every value of <paramref name="graph"/> has a known type and shape.</summary>
    public static bool CanPlan(Graph graph) =>
        graph.AllValues().All(v => v.Type != DataType.Undefined && v.HasKnownShape);

    /// <summary>Plans <paramref name="graph"/>, whose shapes must all be known (pin the input shapes and run shape
    /// inference first).</summary>
    /// <exception cref="SquashException">A shape is unknown (SQ1008) or a node is unsupported.</exception>
    public static ExecutionPlan Create(Graph graph)
    {
        var nodes = graph.Nodes;
        var operators = new Operator[nodes.Count];
        var slotOf = new Dictionary<Value, int>();
        var slotValues = new List<Value>();
        int Slot(Value v)
        {
            if (!slotOf.TryGetValue(v, out int s))
            {
                s = slotValues.Count;
                slotOf[v] = s;
                slotValues.Add(v);
            }
            return s;
        }
        var inputSlots = new int[nodes.Count][];
        var outputSlots = new int[nodes.Count][];
        for (int i = 0; i < nodes.Count; i++)
        {
            var node = nodes[i];
            operators[i] = OperatorRegistry.Create(node);
            inputSlots[i] = [.. node.Inputs.Select(v => v is null ? -1 : Slot(v)), .. operators[i].ImplicitInputs.Select(Slot)];
            outputSlots[i] = [.. node.Outputs.Select(Slot)];
        }
        foreach (var v in graph.Outputs) Slot(v);

        // Lifetimes of node outputs: from their step to the last step that reads them; graph outputs to the end.
        var first = new int[slotValues.Count];
        var last = new int[slotValues.Count];
        Array.Fill(first, -1);
        for (int i = 0; i < nodes.Count; i++)
        {
            foreach (int s in outputSlots[i]) { first[s] = i; last[s] = i; }
            foreach (int s in inputSlots[i]) if (s >= 0) last[s] = Math.Max(last[s], i);
        }
        foreach (var v in graph.Outputs) last[slotOf[v]] = nodes.Count;

        var requests = new List<MemoryPlanner.Request>();
        var requestSlot = new List<int>();
        for (int s = 0; s < slotValues.Count; s++)
        {
            if (first[s] < 0) continue;
            var v = slotValues[s];
            if (v.Type == DataType.Undefined || !v.HasKnownShape)
                throw new SquashException(ErrorCodes.UnresolvedShape,
                    $"{v.Producer?.Describe() ?? "The graph"}: the shape of '{v.Name}' is not known at build time ({(v.Shape is null ? "rank unknown" : Shapes.Format(v.Shape))}). " +
                    "Pin the model's dynamic input dimensions (InputShapes, e.g. x=1,3,640,640).", v.Producer?.Name);
            requests.Add(new MemoryPlanner.Request(Shapes.ElementCount(v.Shape!) * DataTypes.SizeOf(v.Type), first[s], last[s]));
            requestSlot.Add(s);
        }
        var (offsets, arenaBytes) = MemoryPlanner.Plan(requests);
        if (arenaBytes > Array.MaxLength - MemoryPlanner.Alignment)
            throw new SquashException(ErrorCodes.TooLarge, $"The model needs {arenaBytes} bytes of activations, more than one arena can hold (2 GB).");
        var arena = GC.AllocateUninitializedArray<byte>((int)arenaBytes + MemoryPlanner.Alignment, pinned: true);
        int baseOffset = AlignedBase(arena);
        // Arbitrary bytes, like a reused arena: an operator that relies on zeroed outputs fails early.
        arena.AsSpan().Fill(0xFF);

        var tensors = new Tensor?[slotValues.Count];
        for (int r = 0; r < requests.Count; r++)
        {
            var v = slotValues[requestSlot[r]];
            tensors[requestSlot[r]] = new Tensor(v.Type, v.Shape!, arena, baseOffset + (int)offsets[r]);
        }
        for (int s = 0; s < slotValues.Count; s++)
            if (tensors[s] is null && slotValues[s].Constant is { } c) tensors[s] = c;

        var stepInputs = new Tensor?[nodes.Count][];
        var stepOutputs = new Tensor[nodes.Count][];
        for (int i = 0; i < nodes.Count; i++)
        {
            stepInputs[i] = [.. inputSlots[i].Select(s => s < 0 ? null : tensors[s])];
            stepOutputs[i] = [.. outputSlots[i].Select(s => tensors[s]!)];
        }
        // Graph inputs are bound per run: remember which step inputs read which graph input.
        var graphInputSlots = graph.Inputs.Select(v => slotOf.GetValueOrDefault(v, -1)).ToArray();
        var bindings = new int[nodes.Count][];
        for (int i = 0; i < nodes.Count; i++)
            bindings[i] = [.. inputSlots[i].Select(s => s < 0 ? -1 : Array.IndexOf(graphInputSlots, s))];
        // A graph output that is a graph input has no tensor of its own; Run copies the bound input.
        var graphOutputs = graph.Outputs.Select(v => tensors[slotOf[v]] ?? v.Constant
            ?? (graph.Inputs.Contains(v) ? null : throw new SquashException(ErrorCodes.InvalidModel, $"Graph output '{v.Name}' has no value."))).ToArray();
        return new ExecutionPlan(graph, operators, stepInputs, stepOutputs, bindings, graphOutputs, arena, arenaBytes);
    }

    private static unsafe int AlignedBase(byte[] pinned)
    {
        nint address = (nint)Unsafe.AsPointer(ref pinned[0]);
        return (int)((MemoryPlanner.Alignment - address % MemoryPlanner.Alignment) % MemoryPlanner.Alignment);
    }

    /// <summary>Runs the plan. Returned tensors are copies the caller owns.</summary>
    /// <exception cref="SquashException">An input is missing or does not match its planned type and shape.</exception>
    public Dictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs, KernelContext? context = null)
    {
        var bound = new Tensor[_graphInputs.Length];
        for (int k = 0; k < _graphInputs.Length; k++)
        {
            var v = _graphInputs[k];
            if (!inputs.TryGetValue(v.Name, out var t))
                throw new SquashException(ErrorCodes.BadInput, $"Input '{v.Name}' is missing.");
            if (t.DataType != v.Type || !Shapes.Equal(t.Shape, v.Shape!))
                throw new SquashException(ErrorCodes.BadInput,
                    $"Input '{v.Name}' must be {DataTypes.Name(v.Type)}{Shapes.Format(v.Shape!)}, not {DataTypes.Name(t.DataType)}{Shapes.Format(t.Shape)}.");
            bound[k] = t;
        }
        context ??= new KernelContext();
        for (int i = 0; i < _operators.Length; i++)
        {
            var stepInputs = _stepInputs[i];
            var binding = _inputSlots[i];
            for (int k = 0; k < binding.Length; k++)
                if (binding[k] >= 0) stepInputs[k] = bound[binding[k]];
            _operators[i].Run(context, stepInputs, _stepOutputs[i]);
            NodeCompleted?.Invoke(_operators[i].Node, _stepOutputs[i]);
        }
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        for (int k = 0; k < _graphOutputs.Length; k++)
        {
            var v = _graph.Outputs[k];
            int inputIndex = Array.IndexOf(_graphInputs, v);
            result[v.Name] = inputIndex >= 0 ? bound[inputIndex].Clone() : _graphOutputs[k]!.Clone();
        }
        return result;
    }
}
