using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Operators;

/// <summary>Convolutions: Conv, ConvTranspose.</summary>
internal static class ConvOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        registry.Add("Conv", n => new ConvOperator(n), minOpset: 1);
        registry.Add("ConvTranspose", n => new ConvTransposeOperator(n), minOpset: 1);
    }
}

/// <summary>
/// What Conv and ConvTranspose share: the attributes (auto_pad, dilations, group, kernel_shape, pads, strides), type
/// checks, the geometry of the last input shape, weights packed once when they are constant, float16/bfloat16
/// staged through float, and for the fused forms (com.squash FusedConv, FusedConvTranspose) the steps fused after
/// the bias (<see cref="FusedOutput"/>).
/// </summary>
internal abstract class ConvolutionOperatorBase : Operator
{
    private sealed record CachedGeometry(int[] X, int[] W, ConvGeometry Geometry);

    private CachedGeometry? _cached;
    private PackedConvWeights? _packed;

    protected ConvolutionOperatorBase(Node node, bool fused) : base(node)
    {
        AutoPad = Attributes.String("auto_pad", "NOTSET");
        if (AutoPad is not ("NOTSET" or "SAME_UPPER" or "SAME_LOWER" or "VALID"))
            throw Invalid($"auto_pad must be NOTSET, SAME_UPPER, SAME_LOWER or VALID, not '{AutoPad}'.");
        Dilations = Attributes.Ints("dilations");
        Group = Attributes.Int("group", 1);
        KernelShape = Attributes.Ints("kernel_shape");
        Pads = Attributes.Ints("pads");
        Strides = Attributes.Ints("strides");
        if (Group < 1 || Group > int.MaxValue) throw Invalid($"group must be positive, not {Group}.");
        CheckAll(Dilations, 1, "dilations");
        CheckAll(Strides, 1, "strides");
        CheckAll(KernelShape, 1, "kernel_shape");
        Fused = fused ? new FusedOutput(node, Attributes) : null;
    }

    /// <summary>The fused steps of a com.squash node; null for the standard operator.</summary>
    protected FusedOutput? Fused { get; }

    protected string AutoPad { get; }
    protected long[]? Dilations { get; }
    protected long Group { get; }
    protected long[]? KernelShape { get; }
    protected long[]? Pads { get; }
    protected long[]? Strides { get; }

    public override void InferOutputs(InferenceContext context)
    {
        var type = context.InputType(0);
        CheckType(type);
        if (context.InputType(1) != type)
            throw Invalid($"W is {DataTypes.Name(context.InputType(1))} but X is {DataTypes.Name(type)}; they must match.");
        if (context.HasInput(2) && context.InputType(2) != type)
            throw Invalid($"B is {DataTypes.Name(context.InputType(2))} but X is {DataTypes.Name(type)}; they must match.");
        var x = context.InputShape(0);
        var w = context.InputShape(1);
        if (x is null && w is null)
        {
            context.SetOutput(0, type, null);
            return;
        }
        int rank = (x ?? w)!.Length;
        if (rank < 3) throw Invalid($"X and W need a batch, a channel and at least one spatial axis, but have rank {rank}.");
        if (x is not null && w is not null && x.Length != w.Length)
            throw Invalid($"X {Shapes.Format(x)} and W {Shapes.Format(w)} must have the same rank.");
        x ??= Unknown(rank);
        w ??= Unknown(rank);
        var output = Shapes.IsKnown(x) && Shapes.IsKnown(w) ? OutputShape(Geometry(x, w)) : PartialOutputShape(x, w);
        Fused?.Check(context, type, output, channelAxis: 1);
        context.SetOutput(0, type, output);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var x = Required(inputs, 0);
        var w = Required(inputs, 1);
        var b = Optional(inputs, 2);
        var g = Geometry(x.Shape, w.Shape);
        int biasLength = BiasLength(g);
        if (b is not null && (b.Rank != 1 || b.ElementCount != biasLength))
            throw Invalid($"B has shape {Shapes.Format(b.Shape)}; it must be [{biasLength}].");
        var y = outputs[0];
        if (x.DataType == DataType.Float)
        {
            var epilogue = new GemmEpilogue { RowBias = b is null ? [] : b.AsSpan<float>() };
            if (Fused is not null) epilogue = Fused.Complete(epilogue, inputs, y, biasLength, channelsAreRows: true);
            Compute(context, g, x.AsSpan<float>(), w.AsSpan<float>(), PackedWeights(w), y.AsSpan<float>(), epilogue);
            return;
        }
        var result = new float[y.ElementCount];
        Compute(context, g, HalfPrecision.ToSingle(x), HalfPrecision.ToSingle(w), null, result,
            new GemmEpilogue { RowBias = b is null ? [] : HalfPrecision.ToSingle(b) });
        HalfPrecision.FromSingle(result, y);
    }

