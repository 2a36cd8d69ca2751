using Squash.Runtime.Ir;
using Squash.Runtime.Operators;

namespace Squash.Runtime.Execution;

/// <summary>
/// Where every value of a fully shaped graph lives when it runs as a plan: each value gets a slot; node outputs (and,
/// when asked, graph inputs) get an offset in one arena from <see cref="MemoryPlanner"/>; constants stay constants.
/// <see cref="ExecutionPlan"/> and the code generator both use it, so generated code has the same layout.
/// </summary>
/// <remarks>
/// Two kinds of output share their input's memory instead of getting their own:
/// <list type="bullet">
/// <item><b>Views.</b> The output of an operator that only reshapes its input (<see cref="Operator.ViewedInput"/>) is
/// the input's bytes with another shape: the node runs nothing (<see cref="IsView"/>). Chains of views share one
/// memory, whose lifetime is the union of theirs. A view of a constant views the constant; a view of a graph input
/// that is not in the arena views whatever tensor the caller binds to that input.</item>
/// <item><b>In place.</b> An elementwise operator's output (<see cref="Operator.CanRunInPlace"/>) takes the memory
/// of an input with its type and element count that nothing reads afterwards, counting every view of that memory.
/// Never over a constant or over a graph input outside the arena (the caller's tensor), and never over memory a graph
/// output holds (it lives to the end).</item>
/// </list>
/// A graph output may be a view: callers copy outputs out of the plan, so sharing memory with an input or a constant
/// changes nothing they see.
/// </remarks>
public sealed class PlanLayout
{
    /// <summary>Values by slot.</summary>
    public required IReadOnlyList<Value> Slots { get; init; }

    /// <summary>Arena offset of each slot, or -1 for constants, graph inputs left outside the arena, and views of
    /// either. Slots that share memory have the same offset.</summary>
    public required long[] Offsets { get; init; }

    /// <summary>For each slot, the slot that owns its memory: itself, or the first slot of a chain of views and
    /// in-place outputs. A slot with offset -1 whose owner is another slot is that slot's tensor with this slot's
    /// shape.</summary>
    public required int[] Storage { get; init; }

    /// <summary>For each node, the slots of its inputs (-1 for an omitted optional input), then of its operator's
    /// implicit inputs.</summary>
    public required int[][] InputSlots { get; init; }

    /// <summary>For each node, the slots of its outputs.</summary>
    public required int[][] OutputSlots { get; init; }

    /// <summary>For each node, whether its output is a view of its input, so that running it would do nothing.</summary>
    public required bool[] IsView { get; init; }

    /// <summary>For each node, whether its output is written over one of its inputs (see the remarks).</summary>
    public required bool[] IsInPlace { get; init; }

    /// <summary>Bytes of arena the plan needs.</summary>
    public required long ArenaBytes { get; init; }

    /// <summary>Slot of each graph input.</summary>
    public required int[] GraphInputSlots { get; init; }

    /// <summary>Slot of each graph output.</summary>
    public required int[] GraphOutputSlots { get; init; }

