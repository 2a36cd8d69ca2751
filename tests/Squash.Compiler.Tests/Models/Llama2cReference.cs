using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Squash.Compiler.Tests.Models;

/// <summary>
/// A reference llama2.c forward pass, written from the checkpoint format (testassets/models/llama2c/README.md) and
/// run.c's loops, independent of the converter: its own file reader, one token at a time, its own KV cache.
/// Weights are float32 as stored; activations, the cache and every sum are double, so it is the fp32 model computed
/// nearly exactly, and the converted model's error is measured against it.
/// </summary>
internal sealed class Llama2cReference : IDecoder
{
    private readonly int _dim, _hidden, _layers, _heads, _kvHeads, _seqLen, _headSize, _kvDim;
    private readonly float[] _w;
    private readonly long _embedding, _rmsAtt, _wq, _wk, _wv, _wo, _rmsFfn, _w1, _w2, _w3, _rmsFinal, _freqReal, _freqImag, _classifier;
    private readonly double[][] _keyCache, _valueCache;
    private int _position;

    public Llama2cReference(byte[] file)
    {
        int Header(int i) => BinaryPrimitives.ReadInt32LittleEndian(file.AsSpan(4 * i));
        (_dim, _hidden, _layers, _heads, _kvHeads, int vocab, _seqLen) = (Header(0), Header(1), Header(2), Header(3), Header(4), Header(5), Header(6));
        bool shared = vocab > 0;
        VocabSize = Math.Abs(vocab);
        _headSize = _dim / _heads;
        _kvDim = _dim * _kvHeads / _heads;
        _w = MemoryMarshal.Cast<byte, float>(file.AsSpan(28)).ToArray();
        // The offsets of run.c's memory_map_weights.
        long p = 0;
        long Take(long count) { long at = p; p += count; return at; }
        _embedding = Take((long)VocabSize * _dim);
        _rmsAtt = Take((long)_layers * _dim);
        _wq = Take((long)_layers * _dim * _dim);
        _wk = Take((long)_layers * _kvDim * _dim);
        _wv = Take((long)_layers * _kvDim * _dim);
        _wo = Take((long)_layers * _dim * _dim);
        _rmsFfn = Take((long)_layers * _dim);
        _w1 = Take((long)_layers * _hidden * _dim);
        _w2 = Take((long)_layers * _dim * _hidden);
        _w3 = Take((long)_layers * _hidden * _dim);
        _rmsFinal = Take(_dim);
        _freqReal = Take((long)_seqLen * _headSize / 2);
        _freqImag = Take((long)_seqLen * _headSize / 2);
        _classifier = shared ? _embedding : Take((long)VocabSize * _dim);
        if (p != _w.Length) throw new InvalidDataException($"The checkpoint holds {_w.Length} floats, the header describes {p}.");
        _keyCache = new double[_layers][];
        _valueCache = new double[_layers][];
        for (int l = 0; l < _layers; l++)
        {
            _keyCache[l] = new double[(long)_seqLen * _kvDim];
            _valueCache[l] = new double[(long)_seqLen * _kvDim];
        }
    }

    public int VocabSize { get; }

    public int Position => _position;

    /// <summary>Runs the tokens one by one (run.c has no batched prompt) and returns each one's logits.</summary>
    public float[][] Forward(long[] tokens)
    {
        var result = new float[tokens.Length][];
        for (int i = 0; i < tokens.Length; i++) result[i] = Step((int)tokens[i]);
        return result;
    }

