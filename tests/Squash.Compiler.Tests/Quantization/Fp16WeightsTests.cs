using Squash.Compiler.Quantization;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Tests.Quantization;

/// <summary>fp16 weight rounding against closed forms: float16 has 10 stored significand bits, exponents -14..15, and
/// subnormals down to 2^-24, so the values below are exact or exact midpoints.</summary>
public sealed class Fp16WeightsTests
{
    private static float P2(int e) => MathF.Pow(2, e);

    public static TheoryData<float, float> RoundingCases => new()
    {
        { 1f, 1f },
        { 1 + P2(-11), 1f },                          // halfway between 1 and 1 + 2^-10: to the even significand (1)
        { 1 + 3 * P2(-11), 1 + P2(-9) },              // halfway between 1 + 2^-10 and 1 + 2^-9: to the even one
        { 1 + P2(-11) + P2(-20), 1 + P2(-10) },       // just above halfway: up
        { -(1 + P2(-11)), -1f },                      // sign-symmetric
        { P2(-24), P2(-24) },                         // smallest subnormal, exact
        { P2(-25), 0f },                              // half the smallest subnormal: ties to even, zero
        { 3 * P2(-25), P2(-23) },                     // 1.5 subnormal steps: ties to even, two steps
        { 1.25f * P2(-24), P2(-24) },                 // under halfway: down
        { P2(-14) - P2(-25), P2(-14) },               // halfway between the largest subnormal and the smallest normal: even
        { 65504f, 65504f },                           // the largest finite float16
        { 65519.99f, 65504f },                        // under the midpoint to 2^16: down to 65504
        { 65520f, float.PositiveInfinity },           // the midpoint rounds to even, which is 2^16: overflow
        { -65520f, float.NegativeInfinity },
    };

    [Theory]
    [MemberData(nameof(RoundingCases))]
    public void RoundsToNearestTiesToEven(float value, float expected) =>
        Assert.Equal(BitConverter.SingleToInt32Bits(expected), BitConverter.SingleToInt32Bits(Fp16Weights.Round(value)));

    [Fact]
    public void WeightsBeyondTheRangeOrLosingTooMuchStayFp32()
    {
        Assert.Contains("beyond float16's 65504", Fp16Weights.KeepFp32Reason([1f, -65504.5f], out _));
        Assert.Null(Fp16Weights.KeepFp32Reason([1f, -65504f], out _));
        Assert.Contains("non-finite", Fp16Weights.KeepFp32Reason([1f, float.NaN], out _));
        // Values around 1e-6 sit in the subnormal range (steps of 6e-8): about 25 dB, far under 60 dB.
        var tiny = Enumerable.Range(1, 1000).Select(i => i * 1e-9f).ToArray();
        Assert.Contains("subnormal", Fp16Weights.KeepFp32Reason(tiny, out double tinyDb));
        Assert.InRange(tinyDb, 10, 40);
        // Normal values: the relative error is at most 2^-11, so SQNR is at least 66 dB (20 log10 2^11); uniform errors
        // measure about 70.
        var random = new Random(7);
        var normal = Enumerable.Range(0, 4096).Select(_ => (float)(random.NextDouble() * 2 - 1) * 0.1f).ToArray();
        Assert.Null(Fp16Weights.KeepFp32Reason(normal, out double normalDb));
        Assert.InRange(normalDb, 66, 76);
        Assert.Null(Fp16Weights.KeepFp32Reason([0.5f, 0.25f], out double exactDb));
        Assert.Equal(double.PositiveInfinity, exactDb);
    }

    [Fact]
    public void RoundsProductWeightsNotBiasesAndCopiesSharedOnes()
    {
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 1, 2, 4, 4);
        var w = b.Constant(Tensor.From<float>([.. Enumerable.Range(0, 2 * 2 * 9).Select(i => 0.1f * i)], 2, 2, 3, 3), "w");
        var bias = b.Constant(Tensor.From<float>([0.1f, 0.2f], 2), "bias");
        var conv = b.NodeWith("Conv", [("pads", AttributeValue.IntList(1, 1, 1, 1))], [x, w, bias])[0];
        var big = b.Constant(Tensor.From<float>([70000f, 1f, 2f, 3f], 2, 2), "big");
        var m = b.Constant(Tensor.From<float>([0.1f, 0.2f, 0.3f, 0.4f], 4, 1), "m");
        var mm = b.Node("MatMul", conv, m);
        b.Output(b.Node("MatMul", mm, big));
        // "m" is also read by an Add that stays fp32: the MatMul gets a rounded copy.
        var other = b.Node("Add", m, m);
        b.Output(other);
        var graph = b.Graph;
        var original = w.Constant!;

        var log = new List<string>();
        var reports = Fp16Weights.Apply(graph, log.Add);
        Assert.Equal(["fp16: big (MatMul_2) stays fp32: |w| reaches 70000, beyond float16's 65504", "fp16: 2 of 3 weights rounded to float16 (80 bytes stored instead of 160)"], log);

        Assert.Equal(["w", "m"], reports.Where(r => r.Fp16).Select(r => r.Weight));
        Assert.Contains("beyond", Assert.Single(reports, r => !r.Fp16).KeptFp32Because);
        Assert.Equal(70000f, big.Constant!.AsSpan<float>()[0]);
        Assert.NotSame(original, w.Constant);
        Assert.Equal(0.1f * 5, original.AsSpan<float>()[5]);
        for (int i = 0; i < original.ElementCount; i++)
            Assert.Equal(Fp16Weights.Round(original.AsSpan<float>()[i]), w.Constant!.AsSpan<float>()[i]);
        Assert.True(Fp16Weights.IsExactlyFp16(w.Constant!));
        Assert.Equal([0.1f, 0.2f], bias.Constant!.AsSpan<float>().ToArray());
        Assert.Equal(0.1f, m.Constant!.AsSpan<float>()[0]);
        var product = graph.Nodes.First(n => n.OpType == "MatMul" && n.Inputs[1]!.Name.StartsWith("m", StringComparison.Ordinal));
        Assert.Equal("m_fp16", product.Inputs[1]!.Name);
        Assert.Equal(Fp16Weights.Round(0.1f), product.Inputs[1]!.Constant!.AsSpan<float>()[0]);
        Assert.Equal(DataType.Float16, Fp16Weights.StorageType(w.Constant!, fp16Storage: true));
        Assert.Equal(DataType.Float, Fp16Weights.StorageType(w.Constant!, fp16Storage: false));
        Assert.Equal(DataType.Float, Fp16Weights.StorageType(m.Constant!, fp16Storage: true));
    }
}
