using System.Runtime.Intrinsics;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Tests;

/// <summary>The elementwise kernels of the unary math, activation and cast operators against scalar references.</summary>
public sealed class UnaryTests
{
    /// <summary>erf at points known to 16 digits (Abramowitz and Stegun, table 7.1, and mpmath).</summary>
    [Theory]
    [InlineData(0.0, 0.0)]
    [InlineData(0.1, 0.1124629160182849)]
    [InlineData(0.5, 0.5204998778130465)]
    [InlineData(1.0, 0.8427007929497149)]
    [InlineData(-1.5, -0.9661051464753108)]
    [InlineData(2.0, 0.9953222650189527)]
    [InlineData(2.5, 0.9995930479825550)]
    [InlineData(3.0, 0.9999779095030014)]
    [InlineData(4.5, 0.9999999998033839)]
    public void DoubleErfMatchesTables(double x, double expected) =>
        Assert.True(Math.Abs(FloatMath.Erf(x) - expected) <= 1e-14, $"erf({x}) = {FloatMath.Erf(x):R}, expected {expected:R}");

    /// <summary>The float erf over [-5, 5] at every vector width this machine runs, against the double one.
    /// Bound: 2 ulp of the result (the polynomials are faithful; the vector exp adds up to about 1 ulp) and 1e-37
    /// absolute where the result is subnormal-small.</summary>
    [Fact]
    public void FloatErfIsAccurateAtEveryWidth()
    {
        var x = new float[200_001];
        for (int i = 0; i < x.Length; i++) x[i] = -5f + i * 5e-5f;
        foreach (var (width, y) in AllWidths(new ErfFunction(), x))
        {
            for (int i = 0; i < x.Length; i++)
            {
                double expected = FloatMath.Erf(x[i]);
                double ulp = Math.Max(MathF.BitIncrement(Math.Abs((float)expected)) - Math.Abs((float)expected), 1e-37);
                if (!(Math.Abs(y[i] - expected) <= 2 * ulp)) Assert.Fail($"{width}: erf({x[i]:R}) = {y[i]:R}, expected {expected:R}");
            }
        }
    }

    /// <summary>The float exp and tanh against double over their whole useful ranges, at every width, within
    /// <paramref name="ulps"/> units in the last place of the result (subnormal results: of the smallest
    /// subnormal); infinities exact. Exp's polynomial is about 1 ulp; MLAS's tanh rational, evaluated in float,
    /// measures up to 4.8 ulp (as in ONNX Runtime).</summary>
    [Theory]
    [InlineData("Exp", -104.0, 89.0, 2)]
    [InlineData("Tanh", -10.0, 10.0, 5)]
    public void FloatExpAndTanhAreAccurate(string name, double from, double to, int ulps)
    {
        var x = new float[400_001];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(from + (to - from) * i / (x.Length - 1));
        Func<double, double> reference = name == "Exp" ? Math.Exp : Math.Tanh;
        var results = name == "Exp" ? AllWidths(new ExpFunction(), x) : AllWidths(new TanhFunction(), x);
        foreach (var (width, y) in results)
        {
            for (int i = 0; i < x.Length; i++)
            {
                float expected = (float)reference(x[i]);
                float magnitude = Math.Abs(expected);
                double ulp = float.IsInfinity(magnitude) ? 0 : Math.Max(MathF.BitIncrement(magnitude) - magnitude, float.Epsilon);
                bool ok = float.IsInfinity(expected) ? y[i] == expected : Math.Abs(y[i] - reference(x[i])) <= ulps * ulp;
                if (!ok) Assert.Fail($"{name} at {width}: f({x[i]:R}) = {y[i]:R}, expected {expected:R}");
            }
        }
    }

    public static TheoryData<string> FloatFunctionNames() => [.. s_functions.Keys];

