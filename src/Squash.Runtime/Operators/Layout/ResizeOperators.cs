using System.Buffers;
using System.Numerics;
using System.Numerics.Tensors;
using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Operators;

/// <summary>Resize (opsets 10 to 25) and Upsample (opsets 7 to 9).</summary>
internal static class ResizeOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        registry.Add("Resize", n => new ResizeOperator(n), minOpset: 10);
        registry.Add("Upsample", n => new UpsampleOperator(n), minOpset: 7, maxOpset: 9);
    }
}

/// <summary>Interpolation modes.</summary>
internal enum ResizeMode
{
    Nearest,
    Linear,
    Cubic,
}

/// <summary>How an output coordinate maps back to an input coordinate (ONNX <c>coordinate_transformation_mode</c>).</summary>
internal enum CoordinateTransform
{
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfHalfPixelForNn,
    TfCropAndResize,
}

/// <summary>How nearest mode rounds a fractional input coordinate (ONNX <c>nearest_mode</c>).</summary>
internal enum NearestRounding
{
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

/// <summary>How <c>sizes</c> are reconciled with the input's aspect ratio (ONNX <c>keep_aspect_ratio_policy</c>).</summary>
internal enum AspectRatioPolicy
{
    Stretch,
    NotLarger,
    NotSmaller,
}

/// <summary>
/// The resampling that Resize and Upsample share: the output shape from scales or sizes, the mapping of each output
/// coordinate to the input (following the ONNX reference implementation), and the kernels.
/// </summary>
internal sealed class Resampler
{
    public required ResizeMode Mode { get; init; }
    public required CoordinateTransform Transform { get; init; }
    public NearestRounding Rounding { get; init; } = NearestRounding.RoundPreferFloor;
    public double CubicA { get; init; } = -0.75;
    public bool ExcludeOutside { get; init; }
    public float Extrapolation { get; init; }
    public bool Antialias { get; init; }
    public long[]? Axes { get; init; }
    public AspectRatioPolicy Policy { get; init; } = AspectRatioPolicy.Stretch;

    /// <summary>Output dimensions and the scale of every axis. Unknown input dimensions (-1) give unknown outputs.</summary>
    public (int[] Shape, double[] Scales) Plan(int[] input, double[]? scales, long[]? sizes, Func<string, SquashException> invalid)
    {
        int rank = input.Length;
        var axes = NormalizedAxes(rank, invalid);
        int given = scales?.Length ?? sizes?.Length ?? 0;
        if (given != axes.Length)
            throw invalid($"{(scales is not null ? "scales" : "sizes")} has {given} values; expected {axes.Length} (one per resized axis).");
        var shape = (int[])input.Clone();
        var factors = new double[rank];
        Array.Fill(factors, 1.0);
        if (scales is not null)
        {
            for (int i = 0; i < axes.Length; i++)
            {
                int d = axes[i];
                if (!(scales[i] > 0)) throw invalid($"scale {scales[i]} for axis {d} must be positive.");
                factors[d] = scales[i];
                shape[d] = input[d] < 0 ? -1 : CheckedLength(Math.Floor(scales[i] * input[d]), invalid);
            }
            return (shape, factors);
        }
        for (int i = 0; i < axes.Length; i++)
        {
            int d = axes[i];
            if (sizes![i] < 0 || sizes[i] > int.MaxValue) throw invalid($"size {sizes[i]} for axis {d} is out of range.");
            shape[d] = (int)sizes[i];
            factors[d] = input[d] > 0 ? (double)sizes[i] / input[d] : 1.0;
        }
        if (Policy != AspectRatioPolicy.Stretch)
        {
            double scale = Policy == AspectRatioPolicy.NotLarger ? double.MaxValue : 0;
            foreach (int d in axes)
            {
                if (input[d] < 0)
                {
                    foreach (int a in axes) shape[a] = -1;
                    return (shape, factors);
                }
                scale = Policy == AspectRatioPolicy.NotLarger ? Math.Min(scale, factors[d]) : Math.Max(scale, factors[d]);
            }
            foreach (int d in axes)
            {
                factors[d] = scale;
                // The reference rounds half up here (int(x + 0.5)), unlike the floor used with scales.
                shape[d] = CheckedLength(Math.Floor(scale * input[d] + 0.5), invalid);
            }
        }
        return (shape, factors);
    }

