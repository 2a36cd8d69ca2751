using Squash.Compiler.Onnx;
using Squash.Compiler.Quantization;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Xunit.Abstractions;

namespace Squash.Compiler.Tests.Models;

/// <summary>
/// The QDQ export of int8 PP-OCR models (<see cref="Int8QdqExport"/>) run by ONNX Runtime, as written (float operators
/// between QuantizeLinear and DequantizeLinear) and optimized (its own int8 kernels), against Squash's int8 graph on
/// the first four eval samples. Both compute from the same integers and parameters, but ONNX Runtime's float sums and
/// requantization round differently from Squash's exact int32 sums, so a few uint8 values differ by one step and the
/// differences grow through the layers; where a value lies near a rounding midpoint is chance (the biases moved with
/// bias correction, and with them the figures). Measured (either session): cls max |difference| of the probabilities
/// 2.6e-5 (5.2e-8 before bias correction; tolerance 1e-4) and the same label; rec the same text on every sample, cosine
/// of the probabilities at least 0.9375 (0.9747 before; tolerance 0.9: a time step's near tie between two classes flips
/// on one sample, the decoded text does not move); det mask IoU at least 0.9900 and cosine at least 0.9979 (tolerances
/// 0.98 and 0.995; 0.9927 and 0.9991 while det's whole first stage stayed fp32: a longer int8 region, and squeeze-and-
/// excitation gates that amplify one-step differences, spread them further).
/// </summary>
public sealed class PpOcrInt8ExportTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(PpOcr.Cls, "cls", new[] { 1, 3, 48, 192 })]
    [InlineData(PpOcr.Rec, "rec", new[] { 1, 3, 48, 320 })]
    [InlineData(PpOcr.Det, "det", new[] { 1, 3, 480, 480 })]
    public void OnnxRuntimeRunsTheExportLikeSquash(string file, string task, int[] shape)
    {
        var (_, int8, _) = PpOcrInt8Tests.Prepare(file, task, shape, task == "det" ? QuantizationExclusions.Parse(PpOcrInt8Tests.DetExclusions) : null);
        var plan = ExecutionPlan.Create(int8.Graph);
        string input = int8.Graph.Inputs[0].Name, outputName = int8.Graph.Outputs[0].Name;
        var squash = new List<Tensor>();
        var samples = PpOcr.Samples("eval", task).Take(4).ToArray();
        foreach (var sample in samples) squash.Add(plan.Run(new Dictionary<string, Tensor> { [input] = PpOcr.Load(sample) })[outputName].Clone());

        int replaced = Int8QdqExport.Convert(int8.Graph);
        Assert.True(replaced > 0);
        Assert.DoesNotContain(int8.Graph.Nodes, n => n.Domain.Length > 0);
        var bytes = OnnxWriter.ToBytes(int8);
        foreach (bool optimize in new[] { false, true })
        {
            using var ort = new OrtReference(bytes, optimize: optimize);
            for (int i = 0; i < samples.Length; i++)
            {
                var got = ort.Run(new Dictionary<string, Tensor> { [input] = PpOcr.Load(samples[i]) })[outputName];
                double error = Metrics.MaxAbsError(squash[i], got), cosine = Metrics.Cosine(squash[i], got);
                string agreement = task switch
                {
                    "cls" => $"label {(squash[i].AsSpan<float>()[0] > squash[i].AsSpan<float>()[1]) == (got.AsSpan<float>()[0] > got.AsSpan<float>()[1])}",
                    "rec" => $"text '{PpOcr.DecodeCtc(got)}' vs '{PpOcr.DecodeCtc(squash[i])}'",
                    _ => $"IoU {PpOcrInt8Tests.MaskIoU(squash[i], got, 0.3f):F4}",
                };
                output.WriteLine($"optimize {optimize} {Path.GetFileName(samples[i])}: max |ORT - Squash| {error:E3}, cosine {cosine:F6}, {agreement}");
                string where = $"{Path.GetFileName(samples[i])}, ONNX Runtime optimize={optimize}";
                switch (task)
                {
                    case "cls":
                        Assert.True(error <= 1e-4, $"{where}: max difference {error:E3}");
                        Assert.Equal(squash[i].AsSpan<float>()[0] > squash[i].AsSpan<float>()[1], got.AsSpan<float>()[0] > got.AsSpan<float>()[1]);
                        break;
                    case "rec":
                        Assert.Equal(PpOcr.DecodeCtc(squash[i]), PpOcr.DecodeCtc(got));
                        Assert.True(cosine >= 0.9, $"{where}: cosine {cosine:F6}");
                        break;
                    default:
                        Assert.True(PpOcrInt8Tests.MaskIoU(squash[i], got, 0.3f) >= 0.98, $"{where}: {agreement}");
                        Assert.True(cosine >= 0.995, $"{where}: cosine {cosine:F6}");
                        break;
                }
            }
        }
    }
}
