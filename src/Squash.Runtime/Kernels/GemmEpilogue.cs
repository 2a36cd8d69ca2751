using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Squash.Runtime.Kernels;

/// <summary>
/// What a GEMM does with each result before storing it:
/// <code>
///   v       = alpha * sum + beta * C[i,j] + rowBias[i] + columnBias[j] + residual[i,j]
///   C[i,j]  = activation(v) * rowScale[i] * columnScale[j] + rowShift[i] + columnShift[j]
/// </code>
/// Fusing these saves passes over C: a convolution's bias and activation, Gemm's alpha and beta, a residual
/// connection, and the per-channel affine map some networks apply after an activation (PP-LCNet). Each step is
/// done in the order the standalone operators would do it, so the fused result has the same bits.
/// </summary>
/// <remarks>Convolutions use the row members (a row is an output channel) and read the residual with the layout of
/// their output.</remarks>
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

    /// <summary>A matrix shaped and strided like C, added before the activation (a residual connection); empty for none.</summary>
    public ReadOnlySpan<float> Residual { get; init; }

    /// <summary>Activation applied after the sums.</summary>
    public GemmActivation Activation { get; init; }

    /// <summary>A factor per row applied after the activation; empty for none.</summary>
    public ReadOnlySpan<float> RowScale { get; init; }

    /// <summary>A term per row added last; empty for none.</summary>
    public ReadOnlySpan<float> RowShift { get; init; }

    /// <summary>A factor per column applied after the activation; empty for none.</summary>
    public ReadOnlySpan<float> ColumnScale { get; init; }

    /// <summary>A term per column added last; empty for none.</summary>
    public ReadOnlySpan<float> ColumnShift { get; init; }

    /// <summary>True when the epilogue changes nothing (the plain product).</summary>
    public bool IsPlain => Alpha == 1 && Beta == 0 && RowBias.IsEmpty && ColumnBias.IsEmpty && Residual.IsEmpty
        && Activation.Kind == GemmActivationKind.None && RowScale.IsEmpty && RowShift.IsEmpty && ColumnScale.IsEmpty && ColumnShift.IsEmpty;

    /// <summary>The same epilogue with rows and columns exchanged (for a product computed transposed).</summary>
    public GemmEpilogue Transposed() => this with
    {
        RowBias = ColumnBias, ColumnBias = RowBias, RowScale = ColumnScale, ColumnScale = RowScale,
        RowShift = ColumnShift, ColumnShift = RowShift,
    };

    /// <summary>Pins the spans and runs <paramref name="user"/> with the epilogue as the micro-kernels use it, for an
    /// output whose first element is at <paramref name="c"/> (residual elements are found at a fixed distance from it).</summary>
    internal unsafe void Pin<TUser>(float* c, TUser user) where TUser : struct, IEpilogueUser
    {
        fixed (float* rowBias = RowBias)
        fixed (float* columnBias = ColumnBias)
        fixed (float* residual = Residual)
        fixed (float* rowScale = RowScale)
        fixed (float* rowShift = RowShift)
        fixed (float* columnScale = ColumnScale)
        fixed (float* columnShift = ColumnShift)
        {
            var tile = new TileEpilogue(Alpha, Beta, RowBias.IsEmpty ? null : rowBias, ColumnBias.IsEmpty ? null : columnBias, Activation)
            {
                HasResidual = !Residual.IsEmpty,
                ResidualDelta = Residual.IsEmpty ? 0 : (nint)(residual - c),
                RowScale = RowScale.IsEmpty ? null : rowScale,
                RowShift = RowShift.IsEmpty ? null : rowShift,
                ColumnScale = ColumnScale.IsEmpty ? null : columnScale,
                ColumnShift = ColumnShift.IsEmpty ? null : columnShift,
            };
            user.Run(tile);
        }
    }
}

