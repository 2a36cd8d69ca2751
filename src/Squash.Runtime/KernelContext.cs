namespace Squash.Runtime;

/// <summary>A range of work items, run by <see cref="KernelContext.For{TBody}"/>.</summary>
public interface IRangeBody
{
    /// <summary>Processes items [<paramref name="start"/>, <paramref name="end"/>).</summary>
    void Invoke(int start, int end);
}

/// <summary>
/// How kernels may run: the number of threads, and scratch memory. A context with one thread never touches the
/// thread pool. One context serves one model run at a time.
/// </summary>
public sealed class KernelContext
{
    private byte[] _scratch = [];

    /// <summary>Creates a context.</summary>
    /// <param name="threadCount">Threads kernels may use; 0 means <see cref="Environment.ProcessorCount"/>.</param>
    public KernelContext(int threadCount = 1)
    {
        if (threadCount < 0) throw new ArgumentOutOfRangeException(nameof(threadCount), "The thread count must be 0 (all cores) or more.");
        ThreadCount = threadCount == 0 ? Environment.ProcessorCount : threadCount;
        _options = new ParallelOptions { MaxDegreeOfParallelism = ThreadCount };
    }

    private readonly ParallelOptions _options;

    /// <summary>Number of threads kernels may use.</summary>
    public int ThreadCount { get; }

    /// <summary>
    /// Runs <paramref name="body"/> over [0, <paramref name="count"/>) split into contiguous ranges of at least
    /// <paramref name="grain"/> items, on up to <see cref="ThreadCount"/> threads.
    /// </summary>
    public void For<TBody>(int count, TBody body, int grain = 1) where TBody : struct, IRangeBody
    {
        if (count <= 0) return;
        grain = Math.Max(1, grain);
        int maxChunks = (count + grain - 1) / grain;
        if (ThreadCount == 1 || maxChunks == 1)
        {
            body.Invoke(0, count);
            return;
        }
        ForParallel(count, body, Math.Min(maxChunks, ThreadCount * 4));
    }

    // Separate so that the closure is only allocated when work really goes to other threads.
    private void ForParallel<TBody>(int count, TBody body, int chunks) where TBody : struct, IRangeBody
    {
        // A few chunks per thread balance uneven work without much scheduling cost.
        int per = count / chunks, extra = count % chunks;
        Parallel.For(0, chunks, _options, c =>
        {
            int start = c * per + Math.Min(c, extra);
            int end = start + per + (c < extra ? 1 : 0);
            body.Invoke(start, end);
        });
    }

    /// <summary>A scratch buffer of at least <paramref name="bytes"/> bytes, reused across calls (not across threads).</summary>
    public byte[] Scratch(int bytes)
    {
        if (_scratch.Length < bytes) _scratch = new byte[bytes];
        return _scratch;
    }
}
