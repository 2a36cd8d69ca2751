using System.Numerics;
using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Operators;

/// <summary>Normalization: BatchNormalization InstanceNormalization LayerNormalization RMSNormalization LRN
/// MeanVarianceNormalization.</summary>
internal static class NormalizationOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        registry.Add("BatchNormalization", n => new BatchNormalizationOperator(n), minOpset: 7);
        registry.Add("InstanceNormalization", n => new InstanceNormalizationOperator(n), minOpset: 6);
        registry.Add("LayerNormalization", n => new LayerNormalizationOperator(n, rms: false), minOpset: 17);
        registry.Add("RMSNormalization", n => new LayerNormalizationOperator(n, rms: true), minOpset: 23);
        registry.Add("LRN", n => new LrnOperator(n), minOpset: 1);
        registry.Add("MeanVarianceNormalization", n => new MeanVarianceNormalizationOperator(n), minOpset: 9);
    }
}

/// <summary>A computation written once for float and double; float16 and bfloat16 run it in float. Implemented by
/// structs that carry one run's inputs, so that operators keep no per-run state.</summary>
internal interface INormalizationBody
{
    /// <summary>Computes <paramref name="y"/> from <paramref name="x"/>, both of element type <typeparamref name="T"/>.</summary>
    void Run<T>(KernelContext context, Tensor x, Tensor y) where T : unmanaged, IFloatingPointIeee754<T>;
}

/// <summary>Helpers shared by the normalization operators.</summary>
internal static class NormalizationHelpers
{
    /// <summary>Runs <paramref name="body"/> at the precision of <paramref name="x"/>'s type (float for 16-bit types).</summary>
    public static void Dispatch<TBody>(KernelContext context, Node node, Tensor x, Tensor y, TBody body)
        where TBody : struct, INormalizationBody
    {
        switch (x.DataType)
        {
            case DataType.Float: body.Run<float>(context, x, y); break;
            case DataType.Double: body.Run<double>(context, x, y); break;
            case DataType.Float16 or DataType.BFloat16:
                var (wideX, wideY) = ReducedFloat.Stage(context, x, y.Shape);
                body.Run<float>(context, wideX, wideY);
                ReducedFloat.Narrow(wideY.AsSpan<float>(), y);
                break;
            default: throw UnsupportedType(node, x.DataType);
        }
    }

    /// <summary>Checks that input <paramref name="index"/> is a floating-point tensor and returns its type.</summary>
    public static DataType RequireFloating(InferenceContext context, Node node, int index)
    {
        var type = context.InputType(index);
        if (!DataTypes.IsFloatingPoint(type)) throw UnsupportedType(node, type);
        return type;
    }

    /// <summary>The elements of a (small) parameter tensor of any floating type, as <typeparamref name="T"/>.</summary>
    public static T[] Values<T>(Tensor tensor) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (DataTypes.Of<T>() == tensor.DataType) return tensor.AsSpan<T>().ToArray();
        var result = new T[tensor.ElementCount];
        for (int i = 0; i < result.Length; i++) result[i] = T.CreateChecked(tensor.GetAsDouble(i));
        return result;
    }

    /// <summary>
    /// <paramref name="tensor"/> broadcast (numpy rules, one way) to <paramref name="target"/>, flattened; null when it
    /// does not broadcast there.
    /// </summary>
    public static T[]? Broadcast<T>(Tensor tensor, ReadOnlySpan<int> target) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int[] shape = tensor.Shape;
        int skip = shape.Length - target.Length;
        for (int i = 0; i < skip; i++) if (shape[i] != 1) return null;
        for (int i = Math.Max(0, skip); i < shape.Length; i++)
            if (shape[i] != 1 && shape[i] != target[i - skip]) return null;
        T[] values = Values<T>(tensor);
        int count = (int)Shapes.ElementCount(target);
        if (values.Length == count) return values;
        // Map each target index to the source index, dimension by dimension (a parameter-sized, one-time cost).
        var result = new T[count];
        for (int i = 0; i < count; i++)
        {
            int rest = i, source = 0, stride = 1;
            for (int d = target.Length - 1; d >= 0; d--)
            {
                int coordinate = rest % target[d];
                rest /= target[d];
                int s = d + skip;
                if (s < 0) continue;
                if (shape[s] != 1) source += coordinate * stride;
                stride *= shape[s];
            }
            result[i] = values[source];
        }
        return result;
    }

    /// <summary>An exception for an input of a type the operator does not take.</summary>
    public static SquashException UnsupportedType(Node node, DataType type) =>
        new(ErrorCodes.UnsupportedDataType, $"{node.Describe()}: inputs of type {DataTypes.Name(type)} are not supported.", node.Name);

    /// <summary>True when every input in [<paramref name="from"/>, <paramref name="to"/>) is absent or a constant.</summary>
    public static bool ConstantInputs(Node node, int from, int to)
    {
        for (int i = from; i < to; i++)
            if (node.Input(i) is { } v && v.Constant is null) return false;
        return true;
    }
}