    /// <summary>The geometry for known shapes, cached for the last pair of shapes (operators run many times on one shape).</summary>
    protected ConvGeometry Geometry(int[] x, int[] w)
    {
        var cached = Volatile.Read(ref _cached);
        if (cached is not null && Shapes.Equal(cached.X, x) && Shapes.Equal(cached.W, w)) return cached.Geometry;
        if (x.Length != w.Length || x.Length < 3)
            throw Invalid($"X {Shapes.Format(x)} and W {Shapes.Format(w)} must have the same rank, at least 3.");
        var geometry = CreateGeometry(x, w);
        Volatile.Write(ref _cached, new CachedGeometry((int[])x.Clone(), (int[])w.Clone(), geometry));
        return geometry;
    }

    /// <summary>Resolves padding and output size for known shapes, validating channels and attribute lengths.</summary>
    protected abstract ConvGeometry CreateGeometry(int[] x, int[] w);

    /// <summary>The output shape for a geometry.</summary>
    protected abstract int[] OutputShape(ConvGeometry g);

    /// <summary>The output shape when some input dimensions are unknown (-1).</summary>
    protected abstract int[] PartialOutputShape(int[] x, int[] w);

    /// <summary>Length of the bias: the output channels.</summary>
    protected abstract int BiasLength(ConvGeometry g);

    /// <summary>Runs the kernel in float; the epilogue's rows are output channels (its row bias is the bias).</summary>
    protected abstract void Compute(KernelContext context, ConvGeometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> w,
        PackedConvWeights? packed, Span<float> y, in GemmEpilogue epilogue);

    /// <summary>The spatial attribute <paramref name="values"/> for <paramref name="rank"/> axes, or <paramref name="fallback"/>.</summary>
    protected int[] PerAxis(long[]? values, int rank, int fallback, string name)
    {
        if (values is null) return Enumerable.Repeat(fallback, rank).ToArray();
        if (values.Length != rank) throw Invalid($"{name} has {values.Length} values for {rank} spatial axes.");
        return values.Select(v => checked((int)v)).ToArray();
    }

    /// <summary>The kernel's spatial shape: W's, checked against kernel_shape.</summary>
    protected int[] Kernel(int[] w)
    {
        var kernel = w[2..];
        if (KernelShape is not null)
        {
            if (KernelShape.Length != kernel.Length)
                throw Invalid($"kernel_shape has {KernelShape.Length} values for {kernel.Length} spatial axes.");
            for (int d = 0; d < kernel.Length; d++)
                if (kernel[d] >= 0 && KernelShape[d] != kernel[d])
                    throw Invalid($"kernel_shape [{string.Join(",", KernelShape)}] does not match W {Shapes.Format(w)}.");
        }
        return kernel;
    }

    /// <summary>Explicit pads as (begin, end) per axis; zeros when absent.</summary>
    protected (int[] Begin, int[] End) ExplicitPads(int rank)
    {
        if (Pads is null) return (new int[rank], new int[rank]);
        if (Pads.Length != 2 * rank) throw Invalid($"pads has {Pads.Length} values for {rank} spatial axes (needs {2 * rank}).");
        return (Pads[..rank].Select(v => checked((int)v)).ToArray(), Pads[rank..].Select(v => checked((int)v)).ToArray());
    }

    /// <summary>The packing cache for constant fp32 weights; null when W is computed at run time.</summary>
    private PackedConvWeights? PackedWeights(Tensor w)
    {
        if (Node.Input(1)?.Constant is not { DataType: DataType.Float } constant || !ReferenceEquals(constant, w)) return null;
        return Volatile.Read(ref _packed) ?? Interlocked.CompareExchange(ref _packed, new PackedConvWeights(w), null) ?? _packed;
    }