/// <summary>Work to do with a pinned <see cref="TileEpilogue"/> (a struct, so that nothing is allocated per call).</summary>
internal interface IEpilogueUser
{
    /// <summary>Does the work.</summary>
    void Run(in TileEpilogue epilogue);
}

/// <summary>
/// <see cref="GemmEpilogue"/> as the micro-kernels use it: pinned pointers, and only what applies to the current
/// block of K (bias and beta on the first block; residual, activation and the affine map on the last).
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

    /// <summary>True when a residual is added: the element for C's element at <c>c</c> is at <c>c + ResidualDelta</c>.</summary>
    public bool HasResidual { get; init; }

    /// <summary>Distance in floats from an element of C to its residual element.</summary>
    public nint ResidualDelta { get; init; }

    /// <summary>Indexed by the absolute row of C; null for none.</summary>
    public float* RowScale { get; init; }

    /// <summary>Indexed by the absolute row of C; null for none.</summary>
    public float* RowShift { get; init; }

    /// <summary>Indexed by the absolute column of C; null for none.</summary>
    public float* ColumnScale { get; init; }

    /// <summary>Indexed by the absolute column of C; null for none.</summary>
    public float* ColumnShift { get; init; }

    /// <summary>True when anything follows the activation (or a residual precedes it).</summary>
    public bool HasTail => HasResidual || RowScale != null || RowShift != null || ColumnScale != null || ColumnShift != null;

    /// <summary>Stores raw sums (for tiles that are written to a scratch tile first).</summary>
    public static TileEpilogue Raw => new(1, 0, null, null, default);

    /// <summary>The epilogue for the K block [p0, p0 + kc) of a product with depth k: later blocks accumulate onto
    /// what the earlier ones stored, so only the first applies beta and the biases, and only the last adds the
    /// residual, activates and scales (the order the unfused operators would use).</summary>
    public TileEpilogue ForBlock(int p0, int kc, int k)
    {
        bool first = p0 == 0, last = p0 + kc >= k;
        if (first && last) return this;
        var head = new TileEpilogue(Alpha, first ? Beta : 1, first ? RowBias : null, first ? ColumnBias : null, last ? Activation : default);
        return last ? head.WithTail(this) : head;
    }

    /// <summary>This epilogue with the residual, scales and shifts of <paramref name="other"/>.</summary>
    public TileEpilogue WithTail(in TileEpilogue other) => this with
    {
        HasResidual = other.HasResidual, ResidualDelta = other.ResidualDelta, RowScale = other.RowScale,
        RowShift = other.RowShift, ColumnScale = other.ColumnScale, ColumnShift = other.ColumnShift,
    };

    /// <summary>Only the first steps (alpha, beta, biases), for products whose tiles land in scratch memory: the rest
    /// is applied when the results are copied to C (<see cref="ApplyRow"/>).</summary>
    public TileEpilogue Head => new(Alpha, Beta, RowBias, ColumnBias, default);

    /// <summary>True when part of the epilogue cannot be applied in a micro-kernel's registers (a residual, a
    /// per-column affine step, or a sigmoid): then kernels store <see cref="InRegisters"/> and apply
    /// <see cref="AfterStore"/> over what they stored, while it is still in L1. A per-row scale and shift (a
    /// convolution's per-channel affine map) are applied in registers.</summary>
    public bool NeedsPass => HasResidual || ColumnScale != null || ColumnShift != null || !Activation.InRegisters;

    /// <summary>What a micro-kernel applies before storing.</summary>
    public TileEpilogue InRegisters => NeedsPass ? Head : this;

    /// <summary>What is applied over stored results when <see cref="NeedsPass"/>.</summary>
    public TileEpilogue AfterStore => Tail;

    /// <summary>Only the last steps (residual, activation, scales, shifts).</summary>
    public TileEpilogue Tail => new TileEpilogue(1, 0, null, null, Activation).WithTail(this);

    /// <summary>This epilogue without its activation (for a kernel that has activated already).</summary>
    public TileEpilogue WithoutActivation => new TileEpilogue(Alpha, Beta, RowBias, ColumnBias, default).WithTail(this);

    /// <summary>The epilogue for rows starting at <paramref name="rows"/> of this one (a group of a convolution).</summary>
    public TileEpilogue OffsetRows(int rows) => new TileEpilogue(Alpha, Beta, RowBias == null ? null : RowBias + rows, ColumnBias, Activation)
        .WithTail(this) with
    {
        RowScale = RowScale == null ? null : RowScale + rows,
        RowShift = RowShift == null ? null : RowShift + rows,
    };

    /// <summary>Applies the epilogue to one sum destined for C[row, col] at <paramref name="c"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Apply(float sum, float* c, int row, int col)
    {
        float v = Alpha == 1 ? sum : Alpha * sum;
        if (Beta == 1) v += *c;
        else if (Beta != 0) v = MathF.FusedMultiplyAdd(*c, Beta, v);
        if (RowBias != null) v += RowBias[row];
        if (ColumnBias != null) v += ColumnBias[col];
        if (HasResidual) v += c[ResidualDelta];
        v = Activation.Apply(v);
        if (RowScale != null) v *= RowScale[row];
        if (ColumnScale != null) v *= ColumnScale[col];
        if (RowShift != null) v += RowShift[row];
        if (ColumnShift != null) v += ColumnShift[col];
        return v;
    }

    /// <summary>Applies the epilogue to the sums of C[row, col .. col + lanes) at <paramref name="c"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Apply<TV>(TV v, float* c, int row, int col) where TV : struct, IFloatVector<TV>
    {
        if (Alpha != 1) v *= TV.Create(Alpha);
        if (Beta == 1) v += TV.Load(ref *c, 0);
        else if (Beta != 0) v = TV.FusedMultiplyAdd(TV.Load(ref *c, 0), TV.Create(Beta), v);
        if (RowBias != null) v += TV.Create(RowBias[row]);
        if (ColumnBias != null) v += TV.Load(ref ColumnBias[col], 0);
        if (HasResidual) v += TV.Load(ref c[ResidualDelta], 0);
        if (Activation.Kind != GemmActivationKind.None) v = Activation.Apply(v);
        if (RowScale != null) v *= TV.Create(RowScale[row]);
        if (ColumnScale != null) v *= TV.Load(ref ColumnScale[col], 0);
        if (RowShift != null) v += TV.Create(RowShift[row]);
        if (ColumnShift != null) v += TV.Load(ref ColumnShift[col], 0);
        return v;
    }

    /// <summary>True when a one-column product's rows can go through the epilogue eight at a time
    /// (<see cref="ApplyAcrossRows"/>): beta 0, nothing per column, no residual, an activation computed in registers.</summary>
    public bool AppliesAcrossRows => Beta == 0 && ColumnBias == null && !HasResidual && ColumnScale == null && ColumnShift == null
        && Activation.InRegisters;

    /// <summary>The epilogue of the sums of C[row .. row + 8, 0] (one column, rows contiguous at <paramref name="c"/>):
    /// per lane what <see cref="Apply(float, float*, int, int)"/> computes, in the same order. A squeeze-and-excitation
    /// convolution of one pixel spent more time in the per-row scalar epilogue than in its multiply-adds (cls: 1.6 µs
    /// for 200 outputs of depth 50, 0.7 µs now).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void ApplyAcrossRows(float* sums, float* c, int row)
    {
        var v = Vector256.Load(sums);
        if (Alpha != 1) v *= Vector256.Create(Alpha);
        if (RowBias != null) v += Vector256.Load(RowBias + row);
        if (Activation.Kind != GemmActivationKind.None) v = Activation.Apply(new Float256(v)).Value;
        if (RowScale != null) v *= Vector256.Load(RowScale + row);
        if (RowShift != null) v += Vector256.Load(RowShift + row);
        v.Store(c);
    }

    /// <summary>
    /// <c>dst[j] = epilogue(src[j])</c> for the <paramref name="count"/> elements of row <paramref name="row"/> from
    /// column <paramref name="col"/>: the epilogue of results computed elsewhere (scratch tiles, col2im). C, for beta
    /// and the residual, is <paramref name="dst"/>; <paramref name="src"/> may equal it.
    /// </summary>
    public void ApplyRow(float* src, float* dst, int count, int row, int col)
    {
        if (Vector512.IsHardwareAccelerated) ApplyRow<Float512>(src, dst, count, row, col);
        else if (Vector256.IsHardwareAccelerated) ApplyRow<Float256>(src, dst, count, row, col);
        else ApplyRow<Float128>(src, dst, count, row, col);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void ApplyRow<TV>(float* src, float* dst, int count, int row, int col) where TV : struct, IFloatVector<TV>
    {
        if (Alpha == 1 && Beta == 0 && ColumnBias == null && !HasResidual && ColumnScale == null && ColumnShift == null)
        {
            ApplyRowConstants<TV>(src, dst, count, row);
            return;
        }
        int j = 0;
        for (; j <= count - TV.Count; j += TV.Count)
            Apply(TV.Load(ref src[j], 0), dst + j, row, col + j).Store(ref dst[j], 0);
        for (; j < count; j++) dst[j] = Apply(src[j], dst + j, row, col + j);
    }

    /// <summary>
    /// <see cref="ApplyRow{TV}"/> when every step is the same along the row (a bias, an activation and an affine map per
    /// row, the usual fused convolution): the row's constants are read once and the activation's kind is chosen once,
    /// not per vector (the general path took 12 cycles a vector for a bias and a ReLU).
    /// </summary>
    private void ApplyRowConstants<TV>(float* src, float* dst, int count, int row) where TV : struct, IFloatVector<TV>
    {
        switch (Activation.Kind)
        {
            case GemmActivationKind.None: ApplyRowConstants<TV, Identity>(src, dst, count, row, default); break;
            case GemmActivationKind.Relu: ApplyRowConstants<TV, ReluFunction>(src, dst, count, row, default); break;
            // Inlined: through the activation's own dispatch, det's last sigmoid took 0.4 ms for 410 thousand values.
            case GemmActivationKind.Sigmoid: ApplyRowConstants<TV, SigmoidFunction>(src, dst, count, row, default); break;
            default: ApplyRowConstants<TV, ActivationOf>(src, dst, count, row, new ActivationOf(Activation)); break;
        }
    }

    private void ApplyRowConstants<TV, TF>(float* src, float* dst, int count, int row, TF activation)
        where TV : struct, IFloatVector<TV>
        where TF : struct, IFloatFunction
    {
        // The same steps as Apply, each only when present (adding a zero bias would turn -0 into +0).
        bool hasBias = RowBias != null, hasScale = RowScale != null, hasShift = RowShift != null;
        var b = TV.Create(hasBias ? RowBias[row] : 0);
        var s = TV.Create(hasScale ? RowScale[row] : 1);
        var t = TV.Create(hasShift ? RowShift[row] : 0);
        int j = 0;
        for (; j <= count - TV.Count; j += TV.Count)
        {
            var v = TV.Load(ref src[j], 0);
            if (hasBias) v += b;
            v = activation.Invoke(v);
            if (hasScale) v *= s;
            if (hasShift) v += t;
            v.Store(ref dst[j], 0);
        }
        for (; j < count; j++) dst[j] = Apply(src[j], dst + j, row, 0);
    }

    /// <summary>No activation, as a function the row loop inlines.</summary>
    private readonly struct Identity : IFloatFunction
    {
        public TV Invoke<TV>(TV x) where TV : struct, IFloatVector<TV> => x;

        public double Invoke(double x) => x;
    }

    /// <summary>Any other activation, through its own dispatch.</summary>
    private readonly struct ActivationOf(GemmActivation activation) : IFloatFunction
    {
        public TV Invoke<TV>(TV x) where TV : struct, IFloatVector<TV> => activation.Apply(x);

        public double Invoke(double x) => activation.Apply((float)x);
    }

    /// <summary>Stores 32 sums of row <paramref name="row"/> at columns [col, col + 32).</summary>
    /// <remarks>Written out per width and free of calls: the general <see cref="Apply{TV}(TV, float*, int, int)"/> is too
    /// big for the JIT to inline into the micro-kernels, and any call there makes it spill all the accumulators on
    /// every step of K (the GEMM ran at a third of its speed).</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Store(float* c, Vector512<float> v0, Vector512<float> v1, int row, int col)
    {
        // Callers pass the in-register part only (InRegisters): no residual, column affine step or sigmoid here.
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
            v0 = Activation.ApplyInRegisters(v0);
            v1 = Activation.ApplyInRegisters(v1);
        }
        if (RowScale != null)
        {
            float scale = RowScale[row];
            v0 *= scale;
            v1 *= scale;
        }
        if (RowShift != null)
        {
            var shift = Vector512.Create(RowShift[row]);
            v0 += shift;
            v1 += shift;
        }
        v0.Store(c);
        v1.Store(c + 16);
    }


    /// <summary>Stores 16 sums of row <paramref name="row"/> at columns [col, col + 16).</summary>
    /// <remarks>Written out per width and free of calls: the general <see cref="Apply{TV}(TV, float*, int, int)"/> is too
    /// big for the JIT to inline into the micro-kernels, and any call there makes it spill all the accumulators on
    /// every step of K (the GEMM ran at a third of its speed).</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Store(float* c, Vector256<float> v0, Vector256<float> v1, int row, int col)
    {
        // Callers pass the in-register part only (InRegisters): no residual, column affine step or sigmoid here.
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
            v0 = Vector256.FusedMultiplyAdd(Vector256.Load(c), Vector256.Create(Beta), v0);
            v1 = Vector256.FusedMultiplyAdd(Vector256.Load(c + 8), Vector256.Create(Beta), v1);
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
            v0 = Activation.ApplyInRegisters(v0);
            v1 = Activation.ApplyInRegisters(v1);
        }
        if (RowScale != null)
        {
            float scale = RowScale[row];
            v0 *= scale;
            v1 *= scale;
        }
        if (RowShift != null)
        {
            var shift = Vector256.Create(RowShift[row]);
            v0 += shift;
            v1 += shift;
        }
        v0.Store(c);
        v1.Store(c + 8);
    }


    /// <summary>Stores 8 sums of row <paramref name="row"/> at columns [col, col + 8).</summary>
    /// <remarks>Written out per width and free of calls: the general <see cref="Apply{TV}(TV, float*, int, int)"/> is too
    /// big for the JIT to inline into the micro-kernels, and any call there makes it spill all the accumulators on
    /// every step of K (the GEMM ran at a third of its speed).</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Store(float* c, Vector128<float> v0, Vector128<float> v1, int row, int col)
    {
        // Callers pass the in-register part only (InRegisters): no residual, column affine step or sigmoid here.
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
            v0 = Vector128.FusedMultiplyAdd(Vector128.Load(c), Vector128.Create(Beta), v0);
            v1 = Vector128.FusedMultiplyAdd(Vector128.Load(c + 4), Vector128.Create(Beta), v1);
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
            v0 = Activation.ApplyInRegisters(v0);
            v1 = Activation.ApplyInRegisters(v1);
        }
        if (RowScale != null)
        {
            float scale = RowScale[row];
            v0 *= scale;
            v1 *= scale;
        }
        if (RowShift != null)
        {
            var shift = Vector128.Create(RowShift[row]);
            v0 += shift;
            v1 += shift;
        }
        v0.Store(c);
        v1.Store(c + 4);
    }

}
