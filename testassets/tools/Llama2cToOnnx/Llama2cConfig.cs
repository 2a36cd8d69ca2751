using System.Globalization;
using Squash.Runtime;

namespace Squash.Tools.Llama2c;

/// <summary>The hyperparameters in a llama2.c checkpoint header.</summary>
/// <param name="Dim">Model width (embedding size).</param>
/// <param name="HiddenDim">Width of the feed-forward layer.</param>
/// <param name="Layers">Number of transformer layers.</param>
/// <param name="Heads">Number of query heads.</param>
/// <param name="KvHeads">Number of key/value heads (grouped-query attention when fewer than <paramref name="Heads"/>).</param>
/// <param name="VocabSize">Number of tokens.</param>
/// <param name="SeqLen">Longest sequence (the number of rows of the rotary tables).</param>
/// <param name="SharedClassifier">True when the classifier is the token embedding (a positive vocabulary size in
/// the header); false when a separate classifier matrix follows the rotary tables (a negative one).</param>
public sealed record Llama2cConfig(int Dim, int HiddenDim, int Layers, int Heads, int KvHeads, int VocabSize, int SeqLen,
    bool SharedClassifier = true)
{
    /// <summary>Size of one attention head.</summary>
    public int HeadSize => Dim / Heads;

    /// <summary>Width of the key and value projections.</summary>
    public int KvDim => HeadSize * KvHeads;

    /// <summary>Query heads per key/value head.</summary>
    public int Group => Heads / KvHeads;

    /// <summary>Number of float32 values after the header, in file order.</summary>
    public long FloatCount
    {
        get
        {
            long layer = 2L * Dim + 2L * Dim * Dim + 2L * KvDim * Dim + 3L * HiddenDim * Dim;
            long total = (long)VocabSize * Dim + Layers * layer + Dim + (long)SeqLen * HeadSize;
            return SharedClassifier ? total : total + (long)VocabSize * Dim;
        }
    }

    /// <summary>Size of the whole checkpoint file in bytes.</summary>
    public long FileSize => HeaderBytes + 4 * FloatCount;

    /// <summary>Size of the header: seven int32 values.</summary>
    public const int HeaderBytes = 7 * sizeof(int);

    /// <summary>Checks that the hyperparameters describe a model this converter can build.</summary>
    /// <exception cref="SquashException">A value is not positive, heads do not divide evenly, or a tensor is too large.</exception>
    public void Validate()
    {
        if (Dim <= 0 || HiddenDim <= 0 || Layers <= 0 || Heads <= 0 || KvHeads <= 0 || VocabSize <= 0 || SeqLen <= 0)
            throw Invalid("every dimension must be positive");
        if (Dim % Heads != 0) throw Invalid($"dim {Dim} is not a multiple of n_heads {Heads}");
        if (HeadSize % 2 != 0) throw Invalid($"head size {HeadSize} is odd; rotary embeddings rotate pairs");
        if (Heads % KvHeads != 0) throw Invalid($"n_heads {Heads} is not a multiple of n_kv_heads {KvHeads}");
        // Every weight is one .NET array and one ONNX tensor; keep each under the array limit.
        long largest = Math.Max(Math.Max((long)VocabSize * Dim, (long)HiddenDim * Dim), Math.Max((long)Dim * Dim, (long)SeqLen * HeadSize / 2));
        if (largest > Array.MaxLength / sizeof(float))
            throw new SquashException(ErrorCodes.TooLarge, $"llama2.c model {this}: a weight of {largest} floats is larger than one buffer can hold.");
    }

    /// <summary>
    /// Parses a specification such as <c>dim=2048,hidden=5632,layers=8,heads=32,kv_heads=8,vocab=32000,seq=1024</c>.
    /// <c>kv_heads</c> defaults to <c>heads</c>; every other key is required.
    /// </summary>
    /// <exception cref="SquashException">A key is unknown, missing or repeated, or a value is not an integer.</exception>
    public static Llama2cConfig Parse(string spec)
    {
        var values = new Dictionary<string, int>(StringComparer.Ordinal);
        string[] keys = ["dim", "hidden", "layers", "heads", "kv_heads", "vocab", "seq"];
        foreach (var part in spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int eq = part.IndexOf('=');
            string key = eq < 0 ? part : part[..eq].Trim();
            if (Array.IndexOf(keys, key) < 0)
                throw Bad($"unknown key '{key}' (expected {string.Join(", ", keys)})");
            if (eq < 0 || !int.TryParse(part[(eq + 1)..].Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int value))
                throw Bad($"'{part}' is not key=integer");
            if (!values.TryAdd(key, value)) throw Bad($"'{key}' is given twice");
        }
        int Get(string key) => values.TryGetValue(key, out int v) ? v : throw Bad($"'{key}' is missing");
        var config = new Llama2cConfig(Get("dim"), Get("hidden"), Get("layers"), Get("heads"),
            values.GetValueOrDefault("kv_heads", Get("heads")), Get("vocab"), Get("seq"));
        config.Validate();
        return config;

        SquashException Bad(string what) => new(ErrorCodes.InvalidModel, $"Synthetic model specification '{spec}': {what}.");
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"dim={Dim},hidden={HiddenDim},layers={Layers},heads={Heads},kv_heads={KvHeads},vocab={VocabSize},seq={SeqLen}" +
        (SharedClassifier ? "" : ",unshared_classifier");

    private SquashException Invalid(string what) =>
        new(ErrorCodes.InvalidModel, $"llama2.c header {this} is inconsistent: {what}.");
}
