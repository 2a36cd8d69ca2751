using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace Squash.Runtime.Execution;

/// <summary>
/// The worker threads of one <see cref="KernelContext"/>: they run the ranges of one parallel call at a time,
/// together with the calling thread.
/// </summary>
/// <remarks>
/// <para>A call publishes its body and its number of ranges, wakes the workers, and claims ranges itself like they
/// do (a counter counting down), so a worker that wakes late costs nothing: it finds nothing left. The caller then
/// waits, spinning, for the ranges workers took. Nothing is allocated per call: each body type gets one runner object
/// per pool, reused.</para>
/// <para>Idle workers spin for <see cref="SpinTicks"/> (the next node's parallel call usually comes sooner) and then
/// wait on a monitor. The threads reference only the <see cref="Core"/>, never this object, so a pool that is not
/// disposed is finalized and its threads stop.</para>
/// </remarks>
internal sealed class WorkerPool : IDisposable
{
    /// <summary>How long an idle worker spins before it blocks: about 100 µs.</summary>
    private static readonly long SpinTicks = Stopwatch.Frequency / 10_000;

    private readonly Core _core;

    /// <summary>Starts <paramref name="workers"/> background threads.</summary>
    public WorkerPool(int workers)
    {
        _core = new Core();
        for (int i = 0; i < workers; i++)
        {
            var thread = new Thread(_core.Work) { IsBackground = true, Name = $"Squash kernel worker {i + 1}" };
            thread.Start();
        }
    }

    ~WorkerPool() => _core.Stop();

    /// <summary>Runs <paramref name="body"/> over [0, <paramref name="count"/>) in <paramref name="chunks"/> ranges.</summary>
    public void Run<TBody>(int count, TBody body, int chunks) where TBody : struct, IRangeBody => _core.Run(count, body, chunks);

    /// <summary>Stops the threads (they finish the call in progress first).</summary>
    public void Dispose()
    {
        _core.Stop();
        GC.SuppressFinalize(this);
    }

    /// <summary>Invokes the body of the current call on one range.</summary>
    private abstract class Runner
    {
        public abstract void Invoke(int start, int end);
    }

    private sealed class Runner<TBody> : Runner where TBody : struct, IRangeBody
    {
        public TBody Body;

        public override void Invoke(int start, int end) => Body.Invoke(start, end);
    }

    /// <summary>The state the calling thread and the workers share.</summary>
    private sealed class Core
    {
        private readonly object _gate = new();
        private readonly Dictionary<Type, Runner> _runners = [];
        private Runner? _lastRunner;

        // The current call: its runner and ranges, written before _remaining publishes them and unchanged until every
        // range is done (a thread that claimed a range reads them after its claim, so it sees this call's values).
        private Runner? _runner;
        private int _count, _chunks;
        private int _remaining;    // ranges not yet claimed; claimed by counting down to 0
        private int _completed;    // ranges finished
        private ExceptionDispatchInfo? _error;

        private int _generation;   // incremented per call: wakes the workers
        private int _sleepers;     // workers blocked on _gate
        private int _busy;         // 1 while a call runs (a nested or concurrent call runs inline instead)
        private volatile bool _stopping;

        public void Run<TBody>(int count, TBody body, int chunks) where TBody : struct, IRangeBody
        {
            if (_stopping || Interlocked.Exchange(ref _busy, 1) != 0)
            {
                body.Invoke(0, count);
                return;
            }
            try
            {
                if (_lastRunner is not Runner<TBody> runner)
                {
                    if (!_runners.TryGetValue(typeof(TBody), out var found)) _runners[typeof(TBody)] = found = new Runner<TBody>();
                    _lastRunner = runner = (Runner<TBody>)found;
                }
                runner.Body = body;
                _runner = runner;
                _count = count;
                _chunks = chunks;
                _completed = 0;
                _error = null;
                Volatile.Write(ref _remaining, chunks);
                Interlocked.Increment(ref _generation);
                if (Volatile.Read(ref _sleepers) > 0)
                    lock (_gate) Monitor.PulseAll(_gate);
                Drain();
                // The ranges workers claimed are running now: wait briefly for them.
                var wait = new SpinWait();
                while (Volatile.Read(ref _completed) != chunks) wait.SpinOnce(sleep1Threshold: -1);
                runner.Body = default; // keep no tensors alive between calls
                _error?.Throw();
            }
            finally
            {
                Volatile.Write(ref _busy, 0);
            }
        }

        /// <summary>Claims and runs ranges of the current call until none is left.</summary>
        private void Drain()
        {
            while (true)
            {
                int remaining = Volatile.Read(ref _remaining);
                if (remaining <= 0) return;
                if (Interlocked.CompareExchange(ref _remaining, remaining - 1, remaining) != remaining) continue;
                int chunks = _chunks, per = _count / chunks, extra = _count % chunks;
                int c = chunks - remaining;
                int start = c * per + Math.Min(c, extra);
                int end = start + per + (c < extra ? 1 : 0);
                try
                {
                    _runner!.Invoke(start, end);
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref _error, ExceptionDispatchInfo.Capture(e), null);
                }
                Interlocked.Increment(ref _completed);
            }
        }

        /// <summary>A worker's loop: wait for a call, help with it, repeat until stopped.</summary>
        public void Work()
        {
            int seen = Volatile.Read(ref _generation);
            bool spin = Environment.ProcessorCount > 1;
            while (true)
            {
                long since = Stopwatch.GetTimestamp();
                while (Volatile.Read(ref _generation) == seen && !_stopping)
                {
                    if (spin && Stopwatch.GetTimestamp() - since < SpinTicks)
                    {
                        Thread.SpinWait(20);
                        continue;
                    }
                    lock (_gate)
                    {
                        // Interlocked: a full fence between announcing the sleep and checking for work, matched by the
                        // caller's increment of _generation before it reads _sleepers.
                        Interlocked.Increment(ref _sleepers);
                        while (Volatile.Read(ref _generation) == seen && !_stopping) Monitor.Wait(_gate);
                        Interlocked.Decrement(ref _sleepers);
                    }
                }
                if (_stopping) return;
                seen = Volatile.Read(ref _generation);
                Drain();
            }
        }

        public void Stop()
        {
            _stopping = true;
            Interlocked.Increment(ref _generation);
            lock (_gate) Monitor.PulseAll(_gate);
        }
    }
}