    private float[] Step(int token)
    {
        int pos = _position++;
        var x = new double[_dim];
        for (int i = 0; i < _dim; i++) x[i] = _w[_embedding + (long)token * _dim + i];
        var xb = new double[_dim];
        var q = new double[_dim];
        var hb = new double[_hidden];
        var hb2 = new double[_hidden];
        var att = new double[pos + 1];
        int kvMul = _heads / _kvHeads;
        for (int l = 0; l < _layers; l++)
        {
            RmsNorm(xb, x, _rmsAtt + (long)l * _dim);
            MatVec(q, xb, _wq + (long)l * _dim * _dim, _dim, _dim);
            var k = _keyCache[l].AsSpan(pos * _kvDim, _kvDim);
            var v = _valueCache[l].AsSpan(pos * _kvDim, _kvDim);
            MatVec(k, xb, _wk + (long)l * _kvDim * _dim, _kvDim, _dim);
            MatVec(v, xb, _wv + (long)l * _kvDim * _dim, _kvDim, _dim);
            // RoPE: rotate each pair (i, i+1) of every head by the stored cos/sin of this position.
            for (int i = 0; i < _dim; i += 2)
            {
                int headDim = i % _headSize;
                double fcr = _w[_freqReal + (long)pos * (_headSize / 2) + headDim / 2];
                double fci = _w[_freqImag + (long)pos * (_headSize / 2) + headDim / 2];
                Rotate(q, i, fcr, fci);
                if (i < _kvDim) Rotate(k, i, fcr, fci);
            }
            for (int h = 0; h < _heads; h++)
            {
                int kvOffset = h / kvMul * _headSize;
                for (int t = 0; t <= pos; t++)
                {
                    double score = 0;
                    for (int i = 0; i < _headSize; i++) score += q[h * _headSize + i] * _keyCache[l][t * _kvDim + kvOffset + i];
                    att[t] = score / Math.Sqrt(_headSize);
                }
                Softmax(att);
                for (int i = 0; i < _headSize; i++)
                {
                    double sum = 0;
                    for (int t = 0; t <= pos; t++) sum += att[t] * _valueCache[l][t * _kvDim + kvOffset + i];
                    xb[h * _headSize + i] = sum;
                }
            }
            var xb2 = new double[_dim];
            MatVec(xb2, xb, _wo + (long)l * _dim * _dim, _dim, _dim);
            for (int i = 0; i < _dim; i++) x[i] += xb2[i];
            RmsNorm(xb, x, _rmsFfn + (long)l * _dim);
            MatVec(hb, xb, _w1 + (long)l * _hidden * _dim, _hidden, _dim);
            MatVec(hb2, xb, _w3 + (long)l * _hidden * _dim, _hidden, _dim);
            for (int i = 0; i < _hidden; i++) hb[i] = hb[i] / (1 + Math.Exp(-hb[i])) * hb2[i];
            MatVec(xb, hb, _w2 + (long)l * _dim * _hidden, _dim, _hidden);
            for (int i = 0; i < _dim; i++) x[i] += xb[i];
        }
        RmsNorm(x, x, _rmsFinal);
        var logits = new double[VocabSize];
        MatVec(logits, x, _classifier, VocabSize, _dim);
        var result = new float[VocabSize];
        for (int i = 0; i < result.Length; i++) result[i] = (float)logits[i];
        return result;
    }

    private static void Rotate(Span<double> vec, int i, double fcr, double fci)
    {
        double v0 = vec[i], v1 = vec[i + 1];
        vec[i] = v0 * fcr - v1 * fci;
        vec[i + 1] = v0 * fci + v1 * fcr;
    }

    private void RmsNorm(double[] o, double[] x, long weight)
    {
        double ss = 0;
        for (int j = 0; j < x.Length; j++) ss += x[j] * x[j];
        ss = 1 / Math.Sqrt(ss / x.Length + 1e-5);
        for (int j = 0; j < x.Length; j++) o[j] = _w[weight + j] * (ss * x[j]);
    }

    /// <summary>out = W x, W stored [rows, columns] (llama2.c's [out, in]).</summary>
    private void MatVec(Span<double> output, ReadOnlySpan<double> x, long w, int rows, int columns)
    {
        for (int i = 0; i < rows; i++)
        {
            double sum = 0;
            long row = w + (long)i * columns;
            for (int j = 0; j < columns; j++) sum += _w[row + j] * x[j];
            output[i] = sum;
        }
    }

    private static void Softmax(Span<double> x)
    {
        double max = double.NegativeInfinity;
        foreach (double v in x) max = Math.Max(max, v);
        double sum = 0;
        for (int i = 0; i < x.Length; i++) sum += x[i] = Math.Exp(x[i] - max);
        for (int i = 0; i < x.Length; i++) x[i] /= sum;
    }
}
