using Squash.Runtime.Execution;
using Squash.Runtime.Ir;

namespace Squash.Runtime.Tests.Nn;

/// <summary>Runs one operator node through <see cref="GraphExecutor"/>.</summary>
internal static class SingleNode
{
    /// <summary>Runs <paramref name="opType"/> on <paramref name="inputs"/> (null for omitted ones) and returns its outputs.</summary>
    public static Tensor[] Run(string opType, int opset, Dictionary<string, AttributeValue> attributes, Tensor?[] inputs,
        int outputCount = 1, int threads = 1)
    {
        var graph = new Graph();
        graph.OpsetImports[""] = opset;
        var node = new Node(opType, "node", "", opset);
        foreach (var (name, value) in attributes) node.Attributes[name] = value;
        var feeds = new Dictionary<string, Tensor>();
        for (int i = 0; i < inputs.Length; i++)
        {
            if (inputs[i] is not { } tensor)
            {
                node.AddInput(null);
                continue;
            }
            var value = new Value($"in{i}", tensor.DataType, tensor.Shape);
            graph.Inputs.Add(value);
            feeds[value.Name] = tensor;
            node.AddInput(value);
        }
        for (int i = 0; i < outputCount; i++)
        {
            var output = new Value($"out{i}");
            node.AddOutput(output);
            graph.Outputs.Add(output);
        }
        graph.Nodes.Add(node);
        var results = new GraphExecutor(graph).Run(feeds, new KernelContext(threads));
        return [.. Enumerable.Range(0, outputCount).Select(i => results[$"out{i}"])];
    }

    /// <summary>A tensor of uniform random values in [-2, 2).</summary>
    public static Tensor Random(Random rng, params int[] shape)
    {
        var tensor = new Tensor(DataType.Float, shape);
        var span = tensor.AsSpan<float>();
        for (int i = 0; i < span.Length; i++) span[i] = (float)(rng.NextDouble() * 4 - 2);
        return tensor;
    }

    /// <summary>Asserts |actual - expected| &lt;= tolerance * (1 + |expected|) element by element.</summary>
    public static void Close(ReadOnlySpan<double> expected, Tensor actual, double tolerance, string what)
    {
        Assert.Equal(expected.Length, actual.ElementCount);
        for (int i = 0; i < expected.Length; i++)
        {
            double a = actual.GetAsDouble(i);
            Assert.True(Math.Abs(a - expected[i]) <= tolerance * (1 + Math.Abs(expected[i])),
                $"{what}: element {i} is {a}, expected {expected[i]}");
        }
    }
}

