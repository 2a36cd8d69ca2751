using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Squash.Runtime.Kernels;

/// <summary>How a mask enters the scores: none, a boolean "may attend" tensor, or a float added to the scaled scores.</summary>
public enum AttentionMaskKind
{
    /// <summary>Every key is visible.</summary>
    None,
    /// <summary>true = the query may attend the key; false keys get a score of -infinity.</summary>
    Boolean,
    /// <summary>Added to the scaled scores (0 or -infinity for a causal mask, or any bias).</summary>
    Additive,
}

/// <summary>
/// The shapes of one attention call: Q [B, Hq, Sq, D], K [B, Hkv, T, D], V [B, Hkv, T, Dv] and the output
/// [B, Hq, Sq, Dv]; query head h reads key/value head h / (Hq / Hkv) (grouped-query attention). The mask is given
/// by its element strides over [B, Hq, Sq, T] (0 along broadcast dimensions).
/// </summary>
public readonly record struct AttentionShape(int Batch, int QueryHeads, int KeyValueHeads, int QueryLength, int KeyLength, int HeadSize, int ValueSize)
{
    /// <summary>Query heads per key/value head.</summary>
    public int Group => QueryHeads / KeyValueHeads;
}

/// <summary>
/// softmax(scale * Q K^T + mask) V, computed flash-style: keys are visited in tiles, a running maximum and sum per
/// query row rescale the partial output (online softmax), so at most one tile of scores per row exists at a time and
/// the score matrix is never written out. Tiles that the mask hides completely are skipped without computing them.
/// </summary>
/// <remarks>
/// Numerics: scores, exponentials and sums are fp32 like the unfused graph (MatMul, Softmax, MatMul), in another
/// order; each tile's exponentials are taken relative to the running maximum, so nothing overflows. A row whose keys
/// are all masked has no softmax (the unfused graph divides 0 by 0); its output is NaN, as there.
/// </remarks>
public static unsafe class FlashAttention
{
    /// <summary>Keys per tile (the scores of one row's tile live on the stack).</summary>
    public const int TileKeys = 64;

    /// <summary>Computes the output; <paramref name="maskStrides"/> are the mask's element strides over [B, Hq, Sq, T].</summary>
    /// <exception cref="ArgumentException">A span is too short for the shape, or the heads do not group.</exception>
    public static void Compute(KernelContext context, AttentionShape shape, float scale, ReadOnlySpan<float> q, ReadOnlySpan<float> k,
        ReadOnlySpan<float> v, AttentionMaskKind maskKind, ReadOnlySpan<byte> mask, ReadOnlySpan<int> maskStrides, Span<float> output)
    {
        ArgumentNullException.ThrowIfNull(context);
        var s = shape;
        if (s.KeyValueHeads <= 0 || s.QueryHeads % s.KeyValueHeads != 0)
            throw new ArgumentException($"{s.QueryHeads} query heads do not group over {s.KeyValueHeads} key/value heads.");
        long rows = (long)s.Batch * s.QueryHeads * s.QueryLength;
        if (q.Length < rows * s.HeadSize || output.Length < rows * s.ValueSize
            || k.Length < (long)s.Batch * s.KeyValueHeads * s.KeyLength * s.HeadSize
            || v.Length < (long)s.Batch * s.KeyValueHeads * s.KeyLength * s.ValueSize)
            throw new ArgumentException($"A tensor is too short for attention of shape {s}.");
        if (maskKind != AttentionMaskKind.None && maskStrides.Length != 4) throw new ArgumentException("The mask needs four strides.", nameof(maskStrides));
        if (rows == 0 || s.ValueSize == 0) return;
        fixed (float* pq = q)
        fixed (float* pk = k)
        fixed (float* pv = v)
        fixed (byte* pm = mask)
        fixed (float* po = output)
        {
            var strides = maskKind == AttentionMaskKind.None ? default : (maskStrides[0], maskStrides[1], maskStrides[2], maskStrides[3]);
            var body = new Body(s, scale, pq, pk, pv, maskKind, pm, strides, po);
            // A few hundred keys of work per row; small problems stay on one thread.
            int grain = Math.Max(1, 16384 / Math.Max(1, s.KeyLength * (s.HeadSize + s.ValueSize)));
            context.For((int)rows, body, grain);
        }
    }

