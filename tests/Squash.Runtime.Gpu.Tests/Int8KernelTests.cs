using Squash.Runtime.Ir;
using Squash.Runtime.Operators;

namespace Squash.Runtime.Gpu.Tests;

/// <summary>
/// The int8 kernels (com.squash Q* operators, QuantizeLinear, DequantizeLinear) on the CPU accelerator against the CPU
/// operators. Exact (tolerance 0, uint8 outputs byte for byte): both sum the products in int32, which is exact, and
/// apply the same fp32 epilogue (one multiplication, clamp and round half to even; the dequantizing one a fused
/// multiply-add) with per-channel constants computed by the same formulas; QMul's multipliers and the global pool's
/// mean are evaluated in double on both.
/// </summary>
public class Int8KernelTests
{
    private const string Squash = OperatorRegistry.SquashDomain;

    private static Tensor Bytes(int seed, params int[] shape)
    {
        var rng = new Random(seed);
        var values = new byte[Shapes.ElementCount(shape)];
        rng.NextBytes(values);
        return Tensor.From(values, shape);
    }

    private static Tensor Weights(int seed, int bound, params int[] shape)
    {
        var rng = new Random(seed);
        var values = new sbyte[Shapes.ElementCount(shape)];
        for (int i = 0; i < values.Length; i++) values[i] = (sbyte)rng.Next(-bound, bound + 1);
        return Tensor.From(values, shape);
    }

    private static Tensor Ints(int seed, int bound, int count)
    {
        var rng = new Random(seed);
        return Tensor.From(Enumerable.Range(0, count).Select(_ => rng.Next(-bound, bound + 1)).ToArray(), count);
    }

    private static Tensor Scales(int seed, float low, float high, int count)
    {
        var rng = new Random(seed);
        return Tensor.From(Enumerable.Range(0, count).Select(_ => low + (float)rng.NextDouble() * (high - low)).ToArray(), count);
    }

    /// <summary>Adds the constants of one QConv or QMatMul and returns its input names (x first).</summary>
    private static string?[] Product(MultiCase m, string id, string x, Tensor w, Tensor wScale, Tensor? bias, (float Scale, byte Zero)? output)
    {
        m.Input($"{id}_xs", Tensor.Scalar(0.02f), true).Input($"{id}_xz", Tensor.Scalar((byte)120), true)
            .Input($"{id}_w", w, true).Input($"{id}_ws", wScale, true);
        if (output is { } o) m.Input($"{id}_ys", Tensor.Scalar(o.Scale), true).Input($"{id}_yz", Tensor.Scalar(o.Zero), true);
        if (bias is not null) m.Input($"{id}_b", bias, true);
        return [x, $"{id}_xs", $"{id}_xz", $"{id}_w", $"{id}_ws", null, output is null ? null : $"{id}_ys", output is null ? null : $"{id}_yz",
            bias is null ? null : $"{id}_b"];
    }

    private static Dictionary<string, AttributeValue> Conv(long group, long[] kernel, long[] strides, long[] pads, long[] dilations,
        float? min = null, float? max = null)
    {
        var a = new Dictionary<string, AttributeValue>
        {
            ["group"] = DeviceCase.Int(group), ["kernel_shape"] = DeviceCase.Ints(kernel), ["strides"] = DeviceCase.Ints(strides),
            ["pads"] = DeviceCase.Ints(pads), ["dilations"] = DeviceCase.Ints(dilations),
        };
        if (min is { } lo) a["activation_min"] = DeviceCase.Float(lo);
        if (max is { } hi) a["activation_max"] = DeviceCase.Float(hi);
        return a;
    }

