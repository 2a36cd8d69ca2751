using Squash.Runtime;
using Squash.Runtime.Execution;

namespace Squash.Compiler.Tests.Models;

/// <summary>
/// The memory plan's views and in-place steps on a real model: PP-OCR rec (Reshape and Squeeze views, elementwise
/// chains after its convolutions) planned gives the interpreter's output bit for bit, at one and two threads.
/// </summary>
public sealed class PlanSharingTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void RecPlanIsBitIdenticalToTheInterpreter(int threads)
    {
        var sample = PpOcr.Load(PpOcr.Samples("eval", "rec")[0]);
        var model = Squash.Compiler.Onnx.OnnxLoader.Load(PpOcr.ModelPath(PpOcr.Rec));
        string inputName = model.Graph.Inputs[0].Name;
        ModelPreparation.PinInputShapes(model, new Dictionary<string, int[]> { [inputName] = sample.Shape });
        ModelPreparation.OptimizeForCpu(model);
        var plan = ExecutionPlan.Create(model.Graph);
        Assert.True(plan.Layout.IsView.Count(v => v) >= 10, "rec's Reshape and Squeeze nodes should be views");
        // Pipeline.Fuse leaves rec about a hundred nodes; its elementwise chains (11 of them) write over their inputs.
        Assert.True(plan.Layout.IsInPlace.Count(v => v) >= 10, "rec's fused elementwise steps should run in place");

        var inputs = new Dictionary<string, Tensor> { [inputName] = sample };
        var expected = new GraphExecutor(model.Graph).Run(inputs, new KernelContext(1));
        using var context = new KernelContext(threads);
        for (int run = 0; run < 2; run++)
        {
            var actual = plan.Run(inputs, context);
            foreach (var (name, tensor) in expected)
                Assert.True(tensor.Bytes.SequenceEqual(actual[name].Bytes), $"output {name}, run {run}");
        }
    }
}
