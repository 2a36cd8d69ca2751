using Squash.Runtime.Ir;

namespace Squash.Runtime.Execution;

/// <summary>
/// Where every value of a fully shaped graph lives when it runs as a plan: each value gets a slot; node outputs (and,
/// when asked, graph inputs) get an offset in one arena from <see cref="MemoryPlanner"/>; constants stay constants.
/// <see cref="ExecutionPlan"/> and the code generator both use it, so generated code has the same layout.
/// </summary>
public sealed class PlanLayout
{
    /// <summary>Values by slot.</summary>
    public required IReadOnlyList<Value> Slots { get; init; }

    /// <summary>Arena offset of each slot, or -1 for constants (and graph inputs left outside the arena).</summary>
    public required long[] Offsets { get; init; }

    /// <summary>For each node, the slots of its inputs (-1 for an omitted optional input), then of its operator's
    /// implicit inputs.</summary>
    public required int[][] InputSlots { get; init; }

    /// <summary>For each node, the slots of its outputs.</summary>
    public required int[][] OutputSlots { get; init; }

    /// <summary>Bytes of arena the plan needs.</summary>
    public required long ArenaBytes { get; init; }

    /// <summary>Slot of each graph input.</summary>
    public required int[] GraphInputSlots { get; init; }

    /// <summary>Slot of each graph output.</summary>
    public required int[] GraphOutputSlots { get; init; }

    /// <summary>Computes the layout. <paramref name="implicitInputs"/> gives each node's operator's implicit inputs.</summary>
    /// <exception cref="SquashException">A value's shape is not known (SQ1008).</exception>
    public static PlanLayout Compute(Graph graph, IReadOnlyList<IReadOnlyList<Value>> implicitInputs, bool inputsInArena)
    {
        var nodes = graph.Nodes;
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
            inputSlots[i] = [.. node.Inputs.Select(v => v is null ? -1 : Slot(v)), .. implicitInputs[i].Select(Slot)];
            outputSlots[i] = [.. node.Outputs.Select(Slot)];
        }
        var graphOutputSlots = graph.Outputs.Select(Slot).ToArray();

        // Lifetimes: node outputs from their step, graph inputs from the start (step -1), to the last reading step;
        // graph outputs live to the end.
        const int NotInArena = int.MinValue;
        var first = new int[slots.Count];
        var last = new int[slots.Count];
        Array.Fill(first, NotInArena);
        if (inputsInArena)
            foreach (int s in graphInputSlots) { first[s] = -1; last[s] = -1; }
        for (int i = 0; i < nodes.Count; i++)
        {
            foreach (int s in outputSlots[i]) { first[s] = i; last[s] = i; }
            foreach (int s in inputSlots[i]) if (s >= 0) last[s] = Math.Max(last[s], i);
        }
        foreach (int s in graphOutputSlots) last[s] = nodes.Count;

        var requests = new List<MemoryPlanner.Request>();
        var requestSlot = new List<int>();
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
            requests.Add(new MemoryPlanner.Request(Shapes.ElementCount(v.Shape!) * DataTypes.SizeOf(v.Type), first[s] + 1, last[s] + 1));
            requestSlot.Add(s);
        }
        var (offsets, arenaBytes) = MemoryPlanner.Plan(requests);
        if (arenaBytes > Array.MaxLength - MemoryPlanner.Alignment)
            throw new SquashException(ErrorCodes.TooLarge, $"The model needs {arenaBytes} bytes of activations, more than one arena can hold (2 GB).");
        var slotOffsets = new long[slots.Count];
        Array.Fill(slotOffsets, -1);
        for (int r = 0; r < requests.Count; r++) slotOffsets[requestSlot[r]] = offsets[r];
        return new PlanLayout
        {
            Slots = slots,
            Offsets = slotOffsets,
            InputSlots = inputSlots,
            OutputSlots = outputSlots,
            ArenaBytes = arenaBytes,
            GraphInputSlots = graphInputSlots,
            GraphOutputSlots = graphOutputSlots,
        };
    }
}
