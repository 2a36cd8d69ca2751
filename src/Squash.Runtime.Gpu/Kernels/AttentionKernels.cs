using ILGPU;

namespace Squash.Runtime.Gpu.Kernels;

/// <summary>Shapes, scale and mask addressing of one fused attention (com.squash Attention): Q [B, Hq, Sq, D],
/// K [B, Hkv, T, D], V [B, Hkv, T, Dv], output [B, Hq, Sq, Dv]; query head h reads key/value head h / Group.</summary>
internal struct AttentionParams
{
    public int QueryHeads, KeyValueHeads, QueryLength, KeyLength, HeadSize, ValueSize, Group, Rows, Tile;
    public float Scale;
    /// <summary>0: no mask; 1: bool (false hides the key); 2: float added to the scaled scores.</summary>
    public int MaskKind;
    /// <summary>The mask's element strides over [B, Hq, Sq, T] (0 along broadcast dimensions).</summary>
    public int MaskB, MaskH, MaskS, MaskT;
}

/// <summary>Fused attention, flash-style.</summary>
internal static class AttentionKernels
{
    /// <summary>Keys per tile on every device (the CPU kernel's tile): the scores of one tile live in shared memory.</summary>
    public const int Tile = 64;

    /// <summary>Threads per row on a GPU (one warp) and on the CPU accelerator (few, since each is an OS thread).</summary>
    public const int GpuThreads = 32, EmulatorThreads = 4;

    /// <summary>Floats of dynamic shared memory: a tile of scores and the row's output accumulator.</summary>
    public static int SharedFloats(int valueSize) => Tile + valueSize;

    /// <summary>
    /// softmax(scale * Q K^T + mask) V, one group per query row (persistent groups loop over rows). Keys are visited in
    /// tiles of <see cref="Tile"/>: the threads compute the tile's scores into shared memory (one key each, the dot
    /// product over D), every thread then reads the tile's maximum, the exponentials relative to the running maximum
    /// replace the scores, and each thread updates its own output columns (rescaled when the maximum grew: online
    /// softmax). Only one tile of scores per row exists at a time; a tile the mask hides completely adds nothing. A row
    /// whose keys are all hidden is NaN, as on the CPU (the unfused graph divides 0 by 0).
    /// </summary>
    public static void Attention(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<byte> maskBool,
        ArrayView<float> maskAdd, ArrayView<float> y, AttentionParams p)
    {
        var shared = SharedMemory.GetDynamic<float>();
        var scores = shared.SubView(0, p.Tile);
        var acc = shared.SubView(p.Tile, p.ValueSize);
        int t = Group.IdxX, threads = Group.DimX;
        for (int row = Grid.IdxX; row < p.Rows; row += Grid.DimX)
        {
            int i = row % p.QueryLength, bh = row / p.QueryLength, h = bh % p.QueryHeads, b = bh / p.QueryHeads;
            int kv = b * p.KeyValueHeads + h / p.Group;
            int qBase = row * p.HeadSize, kBase = kv * p.KeyLength * p.HeadSize, vBase = kv * p.KeyLength * p.ValueSize;
            int maskBase = b * p.MaskB + h * p.MaskH + i * p.MaskS;
            for (int c = t; c < p.ValueSize; c += threads) acc[c] = 0f;
            float max = float.NegativeInfinity, sum = 0f;
            for (int j0 = 0; j0 < p.KeyLength; j0 += p.Tile)
            {
                int n = p.KeyLength - j0 < p.Tile ? p.KeyLength - j0 : p.Tile;
                for (int j = t; j < n; j += threads)
                {
                    int key = j0 + j;
                    float score;
                    if (p.MaskKind == 1 && maskBool[maskBase + key * p.MaskT] == 0) score = float.NegativeInfinity;
                    else
                    {
                        float dot = 0f;
                        int kRow = kBase + key * p.HeadSize;
                        for (int d = 0; d < p.HeadSize; d++) dot += q[qBase + d] * k[kRow + d];
                        score = dot * p.Scale;
                        if (p.MaskKind == 2) score += maskAdd[maskBase + key * p.MaskT];
                    }
                    scores[j] = score;
                }
                Group.Barrier();
                float tileMax = float.NegativeInfinity;
                for (int j = 0; j < n; j++) tileMax = MathF.Max(tileMax, scores[j]);
                // Every thread has read the scores before they are replaced by their exponentials.
                Group.Barrier();
                // Every thread sees the same tile maximum, so all skip (or not) together.
                if (tileMax == float.NegativeInfinity) continue;
                float newMax = MathF.Max(max, tileMax);
                float correction = newMax != max ? MathF.Exp(max - newMax) : 1f;
                for (int j = t; j < n; j += threads) scores[j] = MathF.Exp(scores[j] - newMax);
                Group.Barrier();
                float tileSum = 0f;
                for (int j = 0; j < n; j++) tileSum += scores[j];
                sum = sum * correction + tileSum;
                for (int c = t; c < p.ValueSize; c += threads)
                {
                    float a = acc[c] * correction;
                    for (int j = 0; j < n; j++) a += scores[j] * v[vBase + (j0 + j) * p.ValueSize + c];
                    acc[c] = a;
                }
                max = newMax;
                // The next tile's scores overwrite these only after every thread has used them.
                Group.Barrier();
            }
            float inverse = 1f / sum;
            for (int c = t; c < p.ValueSize; c += threads)
                y[row * p.ValueSize + c] = sum == 0f ? float.NaN : acc[c] * inverse;
        }
    }
}
