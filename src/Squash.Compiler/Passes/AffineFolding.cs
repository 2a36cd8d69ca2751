using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Passes;

/// <summary>
/// Folds a per-output-channel affine map <c>y = s[m] * x + t[m]</c> applied to the output of a Conv, ConvTranspose or
/// Gemm into that node's weights and bias. Shared by <see cref="ConvBatchNormFusion"/> and <see cref="ConvAffineFusion"/>.
/// </summary>
internal static class AffineFolding
{
    /// <summary>Number of output channels of a foldable producer (Conv family, Gemm), or -1.</summary>
    public static int OutputChannels(Node producer)
    {
        var w = producer.Input(1)?.Constant;
        if (w is null || w.DataType != DataType.Float || producer.Domain.Length != 0) return -1;
        if (producer.Input(2) is { } b && (b.Constant is null || b.Constant.DataType != DataType.Float)) return -1;
        return producer.OpType switch
        {
            "Conv" when w.Rank >= 3 => w.Shape[0],
            "ConvTranspose" when w.Rank >= 3 => w.Shape[1] * (int)Group(producer),
            "Gemm" when w.Rank == 2 && Bool(producer, "transA") == false =>
                Bool(producer, "transB") ? w.Shape[0] : w.Shape[1],
            _ => -1,
        };
    }

    /// <summary>Rewrites the producer's weights and bias so it computes <c>s * old + t</c>. False when it cannot.</summary>
    public static bool FoldIntoProducer(GraphRewrite rewrite, Node producer, double[] s, double[] t)
    {
        int channels = OutputChannels(producer);
        if (channels < 0 || channels != s.Length) return false;
        if (producer.OpType == "Gemm")
        {
            // Gemm: Y = alpha * A B + beta * C; the fold must keep C broadcastable to [N].
            if (producer.Input(2)?.Constant is { } c0 && WeightMath.PerChannel(c0, channels, 1, 2) is null) return false;
        }
        var w = producer.Input(1)!.Constant!;
        Tensor newWeights = producer.OpType switch
        {
            "Conv" => ScaleAxis0(w, s),
            "ConvTranspose" => ScaleConvTranspose(w, s, (int)Group(producer)),
            _ => Bool(producer, "transB") ? ScaleAxis0(w, s) : WeightMath.Map(w, (i, v) => v * s[i % channels]),
        };
        double beta = producer.OpType == "Gemm" && producer.Attributes.TryGetValue("beta", out var b) ? b.FloatValue : 1;
        double alpha = producer.OpType == "Gemm" && producer.Attributes.TryGetValue("alpha", out var a) ? a.FloatValue : 1;
        _ = alpha;
        var oldBias = producer.Input(2)?.Constant is { } bias
            ? (producer.OpType == "Gemm" ? WeightMath.PerChannel(bias, channels, 1, 2)! : WeightMath.ToDoubles(bias))
            : new double[channels];
        var newBias = new double[channels];
        // Gemm's C is multiplied by beta; store the folded bias so that beta * C' = s * beta * C + t.
        double cScale = producer.OpType == "Gemm" ? beta : 1;
        if (cScale == 0) cScale = 1;
        for (int m = 0; m < channels; m++) newBias[m] = (s[m] * oldBias[m] * (producer.OpType == "Gemm" ? beta : 1) + t[m]) / cScale;
        if (producer.OpType == "Gemm" && producer.Attributes.ContainsKey("beta") && beta == 0)
            producer.Attributes["beta"] = AttributeValue.Float(1);
        producer.SetInput(1, rewrite.AddConstant(producer.Input(1)!.Name + "_folded", newWeights));
        var biasValue = rewrite.AddConstant(producer.Name + "_bias_folded", WeightMath.Vector(newBias));
        if (producer.Inputs.Count > 2) producer.SetInput(2, biasValue);
        else producer.AddInput(biasValue);
        return true;
    }

    private static Tensor ScaleAxis0(Tensor w, double[] s)
    {
        int per = w.ElementCount / w.Shape[0];
        return WeightMath.Map(w, (i, v) => v * s[i / per]);
    }

    private static Tensor ScaleConvTranspose(Tensor w, double[] s, int group)
    {
        // W is [C, M/group, k...]; element (c, j) feeds output channel (c / (C/group)) * (M/group) + j.
        int c = w.Shape[0], mPerGroup = w.Shape[1];
        int kernel = w.ElementCount / (c * mPerGroup);
        int cPerGroup = c / group;
        return WeightMath.Map(w, (i, v) =>
        {
            int j = i / kernel % mPerGroup;
            int ci = i / (kernel * mPerGroup);
            return v * s[ci / cPerGroup * mPerGroup + j];
        });
    }

    private static long Group(Node n) => n.Attributes.TryGetValue("group", out var g) ? g.IntValue : 1;

    private static bool Bool(Node n, string name) => n.Attributes.TryGetValue(name, out var a) && a.IntValue != 0;
}