    private static int CheckedLength(double length, Func<string, SquashException> invalid) =>
        length is >= 0 and <= int.MaxValue ? (int)length : throw invalid($"output length {length} is out of range.");

    /// <summary>The resized axes: <c>axes</c> made non-negative, or all axes.</summary>
    public int[] NormalizedAxes(int rank, Func<string, SquashException> invalid)
    {
        if (Axes is null)
        {
            var all = new int[rank];
            for (int i = 0; i < rank; i++) all[i] = i;
            return all;
        }
        var axes = new int[Axes.Length];
        for (int i = 0; i < axes.Length; i++)
        {
            long a = Axes[i];
            if (a < -rank || a >= rank) throw invalid($"axis {a} is out of range for rank {rank}.");
            axes[i] = (int)(a < 0 ? a + rank : a);
            if (Array.IndexOf(axes, axes[i], 0, i) >= 0) throw invalid($"axis {a} is listed twice.");
        }
        return axes;
    }

    /// <summary>Per-axis ROI start and end (fractions of the input) from an roi input of 2 * (number of axes) values.</summary>
    public (double[] Start, double[] End) Roi(int rank, Tensor? roi, Func<string, SquashException> invalid)
    {
        var start = new double[rank];
        var end = new double[rank];
        Array.Fill(end, 1.0);
        if (Transform != CoordinateTransform.TfCropAndResize) return (start, end);
        var axes = NormalizedAxes(rank, invalid);
        if (roi is null || roi.ElementCount != 2 * axes.Length)
            throw invalid($"tf_crop_and_resize needs an roi input of {2 * axes.Length} values (starts, then ends).");
        for (int i = 0; i < axes.Length; i++)
        {
            start[axes[i]] = roi.GetAsDouble(i);
            end[axes[i]] = roi.GetAsDouble(axes.Length + i);
        }
        return (start, end);
    }

    /// <summary>What resampling from one shape to another computes before touching data: the nearest maps (and the
    /// extrapolation value's bits) or the interpolation taps and the order of the axis passes.</summary>
    internal sealed class Prepared
    {
        public int[][]? Maps { get; init; }
        public byte[] Fill { get; init; } = [];
        public AxisTaps?[]? Taps { get; init; }
        public int[] Order { get; init; } = [];
    }

    /// <summary>Prepares resampling a tensor of <paramref name="type"/> and shape <paramref name="input"/> to
    /// <paramref name="output"/> (from <see cref="Plan"/>).</summary>
    public Prepared Prepare(DataType type, int[] input, int[] output, double[] scales, double[] roiStart, double[] roiEnd)
    {
        int rank = input.Length;
        if (Mode == ResizeMode.Nearest)
        {
            var maps = new int[rank][];
            for (int d = 0; d < rank; d++)
                maps[d] = NearestMap(input[d], output[d], scales[d], roiStart[d], roiEnd[d]);
            // Copies are typed by element size; the extrapolation constant is converted to the data type's bits.
            var fill = new Tensor(type, 1);
            if (fill.DataType == DataType.Bool) fill.Bytes[0] = Extrapolation != 0 ? (byte)1 : (byte)0;
            else if (Extrapolation != 0) WorkingConversion.FromFloat([Extrapolation], fill);
            return new Prepared { Maps = maps, Fill = fill.Bytes.ToArray() };
        }
        var taps = new AxisTaps?[rank];
        for (int d = 0; d < rank; d++)
        {
            var t = Taps(input[d], output[d], scales[d], roiStart[d], roiEnd[d]);
            taps[d] = t.IsIdentity ? null : t;
        }
        var order = new List<int>();
        for (int d = 0; d < taps.Length; d++)
            if (taps[d] is not null) order.Add(d);
        // Shrinking axes first keeps the later passes small. Among equal factors, the innermost axis (the pass
        // that cannot use whole-row vector arithmetic) goes where the data is smallest: first when enlarging.
        order.Sort((a, b) =>
        {
            double ra = (double)taps[a]!.OutLength / taps[a]!.InLength, rb = (double)taps[b]!.OutLength / taps[b]!.InLength;
            int byRatio = ra.CompareTo(rb);
            return byRatio != 0 ? byRatio : ra > 1 ? b.CompareTo(a) : a.CompareTo(b);
        });
        return new Prepared { Taps = taps, Order = [.. order] };
    }