    private static readonly Dictionary<string, Func<float[], (string, float[])[]>> s_functions = new()
    {
        ["Relu"] = x => AllWidths(new ReluFunction(), x),
        ["LeakyRelu"] = x => AllWidths(new LeakyReluFunction(0.1f), x),
        ["ThresholdedRelu"] = x => AllWidths(new ThresholdedReluFunction(0.7f), x),
        ["Elu"] = x => AllWidths(new EluFunction(1.3f), x),
        ["Selu"] = x => AllWidths(new SeluFunction(1.67326319f, 1.05070102f), x),
        ["Celu"] = x => AllWidths(new CeluFunction(0.8f), x),
        ["HardSigmoid"] = x => AllWidths(new HardSigmoidFunction(0.2f, 0.5f), x),
        ["HardSwish"] = x => AllWidths(new HardSwishFunction(), x),
        ["Sigmoid"] = x => AllWidths(new SigmoidFunction(), x),
        ["Softsign"] = x => AllWidths(new SoftsignFunction(), x),
        ["Softplus"] = x => AllWidths(new SoftplusFunction(), x),
        ["Mish"] = x => AllWidths(new MishFunction(), x),
        ["Erf"] = x => AllWidths(new ErfFunction(), x),
        ["Gelu"] = x => AllWidths(new GeluFunction(), x),
        ["GeluTanh"] = x => AllWidths(new GeluTanhFunction(), x),
        ["Clip"] = x => AllWidths(new ClipFunction(-1.5f, 2.5f), x),
        ["Exp"] = x => AllWidths(new ExpFunction(), x),
        ["Tanh"] = x => AllWidths(new TanhFunction(), x),
    };

    private static readonly Dictionary<string, Func<double, double>> s_references = new()
    {
        ["Relu"] = new ReluFunction().Invoke,
        ["LeakyRelu"] = new LeakyReluFunction(0.1f).Invoke,
        ["ThresholdedRelu"] = new ThresholdedReluFunction(0.7f).Invoke,
        ["Elu"] = new EluFunction(1.3f).Invoke,
        ["Selu"] = new SeluFunction(1.67326319f, 1.05070102f).Invoke,
        ["Celu"] = new CeluFunction(0.8f).Invoke,
        ["HardSigmoid"] = new HardSigmoidFunction(0.2f, 0.5f).Invoke,
        ["HardSwish"] = new HardSwishFunction().Invoke,
        ["Sigmoid"] = new SigmoidFunction().Invoke,
        ["Softsign"] = new SoftsignFunction().Invoke,
        ["Softplus"] = new SoftplusFunction().Invoke,
        ["Mish"] = new MishFunction().Invoke,
        ["Erf"] = new ErfFunction().Invoke,
        ["Gelu"] = new GeluFunction().Invoke,
        ["GeluTanh"] = new GeluTanhFunction().Invoke,
        ["Clip"] = new ClipFunction(-1.5f, 2.5f).Invoke,
        ["Exp"] = new ExpFunction().Invoke,
        ["Tanh"] = new TanhFunction().Invoke,
    };

    /// <summary>Each vectorized float function against its double form over [-30, 30] plus special values.
    /// Bound: 4e-6 relative plus 1e-6 absolute (a few float ulps, and the cancellation of exp(x) - 1 and of
    /// 1 + erf near their zeros); NaN and infinite expectations must match exactly.</summary>
    [Theory]
    [MemberData(nameof(FloatFunctionNames))]
    public void FloatFunctionMatchesDoubleReference(string name)
    {
        var values = new List<float> { 0f, -0f, 1e-30f, -1e-30f, 1e-8f, -1e-8f, 88f, -88f, 100f, -100f, 1e30f, -1e30f,
            float.PositiveInfinity, float.NegativeInfinity, float.NaN, float.MaxValue, float.MinValue };
        for (int i = -30_000; i <= 30_000; i++) values.Add(i * 1e-3f);
        var x = values.ToArray();
        var reference = s_references[name];
        foreach (var (width, y) in s_functions[name](x))
        {
            for (int i = 0; i < x.Length; i++)
            {
                double expected = (float)reference(x[i]);
                bool ok = double.IsNaN(expected) ? float.IsNaN(y[i])
                    : double.IsInfinity(expected) ? y[i] == expected
                    : Math.Abs(y[i] - expected) <= 4e-6 * Math.Abs(expected) + 1e-6;
                if (!ok) Assert.Fail($"{name} at {width}: f({x[i]:R}) = {y[i]:R}, expected {expected:R}");
            }
        }
    }

