using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;
using Squash.Runtime.Operators;

namespace Squash.Compiler.Tests.Quantization;

/// <summary>
/// The com.squash int8 operators the rewrite emits, each run through the executor (shape inference, then the kernel)
/// against the closed form evaluated in double from the same integers. Tolerances: a uint8 output may differ by one
/// step, because the operators multiply in fp32 (the requantization multiplier is rounded to float once) where the
/// reference uses double, which can move a value across a rounding boundary; a float output is within 1e-5 of its
/// range (fp32 products of exact integer sums).
/// </summary>
public sealed class Int8OperatorTests
{
    private static readonly Random s_random = new(1234);

    [Theory]
    [InlineData(3, 4, 9, 11, 5, 1, 3, 1, 1, false)]   // 3x3, pad 1, GEMM path, uint8 out
    [InlineData(6, 6, 12, 10, 6, 6, 3, 2, 1, false)]  // depthwise 3x3 stride (2, 1)
    [InlineData(8, 4, 7, 7, 16, 1, 1, 1, 0, true)]    // pointwise, float out
    [InlineData(4, 4, 10, 9, 4, 4, 5, 2, 2, true)]    // depthwise 5x5 stride 2, float out
    public void QConvMatchesTheClosedForm(int c, int unused, int h, int w, int m, int group, int k, int strideH, int pad, bool floatOut)
    {
        _ = unused;
        int strideW = 1;
        bool depthwise = group == c && group == m;
        var x = Bytes(c * h * w);
        int limit = depthwise ? 127 : 64;
        var weights = Weights(m * (c / group) * k * k, limit);
        var bias = Enumerable.Range(0, m).Select(_ => s_random.Next(-5000, 5000)).ToArray();
        var wScales = Enumerable.Range(0, m).Select(_ => 0.001f + (float)s_random.NextDouble() * 0.01f).ToArray();
        const float xScale = 0.05f, yScale = 0.2f;
        const byte xZero = 37, yZero = 120;

        var g = new Graph("t");
        g.OpsetImports[OperatorRegistry.SquashDomain] = 1;
        var input = Input(g, "x", [1, c, h, w]);
        var node = new Node("QConv", "conv", OperatorRegistry.SquashDomain, 1);
        node.AddInput(input).AddInput(Const(g, Tensor.Scalar(xScale))).AddInput(Const(g, Tensor.Scalar(xZero)));
        node.AddInput(Const(g, Tensor.From<sbyte>(weights, m, c / group, k, k))).AddInput(Const(g, Tensor.From<float>(wScales, m))).AddInput(null);
        if (floatOut) node.AddInput(null).AddInput(null);
        else node.AddInput(Const(g, Tensor.Scalar(yScale))).AddInput(Const(g, Tensor.Scalar(yZero)));
        node.AddInput(Const(g, Tensor.From<int>(bias, m)));
        node.Attributes["group"] = AttributeValue.Int(group);
        node.Attributes["strides"] = AttributeValue.IntList(strideH, strideW);
        node.Attributes["pads"] = AttributeValue.IntList(pad, pad, pad, pad);
        if (!floatOut) node.Attributes["activation_min"] = AttributeValue.Float(0);
        var y = Output(g, node);
        var result = Run(g, new() { ["x"] = Tensor.From<byte>(x, 1, c, h, w) })[y.Name];

        int oh = (h + 2 * pad - k) / strideH + 1, ow = (w + 2 * pad - k) / strideW + 1;
        Assert.Equal([1, m, oh, ow], result.Shape);
        var expected = new double[m * oh * ow];
        int cg = c / group, mg = m / group;
        for (int oc = 0; oc < m; oc++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++)
                {
                    long acc = bias[oc];
                    for (int ic = 0; ic < cg; ic++)
                        for (int a = 0; a < k; a++)
                            for (int b = 0; b < k; b++)
                            {
                                int r = i * strideH - pad + a, s = j * strideW - pad + b;
                                if (r < 0 || r >= h || s < 0 || s >= w) continue;   // padding is the zero point: a real 0
                                int channel = oc / mg * cg + ic;
                                acc += (x[(channel * h + r) * w + s] - xZero) * weights[((oc * cg + ic) * k + a) * k + b];
                            }
                    double real = acc * (double)xScale * wScales[oc];
                    expected[(oc * oh + i) * ow + j] = floatOut ? real : Math.Clamp(Math.Round(real / yScale, MidpointRounding.ToEven) + yZero, yZero, 255);
                }
        if (floatOut) AssertClose(expected, result.AsSpan<float>().ToArray());
        else AssertWithinOneStep(expected, result.AsSpan<byte>().ToArray());
    }

