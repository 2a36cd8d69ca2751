using Microsoft.ML.OnnxRuntime;
using TensorElementType = Microsoft.ML.OnnxRuntime.Tensors.TensorElementType;
using Squash.Runtime;
using Tensor = Squash.Runtime.Tensor;

namespace Squash.Compiler.Tests.Support;

/// <summary>
/// ONNX Runtime (CPU, a fixed thread count) as the reference the tests compare with. Graph optimizations are off by
/// default: ORT's own fusions move PP-OCR det's output by 9.6e-5 of its range (measured), as much as the accuracy
/// tolerance, so the unoptimized session, which evaluates the model as written, is the faithful reference.
/// </summary>
internal sealed class OrtReference : IDisposable
{
    private readonly InferenceSession _session;

    // Kept for the session's lifetime: a RunOptions created inline in Run() can be finalized while the native call
    // still uses it (a use-after-free that crashed test runs).
    private readonly RunOptions _runOptions = new();

    /// <summary>Opens a model file.</summary>
    public OrtReference(string modelPath, int threads = 1, bool optimize = false) => _session = new InferenceSession(modelPath, Options(threads, optimize));

    /// <summary>Opens a model from bytes.</summary>
    public OrtReference(byte[] model, int threads = 1, bool optimize = false) => _session = new InferenceSession(model, Options(threads, optimize));

    private static SessionOptions Options(int threads, bool optimize) => new()
    {
        IntraOpNumThreads = threads,
        InterOpNumThreads = 1,
        GraphOptimizationLevel = optimize ? GraphOptimizationLevel.ORT_ENABLE_ALL : GraphOptimizationLevel.ORT_DISABLE_ALL,
        ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
    };

    /// <summary>Runs the model; returns every output by name.</summary>
    public Dictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs)
    {
        var names = inputs.Keys.ToArray();
        var values = names.Select(n => ToOrt(inputs[n])).ToArray();
        try
        {
            var outputNames = _session.OutputNames.ToArray();
            using var results = _session.Run(_runOptions, names, values, outputNames);
            var dict = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            for (int i = 0; i < outputNames.Length; i++) dict[outputNames[i]] = FromOrt(results[i]);
            return dict;
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    private static OrtValue ToOrt(Tensor t)
    {
        var value = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, (TensorElementType)(int)t.DataType,
            t.Shape.Select(d => (long)d).ToArray());
        t.Bytes.CopyTo(value.GetTensorMutableRawData());
        return value;
    }

    private static Tensor FromOrt(OrtValue value)
    {
        var info = value.GetTensorTypeAndShape();
        var tensor = new Tensor((DataType)(int)info.ElementDataType, info.Shape.Select(d => checked((int)d)).ToArray());
        value.GetTensorMutableRawData().CopyTo(tensor.Bytes);
        return tensor;
    }

    public void Dispose()
    {
        _session.Dispose();
        _runOptions.Dispose();
    }
}