/// <summary>Parameters prepared for one compute type.</summary>
internal sealed record NormalizationParameters<T>(T[] First, T[] Second, int Key);

/// <summary>
/// BatchNormalization at inference: <c>y = (x - mean) / sqrt(var + epsilon) * scale + B</c>, folded per channel to
/// one multiply-add. Opset 7's <c>spatial = 0</c> (parameters per channel and position) is supported; training mode
/// (training_mode = 1, or the running-statistics outputs) is not.
/// </summary>
internal sealed class BatchNormalizationOperator : Operator
{
    private readonly double _epsilon;
    private readonly bool _constantParameters;
    private object? _prepared;

    public BatchNormalizationOperator(Node node) : base(node)
    {
        _epsilon = Attributes.Float("epsilon", 1e-5f);
        Attributes.Float("momentum", 0.9f); // only affects the running statistics of training mode
        Attributes.Int("spatial", 1); // the parameters' shape says which layout they have
        if (Attributes.Int("training_mode", 0) != 0)
            throw Unsupported("training mode (training_mode = 1) is not supported; export the model for inference.");
        for (int i = 1; i < node.Outputs.Count; i++)
            if (node.Outputs[i].Name.Length > 0)
                throw Unsupported("the running mean and variance outputs exist only in training mode, which is not supported; export the model for inference.");
        _constantParameters = NormalizationHelpers.ConstantInputs(node, 1, 5);
    }

    public override void InferOutputs(InferenceContext context)
    {
        var type = NormalizationHelpers.RequireFloating(context, Node, 0);
        for (int i = 1; i < 5; i++) NormalizationHelpers.RequireFloating(context, Node, i);
        var shape = context.InputShape(0);
        if (shape is not null && shape.Length < 2) throw Invalid($"the input has shape {Shapes.Format(shape)}; it needs at least [N, C].");
        context.SetOutput(0, type, shape);
        // Omitted optional outputs (empty names) still get a type and shape.
        for (int i = 1; i < context.OutputCount; i++) context.SetOutput(i, context.InputType(1), context.InputShape(1));
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        Tensor x = Required(inputs, 0);
        var body = new Body(this, Required(inputs, 1), Required(inputs, 2), Required(inputs, 3), Required(inputs, 4));
        NormalizationHelpers.Dispatch(context, Node, x, outputs[0], body);
    }

    private readonly struct Body(BatchNormalizationOperator op, Tensor scale, Tensor bias, Tensor mean, Tensor variance) : INormalizationBody
    {
        public void Run<T>(KernelContext context, Tensor x, Tensor y) where T : unmanaged, IFloatingPointIeee754<T>
        {
            int channels = x.Shape[1];
            int spatial = x.ElementCount / Math.Max(1, x.Shape[0] * channels);
            var p = op.Parameters<T>(scale, bias, mean, variance);
            // Per channel; or, with opset 7's spatial = 0, per channel and position.
            int count = p.First.Length;
            int run = count == channels ? spatial : count == channels * spatial ? 1 : -1;
            if (run < 0)
                throw op.Invalid($"scale, B, mean and var must have {channels} elements (one per channel) or {channels * spatial} " +
                    $"(spatial = 0, one per channel and position); they have {count}.");
            Normalization.Affine(context, x, y, p.First, p.Second, run);
        }
    }

    /// <summary>The fold <c>y = x * a + b</c>: a = scale / sqrt(var + epsilon), b = B - mean * a.</summary>
    private NormalizationParameters<T> Parameters<T>(Tensor scale, Tensor bias, Tensor mean, Tensor variance) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (_prepared is NormalizationParameters<T> cached) return cached;
        int count = scale.ElementCount;
        if (bias.ElementCount != count || mean.ElementCount != count || variance.ElementCount != count)
            throw Invalid($"scale, B, mean and var must have the same number of elements; they have {scale.ElementCount}, " +
                $"{bias.ElementCount}, {mean.ElementCount} and {variance.ElementCount}.");
        var a = new T[count];
        var b = new T[count];
        for (int i = 0; i < count; i++)
        {
            // Folded in double so that the fold adds no rounding of its own.
            double factor = scale.GetAsDouble(i) / Math.Sqrt(variance.GetAsDouble(i) + _epsilon);
            a[i] = T.CreateChecked(factor);
            b[i] = T.CreateChecked(bias.GetAsDouble(i) - mean.GetAsDouble(i) * factor);
        }
        var prepared = new NormalizationParameters<T>(a, b, count);
        if (_constantParameters) _prepared = prepared;
        return prepared;
    }
}

