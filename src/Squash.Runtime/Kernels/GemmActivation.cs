using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Squash.Runtime.Kernels;

/// <summary>The element-wise activations a GEMM or convolution can apply to its result while it is still in registers.</summary>
public enum GemmActivationKind : byte
{
    /// <summary>No activation.</summary>
    None,
    /// <summary><c>max(x, 0)</c>.</summary>
    Relu,
    /// <summary><c>min(max(x, Alpha), Beta)</c>.</summary>
    Clip,
    /// <summary><c>x &gt;= 0 ? x : Alpha * x</c>.</summary>
    LeakyRelu,
    /// <summary><c>max(0, min(1, Alpha * x + Beta))</c>.</summary>
    HardSigmoid,
    /// <summary><c>x * max(0, min(1, x / 6 + 1 / 2))</c>.</summary>
    HardSwish,
    /// <summary><c>1 / (1 + exp(-x))</c>.</summary>
    Sigmoid,
}

/// <summary>An activation fused into the store of a GEMM tile, so that the result is written once.</summary>
/// <remarks>Each kind computes exactly what the standalone operator's float kernel computes (the same functions in
/// ElementwiseFunctions), so a fused node gives the same bits as the nodes it replaces. The scalar form runs the
/// vector code on one lane for the same reason.</remarks>
/// <param name="Kind">Which function.</param>
/// <param name="Alpha">First parameter (Clip's minimum, LeakyRelu's slope, HardSigmoid's alpha).</param>
/// <param name="Beta">Second parameter (Clip's maximum, HardSigmoid's beta).</param>
public readonly record struct GemmActivation(GemmActivationKind Kind, float Alpha = 0, float Beta = 0)
{
    /// <summary>No activation.</summary>
    public static GemmActivation None => default;

    /// <summary>Relu.</summary>
    public static GemmActivation Relu => new(GemmActivationKind.Relu);

    /// <summary>Clip to [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public static GemmActivation Clip(float min, float max) => new(GemmActivationKind.Clip, min, max);

    /// <summary>LeakyRelu with slope <paramref name="alpha"/>.</summary>
    public static GemmActivation LeakyRelu(float alpha) => new(GemmActivationKind.LeakyRelu, alpha);

    /// <summary>HardSigmoid with ONNX's parameters.</summary>
    public static GemmActivation HardSigmoid(float alpha, float beta) => new(GemmActivationKind.HardSigmoid, alpha, beta);

    /// <summary>HardSwish.</summary>
    public static GemmActivation HardSwish => new(GemmActivationKind.HardSwish, 1f / 6, 0.5f);

    /// <summary>Sigmoid.</summary>
    public static GemmActivation Sigmoid => new(GemmActivationKind.Sigmoid);

    /// <summary>Applies the activation to one value (as one lane of a vector, so that it matches the vector forms bit for bit).</summary>
    public float Apply(float x) => Kind == GemmActivationKind.None ? x : Apply(new Float128(Vector128.Create(x))).Value.ToScalar();

    /// <summary>Applies the activation to each lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal TV Apply<TV>(TV x) where TV : struct, IFloatVector<TV> => Kind switch
    {
        GemmActivationKind.None => x,
        GemmActivationKind.Relu => new ReluFunction().Invoke(x),
        GemmActivationKind.Clip => new ClipFunction(Alpha, Beta).Invoke(x),
        GemmActivationKind.LeakyRelu => new LeakyReluFunction(Alpha).Invoke(x),
        GemmActivationKind.HardSigmoid => new HardSigmoidFunction(Alpha, Beta).Invoke(x),
        GemmActivationKind.HardSwish => new HardSwishFunction().Invoke(x),
        GemmActivationKind.Sigmoid => SigmoidOf(x),
        _ => x,
    };

    /// <summary>The activation of <paramref name="x"/> for code that holds values in registers (see remarks of <see cref="InRegisters"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal Vector512<float> ApplyInRegisters(Vector512<float> x) => Kind switch
    {
        GemmActivationKind.Relu => Vector512.MaxNative(Vector512<float>.Zero, x),
        GemmActivationKind.Clip => Vector512.MinNative(Vector512.Create(Beta), Vector512.MaxNative(Vector512.Create(Alpha), x)),
        GemmActivationKind.LeakyRelu => Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(x, Vector512<float>.Zero), x, x * Vector512.Create(Alpha)),
        GemmActivationKind.HardSigmoid => Vector512.MinNative(Vector512<float>.One, Vector512.MaxNative(Vector512<float>.Zero,
            Vector512.FusedMultiplyAdd(x, Vector512.Create(Alpha), Vector512.Create(Beta)))),
        GemmActivationKind.HardSwish => x * Vector512.MinNative(Vector512<float>.One, Vector512.MaxNative(Vector512<float>.Zero,
            Vector512.FusedMultiplyAdd(x, Vector512.Create(1f / 6), Vector512.Create(0.5f)))),
        _ => x,
    };

    /// <summary>The activation of <paramref name="x"/> for code that holds values in registers (see remarks of <see cref="InRegisters"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal Vector256<float> ApplyInRegisters(Vector256<float> x) => Kind switch
    {
        GemmActivationKind.Relu => Vector256.MaxNative(Vector256<float>.Zero, x),
        GemmActivationKind.Clip => Vector256.MinNative(Vector256.Create(Beta), Vector256.MaxNative(Vector256.Create(Alpha), x)),
        GemmActivationKind.LeakyRelu => Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(x, Vector256<float>.Zero), x, x * Vector256.Create(Alpha)),
        GemmActivationKind.HardSigmoid => Vector256.MinNative(Vector256<float>.One, Vector256.MaxNative(Vector256<float>.Zero,
            Vector256.FusedMultiplyAdd(x, Vector256.Create(Alpha), Vector256.Create(Beta)))),
        GemmActivationKind.HardSwish => x * Vector256.MinNative(Vector256<float>.One, Vector256.MaxNative(Vector256<float>.Zero,
            Vector256.FusedMultiplyAdd(x, Vector256.Create(1f / 6), Vector256.Create(0.5f)))),
        _ => x,
    };

    /// <summary>The activation of <paramref name="x"/> for code that holds values in registers (see remarks of <see cref="InRegisters"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal Vector128<float> ApplyInRegisters(Vector128<float> x) => Kind switch
    {
        GemmActivationKind.Relu => Vector128.MaxNative(Vector128<float>.Zero, x),
        GemmActivationKind.Clip => Vector128.MinNative(Vector128.Create(Beta), Vector128.MaxNative(Vector128.Create(Alpha), x)),
        GemmActivationKind.LeakyRelu => Vector128.ConditionalSelect(Vector128.GreaterThanOrEqual(x, Vector128<float>.Zero), x, x * Vector128.Create(Alpha)),
        GemmActivationKind.HardSigmoid => Vector128.MinNative(Vector128<float>.One, Vector128.MaxNative(Vector128<float>.Zero,
            Vector128.FusedMultiplyAdd(x, Vector128.Create(Alpha), Vector128.Create(Beta)))),
        GemmActivationKind.HardSwish => x * Vector128.MinNative(Vector128<float>.One, Vector128.MaxNative(Vector128<float>.Zero,
            Vector128.FusedMultiplyAdd(x, Vector128.Create(1f / 6), Vector128.Create(0.5f)))),
        _ => x,
    };

    /// <summary>
    /// True when <c>ApplyInRegisters</c> computes this activation: every kind but Sigmoid, which it leaves as the
    /// identity (callers apply it in a pass after storing). Code that holds values in registers (GEMM micro-kernels,
    /// direct convolutions) must contain no call: the JIT then spills every accumulator on each iteration (the GEMM ran
    /// at a third of its speed). <c>ApplyInRegisters</c> is written out per width, with the operations of the
    /// standalone operators' functions (ElementwiseFunctions), so that it inlines and gives the same bits.
    /// </summary>
    public bool InRegisters => Kind != GemmActivationKind.Sigmoid;

    // Out of line: the exponential is long, and inlined it would bloat every GEMM store that never uses it.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static TV SigmoidOf<TV>(TV x) where TV : struct, IFloatVector<TV> => new SigmoidFunction().Invoke(x);

    /// <summary>Applies the activation to a vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector512<float> Apply(Vector512<float> x) => Apply(new Float512(x)).Value;

    /// <summary>Applies the activation to a vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<float> Apply(Vector256<float> x) => Apply(new Float256(x)).Value;

    /// <summary>Applies the activation to a vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector128<float> Apply(Vector128<float> x) => Apply(new Float128(x)).Value;

    /// <summary>Applies the activation in place to a row of values.</summary>
    public void Apply(Span<float> values)
    {
        if (Kind == GemmActivationKind.None) return;
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; i <= values.Length - Vector512<float>.Count; i += Vector512<float>.Count)
                Apply(Vector512.Create(values.Slice(i, Vector512<float>.Count))).CopyTo(values.Slice(i));
        for (; i < values.Length; i++) values[i] = Apply(values[i]);
    }
}
