using Squash.Compiler.Onnx;
using Squash.Compiler.Passes;
using Squash.Compiler.Tests.Models;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;
using Xunit.Abstractions;

namespace Squash.Compiler.Tests.Passes;

/// <summary>
/// Each folding or pattern pass, alone, on the real PP-OCR det, rec and cls models, against the bar for every
/// folding pass: fp32 outputs unchanged within 1e-5 of the output's range. The graph before is the model with its input
/// shape pinned (as builds with InputShapes and calibration do, so that every layer norm fuses) and simplified, which
/// is bit-exact (<see cref="PassEquivalenceTests"/>); gamma migration runs after <see cref="Pipeline.Optimize"/>, as in
/// the int8 pipeline. Each case also checks that the pass fired where the model has its pattern, so that it cannot
/// pass vacuously, and rec must read the same text.
/// <para>
/// Checked at 1e-5 of the range: the logits (the input of the final Sigmoid or Softmax). The output itself is checked
/// at 1e-5 or twice its fp32 noise floor, whichever is larger: det's final Sigmoid squeezes logits spanning ~260 into
/// [0, 1] with slope 1/4 at 0.5, so a logit change of 1e-6 of its range is 6e-5 of the map's. Its floor, measured on
/// the same input, is how far the output moves when every input value moves by one ulp (2e-5 of the range on det,
/// the same as the folds; well under 1e-5 on rec and cls). A wrong fold moves outputs by 1e-2 or more.
/// </para>
/// </summary>
public sealed class FoldingPassModelTests(ITestOutputHelper output)
{
    private const double MaxErrorOfRange = 1e-5;

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var pass in new[] { "ConvBatchNormFusion", "ConvAffineFusion", "LayerNormFusion", "HardSwishFusion", "LayerNormGammaMigration" })
            foreach (var task in new[] { "det", "rec", "cls" })
                data.Add(pass, task);
        return data;
    }

    /// <summary>Whether each model has each pass's pattern (measured; a change means a pass or a model changed).</summary>
    private static bool Fires(string pass, string task) => (pass, task) switch
    {
        ("LayerNormFusion" or "LayerNormGammaMigration", _) => task == "rec",
        ("ConvAffineFusion", _) => task != "cls",
        _ => true,
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void PassKeepsOutputsWithinTolerance(string passName, string task)
    {
        IGraphPass pass = passName switch
        {
            "ConvBatchNormFusion" => new ConvBatchNormFusion(),
            "ConvAffineFusion" => new ConvAffineFusion(),
            "LayerNormFusion" => new LayerNormFusion(),
            "HardSwishFusion" => new HardSwishFusion(),
            _ => new LayerNormGammaMigration(),
        };
        var samples = PpOcr.Samples("eval", task).Take(task == "det" ? 2 : 4).ToArray();
        int[] shape = PpOcr.Load(samples[0]).Shape;
        var before = Prepare(task, shape, optimize: pass is LayerNormGammaMigration);
        var after = Prepare(task, shape, optimize: pass is LayerNormGammaMigration);
        int nodes = after.Nodes.Count;
        bool fired = new PassManager([pass, new DeadNodeElimination()]).Run(after, new PassContext());
        Assert.Equal(Fires(passName, task), fired);
        var logits = ExposeLogits(before);
        Assert.Equal(logits, ExposeLogits(after));

        var context = new KernelContext(2);
        var expectedRunner = ExecutionPlan.Create(before);
        var actualRunner = ExecutionPlan.Create(after);
        string outputName = before.Outputs[0].Name, inputName = before.Inputs[0].Name;
        double worstOutput = 0, worstLogits = 0, worstFloor = 0;
        foreach (var sample in samples)
        {
            var x = PpOcr.Load(sample);
            var expected = expectedRunner.Run(new Dictionary<string, Tensor> { [inputName] = x }, context);
            var actual = actualRunner.Run(new Dictionary<string, Tensor> { [inputName] = x }, context);
            var nudged = expectedRunner.Run(new Dictionary<string, Tensor> { [inputName] = OneUlpApart(x) }, context);
            double floor = Error(expected[outputName], nudged[outputName]);
            double outputError = Error(expected[outputName], actual[outputName]);
            double logitError = Error(expected[logits], actual[logits]);
            (worstOutput, worstLogits, worstFloor) = (Math.Max(worstOutput, outputError), Math.Max(worstLogits, logitError), Math.Max(worstFloor, floor));
            string where = $"{passName} on {task}, {Path.GetFileName(sample)}";
            Assert.True(logitError <= MaxErrorOfRange, $"{where}: logits moved by {logitError:E2} of their range");
            Assert.True(outputError <= Math.Max(MaxErrorOfRange, 2 * floor), $"{where}: output moved by {outputError:E2} of its range (one-ulp input floor {floor:E2})");
            if (task == "rec") Assert.Equal(PpOcr.DecodeCtc(expected[outputName]), PpOcr.DecodeCtc(actual[outputName]));
        }
        output.WriteLine($"{passName} on {task}: {nodes} -> {after.Nodes.Count} nodes; max error over {samples.Length} inputs: "
            + $"logits {worstLogits:E2}, output {worstOutput:E2} of range (one-ulp input floor {worstFloor:E2})");
    }

    /// <summary>The model with its input pinned to <paramref name="shape"/>, simplified (or fully optimized).</summary>
    internal static Graph Prepare(string task, int[] shape, bool optimize)
    {
        var model = OnnxLoader.Load(PpOcr.ModelPath(task switch { "det" => PpOcr.Det, "rec" => PpOcr.Rec, _ => PpOcr.Cls }));
        ModelPreparation.PinInputShapes(model, new Dictionary<string, int[]> { [model.Graph.Inputs[0].Name] = shape });
        if (optimize) ModelPreparation.Optimize(model);
        else ModelPreparation.Simplify(model);
        return model.Graph;
    }

    /// <summary>Makes the input of the final Sigmoid or Softmax a graph output too, and returns its name.</summary>
    private static string ExposeLogits(Graph graph)
    {
        var last = graph.Outputs[0].Producer!;
        Assert.Contains(last.OpType, new[] { "Sigmoid", "Softmax" });
        graph.Outputs.Add(last.Input(0)!);
        return last.Input(0)!.Name;
    }

    private static double Error(Tensor expected, Tensor actual)
    {
        Assert.Equal(expected.Shape, actual.Shape);
        return Metrics.MaxAbsError(expected, actual) / Metrics.Range(expected);
    }

    /// <summary>Every value moved by one ulp up or down, at random: the smallest change fp32 can make to the input.</summary>
    private static Tensor OneUlpApart(Tensor x)
    {
        var result = x.Clone();
        var rng = new Random(1);
        foreach (ref float v in result.AsSpan<float>()) v = rng.Next(2) == 0 ? MathF.BitIncrement(v) : MathF.BitDecrement(v);
        return result;
    }
}