/// <summary>InstanceNormalization: each (n, c) plane normalized by its own mean and variance, then scaled and shifted
/// per channel.</summary>
internal sealed class InstanceNormalizationOperator : Operator
{
    private readonly float _epsilon;

    public InstanceNormalizationOperator(Node node) : base(node) => _epsilon = Attributes.Float("epsilon", 1e-5f);

    public override void InferOutputs(InferenceContext context)
    {
        var type = NormalizationHelpers.RequireFloating(context, Node, 0);
        NormalizationHelpers.RequireFloating(context, Node, 1);
        NormalizationHelpers.RequireFloating(context, Node, 2);
        var shape = context.InputShape(0);
        if (shape is not null && shape.Length < 2) throw Invalid($"the input has shape {Shapes.Format(shape)}; it needs at least [N, C].");
        context.SetOutput(0, type, shape);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        Tensor x = Required(inputs, 0), scale = Required(inputs, 1), bias = Required(inputs, 2);
        if (scale.ElementCount != x.Shape[1] || bias.ElementCount != x.Shape[1])
            throw Invalid($"scale and B must have one value per channel ({x.Shape[1]}); they have {scale.ElementCount} and {bias.ElementCount}.");
        NormalizationHelpers.Dispatch(context, Node, x, outputs[0], new Body(scale, bias, _epsilon));
    }

    private readonly struct Body(Tensor scale, Tensor bias, float epsilon) : INormalizationBody
    {
        public void Run<T>(KernelContext context, Tensor x, Tensor y) where T : unmanaged, IFloatingPointIeee754<T>
        {
            int planeSize = x.ElementCount / Math.Max(1, x.Shape[0] * x.Shape[1]);
            Normalization.Instance(context, x, y, NormalizationHelpers.Values<T>(scale), NormalizationHelpers.Values<T>(bias),
                planeSize, T.CreateChecked(epsilon));
        }
    }
}

/// <summary>
/// LayerNormalization (opset 17: axis, epsilon, stash_type; optional Mean and InvStdDev outputs) and
/// RMSNormalization (opset 23: axis, epsilon, stash_type). Statistics are computed in float (double for double
/// inputs), the stash type's precision or wider.
/// </summary>
internal sealed class LayerNormalizationOperator : Operator
{
    private readonly bool _rms;
    private readonly long _axis;
    private readonly float _epsilon;
    private readonly bool _constantParameters;
    private object? _prepared;

    public LayerNormalizationOperator(Node node, bool rms) : base(node)
    {
        _rms = rms;
        _axis = Attributes.Int("axis", -1);
        _epsilon = Attributes.Float("epsilon", 1e-5f);
        long stash = Attributes.Int("stash_type", 1);
        if (stash != (long)DataType.Float)
            throw Unsupported($"stash_type {stash} is not supported; Squash computes the statistics in float (stash_type = 1).");
        _constantParameters = NormalizationHelpers.ConstantInputs(node, 1, 3);
    }

    private int Axis(int rank)
    {
        if (_axis < -rank || _axis >= rank) throw Invalid($"axis {_axis} is out of range for an input of rank {rank}.");
        return (int)(_axis < 0 ? _axis + rank : _axis);
    }

    public override void InferOutputs(InferenceContext context)
    {
        var type = NormalizationHelpers.RequireFloating(context, Node, 0);
        for (int i = 1; i < 3 && context.HasInput(i); i++)
            if (context.InputType(i) != type)
                throw new SquashException(ErrorCodes.UnsupportedDataType,
                    $"{Node.Describe()}: input {i} is {DataTypes.Name(context.InputType(i))} while X is {DataTypes.Name(type)}; " +
                    "Squash needs the parameters in X's type. Cast them in the model.", Node.Name);
        var shape = context.InputShape(0);
        context.SetOutput(0, type, shape);
        if (_rms) return;
        int[]? statistics = null;
        if (shape is not null)
        {
            int axis = Axis(shape.Length);
            statistics = (int[])shape.Clone();
            for (int d = axis; d < shape.Length; d++) statistics[d] = 1;
        }
        context.SetOutput(1, DataType.Float, statistics);
        context.SetOutput(2, DataType.Float, statistics);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        Tensor x = Required(inputs, 0);
        Tensor? mean = outputs.Length > 1 && Node.Outputs[1].Name.Length > 0 ? outputs[1] : null;
        Tensor? invStdDev = outputs.Length > 2 && Node.Outputs[2].Name.Length > 0 ? outputs[2] : null;
        var body = new Body(this, Required(inputs, 1), _rms ? null : Optional(inputs, 2), mean, invStdDev);
        NormalizationHelpers.Dispatch(context, Node, x, outputs[0], body);
    }