    [Fact]
    public void QMatMulMatchesTheClosedForm()
    {
        const int k = 37, n = 19;
        int[] shape = [2, 3, k];
        var a = Bytes(2 * 3 * k);
        var b = Weights(k * n, 64);
        var bias = Enumerable.Range(0, n).Select(_ => s_random.Next(-3000, 3000)).ToArray();
        var bScales = Enumerable.Range(0, n).Select(_ => 0.002f + (float)s_random.NextDouble() * 0.01f).ToArray();
        const float aScale = 0.03f;
        const byte aZero = 200;
        var g = new Graph("t");
        var input = Input(g, "a", shape);
        var node = new Node("QMatMul", "mm", OperatorRegistry.SquashDomain, 1);
        node.AddInput(input).AddInput(Const(g, Tensor.Scalar(aScale))).AddInput(Const(g, Tensor.Scalar(aZero)));
        node.AddInput(Const(g, Tensor.From<sbyte>(b, k, n))).AddInput(Const(g, Tensor.From<float>(bScales, n)));
        node.AddInput(null).AddInput(null).AddInput(null).AddInput(Const(g, Tensor.From<int>(bias, n)));
        var y = Output(g, node);
        var result = Run(g, new() { ["a"] = Tensor.From<byte>(a, shape) })[y.Name];
        Assert.Equal([2, 3, n], result.Shape);
        var expected = new double[6 * n];
        for (int r = 0; r < 6; r++)
            for (int c = 0; c < n; c++)
            {
                long acc = bias[c];
                for (int i = 0; i < k; i++) acc += (a[r * k + i] - aZero) * b[i * n + c];
                expected[r * n + c] = acc * (double)aScale * bScales[c];
            }
        AssertClose(expected, result.AsSpan<float>().ToArray());
    }

    [Fact]
    public void QAddQMulAndQConcatMatchTheClosedForm()
    {
        int[] shape = [1, 3, 4, 5];
        int count = 60;
        var a = Bytes(count);
        var b = Bytes(count);
        var gate = Enumerable.Range(0, 3).Select(_ => (float)s_random.NextDouble()).ToArray();
        var g = new Graph("t");
        var va = Input(g, "a", shape);
        var vb = Input(g, "b", shape);
        var vg = new Value("gate", DataType.Float, [1, 3, 1, 1]);
        g.Inputs.Add(vg);
        var add = new Node("QAdd", "add", OperatorRegistry.SquashDomain, 1);
        add.AddInput(va).AddInput(Const(g, Tensor.Scalar(0.1f))).AddInput(Const(g, Tensor.Scalar((byte)10)));
        add.AddInput(vb).AddInput(Const(g, Tensor.Scalar(0.05f))).AddInput(Const(g, Tensor.Scalar((byte)128)));
        add.AddInput(Const(g, Tensor.Scalar(0.12f))).AddInput(Const(g, Tensor.Scalar((byte)90)));
        var sum = Output(g, add);
        var mul = new Node("QMul", "mul", OperatorRegistry.SquashDomain, 1);
        mul.AddInput(va).AddInput(Const(g, Tensor.Scalar(0.1f))).AddInput(Const(g, Tensor.Scalar((byte)10))).AddInput(vg);
        mul.AddInput(Const(g, Tensor.Scalar(0.07f))).AddInput(Const(g, Tensor.Scalar((byte)5)));
        var product = Output(g, mul);
        var concat = new Node("QConcat", "concat", OperatorRegistry.SquashDomain, 1);
        concat.AddInput(Const(g, Tensor.Scalar(0.1f))).AddInput(Const(g, Tensor.Scalar((byte)10)));
        concat.AddInput(va).AddInput(Const(g, Tensor.Scalar(0.1f))).AddInput(Const(g, Tensor.Scalar((byte)10)));
        concat.AddInput(vb).AddInput(Const(g, Tensor.Scalar(0.05f))).AddInput(Const(g, Tensor.Scalar((byte)128)));
        concat.Attributes["axis"] = AttributeValue.Int(1);
        var joined = Output(g, concat);
        var result = Run(g, new()
        {
            ["a"] = Tensor.From<byte>(a, shape), ["b"] = Tensor.From<byte>(b, shape), ["gate"] = Tensor.From<float>(gate, 1, 3, 1, 1),
        });

        static double Q(double real, double scale, int zero) => Math.Clamp(Math.Round(real / scale, MidpointRounding.ToEven) + zero, 0, 255);
        AssertWithinOneStep([.. Enumerable.Range(0, count).Select(i => Q(0.1 * (a[i] - 10) + 0.05 * (b[i] - 128), 0.12, 90))],
            result[sum.Name].AsSpan<byte>().ToArray());
        AssertWithinOneStep([.. Enumerable.Range(0, count).Select(i => Q(0.1 * (a[i] - 10) * gate[i / 20], 0.07, 5))],
            result[product.Name].AsSpan<byte>().ToArray());
        Assert.Equal([1, 6, 4, 5], result[joined.Name].Shape);
        var expectedJoin = new double[2 * count];
        for (int i = 0; i < count; i++)
        {
            expectedJoin[i] = a[i];   // same parameters as the output: copied exactly
            expectedJoin[count + i] = Q(0.05 * (b[i] - 128), 0.1, 10);
        }
        AssertWithinOneStep(expectedJoin, result[joined.Name].AsSpan<byte>().ToArray());
        Assert.Equal(a, result[joined.Name].AsSpan<byte>()[..count].ToArray());
    }