    private void CheckType(DataType type)
    {
        if (type is not (DataType.Float or DataType.Float16 or DataType.BFloat16))
            throw new SquashException(ErrorCodes.UnsupportedDataType,
                $"{Node.Describe()}: {Node.OpType} of {DataTypes.Name(type)} is not supported (float, float16 and bfloat16 are).", Node.Name);
    }

    private void CheckAll(long[]? values, long minimum, string name)
    {
        if (values is null) return;
        foreach (long v in values)
            if (v < minimum || v > int.MaxValue) throw Invalid($"{name} must be at least {minimum}, but is [{string.Join(",", values)}].");
    }

    private static int[] Unknown(int rank) => Enumerable.Repeat(-1, rank).ToArray();
}

/// <summary>
/// <c>Y = conv(X, W) + B</c> for 1-D, 2-D, 3-D (any rank) images, with groups, strides, dilations, pads and auto_pad;
/// fused, com.squash FusedConv: the same followed by <see cref="FusedOutput"/>'s steps.
/// </summary>
internal sealed class ConvOperator(Node node, bool fused = false) : ConvolutionOperatorBase(node, fused)
{
    protected override ConvGeometry CreateGeometry(int[] x, int[] w)
    {
        int rank = x.Length - 2;
        int channels = x[1], outChannels = w[0];
        if ((long)w[1] * Group != channels)
            throw Invalid($"X has {channels} channels but W {Shapes.Format(w)} with group {Group} expects {(long)w[1] * Group}.");
        if (outChannels % Group != 0)
            throw Invalid($"W has {outChannels} output channels, which group {Group} does not divide.");
        var kernel = Kernel(w);
        var strides = PerAxis(Strides, rank, 1, "strides");
        var dilations = PerAxis(Dilations, rank, 1, "dilations");
        var (padsBegin, padsEnd) = AutoPad is "NOTSET" ? ExplicitPads(rank) : (new int[rank], new int[rank]);
        var output = new int[rank];
        for (int d = 0; d < rank; d++)
        {
            int input = x[d + 2];
            long extent = (long)(kernel[d] - 1) * dilations[d] + 1;
            if (AutoPad is "SAME_UPPER" or "SAME_LOWER")
            {
                output[d] = (int)(((long)input + strides[d] - 1) / strides[d]);
                long total = Math.Max(0, (long)(output[d] - 1) * strides[d] + extent - input);
                padsBegin[d] = (int)(AutoPad == "SAME_UPPER" ? total / 2 : total - total / 2);
                continue;
            }
            long padded = (long)input + padsBegin[d] + padsEnd[d] - extent;
            if (padded < 0)
                throw Invalid($"the kernel (extent {extent} with dilation) is larger than the padded input along spatial axis {d} (X {Shapes.Format(x)}).");
            output[d] = checked((int)(padded / strides[d] + 1));
        }
        return new ConvGeometry(x[0], channels, outChannels, (int)Group, x[2..], kernel, output, strides, dilations, padsBegin);
    }

    protected override int[] OutputShape(ConvGeometry g) => [g.Batch, g.OutChannels, .. g.Output];

    protected override int[] PartialOutputShape(int[] x, int[] w)
    {
        int rank = x.Length - 2;
        var shape = new int[x.Length];
        shape[0] = x[0];
        shape[1] = w[0];
        var kernel = Kernel(w);
        var strides = PerAxis(Strides, rank, 1, "strides");
        var dilations = PerAxis(Dilations, rank, 1, "dilations");
        var (padsBegin, padsEnd) = AutoPad is "NOTSET" ? ExplicitPads(rank) : (new int[rank], new int[rank]);
        for (int d = 0; d < rank; d++)
        {
            int input = x[d + 2];
            if (input < 0) shape[d + 2] = -1;
            else if (AutoPad is "SAME_UPPER" or "SAME_LOWER") shape[d + 2] = (input + strides[d] - 1) / strides[d];
            else if (kernel[d] < 0) shape[d + 2] = -1;
            else shape[d + 2] = Math.Max(0, (input + padsBegin[d] + padsEnd[d] - ((kernel[d] - 1) * dilations[d] + 1)) / strides[d] + 1);
        }
        return shape;
    }

    protected override int BiasLength(ConvGeometry g) => g.OutChannels;

    protected override void Compute(KernelContext context, ConvGeometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> w,
        PackedConvWeights? packed, Span<float> y, in GemmEpilogue epilogue) =>
        Convolution.Run(context, g, x, w, packed, y, epilogue);
}

