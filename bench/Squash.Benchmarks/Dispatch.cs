using System.Diagnostics;
using Squash.Runtime;

namespace Squash.Benchmarks;

/// <summary>
/// The cost of one parallel call: <see cref="KernelContext.For{TBody}"/> on a body of 4 items per thread, each WORK
/// steps of a dependent multiply-add (0: the fixed cost alone), against the same split through <see cref="Parallel.For(int, int, ParallelOptions, Action{int})"/>
/// (how KernelContext dispatched before it had its own workers) and against running inline on one thread. Blocks of
/// calls interleaved; prints min and median microseconds per call over the blocks.
/// <c>dotnet run -c Release --project bench/Squash.Benchmarks -- dispatch THREADS BLOCKS CALLS WORK</c>
/// </summary>
internal static class Dispatch
{
    private readonly struct Body(long[] sink, int work) : IRangeBody
    {
        public void Invoke(int start, int end)
        {
            long s = 0;
            for (int i = start; i < end; i++)
                for (int k = 0; k < work; k++) s = s * 31 + k;
            Interlocked.Add(ref sink[0], s);
        }
    }

    public static void Run(int threads, int blocks, int calls, int work)
    {
        var sink = new long[1];
        int count = threads * 4;
        var context = new KernelContext(threads);
        var inline = new KernelContext(1);
        var options = new ParallelOptions { MaxDegreeOfParallelism = threads };
        var body = new Body(sink, work);

        void Pool() => context.For(count, body, 1);
        void Inline() => inline.For(count, body, 1);
        void ThreadPool()
        {
            // KernelContext.ForParallel before this change: chunks as ranges through Parallel.For.
            int chunks = count, per = count / chunks, extra = count % chunks;
            Parallel.For(0, chunks, options, c =>
            {
                int start = c * per + Math.Min(c, extra);
                body.Invoke(start, start + per + (c < extra ? 1 : 0));
            });
        }

        var variants = new (string Name, Action Call, List<double> PerCall)[]
        {
            ("own workers", Pool, []),
            ("Parallel.For", ThreadPool, []),
            ("inline, 1 thread", Inline, []),
        };
        foreach (var v in variants) for (int i = 0; i < calls; i++) v.Call();
        for (int b = 0; b < blocks; b++)
            foreach (var v in b % 2 == 0 ? variants : variants.Reverse())
            {
                long start = Stopwatch.GetTimestamp();
                for (int i = 0; i < calls; i++) v.Call();
                v.PerCall.Add(Stopwatch.GetElapsedTime(start).TotalMicroseconds / calls);
            }
        context.Dispose();
        foreach (var v in variants)
            Console.WriteLine($"{v.Name,-18} threads={threads} work={work}: min {v.PerCall.Min():F2} us, median {Interleaved.Median(v.PerCall):F2} us per call");
    }
}