    private readonly struct Body(LayerNormalizationOperator op, Tensor scale, Tensor? bias, Tensor? mean, Tensor? invStdDev) : INormalizationBody
    {
        public void Run<T>(KernelContext context, Tensor x, Tensor y) where T : unmanaged, IFloatingPointIeee754<T>
        {
            int axis = op.Axis(x.Rank);
            var p = op.Parameters<T>(scale, bias, x.Shape.AsSpan(axis));
            T epsilon = T.CreateChecked(op._epsilon);
            if (op._rms) Normalization.Rms(context, x, y, p.First, epsilon);
            else Normalization.Layer(context, x, y, p.First, p.Second, epsilon, mean, invStdDev);
        }
    }

    /// <summary>Scale and bias broadcast to the normalized shape (bias empty when absent).</summary>
    private NormalizationParameters<T> Parameters<T>(Tensor scaleTensor, Tensor? biasTensor, ReadOnlySpan<int> normalized) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int size = Shapes.Product(normalized, 0, normalized.Length);
        if (_prepared is NormalizationParameters<T> cached && cached.Key == size) return cached;
        T[] scale = NormalizationHelpers.Broadcast<T>(scaleTensor, normalized)
            ?? throw Unsupported($"a scale of shape {Shapes.Format(scaleTensor.Shape)} does not broadcast to the normalized shape {Shapes.Format(normalized)}.");
        T[] bias = biasTensor is null ? [] : NormalizationHelpers.Broadcast<T>(biasTensor, normalized)
            ?? throw Unsupported($"a bias of shape {Shapes.Format(biasTensor.Shape)} does not broadcast to the normalized shape {Shapes.Format(normalized)}.");
        var prepared = new NormalizationParameters<T>(scale, bias, size);
        if (_constantParameters) _prepared = prepared;
        return prepared;
    }
}

/// <summary>LRN: local response normalization across channels.</summary>
internal sealed class LrnOperator : Operator
{
    private readonly float _alpha, _beta, _bias;
    private readonly int _size;

    public LrnOperator(Node node) : base(node)
    {
        _alpha = Attributes.Float("alpha", 1e-4f);
        _beta = Attributes.Float("beta", 0.75f);
        _bias = Attributes.Float("bias", 1f);
        long size = Attributes.Int("size", 0);
        if (size < 1 || size > int.MaxValue) throw Invalid($"attribute 'size' must be a positive integer, not {size}.");
        _size = (int)size;
    }

    public override void InferOutputs(InferenceContext context)
    {
        var type = NormalizationHelpers.RequireFloating(context, Node, 0);
        var shape = context.InputShape(0);
        if (shape is not null && shape.Length < 2) throw Invalid($"the input has shape {Shapes.Format(shape)}; it needs at least [N, C].");
        context.SetOutput(0, type, shape);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs) =>
        NormalizationHelpers.Dispatch(context, Node, Required(inputs, 0), outputs[0], new Body(this));

    private readonly struct Body(LrnOperator op) : INormalizationBody
    {
        public void Run<T>(KernelContext context, Tensor x, Tensor y) where T : unmanaged, IFloatingPointIeee754<T>
        {
            int channels = x.Shape[1];
            int planeSize = x.ElementCount / Math.Max(1, x.Shape[0] * channels);
            Normalization.LocalResponse(context, x, y, channels, planeSize, op._size,
                T.CreateChecked(op._alpha), T.CreateChecked(op._beta), T.CreateChecked(op._bias));
        }
    }
}

/// <summary>MeanVarianceNormalization: <c>(x - mean) / (sqrt(var) + 1e-9)</c> over <c>axes</c> (default [0, 2, 3]).</summary>
internal sealed class MeanVarianceNormalizationOperator : Operator
{
    private readonly long[] _axes;

    public MeanVarianceNormalizationOperator(Node node) : base(node) => _axes = Attributes.Ints("axes") ?? [0, 2, 3];

    private bool[] Reduced(int rank)
    {
        var reduced = new bool[rank];
        foreach (long axis in _axes)
        {
            if (axis < -rank || axis >= rank) throw Invalid($"axis {axis} is out of range for an input of rank {rank}.");
            reduced[axis < 0 ? axis + rank : axis] = true;
        }
        return reduced;
    }

    public override void InferOutputs(InferenceContext context)
    {
        var type = NormalizationHelpers.RequireFloating(context, Node, 0);
        var shape = context.InputShape(0);
        if (shape is not null) Reduced(shape.Length);
        context.SetOutput(0, type, shape);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        Tensor x = Required(inputs, 0);
        NormalizationHelpers.Dispatch(context, Node, x, outputs[0], new Body(Reduced(x.Rank)));
    }

    private readonly struct Body(bool[] reduced) : INormalizationBody
    {
        public void Run<T>(KernelContext context, Tensor x, Tensor y) where T : unmanaged, IFloatingPointIeee754<T> =>
            Normalization.MeanVariance<T>(x, y, reduced);
    }
}