public sealed class PoolingTests
{
    /// <summary>
    /// AveragePool, MaxPool and LpPool against a direct double-precision evaluation of the ONNX definition, over
    /// geometries that reach the vector paths (stride 1 and 2, rows of 16+ elements) and the scalar borders.
    /// Tolerance 1e-5 relative: fp32 sums of at most 27 terms.
    /// </summary>
    [Theory]
    [InlineData("MaxPool", new[] { 3, 3 }, new[] { 2, 2 }, new[] { 1, 1 }, new[] { 1, 1, 1, 1 }, "NOTSET", 0, 0)]
    [InlineData("MaxPool", new[] { 2, 2 }, new[] { 2, 2 }, new[] { 1, 1 }, new[] { 0, 0, 0, 0 }, "NOTSET", 1, 0)]
    [InlineData("MaxPool", new[] { 3, 2 }, new[] { 1, 2 }, new[] { 2, 3 }, new[] { 2, 1, 0, 2 }, "NOTSET", 1, 0)]
    [InlineData("MaxPool", new[] { 5 }, new[] { 3 }, new[] { 1 }, new[] { 2, 2 }, "NOTSET", 1, 0)]
    [InlineData("MaxPool", new[] { 2, 3, 2 }, new[] { 2, 1, 2 }, new[] { 1, 2, 1 }, new[] { 1, 0, 1, 0, 1, 1 }, "NOTSET", 1, 0)]
    [InlineData("AveragePool", new[] { 3, 3 }, new[] { 1, 1 }, new[] { 1, 1 }, new[] { 1, 1, 1, 1 }, "NOTSET", 0, 0)]
    [InlineData("AveragePool", new[] { 3, 3 }, new[] { 2, 2 }, new[] { 1, 1 }, new[] { 1, 1, 1, 1 }, "NOTSET", 1, 1)]
    [InlineData("AveragePool", new[] { 3, 3 }, new[] { 2, 2 }, new[] { 1, 1 }, new[] { 1, 1, 1, 1 }, "NOTSET", 1, 0)]
    [InlineData("AveragePool", new[] { 2, 2 }, new[] { 2, 2 }, new[] { 2, 2 }, new[] { 0, 1, 1, 0 }, "NOTSET", 1, 1)]
    [InlineData("AveragePool", new[] { 4, 3 }, new[] { 3, 1 }, new[] { 1, 1 }, new[] { 0, 0, 0, 0 }, "SAME_UPPER", 0, 1)]
    [InlineData("AveragePool", new[] { 4, 3 }, new[] { 2, 2 }, new[] { 1, 1 }, new[] { 0, 0, 0, 0 }, "SAME_LOWER", 0, 0)]
    [InlineData("AveragePool", new[] { 3, 5 }, new[] { 2, 2 }, new[] { 1, 1 }, new[] { 0, 0, 0, 0 }, "VALID", 0, 0)]
    [InlineData("AveragePool", new[] { 2, 2, 2 }, new[] { 2, 2, 2 }, new[] { 1, 1, 1 }, new[] { 0, 0, 0, 1, 1, 1 }, "NOTSET", 1, 1)]
    [InlineData("LpPool", new[] { 3, 3 }, new[] { 2, 2 }, new[] { 1, 1 }, new[] { 1, 1, 1, 1 }, "NOTSET", 0, 0)]
    [InlineData("LpPool", new[] { 2 }, new[] { 1 }, new[] { 2 }, new[] { 1, 0 }, "NOTSET", 1, 0)]
    public void MatchesDirectEvaluation(string op, int[] kernel, int[] strides, int[] dilations, int[] pads, string autoPad, int ceilMode, int countIncludePad)
    {
        var rng = new Random(kernel.Sum() * 31 + strides.Sum() * 7 + pads.Sum() + ceilMode);
        int rank = kernel.Length;
        int[] spatial = rank switch { 1 => [37], 2 => [11, 29], _ => [7, 6, 19] };
        var x = SingleNode.Random(rng, [2, 3, .. spatial]);
        var attributes = new Dictionary<string, AttributeValue>
        {
            ["kernel_shape"] = AttributeValue.IntList([.. kernel.Select(v => (long)v)]),
            ["strides"] = AttributeValue.IntList([.. strides.Select(v => (long)v)]),
            ["dilations"] = AttributeValue.IntList([.. dilations.Select(v => (long)v)]),
            ["auto_pad"] = AttributeValue.String(autoPad),
            ["ceil_mode"] = AttributeValue.Int(ceilMode),
        };
        if (autoPad == "NOTSET") attributes["pads"] = AttributeValue.IntList([.. pads.Select(v => (long)v)]);
        if (op == "AveragePool") attributes["count_include_pad"] = AttributeValue.Int(countIncludePad);
        if (op == "LpPool") attributes["p"] = AttributeValue.Int(3);
        var (expected, shape) = Reference(op, x, kernel, strides, dilations, autoPad == "NOTSET" ? pads : null, autoPad, ceilMode != 0, countIncludePad != 0, 3);
        foreach (int threads in new[] { 1, 3 })
        {
            var y = SingleNode.Run(op, 22, attributes, [x], threads: threads)[0];
            Assert.Equal(shape, y.Shape);
            SingleNode.Close(expected, y, 1e-5, $"{op} threads={threads}");
        }
    }

