using ILGPU;
using Squash.Runtime;
using Squash.Runtime.Gpu.Execution;
using Squash.Runtime.Gpu.Kernels;
using static Squash.Runtime.Gpu.Execution.LoweringContext;

namespace Squash.Runtime.Gpu.Lowering;

/// <summary>Broadcasting binary operators, comparisons and logical operators, variadic Sum/Max/Min/Mean, unary
/// operators and activations,
/// BatchNormalization (inference).</summary>
internal static class ElementwiseLowerings
{
    public static void Register(Dictionary<string, Lowering> t)
    {
        t["Add"] = Binary<AddOp>;
        t["Sub"] = Binary<SubOp>;
        t["Mul"] = Binary<MulOp>;
        t["Div"] = Binary<DivOp>;
        t["Pow"] = Binary<PowOp>;
        t["PRelu"] = Binary<PReluOp>;
        t["Mod"] = c => Attr.Int(c.Node, "fmod", 0) != 0 ? Binary<FmodOp>(c) : throw new NotOnDeviceException("integer Mod (fmod = 0)");
        t["Equal"] = Map2<float, byte, EqualOp>;
        t["Greater"] = Map2<float, byte, GreaterOp>;
        t["GreaterOrEqual"] = Map2<float, byte, GreaterOrEqualOp>;
        t["Less"] = Map2<float, byte, LessOp>;
        t["LessOrEqual"] = Map2<float, byte, LessOrEqualOp>;
        t["And"] = Map2<byte, byte, AndOp>;
        t["Or"] = Map2<byte, byte, OrOp>;
        t["Xor"] = Map2<byte, byte, XorOp>;
        t["Not"] = Not;
        t["Sum"] = c => Variadic<AddOp>(c, mean: false);
        t["Mean"] = c => Variadic<AddOp>(c, mean: true);
        t["Max"] = c => Variadic<MaxOp>(c, mean: false);
        t["Min"] = c => Variadic<MinOp>(c, mean: false);

        t["Identity"] = c => Unary(c, new IdentityOp());
        t["Dropout"] = Dropout;
        t["Relu"] = c => Unary(c, new ReluOp());
        t["LeakyRelu"] = c => Unary(c, new LeakyReluOp(Attr.Float(c.Node, "alpha", 0.01f)));
        t["ThresholdedRelu"] = c => Unary(c, new ThresholdedReluOp(Attr.Float(c.Node, "alpha", 1f)));
        t["Elu"] = c => Unary(c, new EluOp(Attr.Float(c.Node, "alpha", 1f)));
        t["Selu"] = c => Unary(c, new SeluOp(Attr.Float(c.Node, "alpha", 1.67326319217681884765625f), Attr.Float(c.Node, "gamma", 1.05070102214813232421875f)));
        t["Celu"] = c => Unary(c, new CeluOp(Attr.Float(c.Node, "alpha", 1f)));
        t["Sigmoid"] = c => Unary(c, new SigmoidOp());
        t["HardSigmoid"] = c => Unary(c, new HardSigmoidOp(Attr.Float(c.Node, "alpha", 0.2f), Attr.Float(c.Node, "beta", 0.5f)));
        t["HardSwish"] = c => Unary(c, new HardSwishOp());
        t["Softplus"] = c => Unary(c, new SoftplusOp());
        t["Softsign"] = c => Unary(c, new SoftsignOp());
        t["Mish"] = c => Unary(c, new MishOp());
        t["Gelu"] = c => Attr.String(c.Node, "approximate", "none") == "tanh" ? Unary(c, new GeluTanhOp()) : Unary(c, new GeluOp());
        t["Clip"] = Clip;
        t["Abs"] = c => Unary(c, new AbsOp());
        t["Neg"] = c => Unary(c, new NegOp());
        t["Sign"] = c => Unary(c, new SignOp());
        t["Ceil"] = c => Unary(c, new CeilOp());
        t["Floor"] = c => Unary(c, new FloorOp());
        t["Round"] = c => Unary(c, new RoundOp());
        t["Exp"] = c => Unary(c, new ExpOp());
        t["Log"] = c => Unary(c, new LogOp());
        t["Sqrt"] = c => Unary(c, new SqrtOp());
        t["Reciprocal"] = c => Unary(c, new ReciprocalOp());
        t["Erf"] = c => Unary(c, new ErfOp());
        t["Tanh"] = c => Unary(c, new TanhOp());
        t["Sin"] = c => Unary(c, new SinOp());
        t["Cos"] = c => Unary(c, new CosOp());
        t["Tan"] = c => Unary(c, new TanOp());
        t["Asin"] = c => Unary(c, new AsinOp());
        t["Acos"] = c => Unary(c, new AcosOp());
        t["Atan"] = c => Unary(c, new AtanOp());
        t["Sinh"] = c => Unary(c, new SinhOp());
        t["Cosh"] = c => Unary(c, new CoshOp());
        t["Asinh"] = c => Unary(c, new AsinhOp());
        t["Acosh"] = c => Unary(c, new AcoshOp());
        t["Atanh"] = c => Unary(c, new AtanhOp());
        t["BatchNormalization"] = BatchNormalization;
    }

