using System.Diagnostics;
using Squash.Compiler;
using Squash.Compiler.Onnx;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Operators;

namespace Squash.Tools.OnnxFuzzer;

/// <summary>How one input ended.</summary>
public enum OutcomeKind
{
    /// <summary>Loaded and compiled (and, when possible, planned and run).</summary>
    Accepted,
    /// <summary>Refused with a coded <see cref="SquashException"/>.</summary>
    Refused,
    /// <summary>A bug: another exception, a hang, or too much memory.</summary>
    Finding,
}

/// <summary>The result of running one input.</summary>
/// <param name="Kind">How it ended.</param>
/// <param name="Stage">The last stage reached: load, pin, optimize, plan or run.</param>
/// <param name="Code">The diagnostic code of a refusal.</param>
/// <param name="Signature">For findings, what identifies the bug (exception type, stage and the method that threw);
/// for the others, the kind and code.</param>
/// <param name="Message">The exception's message, or what went wrong.</param>
/// <param name="AllocatedBytes">Bytes the run allocated (all of them, also those already freed).</param>
/// <param name="Elapsed">Wall time.</param>
/// <param name="Error">The exception, if any.</param>
public sealed record FuzzOutcome(OutcomeKind Kind, string Stage, string? Code, string Signature, string Message, long AllocatedBytes, TimeSpan Elapsed, Exception? Error)
{
    /// <summary>Time and bytes per stage, e.g. <c>load 12 ms 3 MB, optimize 4 ms 1 MB</c>.</summary>
    public string Timeline { get; init; } = "";
}

/// <summary>
/// Runs one model through the compiler's front end the way a build does (load, pin unknown input dimensions to 1,
/// optimize, plan when every shape is known, run the plan on zeros) on its own thread, with a time limit and a bound on
/// what it allocates. Anything but a result or a coded <see cref="SquashException"/> is a finding.
/// </summary>
public sealed class FuzzTarget
{
    /// <summary>Processor time one input may take. Measured as the process's processor time, not wall time, so a
    /// machine busy with other work does not turn slow inputs into false hangs.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Wall time one input may take, for hangs that use no processor (a blocking read).</summary>
    public TimeSpan WallTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Bytes one input may allocate in all (models here are small: more means a size went unchecked).</summary>
    public long MaxAllocatedBytes { get; init; } = 1L << 30;

    /// <summary>Largest arena the plan stage creates; larger plans are valid but not worth allocating here.</summary>
    public long MaxArenaBytes { get; init; } = 256L << 20;

    /// <summary>Whether to run the plan on zero inputs (exercises the kernels on the shapes inference accepted).</summary>
    public bool Execute { get; init; } = true;

    /// <summary>Folder external data resolves against (null forbids external data).</summary>
    public string? BaseDirectory { get; init; }

    /// <summary>Threads still running inputs that exceeded <see cref="Timeout"/> (they cannot be stopped).</summary>
    public int LeakedThreads => _leaked;

    private int _leaked;

    /// <summary>Runs <paramref name="model"/> and classifies the outcome.</summary>
    public FuzzOutcome Run(byte[] model)
    {
        var state = new RunState();
        var watch = Stopwatch.StartNew();
        var thread = new Thread(() => Work(model, state)) { IsBackground = true, Name = "fuzz-input" };
        using var process = Process.GetCurrentProcess();
        var cpuStart = process.TotalProcessorTime;
        thread.Start();
        while (!thread.Join(TimeSpan.FromMilliseconds(50)))
        {
            process.Refresh();
            var cpu = process.TotalProcessorTime - cpuStart;
            if (cpu <= Timeout && watch.Elapsed <= WallTimeout) continue;
            Interlocked.Increment(ref _leaked);
            return new FuzzOutcome(OutcomeKind.Finding, state.Stage, null, $"hang in {state.Stage}",
                $"still running after {cpu.TotalSeconds:0.#} s of processor time ({watch.Elapsed.TotalSeconds:0.#} s wall)", -1, watch.Elapsed, null);
        }
        var outcome = Classify(state, watch.Elapsed);
        return outcome with { Timeline = state.Timeline.ToString() };
    }

