using Squash.Runtime.Ir;
using Squash.Runtime.Operators;

namespace Squash.Runtime.Tests;

/// <summary>The binary elementwise family's numerics where they go beyond plain arithmetic, and its vector paths
/// against scalar expectations.</summary>
public sealed class BinaryTests
{
    public static TheoryData<DataType> ComparableTypes() =>
    [
        DataType.Float, DataType.Double, DataType.Float16, DataType.BFloat16, DataType.Int8, DataType.UInt8,
        DataType.Int16, DataType.UInt16, DataType.Int32, DataType.UInt32, DataType.Int64, DataType.UInt64,
    ];

    /// <summary>Vector comparisons (every lane count, with tails) agree with scalar ones, NaN included.</summary>
    [Theory]
    [MemberData(nameof(ComparableTypes))]
    public void ComparisonsMatchScalarSemantics(DataType type)
    {
        var rng = new Random((int)type);
        bool isFloat = DataTypes.IsFloatingPoint(type);
        (string Op, Func<double, double, bool> Expected)[] ops =
        [
            ("Equal", (a, b) => a == b), ("Greater", (a, b) => a > b), ("GreaterOrEqual", (a, b) => a >= b),
            ("Less", (a, b) => a < b), ("LessOrEqual", (a, b) => a <= b),
        ];
        foreach (int n in new[] { 1, 3, 7, 8, 9, 31, 33, 67 })
        {
            var x = new double[n];
            var y = new double[n];
            for (int i = 0; i < n; i++)
            {
                x[i] = rng.Next(0, 4);
                y[i] = rng.Next(0, 4);
                if (isFloat && rng.Next(8) == 0) x[i] = double.NaN;
            }
            foreach (var (op, expected) in ops)
            {
                Tensor a = Make(type, x, n), b = Make(type, y, n);
                Check(Run(op, a, b), i => expected(x[i], y[i]));
                Check(Run(op, a, Make(type, [y[0]])), i => expected(x[i], y[0]));
                Check(Run(op, Make(type, [x[0]]), b), i => expected(x[0], y[i]));
            }
        }

        static void Check(Tensor result, Func<int, bool> expected)
        {
            Assert.Equal(DataType.Bool, result.DataType);
            var values = result.AsSpan<bool>();
            for (int i = 0; i < values.Length; i++) Assert.True(expected(i) == values[i], $"element {i}");
        }
    }

    /// <summary>NaN wins in Max and Min (NumPy's maximum and minimum), in vector bodies and scalar tails.</summary>
    [Fact]
    public void MaxAndMinPropagateNaN()
    {
        var x = new float[37];
        for (int i = 0; i < x.Length; i++) x[i] = i % 3 == 0 ? float.NaN : i;
        var a = Tensor.From<float>(x, x.Length);
        foreach (var op in new[] { "Max", "Min" })
        {
            var spans = Run(op, a, Tensor.From<float>(new float[x.Length], x.Length)).AsSpan<float>();
            var scalar = Run(op, Tensor.Scalar(5f), a).AsSpan<float>();
            var nan = Run(op, a, Tensor.Scalar(float.NaN)).AsSpan<float>();
            for (int i = 0; i < x.Length; i++)
            {
                Assert.Equal(float.IsNaN(x[i]), float.IsNaN(spans[i]));
                Assert.Equal(float.IsNaN(x[i]), float.IsNaN(scalar[i]));
                Assert.True(float.IsNaN(nan[i]));
            }
        }
    }

    [Fact]
    public void IntegerDivisionTruncatesAndNeverTraps()
    {
        var quotient = Run("Div", Tensor.From<int>([7, -7, 7, -7, int.MinValue, 5], 6), Tensor.From<int>([2, 2, -2, -2, -1, 0], 6));
        Assert.Equal([3, -3, -3, 3, int.MinValue, 0], quotient.AsSpan<int>().ToArray());
        var bytes = Run("Div", Tensor.From<byte>([200, 7], 2), Tensor.Scalar<byte>(0));
        Assert.Equal([0, 0], bytes.AsSpan<byte>().ToArray());
    }