    /// <summary>Resamples <paramref name="input"/> into <paramref name="output"/>, whose shape came from <see cref="Plan"/>.</summary>
    public void Run(KernelContext context, Tensor input, Tensor output, double[] scales, double[] roiStart, double[] roiEnd,
        Func<string, SquashException> invalid) =>
        Run(context, Prepare(input.DataType, input.Shape, output.Shape, scales, roiStart, roiEnd), input, output, invalid);

    /// <summary>Resamples <paramref name="input"/> into <paramref name="output"/> as <paramref name="prepared"/> (made for
    /// their shapes) says. Allocates nothing but pooled buffers.</summary>
    public void Run(KernelContext context, Prepared prepared, Tensor input, Tensor output, Func<string, SquashException> invalid)
    {
        int rank = input.Rank;
        for (int d = 0; d < rank; d++)
            if (input.Shape[d] == 0 && output.Shape[d] != 0)
                throw invalid($"cannot resize an empty axis {d} to length {output.Shape[d]}.");
        if (output.ElementCount == 0) return;
        if (prepared.Maps is { } maps)
        {
            var bits = prepared.Fill;
            switch (bits.Length)
            {
                case 1: Resample.Nearest(context, input, output, maps, bits[0]); break;
                case 2: Resample.Nearest(context, input, output, maps, BitConverter.ToUInt16(bits)); break;
                case 4: Resample.Nearest(context, input, output, maps, BitConverter.ToUInt32(bits)); break;
                default: Resample.Nearest(context, input, output, maps, BitConverter.ToUInt64(bits)); break;
            }
            return;
        }
        if (input.DataType == DataType.Double)
            Interpolate<double>(context, input, output, prepared.Taps!, prepared.Order);
        else
            Interpolate<float>(context, input, output, prepared.Taps!, prepared.Order);
    }

    private void Interpolate<T>(KernelContext context, Tensor input, Tensor output, AxisTaps?[] taps, int[] order)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        bool native = input.DataType == DataTypes.Of<T>();
        var pool = ArrayPool<T>.Shared;
        T[]? converted = null, current = null, next = null;
        try
        {
            ResampleBuffer<T> source;
            if (native)
            {
                source = new ResampleBuffer<T>(input);
            }
            else
            {
                converted = pool.Rent(input.ElementCount);
                WorkingConversion.ToWorking(input, converted.AsSpan(0, input.ElementCount));
                source = new ResampleBuffer<T>(converted, input.ElementCount);
            }
            if (order.Length == 0)
            {
                if (native) input.Bytes.CopyTo(output.Bytes);
                else WorkingConversion.FromWorking<T>(converted.AsSpan(0, input.ElementCount), output);
                return;
            }
            Span<int> shape = stackalloc int[input.Rank];
            input.Shape.CopyTo(shape);
            T extrapolation = T.CreateChecked(Extrapolation);
            for (int p = 0; p < order.Length; p++)
            {
                int d = order[p];
                int outer = Shapes.Product(shape, 0, d), inner = Shapes.Product(shape, d + 1, shape.Length);
                shape[d] = taps[d]!.OutLength;
                int count = Shapes.Product(shape, 0, shape.Length);
                bool last = p == order.Length - 1;
                ResampleBuffer<T> target;
                if (last && output.DataType == DataTypes.Of<T>())
                {
                    target = new ResampleBuffer<T>(output);
                }
                else
                {
                    next = pool.Rent(count);
                    target = new ResampleBuffer<T>(next, count);
                }
                Resample.Pass(context, source, target, outer, inner, taps[d]!, extrapolation);
                if (last && output.DataType != DataTypes.Of<T>()) WorkingConversion.FromWorking<T>(target.Span, output);
                if (current is not null) pool.Return(current);
                current = next;
                next = null;
                source = target;
            }
        }
        finally
        {
            if (converted is not null) pool.Return(converted);
            if (current is not null) pool.Return(current);
            if (next is not null) pool.Return(next);
        }
    }