    /// <summary>Every length from 0 to 70, in place and not: each element gets the same arithmetic as when it is
    /// computed alone (the tail runs through a padded vector).</summary>
    [Fact]
    public void ResultsDoNotDependOnPositionOrLength()
    {
        var rng = new Random(7);
        for (int n = 0; n <= 70; n++)
        {
            var x = new float[n];
            for (int i = 0; i < n; i++) x[i] = (float)(rng.NextDouble() * 8 - 4);
            var y = new float[n];
            Elementwise.Map(new GeluFunction(), x, y);
            var inPlace = (float[])x.Clone();
            Elementwise.Map(new GeluFunction(), inPlace, inPlace);
            var alone = new float[1];
            for (int i = 0; i < n; i++)
            {
                Elementwise.Map(new GeluFunction(), x.AsSpan(i, 1), alone);
                Assert.Equal(alone[0], y[i]);
                Assert.Equal(alone[0], inPlace[i]);
            }
        }
    }

    [Fact]
    public void IntegerFunctionsWrapAndClampLikeNumPy()
    {
        sbyte[] x = [sbyte.MinValue, -5, -1, 0, 1, 7, sbyte.MaxValue, -128, 3, -3, 100, -100, 0, 9, -9, 50, -50, 1];
        var y = new sbyte[x.Length];
        Elementwise.Map(new AbsFunction<sbyte>(), x, y);
        Assert.Equal(x.Select(v => (sbyte)(v < 0 ? -v : v)), y);
        Assert.Equal(sbyte.MinValue, y[0]);
        Elementwise.Map(new SignFunction<sbyte>(), x, y);
        Assert.Equal(x.Select(v => (sbyte)Math.Sign(v)), y);
        Elementwise.Map(new NegateFunction<sbyte>(), x, y);
        Assert.Equal(x.Select(v => unchecked((sbyte)-v)), y);
        Elementwise.Map(new NumericReluFunction<sbyte>(), x, y);
        Assert.Equal(x.Select(v => Math.Max(v, (sbyte)0)), y);
        // min > max: every element becomes max.
        Elementwise.Map(new NumericClipFunction<sbyte>(5, -2), x, y);
        Assert.All(y, v => Assert.Equal(-2, v));
        ulong[] u = [0, 1, ulong.MaxValue, 5, 6, 7, 8, 9, 10];
        var uy = new ulong[u.Length];
        Elementwise.Map(new SignFunction<ulong>(), u, uy);
        Assert.Equal(u.Select(v => v == 0 ? 0UL : 1UL), uy);
    }

    [Fact]
    public void SignKeepsNaNAndZeros()
    {
        double[] x = [double.NaN, -0.0, 0.0, -3, 2, double.NegativeInfinity, double.PositiveInfinity, 1e-300, -1e-300];
        var y = new double[x.Length];
        Elementwise.Map(new SignFunction<double>(), x, y);
        Assert.True(double.IsNaN(y[0]));
        Assert.Equal([0.0, 0.0, -1, 1, -1, 1, 1, -1], y[1..]);
    }

    /// <summary>The vectorized bfloat16 conversions agree with the scalar operators on every bfloat16 and on
    /// float bit patterns that exercise rounding (ties, carries into the exponent, NaN payloads).</summary>
    [Fact]
    public void BFloat16ConversionsMatchScalarOperators()
    {
        var all = new BFloat16[65536];
        for (int i = 0; i < all.Length; i++) all[i] = new BFloat16((ushort)i);
        var widened = new float[all.Length];
        FloatConversions.ToSingle(all, widened);
        for (int i = 0; i < all.Length; i++)
            Assert.Equal(BitConverter.SingleToUInt32Bits((float)all[i]), BitConverter.SingleToUInt32Bits(widened[i]));

        var rng = new Random(3);
        var floats = new float[100_003];
        for (int i = 0; i < floats.Length; i++)
        {
            uint bits = (uint)rng.Next() << 1 ^ (uint)rng.Next(2);
            if (i % 3 == 0) bits = (bits & 0xFFFF0000) | 0x8000; // exact ties
            if (i % 3 == 1) bits |= 0x7FFF;                      // just below or carrying
            floats[i] = BitConverter.UInt32BitsToSingle(bits);
        }
        var narrowed = new BFloat16[floats.Length];
        FloatConversions.ToBFloat16(floats, narrowed);
        for (int i = 0; i < floats.Length; i++) Assert.Equal(((BFloat16)floats[i]).Bits, narrowed[i].Bits);
        Assert.Equal(0x3F80, ((BFloat16)1.00390625f).Bits);   // tie 1 + 2^-8 rounds to even (down)
        Assert.Equal(0x3F82, ((BFloat16)1.01171875f).Bits);   // tie 1 + 3 * 2^-8 rounds to even (up)
    }