/// <summary>
/// <c>Y = convTranspose(X, W) + B</c> with groups, strides, dilations, pads, output_padding, output_shape and auto_pad,
/// computed as the adjoint of a convolution (<see cref="TransposedConvolution"/>); fused, com.squash FusedConvTranspose.
/// </summary>
internal sealed class ConvTransposeOperator : ConvolutionOperatorBase
{
    private readonly long[]? _outputPadding;
    private readonly long[]? _outputShape;

    public ConvTransposeOperator(Node node, bool fused = false) : base(node, fused)
    {
        _outputPadding = Attributes.Ints("output_padding");
        _outputShape = Attributes.Ints("output_shape");
    }

    /// <summary>The geometry of the adjoint convolution: its input is Y (M channels), its output X (C channels).</summary>
    protected override ConvGeometry CreateGeometry(int[] x, int[] w)
    {
        int rank = x.Length - 2;
        int channels = x[1];
        if (w[0] != channels) throw Invalid($"X has {channels} channels but W {Shapes.Format(w)} expects {w[0]}.");
        if (channels % Group != 0) throw Invalid($"X has {channels} channels, which group {Group} does not divide.");
        long outChannels = (long)w[1] * Group;
        var kernel = Kernel(w);
        var strides = PerAxis(Strides, rank, 1, "strides");
        var dilations = PerAxis(Dilations, rank, 1, "dilations");
        var outputPadding = PerAxis(_outputPadding, rank, 0, "output_padding");
        var requested = RequestedOutput(rank);
        var (padsBegin, padsEnd) = AutoPad is "NOTSET" ? ExplicitPads(rank) : (new int[rank], new int[rank]);
        var output = new int[rank];
        for (int d = 0; d < rank; d++)
        {
            long full = (long)strides[d] * (x[d + 2] - 1) + outputPadding[d] + (long)(kernel[d] - 1) * dilations[d] + 1;
            if (requested is not null || AutoPad is "SAME_UPPER" or "SAME_LOWER")
            {
                // The output size is given (or is input x stride); the padding that yields it is split evenly, the odd
                // element at the end for SAME_UPPER and at the beginning otherwise (ONNX's formula, floor division).
                long size = requested?[d] ?? (long)x[d + 2] * strides[d];
                long total = full - size;
                long half = (long)Math.Floor(total / 2.0);
                padsBegin[d] = checked((int)(AutoPad == "SAME_UPPER" ? half : total - half));
                output[d] = checked((int)size);
            }
            else
            {
                output[d] = checked((int)(full - padsBegin[d] - padsEnd[d]));
            }
            if (output[d] < 0) throw Invalid($"the output would have a negative size along spatial axis {d}.");
        }
        return new ConvGeometry(x[0], checked((int)outChannels), channels, (int)Group, output, kernel, x[2..], strides, dilations, padsBegin);
    }

    /// <summary>output_shape's spatial part (it may also list the batch and channel dimensions), or null.</summary>
    private int[]? RequestedOutput(int rank)
    {
        if (_outputShape is null) return null;
        if (_outputShape.Length == rank + 2) return _outputShape[2..].Select(v => checked((int)v)).ToArray();
        if (_outputShape.Length != rank) throw Invalid($"output_shape has {_outputShape.Length} values for {rank} spatial axes.");
        return _outputShape.Select(v => checked((int)v)).ToArray();
    }

    protected override int[] OutputShape(ConvGeometry g) => [g.Batch, g.InChannels, .. g.Input];

    protected override int[] PartialOutputShape(int[] x, int[] w)
    {
        int rank = x.Length - 2;
        var shape = Enumerable.Repeat(-1, x.Length).ToArray();
        shape[0] = x[0];
        shape[1] = w[1] < 0 ? -1 : checked((int)(w[1] * Group));
        var requested = RequestedOutput(rank);
        for (int d = 0; d < rank; d++)
            if (requested is not null) shape[d + 2] = requested[d];
        return shape;
    }

    protected override int BiasLength(ConvGeometry g) => g.InChannels;

    protected override void Compute(KernelContext context, ConvGeometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> w,
        PackedConvWeights? packed, Span<float> y, in GemmEpilogue epilogue) =>
        TransposedConvolution.Run(context, g, x, w, packed, y, epilogue);
}
