using Squash.Runtime.Execution;

namespace Squash.Runtime;

/// <summary>A range of work items, run by <see cref="KernelContext.For{TBody}"/>.</summary>
public interface IRangeBody
{
    /// <summary>Processes items [<paramref name="start"/>, <paramref name="end"/>).</summary>
    void Invoke(int start, int end);
}

/// <summary>
/// How kernels may run: the number of threads, and scratch memory. One context serves one model run at a time.
/// </summary>
/// <remarks>
/// A context with one thread runs everything on the calling thread and owns no thread. With more, it starts
/// <see cref="ThreadCount"/> - 1 worker threads of its own the first time a kernel splits work, and keeps them until
/// <see cref="Dispose"/> (or until it is garbage collected). Own workers, not the thread pool, because a model makes a
/// hundred or more short parallel calls per run: waking a worker that is spinning or waiting on a monitor costs far
/// less than queueing work items to the pool (docs/performance.md, "Threads").
/// </remarks>
public sealed class KernelContext : IDisposable
{
    private byte[] _scratch = [];
    private WorkerPool? _pool;
    private bool _disposed;

    /// <summary>Creates a context.</summary>
    /// <param name="threadCount">Threads kernels may use, the calling thread included; 0 means
    /// <see cref="Environment.ProcessorCount"/>.</param>
    public KernelContext(int threadCount = 1)
    {
        if (threadCount < 0) throw new ArgumentOutOfRangeException(nameof(threadCount), "The thread count must be 0 (all cores) or more.");
        ThreadCount = threadCount == 0 ? Environment.ProcessorCount : threadCount;
    }

    /// <summary>Number of threads kernels may use.</summary>
    public int ThreadCount { get; }

    /// <summary>
    /// Runs <paramref name="body"/> over [0, <paramref name="count"/>) split into contiguous ranges of at least
    /// <paramref name="grain"/> items, on up to <see cref="ThreadCount"/> threads. Allocates nothing.
    /// </summary>
    /// <remarks>Runs on the calling thread alone with one thread, when there is one range, after
    /// <see cref="Dispose"/>, and when called from inside another <see cref="For{TBody}"/> of this context. An
    /// exception thrown by the body is rethrown on the calling thread once every range has finished.</remarks>
    public void For<TBody>(int count, TBody body, int grain = 1) where TBody : struct, IRangeBody
    {
        if (count <= 0) return;
        grain = Math.Max(1, grain);
        int maxChunks = (count + grain - 1) / grain;
        if (ThreadCount == 1 || maxChunks == 1 || _disposed)
        {
            body.Invoke(0, count);
            return;
        }
        // A few chunks per thread balance uneven work (and a worker that wakes late) without much claiming cost.
        (_pool ?? StartPool()).Run(count, body, Math.Min(maxChunks, ThreadCount * 4));
    }

    private WorkerPool StartPool()
    {
        var pool = new WorkerPool(ThreadCount - 1);
        var existing = Interlocked.CompareExchange(ref _pool, pool, null);
        if (existing is null) return pool;
        pool.Dispose();
        return existing;
    }

    /// <summary>A scratch buffer of at least <paramref name="bytes"/> bytes, reused across calls (not across threads).</summary>
    public byte[] Scratch(int bytes)
    {
        if (_scratch.Length < bytes) _scratch = new byte[bytes];
        return _scratch;
    }

    /// <summary>Stops the worker threads, if any were started. Kernels called afterwards run on the calling thread.</summary>
    public void Dispose()
    {
        _disposed = true;
        Interlocked.Exchange(ref _pool, null)?.Dispose();
    }
}
