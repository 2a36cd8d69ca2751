namespace Squash.Runtime.Tests;

/// <summary>
/// <see cref="KernelContext.For{TBody}"/> on the context's own worker threads: every index once, exceptions, nesting,
/// disposal, and no allocation per call.
/// </summary>
public sealed class KernelContextTests
{
    private readonly struct CountBody(int[] hits) : IRangeBody
    {
        public void Invoke(int start, int end)
        {
            for (int i = start; i < end; i++) Interlocked.Increment(ref hits[i]);
        }
    }

    private readonly struct SumBody(long[] sums, int slot) : IRangeBody
    {
        public void Invoke(int start, int end)
        {
            long s = 0;
            for (int i = start; i < end; i++) s += i;
            Interlocked.Add(ref sums[slot], s);
        }
    }

    private readonly struct ThrowBody(int at) : IRangeBody
    {
        public void Invoke(int start, int end)
        {
            if (start <= at && at < end) throw new InvalidOperationException($"item {at}");
        }
    }

    private readonly struct ThreadBody(int[] threadIds) : IRangeBody
    {
        public void Invoke(int start, int end)
        {
            for (int i = start; i < end; i++) threadIds[i] = Environment.CurrentManagedThreadId;
        }
    }

    /// <summary>Holds range 0 until another thread has taken a range (or a long timeout passes).</summary>
    private sealed class Rendezvous
    {
        public readonly ManualResetEventSlim OtherThreadJoined = new();
        public int Caller;
    }

    private readonly struct RendezvousBody(Rendezvous r) : IRangeBody
    {
        public void Invoke(int start, int end)
        {
            if (Environment.CurrentManagedThreadId != r.Caller) r.OtherThreadJoined.Set();
            else if (start == 0) r.OtherThreadJoined.Wait(TimeSpan.FromSeconds(30));
        }
    }

    private readonly struct NestedBody(KernelContext context, int[] hits) : IRangeBody
    {
        public void Invoke(int start, int end)
        {
            for (int i = start; i < end; i++) context.For(hits.Length, new CountBody(hits), 1);
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(8)]
    public void EveryIndexRunsExactlyOnce(int threads)
    {
        using var context = new KernelContext(threads);
        foreach (int count in new[] { 1, 2, 3, 7, 64, 1000, 100_003 })
            foreach (int grain in new[] { 1, 5, 4096 })
            {
                var hits = new int[count];
                context.For(count, new CountBody(hits), grain);
                Assert.All(hits, h => Assert.Equal(1, h));
            }
    }

    [Fact]
    public void ManyShortCallsOfDifferentBodiesGiveExactResults()
    {
        using var context = new KernelContext(2);
        var sums = new long[2];
        var hits = new int[17];
        for (int call = 0; call < 20_000; call++)
        {
            context.For(1000, new SumBody(sums, call & 1), 10);
            if (call % 100 == 0) context.For(17, new CountBody(hits), 1);
        }
        Assert.Equal(10_000L * (999 * 1000 / 2), sums[0]);
        Assert.Equal(10_000L * (999 * 1000 / 2), sums[1]);
        Assert.All(hits, h => Assert.Equal(200, h));
    }

    [Fact]
    public void OneThreadRunsOnTheCallingThread()
    {
        using var context = new KernelContext(1);
        var ids = new int[1000];
        context.For(ids.Length, new ThreadBody(ids), 1);
        Assert.All(ids, id => Assert.Equal(Environment.CurrentManagedThreadId, id));
    }

    [Fact]
    public void WorkersTakeRangesWhileTheCallerIsBusy()
    {
        using var context = new KernelContext(2);
        var rendezvous = new Rendezvous { Caller = Environment.CurrentManagedThreadId };
        context.For(8, new RendezvousBody(rendezvous), 1);
        Assert.True(rendezvous.OtherThreadJoined.IsSet, "no worker thread took a range");
    }

    [Fact]
    public void AnExceptionReachesTheCallerAfterEveryRangeAndTheContextStaysUsable()
    {
        using var context = new KernelContext(3);
        var e = Assert.Throws<InvalidOperationException>(() => context.For(100, new ThrowBody(57), 1));
        Assert.Equal("item 57", e.Message);
        var hits = new int[100];
        context.For(hits.Length, new CountBody(hits), 1);
        Assert.All(hits, h => Assert.Equal(1, h));
    }

    [Fact]
    public void ACallInsideABodyRunsInline()
    {
        using var context = new KernelContext(2);
        var hits = new int[10];
        context.For(40, new NestedBody(context, hits), 1);
        Assert.All(hits, h => Assert.Equal(40, h));
    }

    [Fact]
    public void CallsAfterDisposeRunOnTheCallingThread()
    {
        var context = new KernelContext(4);
        context.For(100, new CountBody(new int[100]), 1);
        context.Dispose();
        context.Dispose();
        var ids = new int[100];
        context.For(ids.Length, new ThreadBody(ids), 1);
        Assert.All(ids, id => Assert.Equal(Environment.CurrentManagedThreadId, id));
    }

    [Fact]
    public void ParallelCallsAllocateNothing()
    {
        using var context = new KernelContext(2);
        var sums = new long[2];
        var hits = new int[64];
        for (int i = 0; i < 100; i++)
        {
            context.For(1000, new SumBody(sums, 0), 10);
            context.For(64, new CountBody(hits), 1);
        }
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            context.For(1000, new SumBody(sums, 0), 10);
            context.For(64, new CountBody(hits), 1);
        }
        Assert.Equal(before, GC.GetAllocatedBytesForCurrentThread());
    }
}