    /// <summary>A no-op step for empty outputs.</summary>
    public static readonly GpuStep Nothing = new ActionStep(_ => { });

    /// <summary>fp32, or fp16 computed in fp32 and rounded back (as the CPU does).</summary>
    private static GpuStep Binary<TOp>(LoweringContext c) where TOp : struct, IBinaryOp =>
        c.FloatType() == DataType.Float16
            ? BinaryStep<TOp, ushort, Fp16>(c, c.RequiredInput(0), c.RequiredInput(1), c.Output(0), default)
            : BinaryStep<TOp, float, Fp32>(c, c.RequiredInput(0), c.RequiredInput(1), c.Output(0), default);

    /// <summary>y = op(a, b); <paramref name="aView"/> is a's view when a is y (folding in place).</summary>
    private static GpuStep BinaryStep<TOp, T, TE>(LoweringContext c, Ir.Value a, Ir.Value b, Ir.Value y, ArrayView<T> aView)
        where TOp : struct, IBinaryOp
        where T : unmanaged
        where TE : struct, IFloatElement<T>
    {
        int n = Count(y);
        if (n == 0) return Nothing;
        var va = a == y ? aView : c.Bytes(a).Cast<T>();
        var vb = c.Bytes(b).Cast<T>();
        var vy = c.Bytes(y).Cast<T>();
        if (Shapes.Equal(Shape(a), Shape(y)) && Shapes.Equal(Shape(b), Shape(y)))
        {
            var same = c.Kernels.Auto<ArrayView<T>, ArrayView<T>, ArrayView<T>>(ElementwiseKernels.BinarySame<TOp, T, TE>);
            return new ActionStep(s => same(s, n, va, vb, vy));
        }
        var shape = Shape(y);
        var (d, st) = NdLayout.Collapse(shape, NdLayout.BroadcastStrides(Shape(a), shape), NdLayout.BroadcastStrides(Shape(b), shape));
        var k = c.Kernels.Auto<ArrayView<T>, ArrayView<T>, ArrayView<T>, Dims6, Strides6, Strides6>(ElementwiseKernels.Binary<TOp, T, TE>);
        return new ActionStep(s => k(s, n, va, vb, vy, d, st[0], st[1]));
    }

    /// <summary>Comparisons and logical operators: <typeparamref name="TIn"/> is float (fp32) or byte (bool).</summary>
    private static GpuStep Map2<TIn, TOut, TOp>(LoweringContext c)
        where TIn : unmanaged
        where TOut : unmanaged
        where TOp : struct, IMap2<TIn, TOut>
    {
        var a = c.RequiredInput(0);
        var b = c.RequiredInput(1);
        var y = c.Output(0);
        var inType = typeof(TIn) == typeof(float) ? DataType.Float : DataType.Bool;
        if (a.Type != inType || b.Type != inType) throw new NotOnDeviceException($"{DataTypes.Name(a.Type)} operands (the device kernel takes {DataTypes.Name(inType)})");
        int n = Count(y);
        if (n == 0) return Nothing;
        var shape = Shape(y);
        var (d, st) = NdLayout.Collapse(shape, NdLayout.BroadcastStrides(Shape(a), shape), NdLayout.BroadcastStrides(Shape(b), shape));
        var va = c.Bytes(a).Cast<TIn>();
        var vb = c.Bytes(b).Cast<TIn>();
        var vy = c.Bytes(y).Cast<TOut>();
        var k = c.Kernels.Auto<ArrayView<TIn>, ArrayView<TIn>, ArrayView<TOut>, Dims6, Strides6, Strides6>(ElementwiseKernels.Map2<TIn, TOut, TOp>);
        return new ActionStep(s => k(s, n, va, vb, vy, d, st[0], st[1]));
    }

    private static GpuStep Not(LoweringContext c)
    {
        var x = c.RequiredInput(0);
        var y = c.Output(0);
        int n = Count(y);
        if (n == 0) return Nothing;
        var vx = c.Bytes(x);
        var vy = c.Bytes(y);
        var k = c.Kernels.Auto<ArrayView<byte>, ArrayView<byte>>(ElementwiseKernels.Not);
        return new ActionStep(s => k(s, n, vx, vy));
    }