    [Fact]
    public void QLookupAndQGlobalAveragePoolMatchTheClosedForm()
    {
        int[] shape = [1, 2, 3, 50];
        var x = Bytes(300);
        // Every byte value appears, so the whole table is checked.
        for (int i = 0; i < 256; i++) x[i] = (byte)i;
        var body = new Graph("body");
        body.OpsetImports[""] = 17;
        var bx = new Value("x", DataType.Float, [-1, -1, -1, -1]);
        body.Inputs.Add(bx);
        var sigmoid = new Node("Sigmoid", "s", "", 17);
        sigmoid.AddInput(bx);
        var by = new Value("y", DataType.Float);
        sigmoid.AddOutput(by);
        body.Nodes.Add(sigmoid);
        body.Outputs.Add(by);

        var g = new Graph("t");
        var vx = Input(g, "x", shape);
        var lookup = new Node("QLookup", "lookup", OperatorRegistry.SquashDomain, 1);
        lookup.AddInput(vx).AddInput(Const(g, Tensor.Scalar(0.05f))).AddInput(Const(g, Tensor.Scalar((byte)128)));
        lookup.AddInput(Const(g, Tensor.Scalar(1f / 255))).AddInput(Const(g, Tensor.Scalar((byte)0)));
        lookup.Attributes["body"] = AttributeValue.FromGraph(body);
        var looked = Output(g, lookup);
        var pool = new Node("QGlobalAveragePool", "pool", OperatorRegistry.SquashDomain, 1);
        pool.AddInput(vx).AddInput(Const(g, Tensor.Scalar(0.05f))).AddInput(Const(g, Tensor.Scalar((byte)128)));
        var pooled = Output(g, pool);
        var result = Run(g, new() { ["x"] = Tensor.From<byte>(x, shape) });

        AssertWithinOneStep([.. x.Select(q => Math.Clamp(Math.Round(1 / (1 + Math.Exp(-0.05 * (q - 128))) * 255, MidpointRounding.ToEven), 0, 255))],
            result[looked.Name].AsSpan<byte>().ToArray());
        Assert.Equal([1, 2, 1, 1], result[pooled.Name].Shape);
        var means = Enumerable.Range(0, 2).Select(c => x.Skip(c * 150).Take(150).Average(q => 0.05 * (q - 128))).ToArray();
        AssertClose(means, result[pooled.Name].AsSpan<float>().ToArray());
    }

    [Fact]
    public void NonUInt8InputIsRejectedWithItsCode()
    {
        var g = new Graph("t");
        var vx = new Value("x", DataType.Float, [1, 2, 3, 3]);
        g.Inputs.Add(vx);
        var pool = new Node("QGlobalAveragePool", "pool", OperatorRegistry.SquashDomain, 1);
        pool.AddInput(vx).AddInput(Const(g, Tensor.Scalar(0.05f))).AddInput(Const(g, Tensor.Scalar((byte)128)));
        Output(g, pool);
        var e = Assert.Throws<SquashException>(() => Run(g, new() { ["x"] = new Tensor(DataType.Float, 1, 2, 3, 3) }));
        Assert.Equal(ErrorCodes.UnsupportedDataType, e.Code);
        Assert.Contains("x must be uint8", e.Message);
    }

    private static byte[] Bytes(int count)
    {
        var x = new byte[count];
        s_random.NextBytes(x);
        return x;
    }

    private static sbyte[] Weights(int count, int limit) => [.. Enumerable.Range(0, count).Select(_ => (sbyte)s_random.Next(-limit, limit + 1))];

    private static Value Input(Graph g, string name, int[] shape)
    {
        var v = new Value(name, DataType.UInt8, shape);
        g.Inputs.Add(v);
        return v;
    }

    private static Value Const(Graph g, Tensor t)
    {
        var v = new Value($"c{g.Initializers.Count}", t);
        g.Initializers.Add(v);
        return v;
    }

    private static Value Output(Graph g, Node node)
    {
        g.OpsetImports[OperatorRegistry.SquashDomain] = 1;
        if (!g.OpsetImports.ContainsKey("")) g.OpsetImports[""] = 17;
        var y = new Value(node.Name + "_y");
        node.AddOutput(y);
        g.Nodes.Add(node);
        g.Outputs.Add(y);
        return y;
    }

    private static Dictionary<string, Tensor> Run(Graph g, Dictionary<string, Tensor> inputs) => new GraphExecutor(g).Run(inputs);

    private static void AssertWithinOneStep(double[] expected, byte[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1, $"element {i}: {actual[i]}, expected {expected[i]}");
    }

    private static void AssertClose(double[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        double range = Math.Max(1e-30, expected.Max() - expected.Min());
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5 * range, $"element {i}: {actual[i]}, expected {expected[i]}");
    }
}
