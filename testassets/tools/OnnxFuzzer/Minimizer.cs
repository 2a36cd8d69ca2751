namespace Squash.Tools.OnnxFuzzer;

/// <summary>
/// Shrinks an input while a predicate (usually "the same finding") still holds, by deleting protobuf fields anywhere in
/// the message tree, so corpus files stay small and show only what matters.
/// </summary>
public static class Minimizer
{
    /// <summary>Returns the smallest variant of <paramref name="input"/> found within <paramref name="budget"/> attempts.</summary>
    public static byte[] Minimize(byte[] input, Func<byte[], bool> stillFails, int budget = 2000)
    {
        int attempts = 0;
        byte[] best = input;
        bool progress = true;
        while (progress && attempts < budget)
        {
            progress = false;
            best = Shrink(best, b => b, ref progress, ref attempts, budget, stillFails, depth: 0, best);
        }
        return best;
    }

    private static byte[] Shrink(ReadOnlyMemory<byte> message, Func<byte[], byte[]> wrap, ref bool progress, ref int attempts,
        int budget, Func<byte[], bool> stillFails, int depth, byte[] best)
    {
        if (!ProtoWire.TryParse(message, out var fields) || fields.Count == 0 || depth > 64) return best;
        // Delete fields, last first (later fields are usually the ones added by mutations or the least needed).
        for (int i = fields.Count - 1; i >= 0 && attempts < budget; i--)
        {
            var trial = new List<WireField>(fields);
            trial.RemoveAt(i);
            var candidate = wrap(ProtoWire.Write(trial));
            attempts++;
            if (candidate.Length < best.Length && stillFails(candidate))
            {
                fields = trial;
                best = candidate;
                progress = true;
            }
        }
        // Then inside each remaining nested message.
        for (int i = 0; i < fields.Count && attempts < budget; i++)
        {
            if (fields[i].WireType != WireField.Length || fields[i].Bytes.Length == 0) continue;
            int index = i;
            var current = fields;
            byte[] Wrap(byte[] child)
            {
                var copy = new List<WireField>(current);
                copy[index] = copy[index] with { Bytes = child };
                return wrap(ProtoWire.Write(copy));
            }
            var before = best;
            best = Shrink(fields[i].Bytes, Wrap, ref progress, ref attempts, budget, stillFails, depth + 1, best);
            // A child shrank: this level's fields are stale; the next round starts again from the top.
            if (!ReferenceEquals(before, best)) return best;
        }
        return best;
    }
}
