using Squash.Compiler.Onnx;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Execution;

namespace Squash.Compiler.Tests.Conformance;

/// <summary>
/// Runs the vendored ONNX node conformance cases (testassets/onnx-node) through Squash's executor and compares every
/// output with the expected one.
/// </summary>
/// <remarks>
/// Tolerance: rtol 1e-3 and atol 1e-5, ONNX Runtime's defaults for this suite. ONNX's own runner uses atol 1e-7,
/// which fp32 kernels that sum in another order (vectorized, blocked GEMM) cannot promise for results near zero.
/// Individual cases may be looser, with the reason, in testassets/onnx-node/tolerances.txt.
/// </remarks>
public sealed class ConformanceTests
{
    private const double DefaultRtol = 1e-3;
    private const double DefaultAtol = 1e-5;

    public static TheoryData<string> Cases()
    {
        var excluded = ConformanceLists.Exclusions();
        var data = new TheoryData<string>();
        foreach (var dir in Directory.GetDirectories(TestPaths.Asset("onnx-node")).Order(StringComparer.Ordinal))
        {
            string name = Path.GetFileName(dir);
            if (!excluded.ContainsKey(name)) data.Add(name);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Case(string name)
    {
        string dir = TestPaths.Asset("onnx-node", name);
        var model = OnnxLoader.Load(Path.Combine(dir, "model.onnx"));
        var executor = new GraphExecutor(model.Graph);
        var (rtol, atol) = ConformanceLists.Tolerances().GetValueOrDefault(name, (DefaultRtol, DefaultAtol));
        foreach (var dataSet in Directory.GetDirectories(dir, "test_data_set_*").Order(StringComparer.Ordinal))
        {
            var inputs = new Dictionary<string, Tensor>();
            var inputFiles = Directory.GetFiles(dataSet, "input_*.pb").OrderBy(IndexOf).ToArray();
            // Inputs are matched to graph inputs by position; files name them too, but some older cases do not.
            var graphInputs = model.Graph.Inputs;
            for (int i = 0; i < inputFiles.Length; i++)
            {
                var (tensorName, tensor) = OnnxTensorFile.Read(inputFiles[i]);
                string inputName = i < graphInputs.Count ? graphInputs[i].Name : tensorName;
                inputs[inputName] = tensor;
            }
            var outputs = executor.Run(inputs, new KernelContext(1));
            var planned = RunPlanned(dir, inputs);
            var outputFiles = Directory.GetFiles(dataSet, "output_*.pb").OrderBy(IndexOf).ToArray();
            Assert.Equal(model.Graph.Outputs.Count, outputFiles.Length);
            for (int i = 0; i < outputFiles.Length; i++)
            {
                var (_, expected) = OnnxTensorFile.Read(outputFiles[i]);
                var output = model.Graph.Outputs[i];
                TensorAssert.Close(expected, outputs[output.Name], rtol, atol, $"{name}/{Path.GetFileName(dataSet)} output '{output.Name}'");
                if (planned is not null)
                    TensorAssert.Close(expected, planned[output.Name], rtol, atol, $"{name}/{Path.GetFileName(dataSet)} output '{output.Name}' (planned)");
            }
        }
    }

    /// <summary>
    /// The same case as the generated code runs it: input shapes pinned, graph simplified (constants folded), every
    /// tensor placed in the arena of an <see cref="ExecutionPlan"/>. Null when some shape stays data-dependent.
    /// </summary>
    private static Dictionary<string, Tensor>? RunPlanned(string dir, Dictionary<string, Tensor> inputs)
    {
        var model = OnnxLoader.Load(Path.Combine(dir, "model.onnx"));
        ModelPreparation.PinInputShapes(model, inputs.ToDictionary(p => p.Key, p => p.Value.Shape));
        ModelPreparation.OptimizeForCpu(model);
        if (!ExecutionPlan.CanPlan(model.Graph)) return null;
        return ExecutionPlan.Create(model.Graph).Run(inputs, new KernelContext(1));
    }

    private static int IndexOf(string path)
    {
        string stem = Path.GetFileNameWithoutExtension(path);
        return int.Parse(stem[(stem.IndexOf('_') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }
}
