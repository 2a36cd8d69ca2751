using Squash.Runtime.Ir;
using Squash.Runtime.Operators;

namespace Squash.Runtime.Tests;

/// <summary>
/// The paths of MatMul, Gemm and Einsum that the ONNX conformance cases do not reach: constant (pre-packed) weights,
/// batches folded into one product, matrix-vector products, fused biases, and Einsum's batched GEMM. References are
/// double-precision loops; tolerance 1e-5 relative to the sum of |a*b| terms plus 1e-6 (fp32 rounding).
/// </summary>
public sealed class MatMulTests
{
    [Theory]
    [InlineData(new[] { 2, 3, 5, 7 }, new[] { 7, 9 }, true)]
    [InlineData(new[] { 2, 3, 5, 7 }, new[] { 7, 9 }, false)]
    [InlineData(new[] { 3, 1, 4, 6 }, new[] { 2, 6, 40 }, true)]
    [InlineData(new[] { 33, 70 }, new[] { 70 }, false)]
    [InlineData(new[] { 2, 33, 70 }, new[] { 2, 70, 1 }, false)]
    [InlineData(new[] { 70 }, new[] { 3, 70, 35 }, true)]
    public void MatMulMatchesReference(int[] aShape, int[] bShape, bool constantB)
    {
        var rng = new Random(aShape.Sum() * 31 + bShape.Sum());
        var a = Random(rng, aShape);
        var b = Random(rng, bShape);
        var node = Node("MatMul", 2, constantB ? b : null);
        var y = RunTwice(node, a, b);
        // Reference: NumPy semantics, spelled out on 2-D views with broadcast batch offsets.
        var a2 = aShape.Length == 1 ? new[] { 1, aShape[0] } : aShape;
        var b2 = bShape.Length == 1 ? new[] { bShape[0], 1 } : bShape;
        int m = a2[^2], k = a2[^1], n = b2[^1];
        int[] batch = Shapes.Broadcast(a2[..^2], b2[..^2]);
        int count = Shapes.Product(batch, 0, batch.Length);
        Assert.Equal(count * m * n, y.ElementCount);
        var av = a.AsSpan<float>().ToArray();
        var bv = b.AsSpan<float>().ToArray();
        for (int t = 0; t < count; t++)
        {
            long aOff = BatchOffset(t, batch, a2[..^2]) * m * k, bOff = BatchOffset(t, batch, b2[..^2]) * k * n;
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    double sum = 0, abs = 0;
                    for (int p = 0; p < k; p++)
                    {
                        double term = (double)av[aOff + i * k + p] * bv[bOff + p * n + j];
                        sum += term;
                        abs += Math.Abs(term);
                    }
                    Close(sum, abs, y.AsSpan<float>()[(t * m + i) * n + j]);
                }
        }
    }

    [Theory]
    [InlineData(false, false, new[] { 9 }, 1f, 1f, true)]
    [InlineData(false, true, new[] { 1, 9 }, 1f, 1f, true)]
    [InlineData(true, false, new[] { 7, 1 }, 1f, 1f, false)]
    [InlineData(true, true, new[] { 7, 9 }, 0.5f, 2f, true)]
    [InlineData(false, true, new int[0], 1.5f, 0.25f, false)]
    [InlineData(false, false, new[] { 1, 1 }, 1f, 0f, true)]
    public void GemmMatchesReference(bool transA, bool transB, int[] cShape, float alpha, float beta, bool constantB)
    {
        int m = 7, n = 9, k = 40;
        var rng = new Random(m + n + k + cShape.Length);
        var a = Random(rng, transA ? [k, m] : [m, k]);
        var b = Random(rng, transB ? [n, k] : [k, n]);
        var c = Random(rng, cShape);
        var node = Node("Gemm", 3, constantB ? b : null);
        node.Attributes["transA"] = AttributeValue.Int(transA ? 1 : 0);
        node.Attributes["transB"] = AttributeValue.Int(transB ? 1 : 0);
        node.Attributes["alpha"] = AttributeValue.Float(alpha);
        node.Attributes["beta"] = AttributeValue.Float(beta);
        var y = RunTwice(node, a, b, c);
        var av = a.AsSpan<float>().ToArray();
        var bv = b.AsSpan<float>().ToArray();
        var cv = c.AsSpan<float>().ToArray();
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = 0, abs = 0;
                for (int p = 0; p < k; p++)
                {
                    double term = (double)(transA ? av[p * m + i] : av[i * k + p]) * (transB ? bv[j * k + p] : bv[p * n + j]);
                    sum += term;
                    abs += Math.Abs(term);
                }
                int ci = cShape.Length == 2 ? (cShape[0] == 1 ? 0 : i) * cShape[1] + (cShape[1] == 1 ? 0 : j) : cShape.Length == 1 ? j : 0;
                Close(alpha * sum + beta * cv[ci], Math.Abs(alpha) * abs + Math.Abs(beta * cv[ci]), y.AsSpan<float>()[i * n + j]);
            }
    }

    [Fact]
    public void IntegerGemmIsExact()
    {
        var a = Tensor.From<long>([1L << 40, 3, -2, 5], 2, 2);
        var b = Tensor.From<long>([2, 1, 7, -1], 2, 2);
        var c = Tensor.From<long>([10, 20], 2);
        var y = RunTwice(Node("Gemm", 3, null), a, b, c);
        Assert.Equal(new long[] { (1L << 41) + 21 + 10, (1L << 40) - 3 + 20, -4 + 35 + 10, -2 - 5 + 20 }, y.AsSpan<long>().ToArray());
    }

    /// <summary>fp32 Einsum (batched GEMM where it applies) against the same equation evaluated in double by the
    /// direct loop, which the double conformance cases check.</summary>
    [Theory]
    [InlineData("bij,bjk->bik", new[] { 3, 4, 5 }, new[] { 3, 5, 6 })]
    [InlineData("ij,jk", new[] { 4, 5 }, new[] { 5, 6 })]
    [InlineData("bhqd,bhkd->bhqk", new[] { 2, 3, 4, 8 }, new[] { 2, 3, 5, 8 })]
    [InlineData("bhqk,bhkd->bqhd", new[] { 2, 3, 4, 5 }, new[] { 2, 3, 5, 8 })]
    [InlineData("i,j->ij", new[] { 4 }, new[] { 6 })]
    [InlineData("...ij,...jk->...ik", new[] { 2, 1, 3, 4 }, new[] { 5, 4, 2 })]
    [InlineData("ii,ij->j", new[] { 4, 4 }, new[] { 4, 3 })]
    [InlineData("ij,kj->", new[] { 3, 4 }, new[] { 5, 4 })]
    public void FloatEinsumMatchesDoubleEinsum(string equation, int[] aShape, int[] bShape)
    {
        var rng = new Random(equation.Length);
        var a = Random(rng, aShape);
        var b = Random(rng, bShape);
        var node = Node("Einsum", 2, null);
        node.Attributes["equation"] = AttributeValue.String(equation);
        var y = RunTwice(node, a, b);
        var yd = RunTwice(node, ToDouble(a), ToDouble(b));
        Assert.Equal(yd.Shape, y.Shape);
        for (int i = 0; i < y.ElementCount; i++)
            Assert.True(Math.Abs(y.AsSpan<float>()[i] - yd.AsSpan<double>()[i]) <= 1e-5 * (1 + Math.Abs(yd.AsSpan<double>()[i])) * 8,
                $"{equation}: y[{i}] = {y.AsSpan<float>()[i]}, expected {yd.AsSpan<double>()[i]}");
    }

    /// <summary>A node whose input 1 is the constant <paramref name="constantB"/> when given (as a weight would be).</summary>
    private static Node Node(string opType, int inputs, Tensor? constantB)
    {
        var node = new Node(opType, "n", "", 17);
        for (int i = 0; i < inputs; i++)
            node.AddInput(i == 1 && constantB is not null ? new Value("in1", constantB) : new Value("in" + i));
        node.AddOutput(new Value("y"));
        return node;
    }

    /// <summary>Runs the node twice (the second run uses weights packed by the first) with 1 and 3 threads, and
    /// checks both runs agree exactly.</summary>
    private static Tensor RunTwice(Node node, params Tensor[] inputs)
    {
        var op = OperatorRegistry.Create(node);
        Tensor Once(KernelContext context)
        {
            var inference = new InferenceContext(node, inputs.Length, 1);
            for (int i = 0; i < inputs.Length; i++)
            {
                var t = node.Inputs[i]!.Constant ?? inputs[i];
                inference.SetInput(i, t.DataType, t.Shape, t);
            }
            op.InferOutputs(inference);
            var y = new Tensor(inference.OutputTypes[0], inference.OutputShapes[0]!);
            op.Run(context, inputs.Select((t, i) => (Tensor?)(node.Inputs[i]!.Constant ?? t)).ToArray(), [y]);
            return y;
        }
        var first = Once(new KernelContext(1));
        var second = Once(new KernelContext(3));
        Assert.Equal(first.Bytes.ToArray(), second.Bytes.ToArray());
        return first;
    }

    private static long BatchOffset(int t, int[] batch, int[] operandBatch)
    {
        long offset = 0, stride = 1;
        for (int d = batch.Length - 1, e = operandBatch.Length - 1; d >= 0; d--, e--)
        {
            int index = t % batch[d];
            t /= batch[d];
            if (e < 0) continue;
            if (operandBatch[e] != 1) offset += index * stride;
            stride *= operandBatch[e];
        }
        return offset;
    }

    private static void Close(double expected, double abs, float actual) =>
        Assert.True(Math.Abs(actual - expected) <= 1e-5 * abs + 1e-6, $"got {actual}, expected {expected}");

    private static Tensor Random(Random rng, int[] shape)
    {
        var t = new Tensor(DataType.Float, shape);
        var span = t.AsSpan<float>();
        for (int i = 0; i < span.Length; i++) span[i] = (float)(rng.NextDouble() * 2 - 1);
        return t;
    }

    private static Tensor ToDouble(Tensor t)
    {
        var d = new Tensor(DataType.Double, t.Shape);
        for (int i = 0; i < t.ElementCount; i++) d.AsSpan<double>()[i] = t.AsSpan<float>()[i];
        return d;
    }
}
