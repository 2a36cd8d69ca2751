using System.Globalization;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Squash.Runtime;
using Squash.Runtime.Ir;
using Squash.Runtime.Operators;

namespace Squash.Compiler.Quantization;

/// <summary>What fp16 did to one weight.</summary>
/// <param name="Weight">The constant's name.</param>
/// <param name="Node">The first node that reads it.</param>
/// <param name="Elements">Its number of values.</param>
/// <param name="Fp16">True when it was rounded to float16 values (and is stored as float16).</param>
/// <param name="SqnrDb">Signal to rounding noise of the float16 values, in dB (infinity when rounding changed nothing;
/// NaN when the weight holds non-finite values).</param>
/// <param name="KeptFp32Because">Why it stayed fp32, or null.</param>
public sealed record Fp16WeightReport(string Weight, string Node, long Elements, bool Fp16, double SqnrDb, string? KeptFp32Because);

/// <summary>
/// fp16 weights (<c>Precision="fp16"</c>, and the int8 units that fall back to fp16): the float32 constant weights of
/// the products (Conv, ConvTranspose, MatMul, Gemm and their com.squash Fused forms) and large Gather tables are
/// rounded to float16 values (round to nearest, ties to even) in the graph itself, so that every later stage
/// (interpreter, calibration, tests, the generated code) computes with exactly the values that will run. The weights
/// file then stores them as float16 (<see cref="StorageType"/>), and the runtime widens them to float32 once, when it
/// loads them: compute stays fp32.
/// </summary>
/// <remarks>
/// <para>A weight stays fp32 when a value lies beyond float16's range (|w| &gt; 65504, or not finite: it would become
/// infinity), or when rounding costs more than <see cref="MinSqnrDb"/> of signal to noise. Float16 keeps 11 significant
/// bits, so rounding a weight whose values are normal float16 numbers (|w| ≥ 2^-14) measures about 70 dB; only a
/// weight whose energy sits in float16's subnormal range (|w| &lt; 6.1e-5, where precision falls off to zero) measures
/// less. 60 dB (noise a millionth of the signal's power) leaves 10 dB for ordinary weights and keeps such tiny tensors in
/// fp32.</para>
/// <para>Biases (a Conv's or Gemm's third input) and the other small constants stay fp32: a bias has one value per
/// output channel, a fraction of a percent of the product's weights, so float16 would save almost nothing, while its
/// error is added to every output as it is instead of being averaged over a dot product.</para>
/// </remarks>
public static class Fp16Weights
{
    /// <summary>Weights rounded to float16 lose less than this (signal to noise, dB), or stay fp32.</summary>
    public const double MinSqnrDb = 60;

    /// <summary>The largest finite float16 value.</summary>
    public const float MaxValue = 65504f;

    /// <summary>Gather tables (embeddings) with fewer values stay fp32 (as int4's default).</summary>
    public const long MinGatherElements = 1 << 16;

    /// <summary><paramref name="x"/> rounded to the nearest float16 value, ties to even (IEEE 754 conversion), as a float.</summary>
    public static float Round(float x) => (float)(Half)x;

    /// <summary>Why <paramref name="weights"/> must stay fp32 (null when float16 suits it), and the SQNR of its rounding.</summary>
    public static string? KeepFp32Reason(ReadOnlySpan<float> weights, out double sqnrDb)
    {
        double signal = 0, noise = 0;
        float largest = 0;
        foreach (float w in weights)
        {
            if (!float.IsFinite(w))
            {
                sqnrDb = double.NaN;
                return "holds a non-finite value";
            }
            largest = Math.Max(largest, Math.Abs(w));
            double e = (double)w - Round(w);
            signal += (double)w * w;
            noise += e * e;
        }
        sqnrDb = noise == 0 ? double.PositiveInfinity : signal == 0 ? double.NegativeInfinity : 10 * Math.Log10(signal / noise);
        if (largest > MaxValue)
            return string.Create(CultureInfo.InvariantCulture, $"|w| reaches {largest:G6}, beyond float16's {MaxValue}");
        if (sqnrDb < MinSqnrDb)
            return string.Create(CultureInfo.InvariantCulture, $"float16 would measure {sqnrDb:0.0} dB, under {MinSqnrDb} dB (values in float16's subnormal range)");
        return null;
    }

    /// <summary>True when every value of a float tensor is a float16 value (the tensor can be stored as float16 losslessly).</summary>
    public static bool IsExactlyFp16(Tensor t)
    {
        if (t.DataType != DataType.Float) return false;
        var source = t.AsSpan<float>();
        Span<Half> half = stackalloc Half[256];
        for (int start = 0; start < source.Length; start += half.Length)
        {
            var chunk = source.Slice(start, Math.Min(half.Length, source.Length - start));
            var narrowed = half[..chunk.Length];
            TensorPrimitives.ConvertToHalf(chunk, narrowed);
            for (int i = 0; i < chunk.Length; i++)
                if (BitConverter.SingleToInt32Bits((float)narrowed[i]) != BitConverter.SingleToInt32Bits(chunk[i])) return false;
        }
        return true;
    }