    /// <summary>The input coordinate of output position <paramref name="x"/> of an axis.</summary>
    internal double Original(int x, int inLength, int outLength, double scale, double roiStart, double roiEnd)
    {
        // The reference uses scale * input length (not the rounded output length) as the "resized length".
        double resized = scale * inLength;
        switch (Transform)
        {
            case CoordinateTransform.HalfPixel:
                return (x + 0.5) / scale - 0.5;
            case CoordinateTransform.HalfPixelSymmetric:
            {
                double adjustment = outLength / resized;
                double offset = inLength / 2.0 * (1 - adjustment);
                return offset + (x + 0.5) / scale - 0.5;
            }
            case CoordinateTransform.PytorchHalfPixel:
                return outLength > 1 ? (x + 0.5) / scale - 0.5 : 0;
            case CoordinateTransform.AlignCorners:
                return resized == 1 ? 0 : x * (inLength - 1) / (resized - 1);
            case CoordinateTransform.Asymmetric:
                return x / scale;
            case CoordinateTransform.TfHalfPixelForNn:
                return (x + 0.5) / scale;
            default:
            {
                double span = (roiEnd - roiStart) * (inLength - 1);
                double origin = roiStart * (inLength - 1);
                return resized == 1 ? origin + span / 2 : origin + x * span / (resized - 1);
            }
        }
    }

    private bool OutOfRoi(double original, int inLength) =>
        Transform == CoordinateTransform.TfCropAndResize && (original < 0 || original > inLength - 1);

    /// <summary>The source index of every output position of an axis in nearest mode (-1: extrapolate).</summary>
    internal int[] NearestMap(int inLength, int outLength, double scale, double roiStart, double roiEnd)
    {
        var map = new int[outLength];
        for (int x = 0; x < outLength; x++)
        {
            double original = Original(x, inLength, outLength, scale, roiStart, roiEnd);
            if (OutOfRoi(original, inLength))
            {
                map[x] = -1;
                continue;
            }
            double floor = Math.Floor(original);
            double fraction = original - floor;
            double index = fraction == 0 ? original : Rounding switch
            {
                NearestRounding.RoundPreferFloor => fraction <= 0.5 ? floor : floor + 1,
                NearestRounding.RoundPreferCeil => fraction < 0.5 ? floor : floor + 1,
                NearestRounding.Floor => floor,
                _ => floor + 1,
            };
            map[x] = (int)Math.Clamp(index, 0, inLength - 1);
        }
        return map;
    }

    /// <summary>The linear or cubic taps of an axis, with antialiasing and exclude_outside applied.</summary>
    internal AxisTaps Taps(int inLength, int outLength, double scale, double roiStart, double roiEnd)
    {
        // Antialiasing widens the filter by 1/scale when downscaling; the reference takes `start` taps left of base.
        double s = Antialias ? Math.Min(scale, 1.0) : 1.0;
        int start = Mode == ResizeMode.Linear
            ? (Antialias ? (int)Math.Floor(-1 / s) + 1 : 0)
            : (Antialias ? (int)Math.Floor(-2 / s) + 1 : -1);
        int count = 2 - 2 * start;
        var taps = new AxisTaps(inLength, outLength, count);
        Span<double> w = count <= 256 ? stackalloc double[count] : new double[count];
        for (int x = 0; x < outLength; x++)
        {
            double original = Original(x, inLength, outLength, scale, roiStart, roiEnd);
            if (OutOfRoi(original, inLength))
            {
                taps.Extrapolate ??= new bool[outLength];
                taps.Extrapolate[x] = true;
            }
            // base is the input index left of the coordinate, with ratio in (0, 1]: an integer coordinate counts as
            // ratio 1 from the index before it, as in the reference.
            double baseIndex = Math.Ceiling(original) - 1;
            double ratio = original - baseIndex;
            Weights(ratio, s, start, w);
            long b = (long)Math.Clamp(baseIndex, -(double)int.MaxValue / 2, int.MaxValue / 2);
            if (ExcludeOutside)
            {
                double sum = 0;
                for (int k = 0; k < count; k++)
                {
                    long i = b + start + k;
                    if (i < 0 || i >= inLength) w[k] = 0;
                    sum += w[k];
                }
                for (int k = 0; k < count; k++) w[k] /= sum;
            }
            for (int k = 0; k < count; k++)
            {
                taps.Index[x * count + k] = (int)Math.Clamp(b + start + k, 0, inLength - 1);
                taps.Weight[x * count + k] = w[k];
            }
        }
        return taps;
    }