    private readonly struct Body(AttentionShape s, float scale, float* q, float* k, float* v, AttentionMaskKind maskKind, byte* mask,
        (int B, int H, int S, int T) maskStrides, float* output) : IRangeBody
    {
        public void Invoke(int start, int end)
        {
            Span<float> scores = stackalloc float[TileKeys];
            Span<float> accumulator = s.ValueSize <= 1024 ? stackalloc float[s.ValueSize] : new float[s.ValueSize];
            fixed (float* acc = accumulator)
            for (int row = start; row < end; row++)
            {
                int i = row % s.QueryLength, bh = row / s.QueryLength, h = bh % s.QueryHeads, b = bh / s.QueryHeads;
                int kvh = h / s.Group;
                float* qRow = q + (long)row * s.HeadSize;
                long kv = (long)b * s.KeyValueHeads + kvh;
                float* keys = k + kv * s.KeyLength * s.HeadSize;
                float* values = v + kv * s.KeyLength * s.ValueSize;
                byte* maskRow = maskKind == AttentionMaskKind.None ? null
                    : mask + ((long)b * maskStrides.B + (long)h * maskStrides.H + (long)i * maskStrides.S) * (maskKind == AttentionMaskKind.Boolean ? 1 : sizeof(float));
                Row(qRow, keys, values, maskRow, scores, acc, output + (long)row * s.ValueSize);
            }
        }

        private void Row(float* qRow, float* keys, float* values, byte* maskRow, Span<float> scores, float* acc, float* result)
        {
            int d = s.HeadSize, dv = s.ValueSize, t = s.KeyLength, mt = maskStrides.T;
            new Span<float>(acc, dv).Clear();
            float max = float.NegativeInfinity, sum = 0;
            for (int j0 = 0; j0 < t; j0 += TileKeys)
            {
                int n = Math.Min(TileKeys, t - j0);
                var tile = scores[..n];
                float tileMax = float.NegativeInfinity;
                for (int j = 0; j < n; j++)
                {
                    float score;
                    if (maskKind == AttentionMaskKind.Boolean && maskRow[(long)(j0 + j) * mt] == 0) score = float.NegativeInfinity;
                    else
                    {
                        score = Dot(qRow, keys + (long)(j0 + j) * d, d) * scale;
                        if (maskKind == AttentionMaskKind.Additive) score += ((float*)maskRow)[(long)(j0 + j) * mt];
                    }
                    tile[j] = score;
                    tileMax = MathF.Max(tileMax, score);
                }
                if (float.IsNegativeInfinity(tileMax)) continue; // every key of the tile is masked: nothing to add
                float newMax = MathF.Max(max, tileMax);
                if (newMax != max)
                {
                    // Rescale what was accumulated against the old maximum (exp(-inf) = 0 on the first tile).
                    float correction = MathF.Exp(max - newMax);
                    sum *= correction;
                    TensorPrimitives.Multiply(new ReadOnlySpan<float>(acc, dv), correction, new Span<float>(acc, dv));
                    max = newMax;
                }
                TensorPrimitives.Subtract(tile, max, tile);
                TensorPrimitives.Exp(tile, tile);
                sum += TensorPrimitives.Sum(tile);
                for (int j = 0; j < n; j++)
                    if (tile[j] != 0) Axpy(tile[j], values + (long)(j0 + j) * dv, acc, dv);
            }
            // All keys masked: 0 / 0, NaN, as the unfused Softmax gives.
            float inverse = 1f / sum;
            var output = new Span<float>(result, dv);
            if (sum == 0) output.Fill(float.NaN);
            else TensorPrimitives.Multiply(new ReadOnlySpan<float>(acc, dv), inverse, output);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot(float* a, float* b, int n)
    {
        int i = 0;
        float result = 0;
        if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            var s = Vector256<float>.Zero;
            for (; i <= n - 8; i += 8) s = Vector256.MultiplyAddEstimate(Vector256.Load(a + i), Vector256.Load(b + i), s);
            result = Vector256.Sum(s);
        }
        else if (Vector128.IsHardwareAccelerated && n >= 4)
        {
            var s = Vector128<float>.Zero;
            for (; i <= n - 4; i += 4) s = Vector128.MultiplyAddEstimate(Vector128.Load(a + i), Vector128.Load(b + i), s);
            result = Vector128.Sum(s);
        }
        for (; i < n; i++) result += a[i] * b[i];
        return result;
    }

    /// <summary>y += alpha * x over n floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Axpy(float alpha, float* x, float* y, int n)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var a = Vector256.Create(alpha);
            for (; i <= n - 8; i += 8) Vector256.MultiplyAddEstimate(a, Vector256.Load(x + i), Vector256.Load(y + i)).Store(y + i);
        }
        if (Vector128.IsHardwareAccelerated)
        {
            var a = Vector128.Create(alpha);
            for (; i <= n - 4; i += 4) Vector128.MultiplyAddEstimate(a, Vector128.Load(x + i), Vector128.Load(y + i)).Store(y + i);
        }
        for (; i < n; i++) y[i] += alpha * x[i];
    }
}