    private FuzzOutcome Classify(RunState state, TimeSpan elapsed)
    {
        var e = state.Error;
        string stage = state.Stage;
        if (state.Allocated > MaxAllocatedBytes)
            return new FuzzOutcome(OutcomeKind.Finding, stage, null, $"allocation in {state.MaxAllocationStage}",
                $"allocated {state.Allocated >> 20} MB (limit {MaxAllocatedBytes >> 20} MB); ended with {e?.GetType().Name ?? "success"}: {e?.Message}",
                state.Allocated, elapsed, e);
        if (e is null) return new FuzzOutcome(OutcomeKind.Accepted, stage, null, "accepted", "", state.Allocated, elapsed, null);
        if (e is SquashException se && IsCode(se.Code))
            return new FuzzOutcome(OutcomeKind.Refused, stage, se.Code, se.Code, se.Message, state.Allocated, elapsed, e);
        return new FuzzOutcome(OutcomeKind.Finding, stage, null, Signature(e, stage), e.Message, state.Allocated, elapsed, e);
    }

    private static bool IsCode(string? code) =>
        code is { Length: 6 } && code.StartsWith("SQ", StringComparison.Ordinal) && code.AsSpan(2).IndexOfAnyExceptInRange('0', '9') < 0;

    /// <summary>What identifies a bug: the exception type, the stage, and the innermost method of Squash that threw.</summary>
    public static string Signature(Exception e, string stage)
    {
        var root = e;
        while (root is SquashException { InnerException: { } inner }) root = inner;
        string where = "?";
        foreach (var frame in new StackTrace(root, false).GetFrames())
        {
            var type = frame.GetMethod()?.DeclaringType;
            if (type?.FullName is { } name && name.StartsWith("Squash.", StringComparison.Ordinal) && !name.StartsWith("Squash.Tools.", StringComparison.Ordinal))
            {
                // Lambdas and local functions live in nested compiler-generated types: name the outer type.
                while (type.DeclaringType is not null && type.Name.Contains('<', StringComparison.Ordinal)) type = type.DeclaringType;
                where = $"{type.Name}.{frame.GetMethod()!.Name}";
                break;
            }
        }
        return $"{root.GetType().Name} in {stage} at {where}";
    }

    private sealed class RunState
    {
        public volatile string Stage = "load";
        public Exception? Error;
        public long Allocated;
        public string MaxAllocationStage = "load";
        private long _stageStart;
        private long _maxStageBytes = -1;

        public readonly System.Text.StringBuilder Timeline = new();
        private readonly Stopwatch _watch = Stopwatch.StartNew();
        private TimeSpan _stageTime;

        public void Enter(string stage)
        {
            Account();
            Stage = stage;
        }

        public void Account()
        {
            long now = GC.GetAllocatedBytesForCurrentThread();
            if (now - _stageStart > _maxStageBytes)
            {
                _maxStageBytes = now - _stageStart;
                MaxAllocationStage = Stage;
            }
            var time = _watch.Elapsed;
            Timeline.Append(Timeline.Length == 0 ? "" : ", ").Append(System.FormattableString.Invariant($"{Stage} {(time - _stageTime).TotalMilliseconds:0} ms {(now - _stageStart) >> 20} MB"));
            _stageTime = time;
            _stageStart = now;
        }

        public void Start() => _stageStart = GC.GetAllocatedBytesForCurrentThread();
    }

    private void Work(byte[] bytes, RunState state)
    {
        long start = GC.GetAllocatedBytesForCurrentThread();
        state.Start();
        try
        {
            var model = OnnxLoader.Load(bytes, BaseDirectory, "fuzz");
            state.Enter("pin");
            var pins = new Dictionary<string, int[]>();
            foreach (var input in model.Graph.Inputs)
                if (input.Shape is { } shape && !Shapes.IsKnown(shape))
                    pins[input.Name] = [.. shape.Select(d => d < 0 ? 1 : d)];
            ModelPreparation.PinInputShapes(model, pins);
            state.Enter("optimize");
            ModelPreparation.Optimize(model);
            var graph = model.Graph;
            if (!ExecutionPlan.CanPlan(graph)) return;
            state.Enter("plan");
            var operators = graph.Nodes.Select(OperatorRegistry.Create).ToArray();
            var layout = PlanLayout.Compute(graph, operators, inputsInArena: false);
            if (layout.ArenaBytes > MaxArenaBytes) return;
            var plan = ExecutionPlan.Create(graph);
            if (!Execute) return;
            long inputBytes = 0;
            foreach (var input in graph.Inputs) inputBytes += Shapes.ElementCount(input.Shape!) * DataTypes.SizeOf(input.Type);
            if (inputBytes > MaxArenaBytes) return;
            state.Enter("run");
            var inputs = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            foreach (var input in graph.Inputs) inputs[input.Name] = new Tensor(input.Type, input.Shape!);
            plan.Run(inputs, new KernelContext(1));
        }
        catch (Exception e)
        {
            state.Error = e;
        }
        finally
        {
            state.Account();
            state.Allocated = GC.GetAllocatedBytesForCurrentThread() - start;
        }
    }
}
