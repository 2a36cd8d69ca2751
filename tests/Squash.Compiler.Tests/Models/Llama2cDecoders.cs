using Squash.Runtime;

namespace Squash.Compiler.Tests.Models;

/// <summary>A decoder with a KV cache: feeds tokens at the next positions and returns their logits.</summary>
internal interface IDecoder
{
    /// <summary>Number of tokens already in the cache.</summary>
    int Position { get; }

    /// <summary>Runs <paramref name="tokens"/> at positions <see cref="Position"/>.. and returns one logit row per token.</summary>
    float[][] Forward(long[] tokens);
}

/// <summary>
/// Drives the converted ONNX graph (under ONNX Runtime or Squash, whichever <paramref name="run"/> calls): feeds
/// each call's present caches back as the next call's past ones and checks every output's shape on the way.
/// </summary>
internal sealed class OnnxDecoder(Func<Dictionary<string, Tensor>, Dictionary<string, Tensor>> run,
    int layers, int kvHeads, int headSize, int vocab) : IDecoder
{
    private readonly Tensor[] _keys = [.. Enumerable.Range(0, layers).Select(_ => new Tensor(DataType.Float, 1, kvHeads, 0, headSize))];
    private readonly Tensor[] _values = [.. Enumerable.Range(0, layers).Select(_ => new Tensor(DataType.Float, 1, kvHeads, 0, headSize))];

    public int Position { get; private set; }

    public float[][] Forward(long[] tokens)
    {
        var inputs = new Dictionary<string, Tensor>(StringComparer.Ordinal) { ["input_ids"] = Tensor.From<long>(tokens, 1, tokens.Length) };
        for (int l = 0; l < layers; l++)
        {
            inputs[$"past_key_{l}"] = _keys[l];
            inputs[$"past_value_{l}"] = _values[l];
        }
        var outputs = run(inputs);
        int total = Position + tokens.Length;
        var logits = outputs["logits"];
        Assert.Equal((int[])[1, tokens.Length, vocab], logits.Shape);
        for (int l = 0; l < layers; l++)
        {
            _keys[l] = outputs[$"present_key_{l}"];
            _values[l] = outputs[$"present_value_{l}"];
            Assert.Equal((int[])[1, kvHeads, total, headSize], _keys[l].Shape);
            Assert.Equal((int[])[1, kvHeads, total, headSize], _values[l].Shape);
        }
        Position = total;
        var data = logits.AsSpan<float>();
        var rows = new float[tokens.Length][];
        for (int i = 0; i < rows.Length; i++) rows[i] = data.Slice(i * vocab, vocab).ToArray();
        return rows;
    }
}
