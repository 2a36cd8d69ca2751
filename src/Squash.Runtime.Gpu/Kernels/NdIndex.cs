using ILGPU;

namespace Squash.Runtime.Gpu.Kernels;

/// <summary>Up to six dimensions, outermost first; shorter shapes are padded with leading 1s. Kernels take shapes by
/// value (they land in constant/parameter memory) and decompose flat indices with a fixed, unrolled sequence.</summary>
public struct Dims6
{
    /// <summary>Dimension sizes, outermost first.</summary>
    public int D0, D1, D2, D3, D4, D5;
}

/// <summary>Element strides of one tensor along the dimensions of a <see cref="Dims6"/> (0 where it broadcasts).</summary>
public struct Strides6
{
    /// <summary>Strides, outermost first.</summary>
    public int S0, S1, S2, S3, S4, S5;
}

/// <summary>Flat index to element offsets, on the device.</summary>
internal static class NdIndex
{
    /// <summary>Offset in a tensor with strides <paramref name="s"/> of element <paramref name="index"/> of the
    /// row-major iteration space <paramref name="d"/>.</summary>
    public static int Offset(int index, Dims6 d, Strides6 s)
    {
        int r = index;
        int c = r % d.D5; r /= d.D5; int o = c * s.S5;
        c = r % d.D4; r /= d.D4; o += c * s.S4;
        c = r % d.D3; r /= d.D3; o += c * s.S3;
        c = r % d.D2; r /= d.D2; o += c * s.S2;
        c = r % d.D1; r /= d.D1; o += c * s.S1;
        return o + r * s.S0;
    }

    /// <summary>Offsets of element <paramref name="index"/> in two tensors (one decomposition for both).</summary>
    public static void Offsets(int index, Dims6 d, Strides6 a, Strides6 b, out int oa, out int ob)
    {
        int r = index;
        int c = r % d.D5; r /= d.D5; oa = c * a.S5; ob = c * b.S5;
        c = r % d.D4; r /= d.D4; oa += c * a.S4; ob += c * b.S4;
        c = r % d.D3; r /= d.D3; oa += c * a.S3; ob += c * b.S3;
        c = r % d.D2; r /= d.D2; oa += c * a.S2; ob += c * b.S2;
        c = r % d.D1; r /= d.D1; oa += c * a.S1; ob += c * b.S1;
        oa += r * a.S0;
        ob += r * b.S0;
    }
}

/// <summary>Host side: turns a shape and per-tensor strides into the fewest dimensions (at most six) that describe
/// the same iteration.</summary>
internal static class NdLayout
{
    /// <summary>Row-major strides of <paramref name="shape"/>.</summary>
    public static long[] RowMajorStrides(int[] shape)
    {
        var s = new long[shape.Length];
        long stride = 1;
        for (int k = shape.Length - 1; k >= 0; k--) { s[k] = stride; stride *= shape[k]; }
        return s;
    }

    /// <summary>Strides of an input of <paramref name="inputShape"/> broadcast (numpy rules) to
    /// <paramref name="outputShape"/>: 0 along the dimensions it repeats.</summary>
    public static long[] BroadcastStrides(int[] inputShape, int[] outputShape)
    {
        var own = RowMajorStrides(inputShape);
        var s = new long[outputShape.Length];
        int shift = outputShape.Length - inputShape.Length;
        for (int k = 0; k < inputShape.Length; k++)
            s[k + shift] = inputShape[k] == 1 && outputShape[k + shift] != 1 ? 0 : own[k];
        return s;
    }

    /// <summary>Drops size-1 dimensions and merges neighbours that every tensor walks contiguously, then pads to six.</summary>
    /// <exception cref="NotOnDeviceException">More than six dimensions remain.</exception>
    public static (Dims6 Dims, Strides6[] Strides) Collapse(int[] shape, params long[][] strides)
    {
        var dims = new List<long>();
        var st = strides.Select(_ => new List<long>()).ToArray();
        for (int k = 0; k < shape.Length; k++)
        {
            if (shape[k] == 1) continue;
            int last = dims.Count - 1;
            bool merge = last >= 0;
            for (int t = 0; t < strides.Length && merge; t++)
                merge = st[t][last] == strides[t][k] * shape[k];
            if (merge)
            {
                dims[last] *= shape[k];
                for (int t = 0; t < strides.Length; t++) st[t][last] = strides[t][k];
            }
            else
            {
                dims.Add(shape[k]);
                for (int t = 0; t < strides.Length; t++) st[t].Add(strides[t][k]);
            }
        }
        if (dims.Count > 6) throw new NotOnDeviceException($"the iteration needs {dims.Count} dimensions after merging (the device kernels take six)");
        while (dims.Count < 6)
        {
            dims.Insert(0, 1);
            foreach (var s in st) s.Insert(0, 0);
        }
        var d = new Dims6 { D0 = Int(dims[0]), D1 = Int(dims[1]), D2 = Int(dims[2]), D3 = Int(dims[3]), D4 = Int(dims[4]), D5 = Int(dims[5]) };
        var result = st.Select(s => new Strides6 { S0 = Int(s[0]), S1 = Int(s[1]), S2 = Int(s[2]), S3 = Int(s[3]), S4 = Int(s[4]), S5 = Int(s[5]) }).ToArray();
        return (d, result);
    }

    private static int Int(long v) => checked((int)v);
}

/// <summary>The elements a one-dimensional launch covers: thread t handles elements t, t + Stride, ... below Count
/// (a grid-stride loop), so the launch size can be capped at what the device runs at once.</summary>
public struct Range1D
{
    /// <summary>Number of elements.</summary>
    public int Count;

    /// <summary>Number of threads launched.</summary>
    public int Stride;
}
