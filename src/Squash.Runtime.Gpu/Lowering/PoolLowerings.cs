using ILGPU;
using Squash.Runtime.Gpu.Execution;
using Squash.Runtime.Gpu.Kernels;
using static Squash.Runtime.Gpu.Execution.LoweringContext;

namespace Squash.Runtime.Gpu.Lowering;

/// <summary>MaxPool (fp32, and uint8/int8 in int8 models), AveragePool (1-D and 2-D); the global pools are row reductions (<see cref="ReduceLowerings"/>).</summary>
internal static class PoolLowerings
{
    public static void Register(Dictionary<string, Lowering> t)
    {
        t["MaxPool"] = c => Pool(c, max: true);
        t["AveragePool"] = c => Pool(c, max: false);
    }

    private static GpuStep Pool(LoweringContext c, bool max)
    {
        if (c.Node.Outputs.Count > 1) throw new NotOnDeviceException("the Indices output is not computed on the device");
        var x = c.RequiredInput(0);
        var y = c.Output(0);
        bool bytes = max && x.Type is DataType.UInt8 or DataType.Int8;
        if (!bytes) c.RequireFloat();
        var win = Window.Read(c.Node, Shape(x), Shape(y));
        var (_, _, h, w) = Window.Nchw(Shape(x));
        var (_, _, oh, ow) = Window.Nchw(Shape(y));
        var p = new PoolParams
        {
            H = h, W = w, OutH = oh, OutW = ow, KH = win.KH, KW = win.KW, StrideH = win.StrideH, StrideW = win.StrideW,
            PadH = win.PadH, PadW = win.PadW, DilationH = win.DilationH, DilationW = win.DilationW,
            PadEndH = win.PadEndH, PadEndW = win.PadEndW, CountIncludePad = (int)Attr.Int(c.Node, "count_include_pad", 0),
        };
        int n = Count(y);
        if (n == 0) return ElementwiseLowerings.Nothing;
        if (bytes)
        {
            var bx = c.Bytes(x);
            var by = c.Bytes(y);
            int signed = x.Type == DataType.Int8 ? 1 : 0;
            var kb = c.Kernels.Auto<ArrayView<byte>, ArrayView<byte>, PoolParams, int>(PoolKernels.MaxBytes);
            return new ActionStep(s => kb(s, n, bx, by, p, signed));
        }
        var vx = c.View<float>(x);
        var vy = c.View<float>(y);
        var k = c.Kernels.Auto<ArrayView<float>, ArrayView<float>, PoolParams>(max ? PoolKernels.Max : PoolKernels.Average);
        return new ActionStep(s => k(s, n, vx, vy, p));
    }
}