    /// <summary>float16 to float: every bit pattern (NaN payloads, infinities, subnormals, both zeros) as the scalar
    /// conversion gives it, and every length around the vector widths (the 512-, 256- and 128-bit loops and the tail).</summary>
    [Fact]
    public void HalfToSingleMatchesTheScalarConversion()
    {
        var all = new Half[65536];
        for (int i = 0; i < all.Length; i++) all[i] = BitConverter.UInt16BitsToHalf((ushort)i);
        var widened = new float[all.Length];
        FloatConversions.ToSingle(all, widened);
        for (int i = 0; i < all.Length; i++)
            Assert.True(BitConverter.SingleToUInt32Bits((float)all[i]) == BitConverter.SingleToUInt32Bits(widened[i]), $"0x{i:X4}: {(float)all[i]} vs {widened[i]}");
        // Across the subnormal-to-normal boundary, the largest normals into infinity and NaN, and the negative subnormals.
        foreach (int boundary in new[] { 0x0400, 0x7C00, 0x8400 })
            for (int length = 0; length <= 70; length++)
            {
                int start = boundary - length / 2;
                var part = new float[length + 1];
                part[length] = 12345f;
                FloatConversions.ToSingle(all.AsSpan(start, length), part); // a longer destination keeps its tail
                for (int i = 0; i < length; i++) Assert.Equal(BitConverter.SingleToUInt32Bits((float)all[start + i]), BitConverter.SingleToUInt32Bits(part[i]));
                Assert.Equal(12345f, part[length]);
            }
    }

    [Fact]
    public void CastFollowsOnnxRules()
    {
        // Integers wrap into narrower integers (the spec's example: 200 as int16 is -56 as int8).
        AssertCast(Tensor.From<short>([200, -200, 127, 32767], 4), DataType.Int8, [-56, 56, 127, -1]);
        AssertCast(Tensor.From<long>([-1, 256 + 7, long.MaxValue], 3), DataType.UInt8, [255, 7, 255]);
        // Floats truncate toward zero; Squash saturates out-of-range values and maps NaN to 0.
        AssertCast(Tensor.From<float>([-2.7f, 2.7f, 1e10f, -1e10f, float.NaN, 300f, -0.5f], 7), DataType.Int32,
            [-2, 2, int.MaxValue, int.MinValue, 0, 300, 0]);
        AssertCast(Tensor.From<float>([300f, -300f, 255.9f], 3), DataType.UInt8, [255, 0, 255]);
        // To bool: zero (either sign) is false, everything else (NaN too) is true.
        AssertCast(Tensor.From<float>([0f, -0f, float.NaN, 1e-40f, -3f], 5), DataType.Bool, [0, 0, 1, 1, 1]);
        AssertCast(Tensor.From<bool>([true, false, true], 3), DataType.Float, [1, 0, 1]);
        AssertCast(Tensor.From<bool>([true, false], 2), DataType.BFloat16, [1, 0]);
        // Narrower floats round to nearest, ties to even; out of range is infinity.
        AssertCast(Tensor.From<double>([65519.0, 65520.0, 1 + Math.Pow(2, -11), 1 + 3 * Math.Pow(2, -11)], 4), DataType.Float16,
            [65504, double.PositiveInfinity, 1, 1 + Math.Pow(2, -9)]);
        AssertCast(Tensor.From<ulong>([ulong.MaxValue, 16777217], 2), DataType.Float, [18446744073709551616.0, 16777216]);
        AssertCast(Tensor.From<BFloat16>([(BFloat16)(-3.5f), (BFloat16)1e6f], 2), DataType.Int16, [-3, short.MaxValue]);
        AssertCast(Tensor.From<BFloat16>([(BFloat16)0f, (BFloat16)float.NaN], 2), DataType.Bool, [0, 1]);
        AssertCast(Tensor.From<Half>([(Half)2.5f, (Half)(-7f)], 2), DataType.BFloat16, [2.5, -7]);
    }

