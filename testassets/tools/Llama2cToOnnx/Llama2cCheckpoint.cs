using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Squash.Runtime;

namespace Squash.Tools.Llama2c;

/// <summary>The weights of one transformer layer, in llama2.c's layout: matrices are [out, in] (y = W x).</summary>
public sealed class Llama2cLayer
{
    /// <summary>RMSNorm weight before attention, [dim].</summary>
    public required float[] RmsAttention { get; init; }
    /// <summary>Query projection, [dim, dim].</summary>
    public required float[] Wq { get; init; }
    /// <summary>Key projection, [kv_dim, dim].</summary>
    public required float[] Wk { get; init; }
    /// <summary>Value projection, [kv_dim, dim].</summary>
    public required float[] Wv { get; init; }
    /// <summary>Attention output projection, [dim, dim].</summary>
    public required float[] Wo { get; init; }
    /// <summary>RMSNorm weight before the feed-forward layer, [dim].</summary>
    public required float[] RmsFfn { get; init; }
    /// <summary>Feed-forward gate projection, [hidden, dim].</summary>
    public required float[] W1 { get; init; }
    /// <summary>Feed-forward down projection, [dim, hidden].</summary>
    public required float[] W2 { get; init; }
    /// <summary>Feed-forward up projection, [hidden, dim].</summary>
    public required float[] W3 { get; init; }
}

/// <summary>
/// A llama2.c checkpoint (the legacy "version 0" format of run.c): a header of seven int32 values and the float32
/// weights, little-endian. See testassets/models/llama2c/README.md.
/// </summary>
public sealed class Llama2cCheckpoint
{
    /// <summary>Creates a checkpoint from its parts; array lengths are checked against <paramref name="config"/>.</summary>
    /// <exception cref="ArgumentException">An array has the wrong length.</exception>
    public Llama2cCheckpoint(Llama2cConfig config, float[] tokenEmbedding, IReadOnlyList<Llama2cLayer> layers, float[] rmsFinal,
        float[] freqCisReal, float[] freqCisImag, float[]? classifier)
    {
        Config = config;
        TokenEmbedding = tokenEmbedding;
        Layers = layers;
        RmsFinal = rmsFinal;
        FreqCisReal = freqCisReal;
        FreqCisImag = freqCisImag;
        Classifier = classifier;
        long dim = config.Dim, kv = config.KvDim, hidden = config.HiddenDim, half = config.HeadSize / 2;
        Check(tokenEmbedding, config.VocabSize * dim, "token_embedding");
        if (layers.Count != config.Layers) throw new ArgumentException($"{layers.Count} layers given, the header says {config.Layers}.");
        foreach (var l in layers)
        {
            Check(l.RmsAttention, dim, "rms_att"); Check(l.Wq, dim * dim, "wq"); Check(l.Wk, kv * dim, "wk");
            Check(l.Wv, kv * dim, "wv"); Check(l.Wo, dim * dim, "wo"); Check(l.RmsFfn, dim, "rms_ffn");
            Check(l.W1, hidden * dim, "w1"); Check(l.W2, dim * hidden, "w2"); Check(l.W3, hidden * dim, "w3");
        }
        Check(rmsFinal, dim, "rms_final");
        Check(freqCisReal, config.SeqLen * half, "freq_cis_real");
        Check(freqCisImag, config.SeqLen * half, "freq_cis_imag");
        if (config.SharedClassifier != classifier is null)
            throw new ArgumentException("A separate classifier must be given exactly when the configuration does not share the embedding.");
        if (classifier is not null) Check(classifier, config.VocabSize * dim, "wcls");

        static void Check(float[] array, long length, string name)
        {
            if (array.Length != length) throw new ArgumentException($"{name} has {array.Length} values, expected {length}.");
        }
    }

    /// <summary>The header.</summary>
    public Llama2cConfig Config { get; }
    /// <summary>Token embedding, [vocab, dim]; also the classifier when <see cref="Llama2cConfig.SharedClassifier"/>.</summary>
    public float[] TokenEmbedding { get; }
    /// <summary>The transformer layers.</summary>
    public IReadOnlyList<Llama2cLayer> Layers { get; }
    /// <summary>Final RMSNorm weight, [dim].</summary>
    public float[] RmsFinal { get; }
    /// <summary>cos(position * frequency), [seq_len, head_size/2].</summary>
    public float[] FreqCisReal { get; }
    /// <summary>sin(position * frequency), [seq_len, head_size/2].</summary>
    public float[] FreqCisImag { get; }
    /// <summary>The separate classifier, [vocab, dim], or null when it is the token embedding.</summary>
    public float[]? Classifier { get; }

    /// <summary>The magic number of llama2.c's newer export formats ("ak42"), which this reader does not support.</summary>
    private const int VersionedMagic = 0x616b3432;

