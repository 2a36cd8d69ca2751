using Microsoft.ML.OnnxRuntime;
using TensorElementType = Microsoft.ML.OnnxRuntime.Tensors.TensorElementType;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Tests.Models;

/// <summary>A decoder with a KV cache: feeds tokens at the next positions and returns their logits.</summary>
internal interface IDecoder
{
    /// <summary>Number of tokens already in the cache.</summary>
    int Position { get; }

    /// <summary>Runs <paramref name="tokens"/> at positions <see cref="Position"/>.. and returns one logit row per token.</summary>
    float[][] Forward(long[] tokens);
}

/// <summary>What every decoder of the converted ONNX graph shares: the cache layout and its bookkeeping.</summary>
internal abstract class OnnxDecoder(int layers, int kvHeads, int headSize, int vocab) : IDecoder
{
    protected readonly int Layers = layers, KvHeads = kvHeads, HeadSize = headSize, Vocab = vocab;
    // Per layer: key and value caches, [1, kv_heads, Position, head_size], as the model returned them.
    protected float[][] Keys = [.. Enumerable.Range(0, layers).Select(_ => Array.Empty<float>())];
    protected float[][] Values = [.. Enumerable.Range(0, layers).Select(_ => Array.Empty<float>())];

    public int Position { get; private set; }

    public float[][] Forward(long[] tokens)
    {
        var (logits, keys, values) = Run(tokens);
        int total = Position + tokens.Length;
        Assert.Equal(tokens.Length * Vocab, logits.Length);
        for (int l = 0; l < Layers; l++)
        {
            Assert.Equal(KvHeads * total * HeadSize, keys[l].Length);
            Assert.Equal(KvHeads * total * HeadSize, values[l].Length);
        }
        (Keys, Values, Position) = (keys, values, total);
        var rows = new float[tokens.Length][];
        for (int i = 0; i < rows.Length; i++) rows[i] = logits.AsSpan(i * Vocab, Vocab).ToArray();
        return rows;
    }

    /// <summary>Runs the model once: logits [1, S, vocab] and the present caches, flattened.</summary>
    protected abstract (float[] Logits, float[][] Keys, float[][] Values) Run(long[] tokens);

    protected long[] CacheShape => [1, KvHeads, Position, HeadSize];
}

/// <summary>The converted model under ONNX Runtime's CPU provider.</summary>
internal sealed class OrtDecoder : OnnxDecoder, IDisposable
{
    private readonly InferenceSession _session;

    public OrtDecoder(byte[] onnx, int layers, int kvHeads, int headSize, int vocab)
        : base(layers, kvHeads, headSize, vocab)
    {
        // One thread: the results do not depend on how the machine's cores are shared.
        using var options = new SessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1 };
        _session = new InferenceSession(onnx, options);
    }

    protected override (float[], float[][], float[][]) Run(long[] tokens)
    {
        var inputs = new Dictionary<string, OrtValue>(StringComparer.Ordinal);
        try
        {
            inputs["input_ids"] = OrtValue.CreateTensorValueFromMemory(tokens, [1, tokens.Length]);
            for (int l = 0; l < Layers; l++)
            {
                inputs[$"past_key_{l}"] = Cache(Keys[l]);
                inputs[$"past_value_{l}"] = Cache(Values[l]);
            }
            using var runOptions = new RunOptions();
            using var outputs = _session.Run(runOptions, inputs, _session.OutputNames);
            var byName = new Dictionary<string, float[]>(StringComparer.Ordinal);
            for (int i = 0; i < outputs.Count; i++) byName[_session.OutputNames[i]] = outputs[i].GetTensorDataAsSpan<float>().ToArray();
            return (byName["logits"],
                [.. Enumerable.Range(0, Layers).Select(l => byName[$"present_key_{l}"])],
                [.. Enumerable.Range(0, Layers).Select(l => byName[$"present_value_{l}"])]);
        }
        finally
        {
            foreach (var v in inputs.Values) v.Dispose();
        }
    }

    private OrtValue Cache(float[] data) => data.Length == 0
        // An empty array has no memory to pin; let ONNX Runtime allocate the empty tensor.
        ? OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Float, CacheShape)
        : OrtValue.CreateTensorValueFromMemory(data, CacheShape);

    public void Dispose() => _session.Dispose();
}

/// <summary>The converted model under Squash's graph executor.</summary>
internal sealed class SquashDecoder(Graph graph, int layers, int kvHeads, int headSize, int vocab)
    : OnnxDecoder(layers, kvHeads, headSize, vocab)
{
    private readonly GraphExecutor _executor = new(graph);

    protected override (float[], float[][], float[][]) Run(long[] tokens)
    {
        var shape = Array.ConvertAll(CacheShape, d => (int)d);
        var inputs = new Dictionary<string, Tensor>(StringComparer.Ordinal) { ["input_ids"] = Tensor.From<long>(tokens, 1, tokens.Length) };
        for (int l = 0; l < Layers; l++)
        {
            inputs[$"past_key_{l}"] = Tensor.From<float>(Keys[l], shape);
            inputs[$"past_value_{l}"] = Tensor.From<float>(Values[l], shape);
        }
        var outputs = _executor.Run(inputs, new KernelContext(1));
        float[] Read(string name) => outputs[name].AsSpan<float>().ToArray();
        return (Read("logits"),
            [.. Enumerable.Range(0, Layers).Select(l => Read($"present_key_{l}"))],
            [.. Enumerable.Range(0, Layers).Select(l => Read($"present_value_{l}"))]);
    }
}