    [Fact]
    public void CastToUnsupportedTypeIsReported()
    {
        var error = Assert.Throws<SquashException>(() => RunNode("Cast", 13, new() { ["to"] = AttributeValue.Int(8) },
            Tensor.From<float>([1f], 1)));
        Assert.Equal(ErrorCodes.UnsupportedDataType, error.Code);
    }

    [Fact]
    public void ClipReadsAttributesBeforeOpset11AndInputsAfter()
    {
        var x = Tensor.From<float>([-10f, -1f, 0.5f, 3f, float.PositiveInfinity, float.NaN], 6);
        var old = RunNode("Clip", 10, new() { ["min"] = AttributeValue.Float(-2f), ["max"] = AttributeValue.Float(1f) }, x);
        AssertValues(old, [-2, -1, 0.5, 1, 1, double.NaN]);
        var none = RunNode("Clip", 13, [], x);
        AssertValues(none, [-10, -1, 0.5, 3, float.MaxValue, double.NaN]);
        var onlyMax = RunNode("Clip", 13, [], x, null, Tensor.Scalar(0f));
        AssertValues(onlyMax, [-10, -1, 0, 0, 0, double.NaN]);
        var inverted = RunNode("Clip", 13, [], Tensor.From<long>([-5, 0, 5], 3), Tensor.Scalar(3L), Tensor.Scalar(1L));
        AssertValues(inverted, [1, 1, 1]);
        var bytes = RunNode("Clip", 13, [], Tensor.From<byte>([0, 100, 255], 3), Tensor.Scalar((byte)10));
        AssertValues(bytes, [10, 100, 255]);
        var half = RunNode("Clip", 13, [], Tensor.From<Half>([Half.PositiveInfinity, (Half)(-3f)], 2), Tensor.Scalar((Half)(-1f)));
        AssertValues(half, [65504, -1]);
        Assert.Equal(ErrorCodes.InvalidModel,
            Assert.Throws<SquashException>(() => RunNode("Clip", 11, new() { ["min"] = AttributeValue.Float(0) }, x)).Code);
    }

    [Fact]
    public void OperatorsRunFloat16AndBFloat16ThroughFloat()
    {
        var h = RunNode("Gelu", 20, new() { ["approximate"] = AttributeValue.String("tanh") }, Tensor.From<Half>([(Half)1f, (Half)(-2f)], 2));
        AssertValues(h, [(double)(Half)0.8411920f, (double)(Half)(-0.04540231f)]);
        var b = RunNode("Exp", 13, [], Tensor.From<BFloat16>([(BFloat16)1f, (BFloat16)0f], 2));
        AssertValues(b, [(float)(BFloat16)MathF.E, 1]);
        var isInf = RunNode("IsInf", 20, new() { ["detect_negative"] = AttributeValue.Int(0) },
            Tensor.From<Half>([Half.PositiveInfinity, Half.NegativeInfinity, (Half)1f], 3));
        AssertValues(isInf, [1, 0, 0]);
        var not = RunNode("Not", 7, [], Tensor.From<bool>([true, false], 2));
        AssertValues(not, [0, 1]);
        Assert.Equal(ErrorCodes.InvalidModel, Assert.Throws<SquashException>(() =>
            RunNode("Gelu", 20, new() { ["approximate"] = AttributeValue.String("fast") }, Tensor.From<float>([1f], 1))).Code);
        Assert.Equal(ErrorCodes.UnsupportedDataType, Assert.Throws<SquashException>(() =>
            RunNode("Exp", 13, [], Tensor.From<int>([1], 1))).Code);
    }