    /// <summary>Computes the layout.</summary>
    /// <param name="graph">A graph whose values all have known types and shapes.</param>
    /// <param name="operators">The operator of each node, in node order.</param>
    /// <param name="inputsInArena">Whether graph inputs get arena memory (generated code copies them in) or are bound
    /// per run (<see cref="ExecutionPlan"/>).</param>
    /// <param name="shareMemory">Whether views and in-place outputs share their input's memory (see the remarks). A
    /// device program whose kernels all write their own output passes false.</param>
    /// <exception cref="SquashException">A value's shape is not known (SQ1008).</exception>
    public static PlanLayout Compute(Graph graph, IReadOnlyList<Operator> operators, bool inputsInArena, bool shareMemory = true)
    {
        var nodes = graph.Nodes;
        if (operators.Count != nodes.Count) throw new ArgumentException("One operator per node is needed.", nameof(operators));
        var slotOf = new Dictionary<Value, int>();
        var slots = new List<Value>();
        int Slot(Value v)
        {
            if (!slotOf.TryGetValue(v, out int s))
            {
                s = slots.Count;
                slotOf[v] = s;
                slots.Add(v);
            }
            return s;
        }
        var graphInputSlots = graph.Inputs.Select(Slot).ToArray();
        var inputSlots = new int[nodes.Count][];
        var outputSlots = new int[nodes.Count][];
        for (int i = 0; i < nodes.Count; i++)
        {
            var node = nodes[i];
            inputSlots[i] = [.. node.Inputs.Select(v => v is null ? -1 : Slot(v)), .. operators[i].ImplicitInputs.Select(Slot)];
            outputSlots[i] = [.. node.Outputs.Select(Slot)];
        }
        var graphOutputSlots = graph.Outputs.Select(Slot).ToArray();

        // Lifetimes: node outputs from their step, graph inputs from the start (step -1), to the last reading step;
        // graph outputs live to the end.
        const int NotInArena = int.MinValue;
        var first = new int[slots.Count];
        var last = new int[slots.Count];
        Array.Fill(first, NotInArena);
        Array.Fill(last, -1);
        if (inputsInArena)
            foreach (int s in graphInputSlots) first[s] = -1;
        for (int i = 0; i < nodes.Count; i++)
        {
            foreach (int s in outputSlots[i]) { first[s] = i; last[s] = i; }
            foreach (int s in inputSlots[i]) if (s >= 0) last[s] = Math.Max(last[s], i);
        }
        foreach (int s in graphOutputSlots) last[s] = nodes.Count;
        for (int s = 0; s < slots.Count; s++)
        {
            var v = slots[s];
            if (v.Shape is { } known && Shapes.IsKnown(known) && !Shapes.TryElementCount(known, out _))
                throw new SquashException(ErrorCodes.TooLarge,
                    $"{v.Producer?.Describe() ?? "The graph"}: '{v.Name}' has shape {Shapes.Format(known)}, more than {Shapes.MaxElements} elements, the most one tensor may hold.", v.Producer?.Name);
            if (first[s] == NotInArena) continue;
            if (v.Type == DataType.Undefined || !v.HasKnownShape)
                throw new SquashException(ErrorCodes.UnresolvedShape,
                    $"{v.Producer?.Describe() ?? "The graph"}: the shape of '{v.Name}' is not known at build time ({(v.Shape is null ? "rank unknown" : Shapes.Format(v.Shape))}). " +
                    "Pin the model's dynamic input dimensions (InputShapes, e.g. x=1,3,640,640).", v.Producer?.Name);
        }

        // Memory shared by views and in-place outputs: each slot's owner, and the last step any of the owner's
        // aliases is read (known for every alias made so far when a later node asks).
        var storage = Enumerable.Range(0, slots.Count).ToArray();
        var storageLast = (int[])last.Clone();
        var isView = new bool[nodes.Count];
        var isInPlace = new bool[nodes.Count];
        for (int i = 0; i < nodes.Count; i++)
        {
            var op = operators[i];
            int[] ins = inputSlots[i], outs = outputSlots[i];
            if (outs.Length == 0 || !shareMemory) continue;
            int output = outs[0];
            int viewed = op.ViewedInput;
            if (viewed >= 0 && viewed < ins.Length && ins[viewed] >= 0 && SameTypeAndCount(slots[ins[viewed]], slots[output]))
            {
                int owner = storage[ins[viewed]];
                storage[output] = owner;
                storageLast[owner] = Math.Max(storageLast[owner], last[output]);
                isView[i] = true;
                continue;
            }
            if (outs.Length != 1) continue;
            for (int k = 0; k < ins.Length; k++)
            {
                if (ins[k] < 0 || !op.CanRunInPlace(k)) continue;
                int owner = storage[ins[k]];
                // Only arena memory that no later step (nor a graph output) reads, and not memory that another input
                // of this node reads in a way that is not element by element.
                if (first[owner] == NotInArena || storageLast[owner] != i || !SameTypeAndCount(slots[ins[k]], slots[output])) continue;
                bool shared = false;
                for (int j = 0; j < ins.Length; j++)
                    if (j != k && ins[j] >= 0 && storage[ins[j]] == owner && !op.CanRunInPlace(j)) shared = true;
                if (shared) continue;
                storage[output] = owner;
                storageLast[owner] = Math.Max(i, last[output]);
                isInPlace[i] = true;
                break;
            }
        }

        var requests = new List<MemoryPlanner.Request>();
        var requestSlot = new List<int>();
        for (int s = 0; s < slots.Count; s++)
        {
            if (first[s] == NotInArena || storage[s] != s) continue;
            var v = slots[s];
            requests.Add(new MemoryPlanner.Request(Shapes.ElementCount(v.Shape!) * DataTypes.SizeOf(v.Type), first[s] + 1, storageLast[s] + 1));
            requestSlot.Add(s);
        }
        var (offsets, arenaBytes) = MemoryPlanner.Plan(requests);
        if (arenaBytes > Array.MaxLength - MemoryPlanner.Alignment)
            throw new SquashException(ErrorCodes.TooLarge, $"The model needs {arenaBytes} bytes of activations, more than one arena can hold (2 GB).");
        var slotOffsets = new long[slots.Count];
        Array.Fill(slotOffsets, -1);
        for (int r = 0; r < requests.Count; r++) slotOffsets[requestSlot[r]] = offsets[r];
        for (int s = 0; s < slots.Count; s++) slotOffsets[s] = slotOffsets[storage[s]];
        return new PlanLayout
        {
            Slots = slots,
            Offsets = slotOffsets,
            Storage = storage,
            InputSlots = inputSlots,
            OutputSlots = outputSlots,
            IsView = isView,
            IsInPlace = isInPlace,
            ArenaBytes = arenaBytes,
            GraphInputSlots = graphInputSlots,
            GraphOutputSlots = graphOutputSlots,
        };
    }

    private static bool SameTypeAndCount(Value a, Value b) =>
        a.Type == b.Type && a.HasKnownShape && b.HasKnownShape && Shapes.ElementCount(a.Shape!) == Shapes.ElementCount(b.Shape!);
}