    /// <summary>Filter weights for taps at offsets <paramref name="start"/>.. from the base index.</summary>
    private void Weights(double ratio, double s, int start, Span<double> w)
    {
        double a = CubicA;
        if (!Antialias)
        {
            if (Mode == ResizeMode.Linear)
            {
                w[0] = 1 - ratio;
                w[1] = ratio;
                return;
            }
            // Keys cubic convolution at distances 1 + ratio, ratio, 1 - ratio, 2 - ratio.
            w[0] = ((a * (ratio + 1) - 5 * a) * (ratio + 1) + 8 * a) * (ratio + 1) - 4 * a;
            w[1] = ((a + 2) * ratio - (a + 3)) * ratio * ratio + 1;
            w[2] = ((a + 2) * (1 - ratio) - (a + 3)) * (1 - ratio) * (1 - ratio) + 1;
            w[3] = ((a * (2 - ratio) - 5 * a) * (2 - ratio) + 8 * a) * (2 - ratio) - 4 * a;
            return;
        }
        double total = 0;
        for (int k = 0; k < w.Length; k++)
        {
            double x = Math.Abs(s * (start + k - ratio));
            double v;
            if (Mode == ResizeMode.Linear) v = Math.Clamp(1 - x, 0, 1);
            else if (x <= 1) v = (a + 2) * x * x * x - (a + 3) * x * x + 1;
            else if (x < 2) v = a * x * x * x - 5 * a * x * x + 8 * a * x - 4 * a;
            else v = 0;
            w[k] = v;
            total += v;
        }
        for (int k = 0; k < w.Length; k++) w[k] /= total;
    }

    /// <summary>Parses <c>mode</c>.</summary>
    public static ResizeMode ParseMode(string value, bool allowCubic, Func<string, SquashException> invalid) => value switch
    {
        "nearest" => ResizeMode.Nearest,
        "linear" => ResizeMode.Linear,
        "cubic" when allowCubic => ResizeMode.Cubic,
        _ => throw invalid($"mode '{value}' is not one of nearest, linear{(allowCubic ? ", cubic" : "")}."),
    };
}

/// <summary>
/// Resize: nearest, linear or cubic interpolation of any axes, to sizes or by scales, with every coordinate
/// transformation mode of opsets 10 to 19. Opset 10 behaves as ONNX's 10-to-11 converter defines (asymmetric
/// coordinates, nearest rounding down).
/// </summary>
internal sealed class ResizeOperator : Operator
{
    private readonly Resampler _resampler;
    private readonly bool _v10;

    public ResizeOperator(Node node) : base(node)
    {
        _v10 = node.OpsetVersion is > 0 and < 11;
        var mode = Resampler.ParseMode(Attributes.String("mode", "nearest"), allowCubic: !_v10, Invalid);
        string transform = Attributes.String("coordinate_transformation_mode", "half_pixel");
        string rounding = Attributes.String("nearest_mode", "round_prefer_floor");
        double cubicA = Attributes.Float("cubic_coeff_a", -0.75f);
        bool exclude = Attributes.Int("exclude_outside", 0) != 0;
        float extrapolation = Attributes.Float("extrapolation_value", 0f);
        bool antialias = Attributes.Int("antialias", 0) != 0;
        long[]? axes = Attributes.Ints("axes");
        string policy = Attributes.String("keep_aspect_ratio_policy", "stretch");
        _resampler = new Resampler
        {
            Mode = mode,
            Transform = _v10 ? CoordinateTransform.Asymmetric : transform switch
            {
                "half_pixel" => CoordinateTransform.HalfPixel,
                "half_pixel_symmetric" => CoordinateTransform.HalfPixelSymmetric,
                "pytorch_half_pixel" => CoordinateTransform.PytorchHalfPixel,
                "align_corners" => CoordinateTransform.AlignCorners,
                "asymmetric" => CoordinateTransform.Asymmetric,
                "tf_half_pixel_for_nn" => CoordinateTransform.TfHalfPixelForNn,
                "tf_crop_and_resize" => CoordinateTransform.TfCropAndResize,
                _ => throw Invalid($"coordinate_transformation_mode '{transform}' is not defined."),
            },
            Rounding = _v10 ? NearestRounding.Floor : rounding switch
            {
                "round_prefer_floor" => NearestRounding.RoundPreferFloor,
                "round_prefer_ceil" => NearestRounding.RoundPreferCeil,
                "floor" => NearestRounding.Floor,
                "ceil" => NearestRounding.Ceil,
                _ => throw Invalid($"nearest_mode '{rounding}' is not defined."),
            },
            CubicA = cubicA,
            ExcludeOutside = exclude,
            Extrapolation = extrapolation,
            Antialias = antialias,
            Axes = axes,
            Policy = policy switch
            {
                "stretch" => AspectRatioPolicy.Stretch,
                "not_larger" => AspectRatioPolicy.NotLarger,
                "not_smaller" => AspectRatioPolicy.NotSmaller,
                _ => throw Invalid($"keep_aspect_ratio_policy '{policy}' is not defined."),
            },
        };
    }

