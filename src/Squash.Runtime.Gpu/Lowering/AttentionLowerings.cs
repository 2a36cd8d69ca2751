using ILGPU;
using ILGPU.Runtime;
using Squash.Runtime.Gpu.Execution;
using Squash.Runtime.Gpu.Kernels;
using static Squash.Runtime.Gpu.Execution.LoweringContext;

namespace Squash.Runtime.Gpu.Lowering;

/// <summary>Squash's fused attention (com.squash Attention: decoder attention over the KV cache, grouped-query heads).</summary>
internal static class AttentionLowerings
{
    public static void Register(Dictionary<string, Lowering> t) => t["Attention"] = Attention;

    private static GpuStep Attention(LoweringContext c)
    {
        c.RequireFloat(dataInputs: 3);
        var q = c.RequiredInput(0);
        var k = c.RequiredInput(1);
        var v = c.RequiredInput(2);
        var mask = c.Input(3);
        var y = c.Output(0);
        int[] qs = Shape(q), ks = Shape(k), vs = Shape(v);
        var p = new AttentionParams
        {
            QueryHeads = qs[1], KeyValueHeads = ks[1], QueryLength = qs[2], KeyLength = ks[2], HeadSize = qs[3], ValueSize = vs[3],
            Group = qs[1] / ks[1], Rows = qs[0] * qs[1] * qs[2], Tile = AttentionKernels.Tile,
            Scale = c.Node.Attributes.ContainsKey("scale") ? Attr.Float(c.Node, "scale", 1f) : 1f / MathF.Sqrt(qs[3]),
        };
        if (p.Rows == 0 || p.ValueSize == 0) return ElementwiseLowerings.Nothing;
        // One-element stand-ins keep the kernel's arguments the same for the mask kinds it does not read.
        var maskBool = c.Upload(new byte[1]);
        var maskAdd = c.Upload(new float[1]);
        if (mask is not null)
        {
            var ms = Shape(mask);
            int[] target = [qs[0], qs[1], qs[2], ks[2]];
            var own = Shapes.Strides(ms);
            var strides = new int[4];
            for (int d = 0; d < 4; d++)
            {
                int m = d - (4 - ms.Length);
                // The CPU operator has checked that the mask broadcasts.
                strides[d] = m < 0 || ms[m] == 1 ? 0 : own[m];
            }
            (p.MaskB, p.MaskH, p.MaskS, p.MaskT) = (strides[0], strides[1], strides[2], strides[3]);
            if (mask.Type == DataType.Bool)
            {
                p.MaskKind = 1;
                maskBool = c.Bytes(mask);
            }
            else
            {
                p.MaskKind = 2;
                maskAdd = c.View<float>(mask);
            }
        }
        int threads = c.Kernels.IsEmulator ? AttentionKernels.EmulatorThreads : AttentionKernels.GpuThreads;
        var config = new KernelConfig(new Index3D(Math.Min(p.Rows, c.Kernels.MaxGroups), 1, 1), new Index3D(threads, 1, 1),
            SharedMemoryConfig.RequestDynamic<float>(AttentionKernels.SharedFloats(p.ValueSize)));
        var vq = c.View<float>(q);
        var vk = c.View<float>(k);
        var vv = c.View<float>(v);
        var vy = c.View<float>(y);
        var kernel = c.Kernels.Grouped<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<byte>, ArrayView<float>, ArrayView<float>, AttentionParams>(AttentionKernels.Attention);
        return new ActionStep(s => kernel(s, config, vq, vk, vv, maskBool, maskAdd, vy, p));
    }
}
