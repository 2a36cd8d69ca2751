using Squash.Compiler.Passes;
using Squash.Compiler.Quantization;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Tests.Quantization;

/// <summary>
/// The default plan keeps in fp32 the 3x3 convolutions the fp32 runtime computes by Winograd F(4x4, 3x3), which beat
/// the int8 GEMM (PP-OCR det's head: 2.9 ms fp32 against 4.2 ms int8 per convolution); every other shape stays int8.
/// The rule reads shapes only, so a plan does not depend on the machine that builds it.
/// </summary>
public sealed class QuantizationPlanTests
{
    [Theory]
    [InlineData(32, 1, 1, 1, 16, 32, "Fp32")]   // Winograd: 3x3, stride 1, output 32 wide, 16 + 32 channels
    [InlineData(32, 2, 1, 1, 16, 32, "Int8")]   // stride 2
    [InlineData(32, 1, 2, 1, 16, 32, "Int8")]   // dilation 2
    [InlineData(16, 1, 1, 1, 16, 32, "Int8")]   // output 16 wide: Winograd's 16-tile segments would waste too much
    [InlineData(32, 1, 1, 1, 4, 32, "Int8")]    // 4 input channels: the transforms would dominate
    [InlineData(32, 1, 1, 1, 160, 160, "Int8")] // 320 channels: a block would not stay in L2
    [InlineData(32, 1, 1, 2, 32, 32, "Fp32")]   // two groups of 16 + 16
    public void WinogradConvolutionsStayFp32(int width, int stride, int dilation, int groups, int inChannels, int outChannels, string expected)
    {
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 1, inChannels, width * stride, width * stride);
        AttributeValue Ints(params long[] v) => AttributeValue.IntList(v);
        var random = new Random(1);
        var w = Tensor.From<float>([.. Enumerable.Range(0, outChannels * inChannels / groups * 9).Select(_ => (float)random.NextDouble() - 0.5f)],
            outChannels, inChannels / groups, 3, 3);
        var y = b.NodeWith("Conv", [("kernel_shape", Ints(3, 3)), ("pads", Ints(dilation, dilation, dilation, dilation)),
            ("strides", Ints(stride, stride)), ("dilations", Ints(dilation, dilation)), ("group", AttributeValue.Int(groups))],
            [x, b.Constant(w), null])[0];
        b.Output(b.Node("Relu", y));
        var model = b.Build();
        Pipeline.Simplify().Run(model.Graph, new PassContext());
        var conv = model.Graph.Nodes.Single(n => n.OpType == "Conv");
        Assert.Equal(width, conv.Outputs[0].Shape![3]);
        Assert.Equal(Enum.Parse<NodePrecision>(expected), QuantizationPlan.Create(model.Graph)[conv.Name]);
    }

    /// <summary>A bias-free widening 1x1 convolution whose output a Winograd (fp32) convolution reads through a gate
    /// (y + y g) stays fp32, so that <see cref="PyramidConvFusion"/> composes it into that convolution; with a bias, or
    /// before an int8 convolution, it stays int8.</summary>
    [Theory]
    [InlineData(false, 32, "Fp32")]
    [InlineData(true, 32, "Int8")]   // a bias: not a projection
    [InlineData(false, 16, "Int8")]  // 16 wide: the 3x3 convolution is int8, nothing to compose into
    public void ProjectionsIntoFp32ConvolutionsStayFp32(bool bias, int width, string expected)
    {
        var b = new GraphBuilder();
        var random = new Random(1);
        Tensor Draw(params int[] shape) => Tensor.From<float>([.. Enumerable.Range(0, shape.Aggregate(1, (p, d) => p * d)).Select(_ => (float)random.NextDouble() - 0.5f)], shape);
        var x = b.Input("x", DataType.Float, 1, 8, width, width);
        var gate = b.Input("g", DataType.Float, 1, 32, 1, 1);
        var projection = b.NodeWith("Conv", [], [x, b.Constant(Draw(32, 8, 1, 1)), bias ? b.Constant(Draw(32)) : null])[0];
        var gated = b.Node("Add", projection, b.Node("Mul", projection, gate));
        var y = b.NodeWith("Conv", [("kernel_shape", AttributeValue.IntList(3, 3)), ("pads", AttributeValue.IntList(1, 1, 1, 1))],
            [gated, b.Constant(Draw(16, 32, 3, 3)), b.Constant(Draw(16))])[0];
        b.Output(b.Node("Relu", y));
        var model = b.Build();
        Pipeline.Simplify().Run(model.Graph, new PassContext());
        var first = model.Graph.Nodes.First(n => n.OpType == "Conv");
        Assert.Equal(Enum.Parse<NodePrecision>(expected), QuantizationPlan.Create(model.Graph)[first.Name]);
    }
}