    /// <summary>The type a constant is stored in: float16 when fp16 storage is on and every value is a float16 value
    /// (so the loaded tensor is bit for bit the one compiled), else its own type.</summary>
    public static DataType StorageType(Tensor t, bool fp16Storage) =>
        fp16Storage && t.DataType == DataType.Float && t.ElementCount > 0 && IsExactlyFp16(t) ? DataType.Float16 : t.DataType;

    /// <summary>Rounds the weights of every product and large Gather table of <paramref name="graph"/> (Precision fp16).</summary>
    public static IReadOnlyList<Fp16WeightReport> Apply(Graph graph, Action<string>? log = null)
    {
        var reports = Round(graph, _ => true);
        if (log is not null) Log(reports, log);
        return reports;
    }

    /// <summary>Rounds the weights of the nodes <paramref name="select"/> picks (int8 units planned fp16), leaving the
    /// others' alone: a constant that another node also reads is copied.</summary>
    public static IReadOnlyList<Fp16WeightReport> Round(Graph graph, Func<Node, bool> select)
    {
        var consumers = graph.Consumers();
        var chosen = new HashSet<(Node, int)>();
        foreach (var node in graph.Nodes)
            if (select(node))
                foreach (int i in WeightInputs(node))
                    if (node.Inputs[i] is { Constant: { DataType: DataType.Float } } v && (!IsGather(node) || v.Constant!.ElementCount >= MinGatherElements))
                        chosen.Add((node, i));
        var reports = new List<Fp16WeightReport>();
        var done = new Dictionary<Value, Value?>();
        foreach (var node in graph.Nodes)
        {
            foreach (int i in WeightInputs(node))
            {
                if (!chosen.Contains((node, i))) continue;
                var value = node.Inputs[i]!;
                if (!done.TryGetValue(value, out var rounded))
                {
                    var source = value.Constant!;
                    string? reason = KeepFp32Reason(source.AsSpan<float>(), out double sqnr);
                    reports.Add(new Fp16WeightReport(value.Name, node.Name, source.ElementCount, reason is null, sqnr, reason));
                    rounded = null;
                    if (reason is null)
                    {
                        var tensor = new Tensor(DataType.Float, (int[])source.Shape.Clone());
                        var target = tensor.AsSpan<float>();
                        var from = source.AsSpan<float>();
                        for (int k = 0; k < from.Length; k++) target[k] = Round(from[k]);
                        bool shared = consumers.TryGetValue(value, out var readers) && readers.Any(r => !chosen.Contains(r))
                            || graph.Outputs.Contains(value);
                        if (shared)
                        {
                            // Another node keeps the fp32 values: the rounded copy is a constant of its own.
                            rounded = new Value(UniqueName(graph, value.Name + "_fp16"), tensor);
                            graph.Initializers.Add(rounded);
                        }
                        else
                        {
                            // The tensor may be shared with a copy of this graph (GraphCopy): replace it, never write it.
                            value.Constant = tensor;
                            rounded = value;
                        }
                    }
                    done[value] = rounded;
                }
                if (rounded is not null && rounded != value) node.SetInput(i, rounded);
            }
        }
        return reports;
    }

    /// <summary>Writes one line per weight that stayed fp32 and a summary.</summary>
    public static void Log(IReadOnlyList<Fp16WeightReport> reports, Action<string> log)
    {
        foreach (var r in reports.Where(r => !r.Fp16)) log($"fp16: {r.Weight} ({r.Node}) stays fp32: {r.KeptFp32Because}");
        long fp16 = reports.Where(r => r.Fp16).Sum(r => r.Elements);
        log(string.Create(CultureInfo.InvariantCulture,
            $"fp16: {reports.Count(r => r.Fp16)} of {reports.Count} weights rounded to float16 ({fp16 * 2:N0} bytes stored instead of {fp16 * 4:N0})"));
    }

    /// <summary>The inputs of <paramref name="node"/> that are weights fp16 rounds: a product's weight operands (not
    /// its bias), a Gather's table.</summary>
    internal static IEnumerable<int> WeightInputs(Node node)
    {
        string op = node.Domain == OperatorRegistry.SquashDomain && node.OpType.StartsWith("Fused", StringComparison.Ordinal)
            ? node.OpType["Fused".Length..]
            : node.Domain.Length == 0 ? node.OpType : "";
        int[] inputs = op switch
        {
            "Conv" or "ConvTranspose" => [1],
            "MatMul" or "Gemm" => [0, 1],
            "Gather" => [0],
            _ => [],
        };
        foreach (int i in inputs)
            if (i < node.Inputs.Count) yield return i;
    }

    private static bool IsGather(Node node) => node.OpType == "Gather";

    private static string UniqueName(Graph graph, string name)
    {
        var names = graph.AllValues().Select(v => v.Name).ToHashSet(StringComparer.Ordinal);
        string candidate = name;
        for (int k = 2; names.Contains(candidate); k++) candidate = $"{name}{k}";
        return candidate;
    }
}