    private int ScalesInput => _v10 ? 1 : 2;

    private const int SizesInput = 3;

    public override void InferOutputs(InferenceContext context)
    {
        var type = context.InputType(0);
        if (!DataTypes.IsSupported(type)) throw Unsupported($"{DataTypes.Name(type)} tensors are not supported.");
        if (_resampler.Mode != ResizeMode.Nearest && type == DataType.Bool)
            throw Invalid("linear and cubic modes need numeric data, not bool.");
        var input = context.InputShape(0);
        if (input is null)
        {
            context.SetOutput(0, type, null);
            return;
        }
        var scales = Known(context, ScalesInput);
        var sizes = _v10 ? null : Known(context, SizesInput);
        if (scales is not null && sizes is not null) throw Invalid("give scales or sizes, not both.");
        if (scales is null && sizes is null)
        {
            if (!HasValues(context, ScalesInput) && !(!_v10 && HasValues(context, SizesInput))) throw Invalid("needs scales or sizes.");
            // Computed at run time: the resized axes are unknown until then.
            var unknown = (int[])input.Clone();
            foreach (int d in _resampler.NormalizedAxes(input.Length, Invalid)) unknown[d] = -1;
            context.SetOutput(0, type, unknown);
            return;
        }
        var (shape, _) = _resampler.Plan(input, scales is null ? null : ToDoubles(scales), sizes?.ToInt64Array(), Invalid);
        context.SetOutput(0, type, shape);
    }

    /// <summary>The values of a scales or sizes input when given, known and non-empty.</summary>
    private static Tensor? Known(InferenceContext context, int index) =>
        context.HasInput(index) && context.InputValue(index) is { ElementCount: > 0 } value ? value : null;

    /// <summary>True when the input is given and not known to be empty (an empty tensor means "not given").</summary>
    private static bool HasValues(InferenceContext context, int index)
    {
        if (!context.HasInput(index)) return false;
        if (context.InputValue(index) is { } v) return v.ElementCount > 0;
        var shape = context.InputShape(index);
        return shape is null || shape.Length != 1 || shape[0] != 0;
    }

    private static double[] ToDoubles(Tensor t)
    {
        var values = new double[t.ElementCount];
        for (int i = 0; i < values.Length; i++) values[i] = t.GetAsDouble(i);
        return values;
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var input = Required(inputs, 0);
        var scalesInput = Optional(inputs, ScalesInput) is { ElementCount: > 0 } s ? s : null;
        var sizesInput = !_v10 && Optional(inputs, SizesInput) is { ElementCount: > 0 } z ? z : null;
        var roiInput = _v10 ? null : Optional(inputs, 1);
        var cached = Volatile.Read(ref _cached);
        if (cached is null || !cached.Matches(input.Shape, scalesInput, sizesInput, roiInput))
        {
            var scales = scalesInput is null ? null : ToDoubles(scalesInput);
            var sizes = sizesInput?.ToInt64Array();
            if (scales is not null && sizes is not null) throw Invalid("give scales or sizes, not both.");
            if (scales is null && sizes is null) throw Invalid("needs scales or sizes.");
            var (shape, factors) = _resampler.Plan(input.Shape, scales, sizes, Invalid);
            var (start, end) = _resampler.Roi(input.Rank, roiInput, Invalid);
            cached = new Cached((int[])input.Shape.Clone(), scales, sizes, roiInput is null ? null : ToDoubles(roiInput), shape,
                _resampler.Prepare(input.DataType, input.Shape, shape, factors, start, end));
            Volatile.Write(ref _cached, cached);
        }
        if (!Shapes.Equal(cached.Output, outputs[0].Shape))
            throw Invalid($"output shape {Shapes.Format(outputs[0].Shape)} does not match the resize to {Shapes.Format(cached.Output)}.");
        _resampler.Run(context, cached.Prepared, input, outputs[0], _invalid ??= Invalid);
    }