    /// <summary>
    /// MaxPool of uint8 and int8 (int8 models pool quantized values; stride 2 has a vector path taking the even bytes of
    /// 32 inputs per tap) equals MaxPool of the same values as floats, exactly: a maximum picks one of its inputs.
    /// Rows of 75 reach the vector path twice and the scalar borders on both sides; the 2x2 kernel takes both taps from
    /// one load, so rows of 96 and 64 (cls's) run every output on it; uint8 2x2 without padding runs its own loop.
    /// </summary>
    [Theory]
    [InlineData(DataType.UInt8, 2, 1, 0, 75)]
    [InlineData(DataType.UInt8, 3, 1, 1, 75)]
    [InlineData(DataType.Int8, 3, 2, 2, 75)]
    [InlineData(DataType.Int8, 2, 1, 1, 75)]
    [InlineData(DataType.UInt8, 2, 1, 0, 96)]
    [InlineData(DataType.Int8, 2, 1, 0, 64)]
    [InlineData(DataType.UInt8, 2, 1, 0, 40)]  // uint8 2x2 without padding: whole planes, the last 16 outputs overlapping
    public void ByteMaxPoolEqualsFloatMaxPool(DataType type, int kernel, int dilation, int pad, int width)
    {
        var rng = new Random(kernel * 10 + dilation + pad + width);
        var bytes = new byte[2 * 3 * 6 * width];
        rng.NextBytes(bytes);
        var x = new Tensor(type, 2, 3, 6, width);
        bytes.CopyTo(x.Bytes);
        var wide = new float[bytes.Length];
        for (int i = 0; i < wide.Length; i++) wide[i] = type == DataType.UInt8 ? bytes[i] : (sbyte)bytes[i];
        var attributes = new Dictionary<string, AttributeValue>
        {
            ["kernel_shape"] = AttributeValue.IntList(kernel, kernel),
            ["strides"] = AttributeValue.IntList(2, 2),
            ["dilations"] = AttributeValue.IntList(dilation, dilation),
            ["pads"] = AttributeValue.IntList(pad, pad, pad, pad),
        };
        var expected = SingleNode.Run("MaxPool", 12, attributes, [Tensor.From<float>(wide, 2, 3, 6, width)])[0].AsSpan<float>().ToArray();
        var y = SingleNode.Run("MaxPool", 12, attributes, [x])[0];
        Assert.Equal(type, y.DataType);
        var got = y.Bytes;
        Assert.Equal(expected.Length, got.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.Equal(expected[i], type == DataType.UInt8 ? got[i] : (sbyte)got[i]);
    }

    /// <summary>MaxPool's Indices output: flat input indices, row-major or column-major (storage_order) within a plane.</summary>
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void MaxPoolIndicesPointAtTheMaxima(int storageOrder)
    {
        var rng = new Random(5);
        var x = SingleNode.Random(rng, 2, 3, 9, 10);
        var attributes = new Dictionary<string, AttributeValue>
        {
            ["kernel_shape"] = AttributeValue.IntList(3, 2),
            ["strides"] = AttributeValue.IntList(2, 2),
            ["pads"] = AttributeValue.IntList(1, 0, 1, 1),
            ["storage_order"] = AttributeValue.Int(storageOrder),
        };
        var outputs = SingleNode.Run("MaxPool", 12, attributes, [x], outputCount: 2);
        Tensor y = outputs[0], indices = outputs[1];
        var (expected, _) = Reference("MaxPool", x, [3, 2], [2, 2], [1, 1], [1, 0, 1, 1], "NOTSET", false, false, 0);
        SingleNode.Close(expected, y, 0, "MaxPool values");
        var xs = x.AsSpan<float>();
        var zs = indices.AsSpan<long>();
        for (int i = 0; i < zs.Length; i++)
        {
            long z = zs[i];
            int plane = (int)(z / 90), within = (int)(z % 90);
            int h = storageOrder == 0 ? within / 10 : within % 9;
            int w = storageOrder == 0 ? within % 10 : within / 9;
            Assert.Equal(i / (5 * 5), plane);
            Assert.Equal(y.AsSpan<float>()[i], xs[plane * 90 + h * 10 + w]);
        }
    }

    /// <summary>float16 runs through float and rounds once: the result is the float result rounded to half.</summary>
    [Fact]
    public void Float16PoolsLikeFloatRounded()
    {
        var rng = new Random(9);
        var x = SingleNode.Random(rng, 1, 2, 8, 21);
        var half = new Tensor(DataType.Float16, x.Shape);
        for (int i = 0; i < x.ElementCount; i++) half.AsSpan<Half>()[i] = (Half)x.AsSpan<float>()[i];
        var widened = new Tensor(DataType.Float, x.Shape);
        for (int i = 0; i < x.ElementCount; i++) widened.AsSpan<float>()[i] = (float)half.AsSpan<Half>()[i];
        var attributes = new Dictionary<string, AttributeValue>
        {
            ["kernel_shape"] = AttributeValue.IntList(3, 3),
            ["strides"] = AttributeValue.IntList(2, 2),
            ["pads"] = AttributeValue.IntList(1, 1, 1, 1),
        };
        var expected = SingleNode.Run("AveragePool", 22, attributes, [widened])[0];
        var actual = SingleNode.Run("AveragePool", 22, attributes, [half])[0];
        Assert.Equal(DataType.Float16, actual.DataType);
        for (int i = 0; i < expected.ElementCount; i++)
            Assert.Equal((Half)expected.AsSpan<float>()[i], actual.AsSpan<Half>()[i]);
    }

    /// <summary>The global pools against direct sums; planes of 1000 elements reach the vector paths.</summary>
    [Theory]
    [InlineData("GlobalAveragePool")]
    [InlineData("GlobalMaxPool")]
    [InlineData("GlobalLpPool")]
    public void GlobalPoolsMatchDirectEvaluation(string op)
    {
        var rng = new Random(op.Length);
        var x = SingleNode.Random(rng, 2, 5, 40, 25);
        var attributes = new Dictionary<string, AttributeValue>();
        if (op == "GlobalLpPool") attributes["p"] = AttributeValue.Int(3);
        var y = SingleNode.Run(op, 22, attributes, [x], threads: 2)[0];
        Assert.Equal(new[] { 2, 5, 1, 1 }, y.Shape);
        var expected = new double[10];
        var xs = x.AsSpan<float>();
        for (int p = 0; p < 10; p++)
        {
            var plane = xs.Slice(p * 1000, 1000);
            double acc = op == "GlobalMaxPool" ? double.NegativeInfinity : 0;
            foreach (float v in plane)
                acc = op switch { "GlobalMaxPool" => Math.Max(acc, v), "GlobalLpPool" => acc + Math.Pow(Math.Abs(v), 3), _ => acc + v };
            expected[p] = op switch { "GlobalAveragePool" => acc / 1000, "GlobalLpPool" => Math.Pow(acc, 1.0 / 3), _ => acc };
        }
        SingleNode.Close(expected, y, 1e-5, op);
    }

    /// <summary>The ONNX definition, evaluated window by window in double.</summary>
    private static (double[] Values, int[] Shape) Reference(string op, Tensor x, int[] kernel, int[] strides, int[] dilations,
        int[]? pads, string autoPad, bool ceil, bool countPad, double p)
    {
        int rank = kernel.Length;
        int[] inSize = x.Shape[2..];
        var outSize = new int[rank];
        var begin = new int[rank];
        var end = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int extent = (kernel[i] - 1) * dilations[i] + 1;
            if (autoPad.StartsWith("SAME", StringComparison.Ordinal))
            {
                outSize[i] = (int)Math.Ceiling(inSize[i] / (double)strides[i]);
                int total = Math.Max(0, (outSize[i] - 1) * strides[i] + extent - inSize[i]);
                begin[i] = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2;
                end[i] = total - begin[i];
            }
            else
            {
                begin[i] = pads?[i] ?? 0;
                end[i] = pads?[i + rank] ?? 0;
                double size = (inSize[i] + begin[i] + end[i] - extent) / (double)strides[i] + 1;
                outSize[i] = (int)(ceil && autoPad == "NOTSET" ? Math.Ceiling(size) : Math.Floor(size));
                if (ceil && autoPad == "NOTSET" && (outSize[i] - 1) * strides[i] >= inSize[i] + begin[i]) outSize[i]--;
            }
        }
        int planes = x.Shape[0] * x.Shape[1];
        int inPlane = inSize.Aggregate(1, (a, b) => a * b), outPlane = outSize.Aggregate(1, (a, b) => a * b);
        var result = new double[planes * outPlane];
        var xs = x.AsSpan<float>();
        var o = new int[rank];
        var k = new int[rank];
        for (int plane = 0; plane < planes; plane++)
        {
            for (int oi = 0; oi < outPlane; oi++)
            {
                for (int i = rank - 1, rest = oi; i >= 0; i--) { o[i] = rest % outSize[i]; rest /= outSize[i]; }
                int taps = kernel.Aggregate(1, (a, b) => a * b);
                double acc = op == "MaxPool" ? double.NegativeInfinity : 0;
                int valid = 0, inPad = 0;
                for (int t = 0; t < taps; t++)
                {
                    for (int i = rank - 1, rest = t; i >= 0; i--) { k[i] = rest % kernel[i]; rest /= kernel[i]; }
                    bool isValid = true, isPad = true;
                    int flat = 0;
                    for (int i = 0; i < rank; i++)
                    {
                        int pos = o[i] * strides[i] - begin[i] + k[i] * dilations[i];
                        isValid &= pos >= 0 && pos < inSize[i];
                        isPad &= pos < inSize[i] + end[i];
                        flat = flat * inSize[i] + pos;
                    }
                    if (isPad) inPad++;
                    if (!isValid) continue;
                    valid++;
                    double v = xs[plane * inPlane + flat];
                    acc = op switch { "MaxPool" => Math.Max(acc, v), "LpPool" => acc + Math.Pow(Math.Abs(v), p), _ => acc + v };
                }
                result[plane * outPlane + oi] = op switch
                {
                    "AveragePool" => acc / (countPad ? inPad : valid),
                    "LpPool" => Math.Pow(acc, 1 / p),
                    _ => acc,
                };
            }
        }
        return (result, [x.Shape[0], x.Shape[1], .. outSize]);
    }
}
