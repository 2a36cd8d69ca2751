using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Execution;

namespace Squash.Compiler.Tests.Models;

/// <summary>
/// Squash's fp32 executor against ONNX Runtime on the real PP-OCR models and every evaluation input.
/// Tolerance (from the foundation issue): cosine >= 0.99999 and max |error| <= 1e-4 of the reference output's range.
/// fp32 kernels that sum in a different order differ by a few ulps per layer; 1e-4 of the range leaves room for the
/// ~100 layers of these models while still catching any wrong kernel (which shows up as errors of 1e-2 or more).
/// </summary>
public sealed class PpOcrFp32Tests
{
    private const double MinCosine = 0.99999;
    private const double MaxErrorOfRange = 1e-4;

    [Theory]
    [InlineData(PpOcr.Cls, "cls")]
    [InlineData(PpOcr.Rec, "rec")]
    [InlineData(PpOcr.Det, "det")]
    public void MatchesOnnxRuntimeOnEveryEvalInput(string modelFile, string task)
    {
        var model = ModelPreparation.LoadAndOptimize(PpOcr.ModelPath(modelFile));
        var executor = new GraphExecutor(model.Graph);
        using var ort = new OrtReference(PpOcr.ModelPath(modelFile));
        string inputName = model.Graph.Inputs[0].Name;
        string outputName = model.Graph.Outputs[0].Name;
        var context = new KernelContext(2);
        var failures = new List<string>();
        foreach (var sample in PpOcr.Samples("eval", task))
        {
            var inputs = new Dictionary<string, Tensor> { [inputName] = PpOcr.Load(sample) };
            var expected = ort.Run(inputs)[outputName];
            var actual = executor.Run(inputs, context)[outputName];
            Assert.Equal(expected.Shape, actual.Shape);
            double cosine = Metrics.Cosine(expected, actual);
            double error = Metrics.MaxAbsError(expected, actual) / Metrics.Range(expected);
            if (cosine < MinCosine || error > MaxErrorOfRange)
                failures.Add($"{Path.GetFileName(sample)}: cosine {cosine:F7}, max error {error:E2} of range");
            if (task == "rec")
            {
                string want = PpOcr.DecodeCtc(expected), got = PpOcr.DecodeCtc(actual);
                if (want != got) failures.Add($"{Path.GetFileName(sample)}: read '{got}', ONNX Runtime read '{want}'");
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }
}
