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
}

/// <summary>An activation fused into the store of a GEMM tile, so that the result is written once.</summary>
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

    /// <summary>Applies the activation to one value.</summary>
    public float Apply(float x) => Kind switch
    {
        GemmActivationKind.None => x,
        GemmActivationKind.Relu => MathF.Max(x, 0),
        GemmActivationKind.Clip => MathF.Min(MathF.Max(x, Alpha), Beta),
        GemmActivationKind.LeakyRelu => x >= 0 ? x : Alpha * x,
        GemmActivationKind.HardSigmoid => MathF.Max(0, MathF.Min(1, Alpha * x + Beta)),
        GemmActivationKind.HardSwish => x * MathF.Max(0, MathF.Min(1, x * (1f / 6) + 0.5f)),
        _ => x,
    };

    /// <summary>Applies the activation to a vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector512<float> Apply(Vector512<float> x) => Kind switch
    {
        GemmActivationKind.None => x,
        GemmActivationKind.Relu => Vector512.Max(x, Vector512<float>.Zero),
        GemmActivationKind.Clip => Vector512.Min(Vector512.Max(x, Vector512.Create(Alpha)), Vector512.Create(Beta)),
        GemmActivationKind.LeakyRelu => Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(x, Vector512<float>.Zero), x, x * Alpha),
        GemmActivationKind.HardSigmoid => Vector512.Max(Vector512<float>.Zero, Vector512.Min(Vector512<float>.One, x * Alpha + Vector512.Create(Beta))),
        GemmActivationKind.HardSwish => x * Vector512.Max(Vector512<float>.Zero, Vector512.Min(Vector512<float>.One, x * (1f / 6) + Vector512.Create(0.5f))),
        _ => x,
    };

    /// <summary>Applies the activation to a vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<float> Apply(Vector256<float> x) => Kind switch
    {
        GemmActivationKind.None => x,
        GemmActivationKind.Relu => Vector256.Max(x, Vector256<float>.Zero),
        GemmActivationKind.Clip => Vector256.Min(Vector256.Max(x, Vector256.Create(Alpha)), Vector256.Create(Beta)),
        GemmActivationKind.LeakyRelu => Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(x, Vector256<float>.Zero), x, x * Alpha),
        GemmActivationKind.HardSigmoid => Vector256.Max(Vector256<float>.Zero, Vector256.Min(Vector256<float>.One, x * Alpha + Vector256.Create(Beta))),
        GemmActivationKind.HardSwish => x * Vector256.Max(Vector256<float>.Zero, Vector256.Min(Vector256<float>.One, x * (1f / 6) + Vector256.Create(0.5f))),
        _ => x,
    };

    /// <summary>Applies the activation to a vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector128<float> Apply(Vector128<float> x) => Kind switch
    {
        GemmActivationKind.None => x,
        GemmActivationKind.Relu => Vector128.Max(x, Vector128<float>.Zero),
        GemmActivationKind.Clip => Vector128.Min(Vector128.Max(x, Vector128.Create(Alpha)), Vector128.Create(Beta)),
        GemmActivationKind.LeakyRelu => Vector128.ConditionalSelect(Vector128.GreaterThanOrEqual(x, Vector128<float>.Zero), x, x * Alpha),
        GemmActivationKind.HardSigmoid => Vector128.Max(Vector128<float>.Zero, Vector128.Min(Vector128<float>.One, x * Alpha + Vector128.Create(Beta))),
        GemmActivationKind.HardSwish => x * Vector128.Max(Vector128<float>.Zero, Vector128.Min(Vector128<float>.One, x * (1f / 6) + Vector128.Create(0.5f))),
        _ => x,
    };

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
