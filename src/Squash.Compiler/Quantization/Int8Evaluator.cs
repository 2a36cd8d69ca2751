using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Quantization;

/// <summary>What running one quantization plan on the evaluation samples gave.</summary>
/// <param name="Output">The model's float outputs against fp32's.</param>
/// <param name="Probe">The probed tensor against its fp32 value (null when nothing was probed, or the probe is not
/// computed in the rewritten graph).</param>
/// <param name="Rewrite">What the int8 rewrite did.</param>
public sealed record PlanEvaluation(OutputAgreement Output, OutputAgreement? Probe, Int8QuantizationReport Rewrite);

/// <summary>
/// Runs quantization plans of one fp32 graph on a fixed set of samples and compares them with the fp32 graph: each plan
/// rewrites a copy of the graph with <see cref="Int8Quantization.Apply"/> and runs it with an <see cref="ExecutionPlan"/>,
/// the same operators and memory plan the generated code runs. The fp32 outputs are computed once; a probed
/// intermediate tensor is computed again in fp32 per evaluation (so memory does not grow with the number of tensors).
/// </summary>
internal sealed class Int8Evaluator
{
    private readonly Graph _graph;
    private readonly CalibrationResult _calibration;
    private readonly IReadOnlyList<IReadOnlyDictionary<string, Tensor>> _samples;
    private readonly KernelContext _context;
    private readonly List<Dictionary<string, Tensor>> _reference = [];
    private ExecutionPlan? _fp32;

    /// <param name="graph">The fp32 graph as it is quantized (optimized, prepared, shapes pinned); not modified.</param>
    /// <param name="calibration">Its calibrated ranges.</param>
    /// <param name="samples">The inputs to compare on (the held-out calibration samples).</param>
    /// <param name="context">Threads for the kernels (results do not depend on them).</param>
    public Int8Evaluator(Graph graph, CalibrationResult calibration, IReadOnlyList<IReadOnlyDictionary<string, Tensor>> samples, KernelContext context)
    {
        if (samples.Count == 0)
            throw new SquashException(ErrorCodes.CalibrationData, "There are no samples to measure accuracy on; give more calibration samples.");
        _graph = graph;
        _calibration = calibration;
        _samples = samples;
        _context = context;
        foreach (var sample in samples) _reference.Add(Fp32.Run(sample, context));
    }

    /// <summary>The fp32 graph.</summary>
    public Graph Graph => _graph;

    /// <summary>Number of samples compared.</summary>
    public int SampleCount => _samples.Count;

    private ExecutionPlan Fp32 => _fp32 ??= ExecutionPlan.Create(GraphCopy.Of(_graph));

    /// <summary>The default plan of the graph, with <paramref name="exclusions"/> and the units that do not run in int8 in
    /// <paramref name="fallback"/>.</summary>
    public QuantizationPlan DefaultPlan(QuantizationExclusions? exclusions = null, NodePrecision fallback = NodePrecision.Fp32) =>
        QuantizationPlan.Create(_graph, exclusions, fallback);

    /// <summary>A copy of the graph rewritten to <paramref name="plan"/> (its fp16 units' weights rounded to float16, as
    /// they will run).</summary>
    public (Graph Graph, Int8QuantizationReport Report) Rewrite(QuantizationPlan plan)
    {
        var copy = GraphCopy.Of(_graph);
        var report = Int8Quantization.Apply(copy, _calibration, plan);
        return (copy, report);
    }

    /// <summary>Runs <paramref name="plan"/> on the samples; with <paramref name="probe"/> (a float value name of the
    /// fp32 graph), also compares that tensor.</summary>
    public PlanEvaluation Evaluate(QuantizationPlan plan, string? probe = null)
    {
        var (graph, report) = Rewrite(plan);
        var executable = ExecutionPlan.Create(graph);
        var outputs = new AgreementAccumulator();
        var probed = probe is null ? null : new AgreementAccumulator();
        bool probeFound = false;
        Tensor? reference = null, actual = null;
        if (probe is not null)
        {
            // The probe is computed as the float value itself or as the uint8 tensor that stands for it.
            var uint8 = report.UInt8Values.Where(p => p.Value.FloatValue == probe).Select(p => (p.Key, p.Value.Quantization)).FirstOrDefault();
            executable.NodeCompleted = (node, results) =>
            {
                for (int k = 0; k < node.Outputs.Count; k++)
                {
                    if (node.Outputs[k].Name == probe && results[k].DataType == DataType.Float) actual = results[k].Clone();
                    else if (uint8.Key is not null && node.Outputs[k].Name == uint8.Key) actual = Dequantize(results[k], uint8.Quantization);
                }
            };
        }
        for (int s = 0; s < _samples.Count; s++)
        {
            actual = null;
            var results = executable.Run(_samples[s], _context);
            foreach (var (name, expected) in _reference[s])
                if (expected.DataType == DataType.Float) outputs.Add(expected.AsSpan<float>(), results[name].AsSpan<float>());
            if (probe is null || actual is null) continue;
            probeFound = true;
            reference = null;
            var fp32 = Fp32;
            fp32.NodeCompleted = (node, values) =>
            {
                for (int k = 0; k < node.Outputs.Count; k++)
                    if (node.Outputs[k].Name == probe) reference = values[k].Clone();
            };
            try
            {
                fp32.Run(_samples[s], _context);
            }
            finally
            {
                fp32.NodeCompleted = null;
            }
            if (reference is not null) probed!.Add(reference.AsSpan<float>(), actual.AsSpan<float>());
        }
        return new PlanEvaluation(outputs.Result(), probeFound ? probed!.Result() : null, report);
    }

    private static Tensor Dequantize(Tensor q, AffineQuantization p)
    {
        var result = new Tensor(DataType.Float, (int[])q.Shape.Clone());
        var source = q.AsSpan<byte>();
        var target = result.AsSpan<float>();
        for (int i = 0; i < source.Length; i++) target[i] = (source[i] - p.ZeroPoint) * p.Scale;
        return result;
    }
}