    /// <summary>Sum/Max/Min/Mean of any number of inputs: the first pair into the output, then each further input
    /// folded into the output in place (each element reads and writes only itself).</summary>
    private static GpuStep Variadic<TOp>(LoweringContext c, bool mean) where TOp : struct, IBinaryOp
    {
        c.RequireFloat();
        var y = c.Output(0);
        var inputs = c.Node.Inputs.Where(v => v is not null).Select(v => v!).ToArray();
        var steps = new List<GpuStep>();
        if (inputs.Length == 1) steps.Add(UnaryStep(c, inputs[0], y, new IdentityOp()));
        else
        {
            steps.Add(BinaryStep<TOp, float, Fp32>(c, inputs[0], inputs[1], y, default));
            for (int k = 2; k < inputs.Length; k++) steps.Add(BinaryStep<TOp, float, Fp32>(c, y, inputs[k], y, c.View<float>(y)));
        }
        if (mean && inputs.Length > 1) steps.Add(UnaryStep(c, y, y, new ScaleOp(1f / inputs.Length)));
        return new ActionStep(s => { foreach (var step in steps) step.Run(s); });
    }

    /// <summary>fp32, or fp16 computed in fp32 and rounded back (as the CPU does).</summary>
    private static GpuStep Unary<TOp>(LoweringContext c, TOp op) where TOp : struct, IUnaryOp =>
        c.FloatType() == DataType.Float16
            ? UnaryStep<TOp, ushort, Fp16>(c, c.RequiredInput(0), c.Output(0), op)
            : UnaryStep<TOp, float, Fp32>(c, c.RequiredInput(0), c.Output(0), op);

    /// <summary>y = op(x) over equal fp32 shapes.</summary>
    public static GpuStep UnaryStep<TOp>(LoweringContext c, Ir.Value x, Ir.Value y, TOp op) where TOp : struct, IUnaryOp =>
        UnaryStep<TOp, float, Fp32>(c, x, y, op);

    private static GpuStep UnaryStep<TOp, T, TE>(LoweringContext c, Ir.Value x, Ir.Value y, TOp op)
        where TOp : struct, IUnaryOp
        where T : unmanaged
        where TE : struct, IFloatElement<T>
    {
        int n = Count(y);
        if (n == 0) return Nothing;
        var vx = c.Bytes(x).Cast<T>();
        var vy = c.Bytes(y).Cast<T>();
        var k = c.Kernels.Auto<ArrayView<T>, ArrayView<T>, TOp>(ElementwiseKernels.Unary<TOp, T, TE>);
        return new ActionStep(s => k(s, n, vx, vy, op));
    }

    private static GpuStep Dropout(LoweringContext c)
    {
        // Inference: Dropout is the identity; the mask output (if any) needs bools, left to the host.
        if (c.Node.Outputs.Count > 1) throw new NotOnDeviceException("the mask output is not computed on the device");
        return Unary(c, new IdentityOp());
    }

    private static GpuStep Clip(LoweringContext c)
    {
        float min = float.MinValue, max = float.MaxValue;
        if (c.Node.OpsetVersion is > 0 and < 11)
        {
            min = Attr.Float(c.Node, "min", float.MinValue);
            max = Attr.Float(c.Node, "max", float.MaxValue);
        }
        else
        {
            // fp16 bounds widen exactly, so clamping in fp32 and rounding back gives the fp16 clamp.
            if (c.Input(1) is not null) min = (float)c.ConstantInput(1, "min").GetAsDouble(0);
            if (c.Input(2) is not null) max = (float)c.ConstantInput(2, "max").GetAsDouble(0);
        }
        return Unary(c, new ClipOp(min, max));
    }

    /// <summary>Inference BatchNormalization: scale = gamma / sqrt(var + eps) and shift = beta - mean * scale folded
    /// on the host (in double), then one channel-affine kernel.</summary>
    private static GpuStep BatchNormalization(LoweringContext c)
    {
        if (c.Node.Outputs.Count > 1) throw new NotOnDeviceException("training-mode outputs are not computed on the device");
        c.RequireFloat();
        var x = c.RequiredInput(0);
        var y = c.Output(0);
        var scale = c.ConstantInput(1, "scale").AsSpan<float>();
        var bias = c.ConstantInput(2, "B").AsSpan<float>();
        var mean = c.ConstantInput(3, "input_mean").AsSpan<float>();
        var variance = c.ConstantInput(4, "input_var").AsSpan<float>();
        float epsilon = Attr.Float(c.Node, "epsilon", 1e-5f);
        var shape = Shape(x);
        int channels = shape.Length > 1 ? shape[1] : 1;
        int inner = 1;
        for (int k = 2; k < shape.Length; k++) inner *= shape[k];
        var table = new float[2 * channels];
        for (int ch = 0; ch < channels; ch++)
        {
            double s = scale[ch] / Math.Sqrt(variance[ch] + (double)epsilon);
            table[ch] = (float)s;
            table[channels + ch] = (float)(bias[ch] - mean[ch] * s);
        }
        int n = Count(y);
        if (n == 0) return Nothing;
        var vt = c.Upload(table);
        var vx = c.View<float>(x);
        var vy = c.View<float>(y);
        var k2 = c.Kernels.Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(ElementwiseKernels.ChannelAffine);
        return new ActionStep(s => k2(s, n, vx, vy, vt, channels, Math.Max(inner, 1)));
    }
}
