using ILGPU;

namespace Squash.Runtime.Gpu.Kernels;

/// <summary>A two-argument fp32 function, one struct per ONNX operator (the kernels are generic over it, so each
/// operator compiles to its own straight-line kernel).</summary>
internal interface IBinaryOp
{
    /// <summary>The function.</summary>
    float Apply(float a, float b);
}

/// <summary>A one-argument fp32 function; fields carry the operator's attributes.</summary>
internal interface IUnaryOp
{
    /// <summary>The function.</summary>
    float Apply(float x);
}

/// <summary>A two-argument function between other element types (comparisons give bool bytes, logical operators take
/// them).</summary>
internal interface IMap2<TIn, TOut>
    where TIn : unmanaged
    where TOut : unmanaged
{
    /// <summary>The function.</summary>
    TOut Apply(TIn a, TIn b);
}

/// <summary>How a float kernel reads and writes its elements: fp32 as they are, fp16 (bits in a ushort) widened to fp32
/// and the result rounded back to nearest even, as the CPU computes fp16 (so the kernels need no fp16 arithmetic,
/// which OpenCL devices may lack).</summary>
internal interface IFloatElement<T> where T : unmanaged
{
    /// <summary>The element as fp32.</summary>
    float Load(T value);

    /// <summary>An fp32 result as the element type.</summary>
    T Store(float value);
}

/// <summary>fp32 elements.</summary>
internal readonly struct Fp32 : IFloatElement<float>
{
    public float Load(float value) => value;
    public float Store(float value) => value;
}

/// <summary>fp16 elements, computed in fp32.</summary>
internal readonly struct Fp16 : IFloatElement<ushort>
{
    public float Load(ushort value) => HalfBits.ToFloat(value);
    public ushort Store(float value) => HalfBits.FromFloat(value);
}

/// <summary>Elementwise kernels: one thread per output element; float ones are generic over the element type
/// (<see cref="IFloatElement{T}"/>).</summary>
internal static class ElementwiseKernels
{
    /// <summary>c = op(a, b) with numpy broadcasting: the output index is decomposed once over the merged dimensions
    /// <paramref name="d"/> and mapped into each input through its strides (0 along broadcast dimensions).</summary>
    public static void Binary<TOp, T, TE>(Index1D index, Range1D r, ArrayView<T> a, ArrayView<T> b, ArrayView<T> c, Dims6 d, Strides6 sa, Strides6 sb)
        where TOp : struct, IBinaryOp
        where T : unmanaged
        where TE : struct, IFloatElement<T>
    {
        for (int i = index; i < r.Count; i += r.Stride)
        {
            NdIndex.Offsets(i, d, sa, sb, out int oa, out int ob);
            c[i] = default(TE).Store(default(TOp).Apply(default(TE).Load(a[oa]), default(TE).Load(b[ob])));
        }
    }

    /// <summary>c = op(a, b) with broadcasting, between element types.</summary>
    public static void Map2<TIn, TOut, TOp>(Index1D index, Range1D r, ArrayView<TIn> a, ArrayView<TIn> b, ArrayView<TOut> c, Dims6 d, Strides6 sa, Strides6 sb)
        where TIn : unmanaged
        where TOut : unmanaged
        where TOp : struct, IMap2<TIn, TOut>
    {
        for (int i = index; i < r.Count; i += r.Stride)
        {
            NdIndex.Offsets(i, d, sa, sb, out int oa, out int ob);
            c[i] = default(TOp).Apply(a[oa], b[ob]);
        }
    }

    /// <summary>y = 1 - x on bool bytes.</summary>
    public static void Not(Index1D index, Range1D r, ArrayView<byte> x, ArrayView<byte> y)
    {
        for (int i = index; i < r.Count; i += r.Stride)
            y[i] = x[i] != 0 ? (byte)0 : (byte)1;
    }

    /// <summary>c = op(a, b) for inputs of the output's shape (no index arithmetic).</summary>
    public static void BinarySame<TOp, T, TE>(Index1D index, Range1D r, ArrayView<T> a, ArrayView<T> b, ArrayView<T> c)
        where TOp : struct, IBinaryOp
        where T : unmanaged
        where TE : struct, IFloatElement<T>
    {
        for (int i = index; i < r.Count; i += r.Stride)
            c[i] = default(TE).Store(default(TOp).Apply(default(TE).Load(a[i]), default(TE).Load(b[i])));
    }

    /// <summary>y = op(x).</summary>
    public static void Unary<TOp, T, TE>(Index1D index, Range1D r, ArrayView<T> x, ArrayView<T> y, TOp op)
        where TOp : struct, IUnaryOp
        where T : unmanaged
        where TE : struct, IFloatElement<T>
    {
        for (int i = index; i < r.Count; i += r.Stride)
            y[i] = default(TE).Store(op.Apply(default(TE).Load(x[i])));
    }

    /// <summary>y = x * scale[c] + shift[c] where c is the channel of the element (inference BatchNormalization,
    /// with scale and shift folded on the host).</summary>
    public static void ChannelAffine(Index1D index, Range1D r, ArrayView<float> x, ArrayView<float> y, ArrayView<float> scaleShift, int channels, int inner)
    {
        for (int i = index; i < r.Count; i += r.Stride)
        {
            int c = i / inner % channels;
            y[i] = x[i] * scaleShift[c] + scaleShift[channels + c];
        }
    }
}

/// <summary>Float functions written out for the device (the same formulas on every backend).</summary>
internal static class DeviceMath
{
    /// <summary>erf(x): the polynomials of Squash's CPU kernel (MLAS, after Juffa's erff).</summary>
    public static float Erf(float x)
    {
        float t = MathF.Abs(x);
        if (t <= 0.921875f)
        {
            float s = x * x;
            float p = -5.99104969e-4f;
            p = p * s + 4.99339588e-3f;
            p = p * s - 2.67667342e-2f;
            p = p * s + 1.12818025e-1f;
            p = p * s - 3.76124859e-1f;
            p = p * s + 1.28379151e-1f;
            return p * x + x;
        }
        float u = MathF.Min(4f, t);
        float q = 1.72948930e-5f;
        q = q * u - 3.83208680e-4f;
        q = q * u + 3.88393435e-3f;
        q = q * u - 2.42545605e-2f;
        q = q * u + 1.06777847e-1f;
        q = q * u + 6.34846687e-1f;
        q = q * u + 1.28717512e-1f;
        q = q * u + u;
        float r = 1f - MathF.Exp(-q);
        return x < 0 ? -r : r;
    }

    /// <summary>tanh through exp, stable for large |x|.</summary>
    public static float Tanh(float x)
    {
        float e = MathF.Exp(-2f * MathF.Abs(x));
        float r = (1f - e) / (1f + e);
        return x < 0 ? -r : r;
    }

    /// <summary>log(1 + exp(x)) without overflow.</summary>
    public static float Softplus(float x) => MathF.Max(x, 0f) + MathF.Log(1f + MathF.Exp(-MathF.Abs(x)));

    /// <summary>1 / (1 + exp(-x)).</summary>
    public static float Sigmoid(float x) => 1f / (1f + MathF.Exp(-x));

    /// <summary>Round half to even.</summary>
    public static float RoundHalfEven(float x)
    {
        float f = MathF.Floor(x);
        float d = x - f;
        if (d > 0.5f) return f + 1f;
        if (d < 0.5f) return f;
        // A tie: the even neighbour.
        return f - 2f * MathF.Floor(f * 0.5f) == 0f ? f : f + 1f;
    }
}
