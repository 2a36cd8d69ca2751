using ILGPU;
using ILGPU.Runtime;
using Squash.Runtime.Gpu.Execution;
using Squash.Runtime.Gpu.Kernels;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Gpu.Lowering;

/// <summary>Squash's int4 operators (domain com.squash): MatMulNBits, with the dequantization fused into the product.</summary>
internal static class Int4Lowerings
{
    public static void Register(Dictionary<string, Lowering> t) => t["MatMulNBits"] = MatMulNBits;

    private static GpuStep MatMulNBits(LoweringContext c)
    {
        var a = c.RequiredInput(0);
        var y = c.Output(0);
        if (a.Type != DataType.Float) throw new NotOnDeviceException($"'{a.Name}' is {DataTypes.Name(a.Type)}; the int4 kernel takes fp32 activations");
        var layout = new Int4Layout((int)Attr.Int(c.Node, "K", 0), (int)Attr.Int(c.Node, "N", 0), (int)Attr.Int(c.Node, "block_size", 0));
        var data = c.ConstantInput(1, "packed values");
        var scales = c.ConstantInput(2, "scales").AsSpan<System.Half>();
        var zeroPoints = c.Input(3) is null ? default : c.ConstantInput(3, "zero points").AsSpan<byte>();
        // Scales and zero points as floats, interleaved so a thread reads its pair from one place: converted once,
        // here, so the kernel needs no float16 arithmetic (which OpenCL devices may lack).
        var table = new float[2 * layout.ScaleCount];
        for (int s = 0; s < layout.ScaleCount; s++)
        {
            table[2 * s] = (float)scales[s];
            table[2 * s + 1] = zeroPoints.IsEmpty ? Int4Layout.SymmetricZeroPoint : (zeroPoints[s / 2] >> (s % 2 * 4)) & 15;
        }
        int count = LoweringContext.Count(y);
        if (count == 0) return ElementwiseLowerings.Nothing;
        var bias = c.Input(4);
        var va = c.View<float>(a);
        var vy = c.View<float>(y);
        var vdata = c.Bytes(c.RequiredInput(1));
        var vtable = c.Upload(table);
        // A one-element stand-in keeps the kernel's arguments the same without a bias.
        var vbias = bias is null ? c.Upload(new float[1]) : c.View<float>(bias);
        var dims = new Int4Dims(layout.K, layout.N, layout.Blocks, layout.BlockBytes, bias is null ? 0 : 1);
        var kernel = c.Kernels.Auto<ArrayView<float>, ArrayView<byte>, ArrayView<float>, ArrayView<float>, ArrayView<float>, Int4Dims>(Int4Kernels.MatMulNBits);
        return new ActionStep(s => kernel(s, count, va, vdata, vtable, vbias, vy, dims));
    }
}
