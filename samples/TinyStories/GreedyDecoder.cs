using Squash.Runtime;

namespace TinyStories;

/// <summary>
/// Greedy generation from a llama2.c-style decoder (as testassets/tools/Llama2cToOnnx writes it) through
/// <see cref="ISquashModel"/>: inputs <c>input_ids</c> [1, S] and, per layer, <c>past_key_L</c> / <c>past_value_L</c>
/// [1, kv heads, P, head size]; outputs <c>logits</c> [1, S, vocab] and <c>present_key_L</c> / <c>present_value_L</c>
/// [1, kv heads, P + S, head size], fed back as the next step's past (the key-value cache).
/// </summary>
public sealed class GreedyDecoder
{
    private readonly ISquashModel _model;
    private readonly Dictionary<string, Tensor> _inputs = new(StringComparer.Ordinal);
    private readonly string[] _caches;

    /// <summary>Wraps a decoder; checks its inputs and outputs.</summary>
    /// <exception cref="ArgumentException">The model is not such a decoder.</exception>
    public GreedyDecoder(ISquashModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        if (!model.Inputs.Any(i => i.Name == "input_ids" && i.DataType == DataType.Int64) || !model.Outputs.Any(o => o.Name == "logits"))
            throw new ArgumentException("The model needs an int64 input 'input_ids' and an output 'logits' (a llama2.c decoder).", nameof(model));
        _caches = [.. model.Inputs.Where(i => i.Name.StartsWith("past_", StringComparison.Ordinal)).Select(i => i.Name)];
        foreach (var name in _caches)
        {
            var spec = model.Inputs.First(i => i.Name == name);
            if (spec.Shape is not [1, > 0, _, > 0] || !model.Outputs.Any(o => o.Name == "present_" + name["past_".Length..]))
                throw new ArgumentException($"Cache input {spec} needs shape [1, kv heads, past, head size] and a matching present_ output.", nameof(model));
        }
        Reset();
    }

    /// <summary>Tokens in the cache.</summary>
    public int Position { get; private set; }

    /// <summary>Empties the cache.</summary>
    public void Reset()
    {
        foreach (var name in _caches)
        {
            var shape = _model.Inputs.First(i => i.Name == name).Shape;
            _inputs[name] = new Tensor(DataType.Float, 1, shape[1], 0, shape[3]);
        }
        Position = 0;
    }

    /// <summary>Feeds one token at the next position and returns its logits.</summary>
    public float[] Step(long token)
    {
        _inputs["input_ids"] = Tensor.From<long>([token], 1, 1);
        var outputs = _model.Run(_inputs);
        foreach (var name in _caches) _inputs[name] = outputs["present_" + name["past_".Length..]];
        Position++;
        return outputs["logits"].AsSpan<float>().ToArray();
    }

    /// <summary>Feeds <paramref name="start"/> (BOS is 1), then each step's most likely token, <paramref name="steps"/>
    /// times; returns the generated tokens (ties go to the lowest id).</summary>
    public long[] Generate(long start, int steps)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(steps);
        var tokens = new long[steps];
        long token = start;
        for (int i = 0; i < steps; i++) tokens[i] = token = ArgMax(Step(token));
        return tokens;
    }

    /// <summary>The index of the largest value (the first on ties).</summary>
    public static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
            if (values[i] > values[best]) best = i;
        return best;
    }
}
