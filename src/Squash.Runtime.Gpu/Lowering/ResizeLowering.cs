using ILGPU;
using Squash.Runtime.Gpu.Execution;
using Squash.Runtime.Gpu.Kernels;
using static Squash.Runtime.Gpu.Execution.LoweringContext;

namespace Squash.Runtime.Gpu.Lowering;

/// <summary>
/// Resize (opsets 10+) and Upsample in nearest and linear modes over the last two axes. The per-axis source indices and
/// weights are computed on the host once, with the formulas of ONNX's reference (the CPU operator's), and uploaded
/// as tables; the kernels only look them up.
/// </summary>
internal static class ResizeLowering
{
    public static GpuStep Lower(LoweringContext c)
    {
        var node = c.Node;
        var x = c.RequiredInput(0);
        var y = c.Output(0);
        int[] inShape = Shape(x), outShape = Shape(y);
        int rank = inShape.Length;
        if (rank < 2) throw new NotOnDeviceException("resizing fewer than two axes");
        for (int d = 0; d < rank - 2; d++)
            if (inShape[d] != outShape[d]) throw new NotOnDeviceException("only the last two axes are resized on the device");
        bool upsample = node.OpType == "Upsample";
        bool v10 = !upsample && node.OpsetVersion is > 0 and < 11;
        string mode = Attr.String(node, "mode", "nearest");
        string transform = upsample || v10 ? "asymmetric" : Attr.String(node, "coordinate_transformation_mode", "half_pixel");
        string rounding = upsample || v10 ? "floor" : Attr.String(node, "nearest_mode", "round_prefer_floor");
        if (mode is not ("nearest" or "linear")) throw new NotOnDeviceException($"mode '{mode}'");
        if (transform == "tf_crop_and_resize") throw new NotOnDeviceException("tf_crop_and_resize");
        if (Attr.Int(node, "antialias", 0) != 0) throw new NotOnDeviceException("antialias");
        if (Attr.String(node, "keep_aspect_ratio_policy", "stretch") != "stretch") throw new NotOnDeviceException("keep_aspect_ratio_policy");

        var scales = Scales(c, upsample, v10, inShape, outShape);
        // The leading axes are copied; ONNX's formulas still apply to them (tf_half_pixel_for_nn with ceil rounding
        // moves even an unscaled axis), so they must map each position to itself.
        for (int d = 0; d < rank - 2; d++)
        {
            bool identity = mode == "nearest"
                ? NearestMap(inShape[d], outShape[d], scales[d], transform, rounding).Select((v, i) => v == i).All(b => b)
                : LinearTaps(inShape[d], outShape[d], scales[d], transform) is var (ti, tw) && Enumerable.Range(0, outShape[d]).All(i => Weighted(ti, tw, i, outShape[d]) == i);
            if (!identity) throw new NotOnDeviceException($"{transform} moves the unscaled axis {d}");
        }
        int h = inShape[^2], w = inShape[^1], oh = outShape[^2], ow = outShape[^1];
        var p = new ResizeParams { H = h, W = w, OutH = oh, OutW = ow };
        int n = Count(y);
        if (n == 0) return ElementwiseLowerings.Nothing;
        if (h == 0 || w == 0) throw new NotOnDeviceException("resizing an empty axis");

        if (mode == "nearest")
        {
            int[] map = [.. NearestMap(h, oh, scales[rank - 2], transform, rounding), .. NearestMap(w, ow, scales[rank - 1], transform, rounding)];
            var table = c.Upload(map);
            return DataTypes.SizeOf(x.Type) switch
            {
                1 => Nearest<byte>(c, table, p),
                2 => Nearest<ushort>(c, table, p),
                4 => Nearest<uint>(c, table, p),
                _ => Nearest<ulong>(c, table, p),
            };
        }
        c.RequireFloat(dataInputs: 1);
        var (hi, hw) = LinearTaps(h, oh, scales[rank - 2], transform);
        var (wi, ww) = LinearTaps(w, ow, scales[rank - 1], transform);
        var index = c.Upload<int>([.. hi, .. wi]);
        var weight = c.Upload<float>([.. hw, .. ww]);
        var vx = c.View<float>(x);
        var vy = c.View<float>(y);
        var k = c.Kernels.Auto<ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ResizeParams>(MovementKernels.ResizeLinear);
        return new ActionStep(s => k(s, n, vx, vy, index, weight, p));
    }

    /// <summary>The single input position output <paramref name="i"/> reads with weight 1, or -1.</summary>
    private static int Weighted(int[] index, float[] weight, int i, int count) =>
        weight[i] == 1 && (weight[count + i] == 0 || index[count + i] == index[i]) ? index[i]
        : weight[count + i] == 1 && weight[i] == 0 ? index[count + i] : -1;