    [Fact]
    public void ModFollowsPythonOrCSignRules()
    {
        var x = Tensor.From<int>([-7, 7, -7, 7, int.MinValue, 5], 6);
        var y = Tensor.From<int>([3, -3, -3, 3, -1, 0], 6);
        Assert.Equal([2, -2, -1, 1, 0, 0], Run("Mod", x, y).AsSpan<int>().ToArray());
        Assert.Equal([-1, 1, -1, 1, 0, 0], RunWith("Mod", x, y, ("fmod", 1)).AsSpan<int>().ToArray());
        var f = RunWith("Mod", Tensor.From<float>([-4.5f, 4.5f], 2), Tensor.From<float>([2, -2], 2), ("fmod", 1));
        Assert.Equal([-0.5f, 0.5f], f.AsSpan<float>().ToArray());
        var error = Assert.Throws<SquashException>(() => Run("Mod", Tensor.From<float>([1], 1), Tensor.From<float>([2], 1)));
        Assert.Equal(ErrorCodes.InvalidModel, error.Code);
    }

    [Fact]
    public void IntegerPowIsExact()
    {
        var result = Run("Pow", Tensor.From<long>([2, 3, -2, 2, 1, -1, 5], 7), Tensor.From<long>([10, 39, 3, -1, -5, -3, 0], 7));
        Assert.Equal([1024L, 4052555153018976267L, -8, 0, 1, -1, 1], result.AsSpan<long>().ToArray());
        var mixed = Run("Pow", Tensor.From<float>([2, -3, 0.5f], 3), Tensor.From<int>([3, 2, -2], 3));
        Assert.Equal([8f, 9f, 4f], mixed.AsSpan<float>().ToArray());
        var intFloat = Run("Pow", Tensor.From<int>([4, 9], 2), Tensor.From<float>([0.5f, 1.5f], 2));
        Assert.Equal([2, 27], intFloat.AsSpan<int>().ToArray());
    }

