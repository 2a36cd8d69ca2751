using Squash.Runtime.Ir;
using Squash.Runtime.Operators;

namespace Squash.Runtime.Tests;

/// <summary>
/// Pointwise convolutions of one pixel run as a matrix times a vector (<c>Kernels.Gemv</c>) instead of a GEMM padded
/// to a whole micro-tile. The result must be the GEMM's to the bit: the same convolution on a two-pixel image whose
/// pixels are equal runs the GEMM, and its first column is the reference. Without a residual the rows go through the
/// epilogue eight at a time (a squeeze-and-excitation branch's bias, activation, scale and shift).
/// </summary>
public sealed class GemvTests
{
    [Theory]
    [InlineData(50, 200, false, "", true)]
    [InlineData(37, 1000, true, "HardSwish", true)]   // a partial panel, three K blocks, pre-packed weights
    [InlineData(8, 3, true, "Sigmoid", true)]         // one panel, a depth below a vector
    [InlineData(200, 50, true, "Relu", true)]         // several groups of four panels
    [InlineData(200, 50, true, "HardSigmoid", false)] // no residual: eight rows at a time through the epilogue
    [InlineData(100, 30, false, "Relu", false)]       // eight at a time, then four rows alone
    [InlineData(53, 1000, true, "Relu", false)]       // three K blocks: the last adds onto C, row by row
    [InlineData(13, 7, false, "Sigmoid", false)]      // an activation not computed in registers: row by row
    public void OnePixelEqualsTheGemmColumnBitForBit(int m, int k, bool constantWeights, string activation, bool withResidual)
    {
        var rng = new Random(m * 1000 + k);
        var w = Tensor.From<float>(NodeRunner.Random(rng, m * k), m, k, 1, 1);
        var bias = Tensor.From<float>(NodeRunner.Random(rng, m), m);
        var x = NodeRunner.Random(rng, k);
        var z = NodeRunner.Random(rng, m);
        var scale = Tensor.From<float>(NodeRunner.Random(rng, m), m);
        var shift = Tensor.From<float>(NodeRunner.Random(rng, m), m);

        Tensor Run(int pixels)
        {
            var input = new float[k * pixels];
            var residual = new float[m * pixels];
            for (int c = 0; c < k; c++) for (int p = 0; p < pixels; p++) input[c * pixels + p] = x[c];
            for (int c = 0; c < m; c++) for (int p = 0; p < pixels; p++) residual[c * pixels + p] = z[c];
            var xt = Tensor.From<float>(input, 1, k, 1, pixels);
            var zt = Tensor.From<float>(residual, 1, m, 1, pixels);
            var node = new Node("FusedConv", "conv", OperatorRegistry.SquashDomain, 1);
            node.AddInput(new Value("x", DataType.Float, xt.Shape));
            node.AddInput(constantWeights ? new Value("w", w) : new Value("w", DataType.Float, w.Shape));
            node.AddInput(new Value("b", bias));
            node.AddInput(withResidual ? new Value("z", DataType.Float, zt.Shape) : null);
            node.AddInput(new Value("scale", scale));
            node.AddInput(new Value("shift", shift));
            node.AddOutput(new Value("y"));
            if (activation.Length > 0) node.Attributes["activation"] = AttributeValue.String(activation);
            if (activation == "HardSigmoid") node.Attributes["activation_params"] = AttributeValue.FloatList(0.2f, 0.5f);
            var op = OperatorRegistry.Create(node);
            Tensor?[] inputs = [xt, w, bias, withResidual ? zt : null, scale, shift];
            var inference = new InferenceContext(node, inputs.Length, 1);
            for (int i = 0; i < inputs.Length; i++)
                if (inputs[i] is { } given) inference.SetInput(i, DataType.Float, given.Shape, given);
            op.InferOutputs(inference);
            var y = new Tensor(DataType.Float, inference.OutputShapes[0]!);
            op.Run(new KernelContext(1), inputs, [y]);
            return y;
        }

        var one = Run(1).AsSpan<float>();
        var two = Run(2).AsSpan<float>();
        for (int c = 0; c < m; c++)
            Assert.True(BitConverter.SingleToInt32Bits(one[c]) == BitConverter.SingleToInt32Bits(two[2 * c]),
                $"channel {c}: one pixel {one[c]:R}, two pixels {two[2 * c]:R}");
    }
}
