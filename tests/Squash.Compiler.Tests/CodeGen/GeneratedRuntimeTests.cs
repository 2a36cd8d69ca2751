using System.Reflection;
using Squash.Compiler.CodeGen;
using Squash.Compiler.Compilation;
using Squash.Compiler.Onnx;
using Squash.Compiler.Tests.Models;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Tests.CodeGen;

/// <summary>
/// How generated classes behave at run time: no allocation per call after the first, views and in-place steps,
/// concurrent calls (on one instance they wait for each other; instances run in parallel), Dispose.
/// </summary>
public sealed class GeneratedRuntimeTests(GeneratedRuntimeTests.Compiled compiled) : IClassFixture<GeneratedRuntimeTests.Compiled>
{
    /// <summary>PP-OCR cls and a small model with views and in-place steps, compiled once, with a probe class that calls
    /// their span API (reflection cannot pass spans, and would allocate).</summary>
    public sealed class Compiled : IDisposable
    {
        private readonly string _dir = Directory.CreateTempSubdirectory("squash-genrt-").FullName;

        public Compiled()
        {
            ClsPath = PpOcr.ModelPath(PpOcr.Cls);
            SmallPath = Path.Combine(_dir, "small.onnx");
            OnnxWriter.Save(SmallModel(), SmallPath);
            var (clsSource, clsWeights) = Generate(ClsPath, "Cls", new() { ["x"] = [1, 3, 48, 192] });
            var (smallSource, smallWeights) = Generate(SmallPath, "Small", []);
            SmallSource = smallSource;
            Assembly = InMemoryCompiler.Compile([clsSource, smallSource, ProbeSource],
                [("Tests.Cls.sqw", clsWeights), ("Tests.Small.sqw", smallWeights)]);
        }

        public string ClsPath { get; }

        public string SmallPath { get; }

        public string SmallSource { get; }

        public Assembly Assembly { get; }

        public ISquashModel Create(string className, int threads) =>
            (ISquashModel)Activator.CreateInstance(Assembly.GetType("Tests." + className)!, [threads])!;

        public object? Probe(string method, params object[] arguments) =>
            Assembly.GetType("Tests.Probe")!.GetMethod(method)!.Invoke(null, arguments);

        public void Dispose() => Directory.Delete(_dir, recursive: true);

        private (string Source, byte[] Weights) Generate(string modelPath, string className, Dictionary<string, int[]> shapes)
        {
            var result = ModelCompiler.Compile(new CompileRequest
            {
                ModelPath = modelPath,
                OutputDirectory = _dir,
                OutputName = className,
                InputShapes = shapes,
                Class = new ModelClassOptions { ClassName = className, Namespace = "Tests", WeightsName = $"Tests.{className}.sqw", SourceFileName = "", SourceSha256 = "" },
            });
            return (File.ReadAllText(result.SourcePath), File.ReadAllBytes(result.WeightsPath!));
        }

        private const string ProbeSource = """
            namespace Tests;
            using System;
            using System.Runtime.InteropServices;

            public static class Probe
            {
                public static long ClsAllocatedBytes(Cls model, float[] x, int calls)
                {
                    var y = new float[Cls.Softmax0Tmp0Length];
                    model.Run(x, y);
                    model.Run(x, y);
                    // The least over several windows: the runtime itself may allocate on this thread while it
                    // re-JITs hot methods (tiered compilation, late under load), but an allocation of our code
                    // would show in every window.
                    long least = long.MaxValue;
                    for (int window = 0; window < 5; window++)
                    {
                        long before = GC.GetAllocatedBytesForCurrentThread();
                        for (int i = 0; i < calls; i++) model.Run(x, y);
                        least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - before);
                    }
                    return least;
                }

                public static float[] Small(Small model, float[] x)
                {
                    var y = new float[Tests.Small.YLength];
                    model.Run(x, y);
                    return y;
                }

                /// <summary>Runs input (offset + i) % count for i below runs; returns the number of outputs that differ
                /// (by bits) from the expected ones.</summary>
                public static int Stress(Small model, float[][] inputs, float[][] expected, int runs, int offset)
                {
                    var y = new float[Tests.Small.YLength];
                    int mismatches = 0;
                    for (int i = 0; i < runs; i++)
                    {
                        int k = (offset + i) % inputs.Length;
                        model.Run(inputs[k], y);
                        if (!MemoryMarshal.AsBytes(y.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(expected[k].AsSpan()))) mismatches++;
                    }
                    return mismatches;
                }
            }
            """;
    }