    /// <summary>Split across threads (ranges of UnaryKernel.Grain elements), results are bit-identical to one thread.</summary>
    [Fact]
    public void ThreadsDoNotChangeResults()
    {
        var rng = new Random(5);
        var values = new float[200_003];
        for (int i = 0; i < values.Length; i++) values[i] = (float)(rng.NextDouble() * 20 - 10);
        var halves = new Half[values.Length];
        for (int i = 0; i < values.Length; i++) halves[i] = (Half)values[i];
        foreach (var (op, input) in new[] { ("Sigmoid", Tensor.From<float>(values, values.Length)), ("Erf", Tensor.From<Half>(halves, halves.Length)) })
        {
            var one = RunNode(op, 13, [], [input], new KernelContext(1));
            var three = RunNode(op, 13, [], [input], new KernelContext(3));
            Assert.True(one.Bytes.SequenceEqual(three.Bytes), op);
        }
        var cast = Tensor.From<float>(values, values.Length);
        Assert.True(RunNode("Cast", 13, new() { ["to"] = AttributeValue.Int(16) }, [cast], new KernelContext(1)).Bytes
            .SequenceEqual(RunNode("Cast", 13, new() { ["to"] = AttributeValue.Int(16) }, [cast], new KernelContext(3)).Bytes));
    }

    /// <summary>Applies <paramref name="function"/> at every vector width the hardware accelerates.</summary>
    private static (string Width, float[] Result)[] AllWidths<TF>(TF function, float[] x) where TF : struct, IFloatFunction
    {
        var results = new List<(string, float[])>();
        var y = new float[x.Length];
        Elementwise.Map<TF, Float128>(function, x, y);
        results.Add(("128-bit", y));
        if (Vector256.IsHardwareAccelerated)
        {
            y = new float[x.Length];
            Elementwise.Map<TF, Float256>(function, x, y);
            results.Add(("256-bit", y));
        }
        if (Vector512.IsHardwareAccelerated)
        {
            y = new float[x.Length];
            Elementwise.Map<TF, Float512>(function, x, y);
            results.Add(("512-bit", y));
        }
        return [.. results];
    }

    private static void AssertCast(Tensor x, DataType to, double[] expected)
    {
        var y = new Tensor(to, x.Shape);
        TensorConversion.Convert(new KernelContext(1), x, y);
        AssertValues(y, expected);
        var viaOperator = RunNode("Cast", 21, new() { ["to"] = AttributeValue.Int((long)to) }, x);
        AssertValues(viaOperator, expected);
    }

    private static void AssertValues(Tensor actual, double[] expected)
    {
        Assert.Equal(expected.Length, actual.ElementCount);
        for (int i = 0; i < expected.Length; i++)
        {
            double a = actual.GetAsDouble(i);
            if (double.IsNaN(expected[i])) Assert.True(double.IsNaN(a), $"element {i}: {a}, expected NaN");
            else Assert.True(a == expected[i] || Math.Abs(a - expected[i]) <= 1e-6 * Math.Abs(expected[i]), $"element {i}: {a:R}, expected {expected[i]:R}");
        }
    }

    /// <summary>Runs one node through the executor; a null input is omitted.</summary>
    private static Tensor RunNode(string opType, int opset, Dictionary<string, AttributeValue> attributes, params Tensor?[] inputs) =>
        RunNode(opType, opset, attributes, inputs, new KernelContext(1));

    private static Tensor RunNode(string opType, int opset, Dictionary<string, AttributeValue> attributes, Tensor?[] inputs, KernelContext context)
    {
        var graph = new Graph();
        graph.OpsetImports[""] = opset;
        var node = new Node(opType, "n", "", opset);
        foreach (var (name, value) in attributes) node.Attributes[name] = value;
        var feeds = new Dictionary<string, Tensor>();
        for (int i = 0; i < inputs.Length; i++)
        {
            if (inputs[i] is not { } tensor)
            {
                node.AddInput(null);
                continue;
            }
            var value = new Value($"x{i}", tensor.DataType, tensor.Shape);
            graph.Inputs.Add(value);
            node.AddInput(value);
            feeds[value.Name] = tensor;
        }
        var output = new Value("y");
        node.AddOutput(output);
        graph.Nodes.Add(node);
        graph.Outputs.Add(output);
        return new GraphExecutor(graph).Run(feeds, context)["y"];
    }
}
