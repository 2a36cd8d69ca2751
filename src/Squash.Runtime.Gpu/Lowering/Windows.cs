using Squash.Runtime.Ir;

namespace Squash.Runtime.Gpu.Lowering;

/// <summary>Sliding-window geometry (Conv, pooling) of a 1-D or 2-D window, 1-D treated as height 1.</summary>
internal readonly record struct Window(int KH, int KW, int StrideH, int StrideW, int PadH, int PadW, int DilationH, int DilationW, int PadEndH, int PadEndW)
{
    /// <summary>Reads kernel_shape (or <paramref name="kernel"/>), strides, dilations, pads and auto_pad; the output
    /// shape is known, so SAME padding is derived from it.</summary>
    public static Window Read(Node node, int[] input, int[] output, int[]? kernel = null)
    {
        int spatial = input.Length - 2;
        if (spatial is < 1 or > 2) throw new NotOnDeviceException($"{spatial}-D windows are not implemented on the device (1-D and 2-D are)");
        int[] k = kernel ?? [.. (Attr.Ints(node, "kernel_shape") ?? throw new NotOnDeviceException("kernel_shape is missing")).Select(v => (int)v)];
        int[] s = Ints(node, "strides", spatial, 1);
        int[] d = Ints(node, "dilations", spatial, 1);
        string autoPad = Attr.String(node, "auto_pad", "NOTSET");
        var begin = new int[spatial];
        var end = new int[spatial];
        for (int a = 0; a < spatial; a++)
        {
            int inSize = input[2 + a], outSize = output[2 + a];
            switch (autoPad)
            {
                case "SAME_UPPER" or "SAME_LOWER":
                    int total = Math.Max(0, (outSize - 1) * s[a] + (k[a] - 1) * d[a] + 1 - inSize);
                    begin[a] = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2;
                    end[a] = total - begin[a];
                    break;
                case "VALID":
                    break;
                default:
                    var pads = Attr.Ints(node, "pads");
                    if (pads is not null)
                    {
                        begin[a] = (int)pads[a];
                        end[a] = (int)pads[a + spatial];
                    }
                    break;
            }
        }
        return spatial == 1
            ? new Window(1, k[0], 1, s[0], 0, begin[0], 1, d[0], 0, end[0])
            : new Window(k[0], k[1], s[0], s[1], begin[0], begin[1], d[0], d[1], end[0], end[1]);
    }

    private static int[] Ints(Node node, string name, int count, int defaultValue)
    {
        var v = Attr.Ints(node, name);
        return v is null ? Enumerable.Repeat(defaultValue, count).ToArray() : [.. v.Select(x => (int)x)];
    }

    /// <summary>(N, C, H, W) of a rank-3 or rank-4 shape (rank 3: H = 1).</summary>
    public static (int N, int C, int H, int W) Nchw(int[] shape) =>
        shape.Length == 3 ? (shape[0], shape[1], 1, shape[2]) : (shape[0], shape[1], shape[2], shape[3]);
}