    /// <summary>The multiply shortcuts for constant exponents 2 and 3 agree with pow: exactly for 2, within
    /// 2 ulp (two roundings against one) for 3. 1100 elements cross the cube's block size.</summary>
    [Fact]
    public void PowByTwoAndThreeMatchPow()
    {
        var x = new float[1100];
        var rng = new Random(3);
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 20 - 10);
        var input = Tensor.From<float>(x, x.Length);
        var square = Run("Pow", input, Tensor.Scalar(2f)).AsSpan<float>();
        var cube = Run("Pow", input, Tensor.Scalar(3f)).AsSpan<float>();
        for (int i = 0; i < x.Length; i++)
        {
            Assert.Equal(MathF.Pow(x[i], 2), square[i]);
            float expected = MathF.Pow(x[i], 3);
            Assert.True(Math.Abs(cube[i] - expected) <= 2 * float.Epsilon + 2 * Math.Abs(expected) * 1.2e-7, $"{x[i]}^3 = {cube[i]}, pow gives {expected}");
        }
    }

    [Fact]
    public void BitShiftDropsBitsShiftedOut()
    {
        var left = RunWith("BitShift", Tensor.From<byte>([1, 255, 16, 3], 4), Tensor.From<byte>([1, 1, 8, 200], 4), ("direction", "LEFT"));
        Assert.Equal([2, 254, 0, 0], left.AsSpan<byte>().ToArray());
        var right = RunWith("BitShift", Tensor.From<uint>([0x80000000u, 12], 2), Tensor.Scalar(2u), ("direction", "RIGHT"));
        Assert.Equal([0x20000000u, 3], right.AsSpan<uint>().ToArray());
        var all = RunWith("BitShift", Tensor.From<ulong>([ulong.MaxValue], 1), Tensor.Scalar(64ul), ("direction", "RIGHT"));
        Assert.Equal([0ul], all.AsSpan<ulong>().ToArray());
    }

    [Fact]
    public void PReluBroadcastsSlopeToX()
    {
        var rng = new Random(11);
        var x = new float[2 * 3 * 41];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        var input = Tensor.From<float>(x, 2, 3, 41);
        // Per channel (a slope per row of 41) and per element of the last axis.
        var perChannel = Run("PRelu", input, Tensor.From<float>([0.1f, 0.2f, 0.3f], 3, 1)).AsSpan<float>();
        var slopes = new float[41];
        for (int i = 0; i < slopes.Length; i++) slopes[i] = i * 0.01f;
        var perColumn = Run("PRelu", input, Tensor.From<float>(slopes, 41)).AsSpan<float>();
        for (int i = 0; i < x.Length; i++)
        {
            float c = (i / 41 % 3 + 1) * 0.1f;
            Assert.Equal(x[i] < 0 ? x[i] * c : x[i], perChannel[i]);
            Assert.Equal(x[i] < 0 ? x[i] * slopes[i % 41] : x[i], perColumn[i]);
        }
        Assert.Throws<SquashException>(() => Run("PRelu", Tensor.From<float>([1, 2], 2), Tensor.From<float>([1, 2], 2, 1)));
    }

    [Fact]
    public void Float16RoundsOnceToNearestEven()
    {
        // 1 + 2^-11 is halfway between 1 and the next half; ties go to the even neighbour.
        var sum = Run("Add", Tensor.From<Half>([(Half)1f, (Half)(1f + 1f / 1024)], 2), Tensor.Scalar((Half)(1f / 2048)));
        Assert.Equal([(Half)1f, (Half)(1f + 2f / 1024)], sum.AsSpan<Half>().ToArray());
    }

    [Fact]
    public void Float16SumAndMeanAccumulateInFloat()
    {
        Half big = (Half)60000f;
        // Rounded to float16 after each step, 60000 + 60000 would overflow to infinity.
        var sum = Run("Sum", Tensor.From<Half>([big], 1), Tensor.From<Half>([big], 1), Tensor.From<Half>([-big], 1));
        Assert.Equal(big, sum.AsSpan<Half>()[0]);
        var mean = Run("Mean", Tensor.From<Half>([big], 1), Tensor.From<Half>([big], 1));
        Assert.Equal(big, mean.AsSpan<Half>()[0]);
    }

    [Fact]
    public void VariadicBroadcastsAllInputs()
    {
        var max = Run("Max", Tensor.From<int>([1, 9], 2, 1), Tensor.Scalar(5), Tensor.From<int>([0, 6, 12], 3));
        Assert.Equal([5, 6, 12, 9, 9, 12], max.AsSpan<int>().ToArray());
        Assert.Equal([2, 3], max.Shape);
        var mean = Run("Mean", Tensor.From<double>([1, 2, 3], 3), Tensor.Scalar(3.0), Tensor.From<double>([2], 1, 1));
        Assert.Equal([2.0, 7.0 / 3, 8.0 / 3], mean.AsSpan<double>().ToArray());
    }

    [Fact]
    public void WhereSelectsWithBroadcasting()
    {
        var condition = Tensor.From<bool>([true, false, false, true, true, false, true, false], 2, 1, 4);
        var rng = new Random(2);
        var xValues = new long[3];
        for (int i = 0; i < 3; i++) xValues[i] = rng.Next();
        var x = Tensor.From<long>(xValues, 3, 1);
        var y = Tensor.Scalar(-1L);
        var result = Run("Where", condition, x, y);
        Assert.Equal([2, 3, 4], result.Shape);
        var values = result.AsSpan<long>();
        for (int i = 0; i < values.Length; i++)
        {
            int b = i / 12, row = i / 4 % 3, column = i % 4;
            Assert.Equal(condition.AsSpan<bool>()[b * 4 + column] ? xValues[row] : -1L, values[i]);
        }
        // A scalar condition picks one side for every row.
        var picked = Run("Where", Tensor.Scalar(false), Tensor.From<Half>([(Half)1, (Half)2], 2), Tensor.From<Half>([(Half)3], 1));
        Assert.Equal([(Half)3, (Half)3], picked.AsSpan<Half>().ToArray());
    }

    [Fact]
    public void LogicBroadcasts()
    {
        var a = Tensor.From<bool>([true, false, true, false], 2, 2);
        var b = Tensor.From<bool>([true, false], 2, 1);
        Assert.Equal([true, false, false, false], Run("And", a, b).AsSpan<bool>().ToArray());
        Assert.Equal([true, true, true, false], Run("Or", a, b).AsSpan<bool>().ToArray());
        Assert.Equal([false, true, true, false], Run("Xor", a, b).AsSpan<bool>().ToArray());
    }

    [Fact]
    public void MismatchedTypesAndShapesAreInvalid()
    {
        var error = Assert.Throws<SquashException>(() => Run("Add", Tensor.From<float>([1], 1), Tensor.From<double>([1], 1)));
        Assert.Equal(ErrorCodes.InvalidModel, error.Code);
        error = Assert.Throws<SquashException>(() => Run("Mul", Tensor.From<float>([1, 2], 2), Tensor.From<float>([1, 2, 3], 3)));
        Assert.Equal(ErrorCodes.InvalidModel, error.Code);
        error = Assert.Throws<SquashException>(() => Run("Add", Tensor.From<bool>([true], 1), Tensor.From<bool>([true], 1)));
        Assert.Equal(ErrorCodes.UnsupportedDataType, error.Code);
    }

    [Fact]
    public void MultithreadedRunMatchesSingleThreaded()
    {
        var rng = new Random(8);
        var x = new float[1 * 48 * 37 * 53];
        for (int i = 0; i < x.Length; i++) x[i] = (float)rng.NextDouble();
        var scale = new float[48];
        for (int i = 0; i < scale.Length; i++) scale[i] = (float)rng.NextDouble();
        var input = Tensor.From<float>(x, 1, 48, 37, 53);
        var channel = Tensor.From<float>(scale, 1, 48, 1, 1);
        foreach (var op in new[] { "Mul", "Div", "Sub", "Greater" })
        {
            var one = Run(op, 1, [], [channel, input]);
            var many = Run(op, 4, [], [channel, input]);
            Assert.True(one.Bytes.SequenceEqual(many.Bytes), op);
        }
    }

    private static Tensor Run(string opType, params Tensor[] inputs) => Run(opType, 1, [], inputs);

    private static Tensor RunWith(string opType, Tensor a, Tensor b, params (string Name, object Value)[] attributes) =>
        Run(opType, 1, attributes, [a, b]);

    private static Tensor Run(string opType, int threads, (string Name, object Value)[] attributes, Tensor[] inputs)
    {
        var node = new Node(opType, "test", "", 21);
        for (int i = 0; i < inputs.Length; i++) node.AddInput(new Value($"input{i}", inputs[i].DataType, inputs[i].Shape));
        node.AddOutput(new Value("output"));
        foreach (var (name, value) in attributes)
            node.Attributes[name] = value is string s ? AttributeValue.String(s) : AttributeValue.Int(Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture));
        var op = OperatorRegistry.Create(node);
        var inference = new InferenceContext(node, inputs.Length, 1);
        for (int i = 0; i < inputs.Length; i++) inference.SetInput(i, inputs[i].DataType, inputs[i].Shape, inputs[i]);
        op.InferOutputs(inference);
        var output = new Tensor(inference.OutputTypes[0], inference.OutputShapes[0]!);
        op.Run(new KernelContext(threads), inputs, [output]);
        return output;
    }

    private static Tensor Make(DataType type, double[] values, params int[] shape)
    {
        var tensor = new Tensor(type, shape);
        for (int i = 0; i < values.Length; i++)
        {
            double v = values[i];
            switch (type)
            {
                case DataType.Float: tensor.AsSpan<float>()[i] = (float)v; break;
                case DataType.Double: tensor.AsSpan<double>()[i] = v; break;
                case DataType.Float16: tensor.AsSpan<Half>()[i] = (Half)v; break;
                case DataType.BFloat16: tensor.AsSpan<BFloat16>()[i] = (BFloat16)(float)v; break;
                case DataType.Int8: tensor.AsSpan<sbyte>()[i] = (sbyte)v; break;
                case DataType.UInt8: tensor.AsSpan<byte>()[i] = (byte)v; break;
                case DataType.Int16: tensor.AsSpan<short>()[i] = (short)v; break;
                case DataType.UInt16: tensor.AsSpan<ushort>()[i] = (ushort)v; break;
                case DataType.Int32: tensor.AsSpan<int>()[i] = (int)v; break;
                case DataType.UInt32: tensor.AsSpan<uint>()[i] = (uint)v; break;
                case DataType.Int64: tensor.AsSpan<long>()[i] = (long)v; break;
                case DataType.UInt64: tensor.AsSpan<ulong>()[i] = (ulong)v; break;
                default: throw new ArgumentOutOfRangeException(nameof(type));
            }
        }
        return tensor;
    }
}
