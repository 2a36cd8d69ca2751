using Squash.Compiler.Quantization;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Tests.Quantization;

/// <summary>
/// Calibration statistics of a small convolutional network are the same bit for bit with one kernel thread, two, three or eight:
/// the convolutions (3x3, depthwise, pointwise), their fused batch normalization and the final Gemm split their work
/// across threads, and an int8 build must not depend on the machine's cores.
/// </summary>
public sealed class CalibrationThreadsTests
{
    private static Tensor Seeded(Random random, float scale, params int[] shape)
    {
        var values = new float[shape.Aggregate(1, (a, d) => a * d)];
        for (int i = 0; i < values.Length; i++) values[i] = (float)(random.NextDouble() * 2 - 1) * scale;
        return Tensor.From<float>(values, shape);
    }

    private static Model ConvNet()
    {
        var random = new Random(7);
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 1, 16, 32, 32);
        AttributeValue Ints(params long[] v) => AttributeValue.IntList(v);
        var conv = b.NodeWith("Conv", [("kernel_shape", Ints(3, 3)), ("pads", Ints(1, 1, 1, 1))],
            [x, b.Constant(Seeded(random, 0.2f, 32, 16, 3, 3)), b.Constant(Seeded(random, 0.1f, 32))])[0];
        var bn = b.NodeWith("BatchNormalization", [],
            [conv, b.Constant(Seeded(random, 1f, 32)), b.Constant(Seeded(random, 0.5f, 32)), b.Constant(Seeded(random, 0.2f, 32)),
             b.Constant(Tensor.From<float>([.. Enumerable.Range(1, 32).Select(i => i / 16f)], 32))])[0];
        var relu = b.Node("Relu", bn);
        var depthwise = b.NodeWith("Conv", [("kernel_shape", Ints(3, 3)), ("pads", Ints(1, 1, 1, 1)), ("strides", Ints(2, 2)), ("group", AttributeValue.Int(32))],
            [relu, b.Constant(Seeded(random, 0.3f, 32, 1, 3, 3)), b.Constant(Seeded(random, 0.1f, 32))])[0];
        var clipped = b.NodeWith("Clip", [], [depthwise, b.Constant(Tensor.From<float>([0f])), b.Constant(Tensor.From<float>([6f]))])[0];
        var pointwise = b.NodeWith("Conv", [("kernel_shape", Ints(1, 1))], [clipped, b.Constant(Seeded(random, 0.2f, 24, 32, 1, 1)), null])[0];
        var pooled = b.Node("GlobalAveragePool", b.Node("Add", pointwise, b.Constant(Seeded(random, 0.5f, 1, 24, 1, 1))));
        var flat = b.NodeWith("Flatten", [("axis", AttributeValue.Int(1))], [pooled])[0];
        var logits = b.Node("Gemm", flat, b.Constant(Seeded(random, 0.3f, 24, 10)), b.Constant(Seeded(random, 0.1f, 10)));
        b.Output(b.NodeWith("Softmax", [("axis", AttributeValue.Int(-1))], [logits])[0]);
        return b.Build();
    }

    [Fact]
    public void ConvNetStatisticsDoNotDependOnTheThreadCount()
    {
        var samples = Enumerable.Range(0, 3).Select(s => ObserverTests.Gaussian(16 * 32 * 32, seed: 80 + s)).ToArray();
        IEnumerable<Dictionary<string, Tensor>> Inputs() => samples.Select(s => new Dictionary<string, Tensor> { ["x"] = Tensor.From<float>(s, 1, 16, 32, 32) });
        foreach (var method in Enum.GetValues<CalibrationMethod>())
        {
            var calibrator = new Calibrator(new CalibrationSettings { Method = method });
            // As the compiler prepares the graph: what is calibrated is what runs (batch normalization fused).
            var model = ConvNet();
            ModelPreparation.Optimize(model);
            Assert.DoesNotContain(model.Graph.Nodes, n => n.OpType == "BatchNormalization");
            var one = calibrator.Calibrate(ExecutionPlan.Create(model.Graph), Inputs(), new KernelContext(1));
            Assert.True(one.Tensors.Count >= 8, $"{method}: {one.Tensors.Count} tensors observed");
            // Two, an odd count (uneven splits) and more threads than this machine may have cores.
            foreach (int threads in new[] { 2, 3, 8 })
            {
                using var context = new KernelContext(threads);
                var other = calibrator.Calibrate(ExecutionPlan.Create(model.Graph), Inputs(), context);
                Assert.True(one.ToJson().AsSpan().SequenceEqual(other.ToJson()), $"{method}: {threads} threads differ from one");
            }
        }
    }
}
