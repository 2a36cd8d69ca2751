using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Squash.Runtime.Kernels;

/// <summary>
/// What a GEMM does with each result before storing it:
/// <c>C[i,j] = activation(alpha * sum + beta * C[i,j] + rowBias[i] + columnBias[j])</c>.
/// Fusing these saves a pass over C (a convolution's bias and activation, Gemm's alpha and beta).
/// </summary>
public readonly ref struct GemmEpilogue
{
    /// <summary>The plain product: alpha 1, beta 0, no bias, no activation.</summary>
    public GemmEpilogue()
    {
        Alpha = 1;
    }

    /// <summary>Scale of the product.</summary>
    public float Alpha { get; init; }

    /// <summary>Scale of the existing C; 0 means C is not read (NaN in C does not propagate).</summary>
    public float Beta { get; init; }

    /// <summary>A value per row of C (a convolution's bias per output channel); empty for none.</summary>
    public ReadOnlySpan<float> RowBias { get; init; }

    /// <summary>A value per column of C (a linear layer's bias); empty for none.</summary>
    public ReadOnlySpan<float> ColumnBias { get; init; }

    /// <summary>Activation applied last.</summary>
    public GemmActivation Activation { get; init; }
}

/// <summary>
/// <see cref="GemmEpilogue"/> as the micro-kernels use it: pinned pointers, and only what applies to the current
/// block of K (bias and beta on the first block, the activation on the last).
/// </summary>
internal readonly unsafe struct TileEpilogue
{
    public readonly float Alpha;
    public readonly float Beta;
    /// <summary>Indexed by the absolute row of C; null for none.</summary>
    public readonly float* RowBias;
    /// <summary>Indexed by the absolute column of C; null for none.</summary>
    public readonly float* ColumnBias;
    public readonly GemmActivation Activation;

    public TileEpilogue(float alpha, float beta, float* rowBias, float* columnBias, GemmActivation activation)
    {
        Alpha = alpha;
        Beta = beta;
        RowBias = rowBias;
        ColumnBias = columnBias;
        Activation = activation;
    }

    /// <summary>Stores raw sums (for tiles that are written to a scratch tile first).</summary>
    public static TileEpilogue Raw => new(1, 0, null, null, default);

    /// <summary>The epilogue for the K block [p0, p0 + kc) of a product with depth k: later blocks accumulate onto
    /// what the earlier ones stored, so only the first applies beta and the biases, and only the last activates.</summary>
    public TileEpilogue ForBlock(int p0, int kc, int k)
    {
        bool first = p0 == 0, last = p0 + kc >= k;
        return new TileEpilogue(Alpha, first ? Beta : 1, first ? RowBias : null, first ? ColumnBias : null,
            last ? Activation : default);
    }

    /// <summary>Applies the epilogue to one sum destined for C[row, col] at <paramref name="c"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Apply(float sum, float* c, int row, int col)
    {
        float v = Alpha * sum;
        if (Beta != 0) v += Beta * *c;
        if (RowBias != null) v += RowBias[row];
        if (ColumnBias != null) v += ColumnBias[col];
        return Activation.Apply(v);
    }

    /// <summary>Stores 32 sums of row <paramref name="row"/> at columns [col, col + 32).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Store(float* c, Vector512<float> v0, Vector512<float> v1, int row, int col)
    {
        if (Alpha != 1)
        {
            v0 *= Alpha;
            v1 *= Alpha;
        }
        if (Beta == 1)
        {
            v0 += Vector512.Load(c);
            v1 += Vector512.Load(c + 16);
        }
        else if (Beta != 0)
        {
            v0 = Vector512.FusedMultiplyAdd(Vector512.Load(c), Vector512.Create(Beta), v0);
            v1 = Vector512.FusedMultiplyAdd(Vector512.Load(c + 16), Vector512.Create(Beta), v1);
        }
        if (RowBias != null)
        {
            var bias = Vector512.Create(RowBias[row]);
            v0 += bias;
            v1 += bias;
        }
        if (ColumnBias != null)
        {
            v0 += Vector512.Load(ColumnBias + col);
            v1 += Vector512.Load(ColumnBias + col + 16);
        }
        if (Activation.Kind != GemmActivationKind.None)
        {
            v0 = Activation.Apply(v0);
            v1 = Activation.Apply(v1);
        }
        v0.Store(c);
        v1.Store(c + 16);
    }

    /// <summary>Stores 16 sums of row <paramref name="row"/> at columns [col, col + 16).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Store(float* c, Vector256<float> v0, Vector256<float> v1, int row, int col)
    {
        if (Alpha != 1)
        {
            v0 *= Alpha;
            v1 *= Alpha;
        }
        if (Beta == 1)
        {
            v0 += Vector256.Load(c);
            v1 += Vector256.Load(c + 8);
        }
        else if (Beta != 0)
        {
            v0 += Vector256.Load(c) * Beta;
            v1 += Vector256.Load(c + 8) * Beta;
        }
        if (RowBias != null)
        {
            var bias = Vector256.Create(RowBias[row]);
            v0 += bias;
            v1 += bias;
        }
        if (ColumnBias != null)
        {
            v0 += Vector256.Load(ColumnBias + col);
            v1 += Vector256.Load(ColumnBias + col + 8);
        }
        if (Activation.Kind != GemmActivationKind.None)
        {
            v0 = Activation.Apply(v0);
            v1 = Activation.Apply(v1);
        }
        v0.Store(c);
        v1.Store(c + 8);
    }

    /// <summary>Stores 8 sums of row <paramref name="row"/> at columns [col, col + 8).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Store(float* c, Vector128<float> v0, Vector128<float> v1, int row, int col)
    {
        if (Alpha != 1)
        {
            v0 *= Alpha;
            v1 *= Alpha;
        }
        if (Beta == 1)
        {
            v0 += Vector128.Load(c);
            v1 += Vector128.Load(c + 4);
        }
        else if (Beta != 0)
        {
            v0 += Vector128.Load(c) * Beta;
            v1 += Vector128.Load(c + 4) * Beta;
        }
        if (RowBias != null)
        {
            var bias = Vector128.Create(RowBias[row]);
            v0 += bias;
            v1 += bias;
        }
        if (ColumnBias != null)
        {
            v0 += Vector128.Load(ColumnBias + col);
            v1 += Vector128.Load(ColumnBias + col + 4);
        }
        if (Activation.Kind != GemmActivationKind.None)
        {
            v0 = Activation.Apply(v0);
            v1 = Activation.Apply(v1);
        }
        v0.Store(c);
        v1.Store(c + 4);
    }
}
