using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Squash.Compiler.Passes;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Quantization;

/// <summary>
/// What an activation-aware int4 quantizer knows about the inputs x (rows of K features) that multiply one weight:
/// the Gram matrix X^T X summed over every calibration row, which is GPTQ's Hessian up to a factor.
/// </summary>
public sealed class Int4ActivationStatistics
{
    /// <summary>Empty statistics for <paramref name="k"/> input features.</summary>
    public Int4ActivationStatistics(int k)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(k);
        K = k;
        Gram = new double[(long)k * k];
    }

    /// <summary>Input features.</summary>
    public int K { get; }

    /// <summary>Calibration rows seen.</summary>
    public long Rows { get; private set; }

    /// <summary>Sum over rows of x x^T, K x K row-major, in double.</summary>
    public double[] Gram { get; }

    /// <summary>Adds rows of K features each.</summary>
    public void Add(ReadOnlySpan<float> rows)
    {
        if (rows.Length % K != 0) throw new ArgumentException($"{rows.Length} values are not rows of {K}.", nameof(rows));
        var x = new double[K];
        for (int r = 0; r < rows.Length / K; r++)
        {
            for (int i = 0; i < K; i++) x[i] = rows[r * K + i];
            for (int i = 0; i < K; i++)
                if (x[i] != 0)
                {
                    var row = Gram.AsSpan(i * K, K);
                    TensorPrimitives.MultiplyAdd(x, x[i], row, row);
                }
            Rows++;
        }
    }
}

/// <summary>
/// The calibration run of activation-aware int4: runs the fp32 graph on calibration samples and accumulates, for every
/// constant float weight of a MatMul or Gemm (transA = 0), the Gram matrix of the rows it multiplies, keyed by the
/// weight's name (<see cref="Int4QuantizationOptions.Activations"/>; weights that multiply the same activation share one
/// object). Run it on the graph as it will be quantized (after
/// <see cref="Pipeline.Optimize"/>), since the pass looks weights up by name.
/// </summary>
public static class Int4Calibration
{
    /// <summary>Runs every sample (one dictionary of inputs each) and returns the statistics per weight name.</summary>
    /// <exception cref="SquashException">There is no sample (SQ1016), or a sample does not run.</exception>
    public static Dictionary<string, Int4ActivationStatistics> Collect(Graph graph, IEnumerable<IReadOnlyDictionary<string, Tensor>> samples,
        KernelContext? context = null)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(samples);
        // Which activation feeds which weight, and along which K. Weights that read the same activation (a layer's q, k
        // and v) share one statistics object: the same Gram matrix, computed and held once. A weight read with several
        // activations gets its own object, summed over all of them.
        var readers = new Dictionary<Value, List<(Value Weight, int K)>>();
        var activationsOf = new Dictionary<Value, HashSet<Value>>();
        foreach (var node in graph.Nodes)
        {
            if (Weight(node) is not var (a, weight, k)) continue;
            if (!readers.TryGetValue(a, out var list)) readers[a] = list = [];
            list.Add((weight, k));
            if (!activationsOf.TryGetValue(weight, out var set)) activationsOf[weight] = set = [];
            set.Add(a);
        }
        var result = new Dictionary<string, Int4ActivationStatistics>(StringComparer.Ordinal);
        var shared = new Dictionary<(Value, int), Int4ActivationStatistics>();
        var targets = new Dictionary<Value, List<Int4ActivationStatistics>>();
        foreach (var (a, list) in readers)
        {
            var forActivation = targets[a] = [];
            foreach (var (weight, k) in list)
            {
                if (result.TryGetValue(weight.Name, out var existing))
                {
                    if (!forActivation.Contains(existing) && existing.K == k) forActivation.Add(existing);
                    continue;
                }
                Int4ActivationStatistics stats;
                if (activationsOf[weight].Count > 1) stats = new Int4ActivationStatistics(k);
                else if (!shared.TryGetValue((a, k), out stats!)) shared[(a, k)] = stats = new Int4ActivationStatistics(k);
                result[weight.Name] = stats;
                if (!forActivation.Contains(stats)) forActivation.Add(stats);
            }
        }
        void Observe(Value value, Tensor tensor)
        {
            if (!targets.TryGetValue(value, out var list) || tensor.DataType != DataType.Float) return;
            foreach (var stats in list)
                if (tensor.ElementCount % stats.K == 0) stats.Add(tensor.AsSpan<float>());
        }
        var executor = new GraphExecutor(graph)
        {
            NodeCompleted = (node, outputs) =>
            {
                for (int i = 0; i < outputs.Length && i < node.Outputs.Count; i++) Observe(node.Outputs[i], outputs[i]);
            },
        };
        int count = 0;
        foreach (var sample in samples)
        {
            foreach (var input in graph.Inputs)
                if (sample.TryGetValue(input.Name, out var tensor)) Observe(input, tensor);
            executor.Run(sample, context);
            count++;
        }
        if (count == 0) throw new SquashException(ErrorCodes.CalibrationData, "Int4 calibration needs at least one sample.");
        return result;
    }

    /// <summary>The activation, the constant weight and K of a MatMul or Gemm (transA = 0) with a constant 2-D float right
    /// operand, or null.</summary>
    private static (Value A, Value Weight, int K)? Weight(Node node)
    {
        if (node.Input(0) is not { } a || node.Input(1) is not { Constant: { DataType: DataType.Float, Rank: 2 } w } weight) return null;
        if (GraphQueries.Is(node, "MatMul")) return (a, weight, w.Shape[0]);
        if (!GraphQueries.Is(node, "Gemm") || node.Attributes.TryGetValue("transA", out var ta) && ta.IntValue != 0) return null;
        bool transB = node.Attributes.TryGetValue("transB", out var tb) && tb.IntValue != 0;
        return (a, weight, w.Shape[transB ? 1 : 0]);
    }
}