    [Fact]
    public void QConvMatchesTheCpuOperator()
    {
        // Non-depthwise weights stay in [-64, 64] (the CPU's GEMM limit); depthwise ones use the full int8 range.
        var m = new MultiCase().Input("x", Bytes(1, 2, 4, 7, 9));
        m.Node("QConv", Product(m, "general", "x", Weights(2, 64, 6, 4, 3, 3), Scales(3, 0.005f, 0.02f, 6), Ints(4, 3000, 6), (0.05f, 128)),
            Conv(1, [3, 3], [2, 2], [1, 1, 1, 0], [1, 1], min: 0f), domain: Squash);
        m.Node("QConv", Product(m, "grouped", "x", Weights(5, 64, 4, 2, 3, 2), Scales(6, 0.005f, 0.02f, 4), Ints(7, 3000, 4), null),
            Conv(2, [3, 2], [1, 1], [2, 0, 2, 1], [2, 1], max: 6f), domain: Squash);
        m.Node("QConv", Product(m, "pointwise", "x", Weights(8, 64, 5, 4, 1, 1), Tensor.Scalar(0.01f), null, (0.03f, 100)),
            Conv(1, [1, 1], [1, 1], [0, 0, 0, 0], [1, 1]), domain: Squash);
        m.Node("QConv", Product(m, "depthwise", "x", Weights(9, 128, 4, 1, 3, 3), Scales(10, 0.005f, 0.02f, 4), Ints(11, 3000, 4), (0.04f, 130)),
            Conv(4, [3, 3], [1, 2], [1, 1, 1, 1], [1, 1], min: -1f, max: 2f), domain: Squash);
        m.Node("QConv", Product(m, "depthwise_f", "x", Weights(12, 128, 4, 1, 3, 3), Scales(13, 0.005f, 0.02f, 4), Ints(14, 3000, 4), null),
            Conv(4, [3, 3], [1, 1], [0, 1, 2, 1], [1, 1], min: 0f), domain: Squash);
        m.Node("QConv", Product(m, "multiplier", "x", Weights(15, 64, 8, 1, 3, 3), Scales(16, 0.005f, 0.02f, 8), null, (0.04f, 128)),
            Conv(4, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1]), domain: Squash);
        m.Check(0, 0);
    }

    [Fact]
    public void QConv1DAndQMatMulMatchTheCpuOperators()
    {
        var m = new MultiCase().Input("x", Bytes(20, 2, 3, 11)).Input("a", Bytes(21, 2, 3, 40));
        m.Node("QConv", Product(m, "c1", "x", Weights(22, 64, 5, 3, 3), Scales(23, 0.005f, 0.02f, 5), Ints(24, 2000, 5), (0.05f, 128)),
            Conv(1, [3], [2], [1, 1], [1]), domain: Squash);
        var matmul = new Dictionary<string, AttributeValue> { ["activation_min"] = DeviceCase.Float(-1f), ["activation_max"] = DeviceCase.Float(2f) };
        m.Node("QMatMul", Product(m, "mq", "a", Weights(25, 64, 40, 7), Scales(26, 0.005f, 0.02f, 7), Ints(27, 3000, 7), (0.06f, 110)), matmul, domain: Squash);
        m.Node("QMatMul", Product(m, "mf", "a", Weights(28, 64, 40, 7), Tensor.Scalar(0.01f), null, null), domain: Squash);
        m.Node("QMatMul", Product(m, "mfb", "a", Weights(29, 64, 40, 7), Scales(30, 0.005f, 0.02f, 7), Ints(31, 3000, 7), null), matmul, domain: Squash);
        m.Check(0, 0);
    }

    [Fact]
    public void ElementwiseInt8OperatorsAndBytePoolingMatchTheCpuOperators()
    {
        var gates = DeviceCase.Random(40, 1f, 1, 6, 1, 1);
        foreach (ref float g in gates.AsSpan<float>()) g = MathF.Abs(g);
        var m = new MultiCase()
            .Input("a", Bytes(41, 1, 6, 4, 5)).Input("b", Bytes(42, 1, 6, 4, 5)).Input("gate", gates)
            .Input("x1", Bytes(43, 1, 2, 4, 5))
            .Input("sa", Tensor.Scalar(0.03f), true).Input("za", Tensor.Scalar((byte)120), true)
            .Input("sb", Tensor.Scalar(0.05f), true).Input("zb", Tensor.Scalar((byte)100), true)
            .Input("sy", Tensor.Scalar(0.04f), true).Input("zy", Tensor.Scalar((byte)128), true);
        m.Node("QAdd", ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"], new() { ["activation_min"] = DeviceCase.Float(0f) }, domain: Squash);
        m.Node("QMul", ["a", "sa", "za", "gate", "sy", "zy"], domain: Squash);
        // x0 = a has the output's parameters (copied), x1 other ones (requantized).
        m.Node("QConcat", ["sa", "za", "a", "sa", "za", "x1", "sb", "zb"], new() { ["axis"] = DeviceCase.Int(1) }, domain: Squash);
        m.Node("QGlobalAveragePool", ["a", "sa", "za"], domain: Squash);
        // MaxPool of uint8 and int8 (int8 models pool the quantized values), with padding and ceil_mode.
        var pool = new Dictionary<string, AttributeValue>
        {
            ["kernel_shape"] = DeviceCase.Ints(3, 2), ["strides"] = DeviceCase.Ints(2, 2), ["pads"] = DeviceCase.Ints(1, 0, 1, 1), ["ceil_mode"] = DeviceCase.Int(1),
        };
        m.Node("MaxPool", ["a"], pool);
        m.Input("s8", Weights(44, 128, 1, 3, 5, 4));
        m.Node("MaxPool", ["s8"], pool);
        m.Check(0, 0);
    }

    [Fact]
    public void QLookupMatchesTheCpuOperator()
    {
        var x = Bytes(50, 1, 3, 20, 13);
        // Every byte value appears in each channel, so every table entry is compared.
        for (int c = 0; c < 3; c++)
            for (int q = 0; q < 256; q++) x.AsSpan<byte>()[c * 260 + q] = (byte)q;
        var m = new MultiCase().Input("x", x)
            .Input("sx", Tensor.Scalar(0.05f), true).Input("zx", Tensor.Scalar((byte)128), true)
            .Input("sy", Tensor.Scalar(1f / 255), true).Input("zy", Tensor.Scalar((byte)0), true)
            .Input("sy2", Tensor.Scalar(0.1f), true).Input("zy2", Tensor.Scalar((byte)128), true);
        m.Node("QLookup", ["x", "sx", "zx", "sy", "zy"], new() { ["body"] = AttributeValue.FromGraph(Body("Sigmoid", null)) }, domain: Squash);
        // A per-channel body (axis 1): x times one constant per channel.
        var perChannel = new Dictionary<string, AttributeValue>
        {
            ["body"] = AttributeValue.FromGraph(Body("Mul", Tensor.From(new[] { 0.5f, -1.5f, 3f }, 1, 3, 1, 1))), ["axis"] = DeviceCase.Int(1),
        };
        m.Node("QLookup", ["x", "sx", "zx", "sy2", "zy2"], perChannel, domain: Squash);
        m.Check(0, 0);
    }

    /// <summary>The exactness on CUDA rests on IEEE arithmetic in the PTX: QuantizeLinear's division rounded to nearest
    /// (div.rn, not div.approx or div.full), QAdd's and the dequantizing epilogue's fused multiply-add (fma.rn), and no
    /// other rounding mode; the GEMM's products are dp4a. The emulator runs .NET arithmetic and the kernels' non-CUDA
    /// branches, so this reads the generated PTX.</summary>
    [Fact]
    public void PtxUsesIeeeDivisionAndFusedMultiplyAdd()
    {
        string quantize = BackendCompiler.Ptx(typeof(Kernels.Int8Kernels).GetMethod(nameof(Kernels.Int8Kernels.Quantize))!);
        Assert.Contains("div.rn.f32", quantize);
        Assert.DoesNotContain("div.approx", quantize);
        Assert.DoesNotContain("div.full", quantize);
        string add = BackendCompiler.Ptx(typeof(Kernels.Int8Kernels).GetMethod(nameof(Kernels.Int8Kernels.Add))!);
        Assert.Contains("fma.rn.f32", add);
        Assert.Contains("mul.rn.f32", add);
        Assert.DoesNotContain(".extern .func", add);
        // The GEMM's inner product is dp4a (the emulator runs its byte-by-byte branch, which the other tests check).
        var gemm = typeof(Kernels.Int8Kernels).GetMethod(nameof(Kernels.Int8Kernels.Gemm))!
            .MakeGenericMethod(typeof(Kernels.ByteMatrix), typeof(Kernels.ByteIm2Col), typeof(Kernels.RequantizedOutput), typeof(Kernels.WeightsLeftDp4a));
        string ptx = BackendCompiler.Ptx(gemm, grouped: true);
        Assert.Contains("dp4a.u32.s32", ptx);
        Assert.DoesNotContain(".extern .func", ptx);
    }

    /// <summary>The fp32 emulation of a fused multiply-add (the emulator's and OpenCL's path) equals
    /// <see cref="MathF.FusedMultiplyAdd"/> exactly: on the epilogues' operands (an int32 or a uint8 difference times a
    /// scale plus a bias), on random floats of mixed magnitudes, and where the addend cancels the product.</summary>
    [Fact]
    public void EmulatedFusedMultiplyAddIsExact()
    {
        var rng = new Random(70);
        float Scale() => (float)Math.Exp(rng.NextDouble() * 20 - 14) * (rng.Next(2) == 0 ? 1 : -1);
        int mismatches = 0;
        string first = "";
        for (int i = 0; i < 1_000_000; i++)
        {
            float a = (i % 4) switch
            {
                0 => rng.Next(int.MinValue, int.MaxValue),
                1 => rng.Next(-255, 256),
                _ => Scale(),
            };
            float b = Scale();
            float c = (i % 3) switch
            {
                0 => Scale(),
                // The addend cancels most of the product: the low parts decide the result.
                1 => -(a * b) * (1 + (float)(rng.NextDouble() - 0.5) * 1e-6f),
                _ => -(a * b),
            };
            float want = MathF.FusedMultiplyAdd(a, b, c), got = Kernels.Int8Math.Fma(a, b, c);
            if (BitConverter.SingleToInt32Bits(want) != BitConverter.SingleToInt32Bits(got) && !(want == 0 && got == 0))
            {
                if (mismatches++ == 0) first = $"fma({a:R}, {b:R}, {c:R}) = {want:R}, emulated {got:R}";
            }
        }
        Assert.True(mismatches == 0, $"{mismatches} mismatches, first {first}");
    }

    /// <summary>A body graph of one element-wise node: unary, or binary with a constant second operand.</summary>
    private static Graph Body(string op, Tensor? constant)
    {
        var body = new Graph("body");
        body.OpsetImports[""] = 17;
        var bx = new Value("bx", DataType.Float, [-1, -1, -1, -1]);
        body.Inputs.Add(bx);
        var node = new Node(op, "f", "", 17);
        node.AddInput(bx);
        if (constant is not null)
        {
            var k = new Value("k", constant);
            body.Initializers.Add(k);
            node.AddInput(k);
        }
        var by = new Value("by", DataType.Float);
        node.AddOutput(by);
        body.Nodes.Add(node);
        body.Outputs.Add(by);
        return body;
    }

    [Fact]
    public void QuantizeAndDequantizeLinearMatchTheCpuOperators()
    {
        // Ties at .5 steps, out-of-range values, NaN and infinities, then random values.
        var x = DeviceCase.Random(60, 8f, 2, 5, 3, 4);
        float[] special = [0.25f, 0.75f, -0.25f, 1.25f, 100f, -100f, float.NaN, float.PositiveInfinity, float.NegativeInfinity, 0f, -0f, 2.5f];
        special.CopyTo(x.AsSpan<float>());
        var blockScales = new Tensor(DataType.Float, [2, 3, 3, 4]);
        var rng = new Random(61);
        foreach (ref float s in blockScales.AsSpan<float>()) s = 0.02f + (float)rng.NextDouble() * 0.05f;
        var m = new MultiCase().Input("x", x)
            .Input("s", Tensor.Scalar(0.5f), true).Input("z", Tensor.Scalar((byte)128), true)
            .Input("sc", Scales(62, 0.02f, 0.1f, 5), true).Input("zc", Tensor.From(new sbyte[] { 0, -3, 5, 127, -128 }, 5), true)
            .Input("sblock", blockScales, true)
            .Input("q8", Bytes(63, 2, 5, 3, 4)).Input("s8", Weights(64, 128, 2, 5, 3, 4));
        m.Node("QuantizeLinear", ["x", "s", "z"]);
        m.Node("QuantizeLinear", ["x", "sc", "zc"], new() { ["axis"] = DeviceCase.Int(1) });
        m.Node("QuantizeLinear", ["x", "sblock"], new() { ["axis"] = DeviceCase.Int(1), ["block_size"] = DeviceCase.Int(2) });
        m.Node("DequantizeLinear", ["q8", "s", "z"]);
        m.Node("DequantizeLinear", ["s8", "sc", "zc"], new() { ["axis"] = DeviceCase.Int(1) });
        m.Check(0, 0);
    }
}