    private Cached? _cached;
    private Func<string, SquashException>? _invalid; // a method group converted per call would allocate a delegate

    /// <summary>The resampling prepared for the last input shape and scales, sizes and roi values, so that a model
    /// that resizes by constants allocates nothing per run.</summary>
    private sealed record Cached(int[] Input, double[]? Scales, long[]? Sizes, double[]? Roi, int[] Output, Resampler.Prepared Prepared)
    {
        public bool Matches(int[] input, Tensor? scales, Tensor? sizes, Tensor? roi)
        {
            if (!Shapes.Equal(Input, input) || (Sizes is null) != (sizes is null)) return false;
            if (!SameValues(Scales, scales) || !SameValues(Roi, roi)) return false;
            if (Sizes is null) return true;
            if (Sizes.Length != sizes!.ElementCount) return false;
            for (int i = 0; i < Sizes.Length; i++)
                if (Sizes[i] != sizes.GetAsInt64(i)) return false;
            return true;
        }

        private static bool SameValues(double[]? values, Tensor? tensor)
        {
            if (values is null || tensor is null) return values is null && tensor is null;
            if (values.Length != tensor.ElementCount) return false;
            for (int i = 0; i < values.Length; i++)
                if (!values[i].Equals(tensor.GetAsDouble(i))) return false;
            return true;
        }
    }
}

/// <summary>
/// Upsample (opsets 7 to 9; deprecated in favour of Resize): nearest or linear by scales, with asymmetric
/// coordinates and nearest rounding down, as ONNX's Upsample-to-Resize conversion defines.
/// </summary>
internal sealed class UpsampleOperator : Operator
{
    private readonly Resampler _resampler;
    private readonly double[]? _scales;

    public UpsampleOperator(Node node) : base(node)
    {
        var mode = Resampler.ParseMode(Attributes.String("mode", "nearest"), allowCubic: false, Invalid);
        var scales = Attributes.Floats("scales");
        bool fromInput = node.OpsetVersion is 0 or >= 9;
        if (!fromInput && scales is null) throw Invalid("needs the scales attribute.");
        if (fromInput && scales is not null) throw Invalid("takes scales as an input from opset 9, not as an attribute.");
        _scales = scales is null ? null : Array.ConvertAll(scales, v => (double)v);
        _resampler = new Resampler { Mode = mode, Transform = CoordinateTransform.Asymmetric, Rounding = NearestRounding.Floor };
    }

    public override void InferOutputs(InferenceContext context)
    {
        var type = context.InputType(0);
        if (!DataTypes.IsSupported(type)) throw Unsupported($"{DataTypes.Name(type)} tensors are not supported.");
        if (_resampler.Mode != ResizeMode.Nearest && type == DataType.Bool)
            throw Invalid("linear mode needs numeric data, not bool.");
        var input = context.InputShape(0);
        var scales = _scales ?? (context.InputValue(1) is { } t ? Scales(t) : null);
        if (input is null || scales is null)
        {
            context.SetOutput(0, type, input is null ? null : Enumerable.Repeat(-1, input.Length).ToArray());
            return;
        }
        CheckAtLeastOne(scales);
        context.SetOutput(0, type, _resampler.Plan(input, scales, null, Invalid).Shape);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var input = Required(inputs, 0);
        var scales = _scales ?? Scales(Required(inputs, 1));
        CheckAtLeastOne(scales);
        var (_, factors) = _resampler.Plan(input.Shape, scales, null, Invalid);
        var (start, end) = _resampler.Roi(input.Rank, null, Invalid);
        _resampler.Run(context, input, outputs[0], factors, start, end, Invalid);
    }

    private static double[] Scales(Tensor t)
    {
        var values = new double[t.ElementCount];
        for (int i = 0; i < values.Length; i++) values[i] = t.GetAsDouble(i);
        return values;
    }

    private void CheckAtLeastOne(double[] scales)
    {
        foreach (double s in scales)
            if (!(s >= 1)) throw Invalid($"scale {s} is less than 1; Upsample only enlarges.");
    }
}
