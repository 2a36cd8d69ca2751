namespace Squash.Runtime.Execution;

/// <summary>
/// Places tensors with known sizes and lifetimes in one arena so that tensors alive at the same time never overlap
/// and dead ones are reused: best-fit over a free list, offsets aligned for vector loads.
/// </summary>
public static class MemoryPlanner
{
    /// <summary>Alignment of every tensor in the arena, in bytes (one cache line; Vector512 loads never split).</summary>
    public const int Alignment = 64;

    /// <summary>A tensor to place: its size and the first and last step (inclusive) during which it must exist.</summary>
    public readonly record struct Request(long Bytes, int FirstStep, int LastStep);

    /// <summary>Computes an offset for every request and the arena size they need.</summary>
    public static (long[] Offsets, long ArenaBytes) Plan(IReadOnlyList<Request> requests)
    {
        var offsets = new long[requests.Count];
        // Allocate in order of first use; free after last use. A request that starts at step s may reuse memory of
        // any tensor whose last step is before s.
        var order = Enumerable.Range(0, requests.Count).OrderBy(i => requests[i].FirstStep).ThenBy(i => i).ToArray();
        var free = new List<(long Offset, long Size)>();
        var live = new List<int>();
        long arena = 0;
        foreach (int i in order)
        {
            var r = requests[i];
            // Release every block whose lifetime ended before this one begins.
            for (int k = live.Count - 1; k >= 0; k--)
            {
                int j = live[k];
                if (requests[j].LastStep < r.FirstStep)
                {
                    Release(free, offsets[j], Align(requests[j].Bytes));
                    live.RemoveAt(k);
                }
            }
            long size = Align(Math.Max(r.Bytes, 1));
            int best = -1;
            for (int k = 0; k < free.Count; k++)
                if (free[k].Size >= size && (best < 0 || free[k].Size < free[best].Size)) best = k;
            if (best >= 0)
            {
                var block = free[best];
                offsets[i] = block.Offset;
                if (block.Size == size) free.RemoveAt(best);
                else free[best] = (block.Offset + size, block.Size - size);
            }
            else if (free.Count > 0 && free[^1].Offset + free[^1].Size == arena)
            {
                // Grow the arena from the free block at its end rather than leaving that block unused.
                var tail = free[^1];
                free.RemoveAt(free.Count - 1);
                offsets[i] = tail.Offset;
                arena = tail.Offset + size;
            }
            else
            {
                offsets[i] = arena;
                arena += size;
            }
            live.Add(i);
        }
        return (offsets, arena);
    }

    private static long Align(long bytes) => (bytes + Alignment - 1) / Alignment * Alignment;

    private static void Release(List<(long Offset, long Size)> free, long offset, long size)
    {
        // Keep the free list sorted by offset and merge neighbours.
        int index = 0;
        while (index < free.Count && free[index].Offset < offset) index++;
        free.Insert(index, (offset, size));
        if (index + 1 < free.Count && free[index].Offset + free[index].Size == free[index + 1].Offset)
        {
            free[index] = (free[index].Offset, free[index].Size + free[index + 1].Size);
            free.RemoveAt(index + 1);
        }
        if (index > 0 && free[index - 1].Offset + free[index - 1].Size == free[index].Offset)
        {
            free[index - 1] = (free[index - 1].Offset, free[index - 1].Size + free[index].Size);
            free.RemoveAt(index);
        }
    }
}