    /// <summary>x [1,3,12,12] -> Conv -> Relu -> Reshape -> Mul -> Add -> Sigmoid -> Flatten -> MatMul -> Softmax
    /// -> Reshape: views (the Reshapes and Flatten) and in-place steps (Mul, Add, Sigmoid over their inputs).</summary>
    private static Model SmallModel()
    {
        var rng = new Random(3);
        Tensor Random(params int[] shape)
        {
            var t = new Tensor(DataType.Float, shape);
            var span = t.AsSpan<float>();
            for (int i = 0; i < span.Length; i++) span[i] = (float)(rng.NextDouble() - 0.5);
            return t;
        }
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 1, 3, 12, 12);
        var conv = b.Node("Conv", x, b.Constant(Random(6, 3, 3, 3)), b.Constant(Random(6)));
        var relu = b.Node("Relu", conv);
        var rows = b.Node("Reshape", relu, b.Constant(Tensor.From<long>([1, 6, 100], 3)));
        var scaled = b.Node("Mul", rows, b.Constant(Random(1, 6, 1)));
        var shifted = b.Node("Add", scaled, b.Constant(Random(100)));
        var squashed = b.Node("Sigmoid", shifted);
        var flat = b.Node("Flatten", squashed);
        var logits = b.Node("MatMul", flat, b.Constant(Random(600, 10)));
        var probabilities = b.Node("Softmax", logits);
        var y = b.Node("Reshape", probabilities, b.Constant(Tensor.From<long>([2, 5], 2)));
        y.Name = "y";
        b.Output(y);
        return b.Build();
    }

    private static float[] RandomInput(int seed, int length)
    {
        var rng = new Random(seed);
        var values = new float[length];
        for (int i = 0; i < values.Length; i++) values[i] = (float)(rng.NextDouble() * 2 - 1);
        return values;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void ClsAllocatesNothingPerCallAfterTheFirst(int threads)
    {
        using var model = compiled.Create("Cls", threads);
        var x = Models.PpOcr.Load(Models.PpOcr.Samples("eval", "cls")[0]).AsSpan<float>().ToArray();
        Assert.Equal(0L, (long)compiled.Probe("ClsAllocatedBytes", model, x, 20)!);
    }

    [Fact]
    public void ViewsRunNothingAndElementwiseStepsRunInPlace()
    {
        string source = compiled.SmallSource;
        Assert.Equal(3, Count(source, "(a view of its input: nothing to run)"));
        // Mul, Add and Sigmoid are one FusedElementwise step (Pipeline.Fuse), which writes over its input.
        Assert.True(Count(source, " (in place over ") >= 1, "the fused Mul, Add and Sigmoid should write over their input");
        // Steps are the nodes that run: views get no operator.
        var loaded = OnnxLoader.Load(compiled.SmallPath);
        ModelPreparation.OptimizeForCpu(loaded);
        Assert.Equal(loaded.Graph.Nodes.Count - 3, Count(source, ".Run(_context, _in["));

        var plan = ExecutionPlan.Create(loaded.Graph);
        using var model = compiled.Create("Small", 1);
        for (int seed = 0; seed < 3; seed++)
        {
            var x = RandomInput(seed, 3 * 12 * 12);
            var expected = plan.Run(new Dictionary<string, Tensor> { ["x"] = Tensor.From<float>(x, 1, 3, 12, 12) })["y"];
            Assert.Equal(expected.AsSpan<float>().ToArray(), (float[])compiled.Probe("Small", model, x)!);
        }
    }

    private static int Count(string text, string part)
    {
        int count = 0;
        for (int at = text.IndexOf(part, StringComparison.Ordinal); at >= 0; at = text.IndexOf(part, at + 1, StringComparison.Ordinal)) count++;
        return count;
    }

    [Fact]
    public void ConcurrentCallsGiveTheSingleThreadedResultsBitForBit()
    {
        // 8 threads x 1,000 runs, on one shared instance (calls wait for each other) and on one instance per thread.
        const int Threads = 8, Runs = 1000;
        var inputs = Enumerable.Range(0, 5).Select(seed => RandomInput(100 + seed, 3 * 12 * 12)).ToArray();
        float[][] expected;
        using (var single = compiled.Create("Small", 1))
            expected = [.. inputs.Select(x => (float[])compiled.Probe("Small", single, x)!)];

        using var shared = compiled.Create("Small", 1);
        var sharedMismatches = RunThreads(Threads, t => (int)compiled.Probe("Stress", shared, inputs, expected, Runs, t)!);
        Assert.All(sharedMismatches, m => Assert.Equal(0, m));

        var ownMismatches = RunThreads(Threads, t =>
        {
            using var own = compiled.Create("Small", 1 + t % 2);
            return (int)compiled.Probe("Stress", own, inputs, expected, Runs, t)!;
        });
        Assert.All(ownMismatches, m => Assert.Equal(0, m));
    }

    private static int[] RunThreads(int count, Func<int, int> body)
    {
        var results = new int[count];
        var errors = new Exception?[count];
        var threads = Enumerable.Range(0, count).Select(t => new Thread(() =>
        {
            try
            {
                results[t] = body(t);
            }
            catch (Exception e)
            {
                errors[t] = e;
            }
        })).ToArray();
        foreach (var thread in threads) thread.Start();
        foreach (var thread in threads) thread.Join();
        foreach (var e in errors) if (e is not null) throw new InvalidOperationException("A thread failed.", e);
        return results;
    }

    [Fact]
    public void DisposedModelsRefuseCalls()
    {
        var model = compiled.Create("Small", 2);
        var x = RandomInput(7, 3 * 12 * 12);
        compiled.Probe("Small", model, x);
        model.Dispose();
        model.Dispose();
        var e = Assert.Throws<TargetInvocationException>(() => compiled.Probe("Small", model, x));
        Assert.IsType<ObjectDisposedException>(e.InnerException);
        Assert.Throws<ObjectDisposedException>(() => model.Run(new Dictionary<string, Tensor> { ["x"] = Tensor.From<float>(x, 1, 3, 12, 12) }));
    }
}