    private static GpuStep Nearest<T>(LoweringContext c, ArrayView<int> table, ResizeParams p) where T : unmanaged
    {
        var vx = c.Bytes(c.RequiredInput(0)).Cast<T>();
        var vy = c.Bytes(c.Output(0)).Cast<T>();
        int n = Count(c.Output(0));
        var k = c.Kernels.Auto<ArrayView<T>, ArrayView<T>, ArrayView<int>, ResizeParams>(MovementKernels.ResizeNearest<T>);
        return new ActionStep(s => k(s, n, vx, vy, table, p));
    }

    /// <summary>The scale of every axis: from the scales input or attribute when given, else output / input.</summary>
    private static double[] Scales(LoweringContext c, bool upsample, bool v10, int[] inShape, int[] outShape)
    {
        int rank = inShape.Length;
        var scales = new double[rank];
        for (int d = 0; d < rank; d++) scales[d] = inShape[d] > 0 ? (double)outShape[d] / inShape[d] : 1;
        double[]? given = null;
        if (upsample)
        {
            given = Attr.Floats(c.Node, "scales")?.Select(v => (double)v).ToArray()
                ?? (c.Input(1) is null ? null : Doubles(c.ConstantInput(1, "scales")));
        }
        else
        {
            int scalesInput = v10 ? 1 : 2;
            if (c.Input(scalesInput) is { } s && (s.Constant?.ElementCount ?? 1) > 0)
                given = Doubles(c.ConstantInput(scalesInput, "scales"));
        }
        if (given is null) return scales;
        var axes = Attr.Ints(c.Node, "axes")?.Select(a => c.Axis(a, rank)).ToArray() ?? [.. Enumerable.Range(0, rank)];
        for (int k = 0; k < axes.Length; k++) scales[axes[k]] = given[k];
        return scales;
    }

    private static double[] Doubles(Tensor t)
    {
        var v = new double[t.ElementCount];
        for (int i = 0; i < v.Length; i++) v[i] = t.GetAsDouble(i);
        return v;
    }

    /// <summary>Input coordinate of output position <paramref name="x"/> (ONNX coordinate_transformation_mode).</summary>
    private static double Original(int x, int inLength, int outLength, double scale, string transform)
    {
        double resized = scale * inLength;
        return transform switch
        {
            "half_pixel" => (x + 0.5) / scale - 0.5,
            "half_pixel_symmetric" => inLength / 2.0 * (1 - outLength / resized) + (x + 0.5) / scale - 0.5,
            "pytorch_half_pixel" => outLength > 1 ? (x + 0.5) / scale - 0.5 : 0,
            "align_corners" => resized == 1 ? 0 : x * (inLength - 1) / (resized - 1),
            "asymmetric" => x / scale,
            "tf_half_pixel_for_nn" => (x + 0.5) / scale,
            _ => throw new NotOnDeviceException($"coordinate_transformation_mode '{transform}'"),
        };
    }

    private static int[] NearestMap(int inLength, int outLength, double scale, string transform, string rounding)
    {
        var map = new int[outLength];
        for (int x = 0; x < outLength; x++)
        {
            double original = Original(x, inLength, outLength, scale, transform);
            double floor = Math.Floor(original);
            double fraction = original - floor;
            double index = fraction == 0 ? original : rounding switch
            {
                "round_prefer_floor" => fraction <= 0.5 ? floor : floor + 1,
                "round_prefer_ceil" => fraction < 0.5 ? floor : floor + 1,
                "floor" => floor,
                _ => floor + 1,
            };
            map[x] = (int)Math.Clamp(index, 0, inLength - 1);
        }
        return map;
    }

    /// <summary>Two taps per output position: indices (all first taps, then all second) and weights alike. The base
    /// is the index left of the coordinate with the ratio in (0, 1], as in the reference.</summary>
    private static (int[] Index, float[] Weight) LinearTaps(int inLength, int outLength, double scale, string transform)
    {
        var index = new int[2 * outLength];
        var weight = new float[2 * outLength];
        for (int x = 0; x < outLength; x++)
        {
            double original = Original(x, inLength, outLength, scale, transform);
            double baseIndex = Math.Ceiling(original) - 1;
            double ratio = original - baseIndex;
            long b = (long)Math.Clamp(baseIndex, -(double)int.MaxValue / 2, int.MaxValue / 2);
            index[x] = (int)Math.Clamp(b, 0, inLength - 1);
            index[outLength + x] = (int)Math.Clamp(b + 1, 0, inLength - 1);
            weight[x] = (float)(1 - ratio);
            weight[outLength + x] = (float)ratio;
        }
        return (index, weight);
    }
}