    /// <summary>Reads a checkpoint file.</summary>
    /// <exception cref="SquashException">The file is missing or unreadable, or not a valid checkpoint.</exception>
    public static Llama2cCheckpoint Load(string path)
    {
        if (!File.Exists(path))
            throw new SquashException(ErrorCodes.ModelNotFound, $"Checkpoint file '{path}' does not exist.");
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or OutOfMemoryException)
        {
            throw new SquashException(ErrorCodes.FileError, $"Checkpoint file '{path}' cannot be read: {e.Message}");
        }
        return Parse(bytes, Path.GetFileName(path));
    }

    /// <summary>Parses checkpoint bytes.</summary>
    /// <exception cref="SquashException">The header is missing, inconsistent or of an unsupported version, or the
    /// size of the data does not match the header (truncated or with trailing bytes).</exception>
    public static Llama2cCheckpoint Parse(ReadOnlySpan<byte> bytes, string displayName = "checkpoint")
    {
        if (bytes.Length < Llama2cConfig.HeaderBytes)
            throw new SquashException(ErrorCodes.InvalidModel,
                $"llama2.c checkpoint '{displayName}' is truncated: {bytes.Length} bytes, less than the {Llama2cConfig.HeaderBytes}-byte header.");
        Span<int> h = stackalloc int[7];
        for (int i = 0; i < 7; i++) h[i] = BinaryPrimitives.ReadInt32LittleEndian(bytes[(4 * i)..]);
        if (h[0] == VersionedMagic)
            throw new SquashException(ErrorCodes.InvalidModel,
                $"'{displayName}' is a versioned llama2.c export (magic \"ak42\"); only the legacy version-0 format of run.c is supported. Export with --version 0.");
        // A negative vocabulary size is llama2.c's flag for a separate classifier after the rotary tables.
        bool shared = h[5] > 0;
        int vocab = h[5] == int.MinValue ? 0 : Math.Abs(h[5]);
        var config = new Llama2cConfig(h[0], h[1], h[2], h[3], h[4], vocab, h[6], shared);
        try { config.Validate(); }
        catch (SquashException e)
        {
            throw new SquashException(e.Code, $"llama2.c checkpoint '{displayName}': {e.Message}");
        }
        long expected = config.FileSize;
        if (bytes.Length < expected)
            throw new SquashException(ErrorCodes.InvalidModel,
                $"llama2.c checkpoint '{displayName}' is truncated: its header ({config}) needs {expected} bytes, the file has {bytes.Length}.");
        if (bytes.Length > expected)
            throw new SquashException(ErrorCodes.InvalidModel,
                $"llama2.c checkpoint '{displayName}' has {bytes.Length} bytes but its header ({config}) describes {expected}; the header does not match the data.");

        var reader = new FloatReader(bytes[Llama2cConfig.HeaderBytes..]);
        long dim = config.Dim, kv = config.KvDim, hidden = config.HiddenDim;
        var embedding = reader.Next(config.VocabSize * dim);
        // The file groups each kind of weight across layers, so read kind by kind.
        int n = config.Layers;
        var rmsAtt = reader.PerLayer(n, dim);
        var wq = reader.PerLayer(n, dim * dim);
        var wk = reader.PerLayer(n, kv * dim);
        var wv = reader.PerLayer(n, kv * dim);
        var wo = reader.PerLayer(n, dim * dim);
        var rmsFfn = reader.PerLayer(n, dim);
        var w1 = reader.PerLayer(n, hidden * dim);
        var w2 = reader.PerLayer(n, dim * hidden);
        var w3 = reader.PerLayer(n, hidden * dim);
        var rmsFinal = reader.Next(dim);
        long table = (long)config.SeqLen * (config.HeadSize / 2);
        var real = reader.Next(table);
        var imag = reader.Next(table);
        var classifier = shared ? null : reader.Next(config.VocabSize * dim);
        var layers = new Llama2cLayer[config.Layers];
        for (int l = 0; l < layers.Length; l++)
        {
            layers[l] = new Llama2cLayer
            {
                RmsAttention = rmsAtt[l], Wq = wq[l], Wk = wk[l], Wv = wv[l], Wo = wo[l],
                RmsFfn = rmsFfn[l], W1 = w1[l], W2 = w2[l], W3 = w3[l],
            };
        }
        return new Llama2cCheckpoint(config, embedding, layers, rmsFinal, real, imag, classifier);
    }

    /// <summary>
    /// A checkpoint with random weights, for benchmarks: the same <paramref name="config"/> and <paramref name="seed"/>
    /// always give the same weights. Matrices (and the embedding) are uniform in ±1/sqrt(fan-in) so activations and logits keep a sane scale;
    /// norm weights are near 1; the rotary tables are llama2.c's (theta 10000).
    /// </summary>
    /// <exception cref="SquashException">The configuration is invalid.</exception>
    public static Llama2cCheckpoint Synthetic(Llama2cConfig config, ulong seed)
    {
        config.Validate();
        if (!config.SharedClassifier)
            throw new SquashException(ErrorCodes.InvalidModel, "Synthetic checkpoints share the classifier with the embedding.");
        var random = new SplitMix64(seed);
        long dim = config.Dim, kv = config.KvDim, hidden = config.HiddenDim;
        float[] Uniform(long count, float scale)
        {
            var a = new float[count];
            for (long i = 0; i < a.Length; i++) a[i] = scale * random.NextSigned();
            return a;
        }
        float[] NearOne(long count)
        {
            var a = new float[count];
            for (long i = 0; i < a.Length; i++) a[i] = 1f + 0.1f * random.NextSigned();
            return a;
        }
        float inDim = 1f / MathF.Sqrt(config.Dim), inHidden = 1f / MathF.Sqrt(config.HiddenDim);
        // Also ±1/sqrt(dim) for the embedding: it is the classifier too, and this keeps logits near unit scale.
        var embedding = Uniform(config.VocabSize * dim, inDim);
        var layers = new Llama2cLayer[config.Layers];
        for (int l = 0; l < layers.Length; l++)
        {
            layers[l] = new Llama2cLayer
            {
                RmsAttention = NearOne(dim),
                Wq = Uniform(dim * dim, inDim),
                Wk = Uniform(kv * dim, inDim),
                Wv = Uniform(kv * dim, inDim),
                Wo = Uniform(dim * dim, inDim),
                RmsFfn = NearOne(dim),
                W1 = Uniform(hidden * dim, inDim),
                W2 = Uniform(dim * hidden, inHidden),
                W3 = Uniform(hidden * dim, inDim),
            };
        }
        var rmsFinal = NearOne(dim);
        int half = config.HeadSize / 2;
        var real = new float[(long)config.SeqLen * half];
        var imag = new float[real.Length];
        for (int pos = 0; pos < config.SeqLen; pos++)
        {
            for (int i = 0; i < half; i++)
            {
                // run.c: freq = 1 / 10000^(2i / head_size), angle = pos * freq.
                double angle = pos / Math.Pow(10000.0, 2.0 * i / config.HeadSize);
                real[pos * half + i] = (float)Math.Cos(angle);
                imag[pos * half + i] = (float)Math.Sin(angle);
            }
        }
        return new Llama2cCheckpoint(config, embedding, layers, rmsFinal, real, imag, null);
    }

    /// <summary>Writes the checkpoint in llama2.c's version-0 format.</summary>
    public void WriteTo(Stream stream)
    {
        var c = Config;
        Span<byte> header = stackalloc byte[Llama2cConfig.HeaderBytes];
        int[] values = [c.Dim, c.HiddenDim, c.Layers, c.Heads, c.KvHeads, c.SharedClassifier ? c.VocabSize : -c.VocabSize, c.SeqLen];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteInt32LittleEndian(header[(4 * i)..], values[i]);
        stream.Write(header);
        void Write(float[] a) => stream.Write(MemoryMarshal.AsBytes(a.AsSpan()));
        Write(TokenEmbedding);
        foreach (var select in s_layerOrder)
            foreach (var layer in Layers) Write(select(layer));
        Write(RmsFinal);
        Write(FreqCisReal);
        Write(FreqCisImag);
        if (Classifier is not null) Write(Classifier);
    }

    /// <summary>The checkpoint in llama2.c's version-0 format.</summary>
    public byte[] ToBytes()
    {
        using var stream = new MemoryStream();
        WriteTo(stream);
        return stream.ToArray();
    }

    private static readonly Func<Llama2cLayer, float[]>[] s_layerOrder =
        [l => l.RmsAttention, l => l.Wq, l => l.Wk, l => l.Wv, l => l.Wo, l => l.RmsFfn, l => l.W1, l => l.W2, l => l.W3];

    /// <summary>Reads consecutive little-endian float32 arrays.</summary>
    private ref struct FloatReader(ReadOnlySpan<byte> data)
    {
        private ReadOnlySpan<byte> _rest = data;

        public float[] Next(long count)
        {
            var result = new float[count];
            var bytes = _rest[..(int)(count * sizeof(float))];
            // Every platform .NET 10 runs on is little-endian, like the file.
            bytes.CopyTo(MemoryMarshal.AsBytes(result.AsSpan()));
            _rest = _rest[bytes.Length..];
            return result;
        }

        public float[][] PerLayer(int layers, long count)
        {
            var result = new float[layers][];
            for (int l = 0; l < layers; l++) result[l] = Next(count);
            return result;
        }
    }

    /// <summary>SplitMix64: tiny, fast, and fully specified, so synthetic weights never change across .NET versions.</summary>
    private sealed class SplitMix64(ulong seed)
    {
        private ulong _state = seed;

        /// <summary>Uniform in [-1, 1), from the top 24 bits (exactly representable as float).</summary>
        public float NextSigned()
        {
            ulong z = _state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            z ^= z >> 31;
            return (z >> 40) * (2f / (1 << 24)) - 1f;
        }
    }
}
