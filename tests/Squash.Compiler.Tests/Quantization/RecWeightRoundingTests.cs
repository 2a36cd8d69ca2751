using Squash.Compiler.Quantization;
using Squash.Compiler.Tests.Models;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;
using Xunit.Abstractions;

namespace Squash.Compiler.Tests.Quantization;

/// <summary>
/// Why rec's int8 misses "the same text as fp32 on 98 % of lines" (issue 4): its text at line ends and between words is
/// decided by margins so thin that rounding the weights alone, with fp32 everywhere else, changes it. Every Conv and
/// MatMul weight is rounded and the model runs in fp32 on the 64 eval lines; the count of lines that read exactly as
/// fp32 is checked against the measured figure with a margin of 2 lines (the figures are fp32 arithmetic, stable from
/// run to run; the margin absorbs a kernel change in summation order flipping one fragile line).
/// Measured: float16 weights 63 of 64; 8-bit per-channel weights (127 levels each side) 58; the int8 GEMM's 7-bit
/// weights (64 levels) 45. With bias correction of the convolutions (<see cref="BiasCorrection"/>, input means from the
/// 33 calibration lines; the MatMuls, which have no bias here, uncorrected) 62 and 59: most of what rounding costs
/// is the shift it gives each channel's mean.
/// </summary>
public sealed class RecWeightRoundingTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(0, false, 63)]    // float16 (round to nearest even)
    [InlineData(127, false, 58)]  // symmetric 8-bit per output channel
    [InlineData(64, false, 45)]   // the int8 kernels' range, [-64, 64]
    [InlineData(127, true, 62)]
    [InlineData(64, true, 59)]
    public void WeightRoundingAloneChangesRecsText(int levels, bool corrected, int measured)
    {
        var fp32 = Load();
        var rounded = Load();
        var means = corrected
            ? new Calibrator().Calibrate(ExecutionPlan.Create(GraphCopy.Of(rounded.Graph)),
                PpOcr.Samples("calib", "rec").Select(f => (IReadOnlyDictionary<string, Tensor>)new Dictionary<string, Tensor> { [rounded.Graph.Inputs[0].Name] = PpOcr.Load(f) })).InputMeans
            : null;
        foreach (var node in rounded.Graph.Nodes)
        {
            if (node.OpType is not ("Conv" or "MatMul") || node.Input(1)?.Constant is not { DataType: DataType.Float, Rank: >= 2 } w) continue;
            if (means is not null && node.OpType == "Conv" && means.TryGetValue(node.Name, out var m))
            {
                var (q, scales) = Int8Quantization.QuantizeWeights(w, 0, levels);
                int group = node.Attributes.TryGetValue("group", out var g) ? (int)g.IntValue : 1;
                var bias = BiasCorrection.Apply(node.Input(2)?.Constant is { } b0 ? b0.AsSpan<float>() : [], BiasCorrection.ForConv(w, q, scales, group, m));
                var codes = q.AsSpan<sbyte>();
                int inner = codes.Length / w.Shape[0];
                var r = new float[codes.Length];
                for (int i = 0; i < r.Length; i++) r[i] = scales[i / inner] * codes[i];
                node.SetInput(1, new Value(node.Input(1)!.Name + "_rounded", Tensor.From<float>(r, w.Shape)));
                while (node.Inputs.Count < 3) node.AddInput(null);
                node.SetInput(2, new Value(node.Name + "_corrected_bias", Tensor.From<float>(bias, bias.Length)));
                continue;
            }
            node.SetInput(1, new Value(node.Input(1)!.Name + "_rounded", Tensor.From<float>(Round(w, node.OpType == "Conv" ? 0 : 1, levels), w.Shape)));
        }
        var a = ExecutionPlan.Create(fp32.Graph);
        var b = ExecutionPlan.Create(rounded.Graph);
        string input = fp32.Graph.Inputs[0].Name, name = fp32.Graph.Outputs[0].Name;
        int same = 0, lines = 0;
        foreach (var sample in PpOcr.Samples("eval", "rec"))
        {
            var inputs = new Dictionary<string, Tensor> { [input] = PpOcr.Load(sample) };
            string want = PpOcr.DecodeCtc(a.Run(inputs)[name]), got = PpOcr.DecodeCtc(b.Run(inputs)[name]);
            lines++;
            if (want == got) same++;
            else output.WriteLine($"{Path.GetFileName(sample)}: '{got}' instead of '{want}'");
        }
        output.WriteLine($"{(levels == 0 ? "float16" : $"{levels} levels")}{(corrected ? ", bias corrected" : "")}: {same} of {lines} lines read as fp32");
        Assert.InRange(same, measured - 2, Math.Min(lines, measured + 2));
    }

    private static Model Load()
    {
        var m = Squash.Compiler.Onnx.OnnxLoader.Load(PpOcr.ModelPath(PpOcr.Rec));
        ModelPreparation.PinInputShapes(m, new Dictionary<string, int[]> { [m.Graph.Inputs[0].Name] = [1, 3, 48, 320] });
        ModelPreparation.Optimize(m);
        return m;
    }

    /// <summary>Float16 (levels 0), or symmetric per channel along <paramref name="axis"/> (0: Conv's output channels,
    /// 1: MatMul's columns) with <paramref name="levels"/> steps each side, round half to even.</summary>
    private static float[] Round(Tensor w, int axis, int levels)
    {
        var v = w.AsSpan<float>();
        int channels = w.Shape[axis], inner = axis == 0 ? v.Length / channels : 1;
        int Channel(int i) => axis == 0 ? i / inner : i % channels;
        var absMax = new float[channels];
        for (int i = 0; i < v.Length; i++) absMax[Channel(i)] = Math.Max(absMax[Channel(i)], Math.Abs(v[i]));
        var r = new float[v.Length];
        for (int i = 0; i < v.Length; i++)
        {
            float step = absMax[Channel(i)] / Math.Max(1, levels);
            r[i] = levels == 0 ? (float)(Half)v[i]
                : step == 0 ? 0 : Math.Clamp(MathF.Round(v[i] / step, MidpointRounding.ToEven), -levels, levels) * step;
        }
        return r;
    }
}
