using ILGPU;
using ILGPU.Runtime;
using Squash.Runtime.Gpu.Execution;
using Squash.Runtime.Gpu.Kernels;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Gpu.Lowering;

/// <summary>Squash's int4 operators (domain com.squash): MatMulNBits, with the dequantization fused into the product,
/// and GatherNBits (embedding lookup), which dequantizes only the rows it reads.</summary>
internal static class Int4Lowerings
{
    /// <summary>Rows of A up to which MatMulNBits runs one group per four columns (<see cref="Int4Kernels.MatMulNBitsRows"/>);
    /// beyond, one thread per output has threads enough.</summary>
    private const int RowKernelMaxRows = 16;

    public static void Register(Dictionary<string, Lowering> t)
    {
        t["MatMulNBits"] = MatMulNBits;
        t["GatherNBits"] = GatherNBits;
    }

    private static GpuStep MatMulNBits(LoweringContext c)
    {
        var a = c.RequiredInput(0);
        var y = c.Output(0);
        if (a.Type != DataType.Float) throw new NotOnDeviceException($"'{a.Name}' is {DataTypes.Name(a.Type)}; the int4 kernel takes fp32 activations");
        var (layout, vdata, vtable) = Packed(c, data: 1);
        int count = LoweringContext.Count(y);
        if (count == 0) return ElementwiseLowerings.Nothing;
        var bias = c.Input(4);
        var va = c.View<float>(a);
        var vy = c.View<float>(y);
        // A one-element stand-in keeps the kernel's arguments the same without a bias.
        var vbias = bias is null ? c.Upload(new float[1]) : c.View<float>(bias);
        var dims = new Int4Dims(layout.K, layout.N, layout.Blocks, layout.BlockBytes, bias is null ? 0 : 1);
        int m = count / layout.N;
        // The codes as words: a block's 16 to 128 bytes (block sizes 32 to 256) are whole words.
        var words = vdata.Cast<uint>();
        if (m <= RowKernelMaxRows)
        {
            // A decode step (or a few rows): one group per four columns, threads along K.
            int threads = Math.Clamp((int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)(4 * layout.Blocks)), 4,
                c.Kernels.IsEmulator ? RowKernels.EmulatorThreads : 256);
            var p = new Int4RowParams(dims, threads, m * ((layout.N + 3) / 4));
            var config = new KernelConfig(new Index3D(Math.Min(p.Rows, c.Kernels.MaxGroups), 1, 1), new Index3D(threads, 1, 1),
                SharedMemoryConfig.RequestDynamic<float>(threads));
            var rows = c.Kernels.Grouped<ArrayView<float>, ArrayView<uint>, ArrayView<float>, ArrayView<float>, ArrayView<float>, Int4RowParams>(Int4Kernels.MatMulNBitsRows);
            return new ActionStep(s => rows(s, config, va, words, vtable, vbias, vy, p));
        }
        var kernel = c.Kernels.Auto<ArrayView<float>, ArrayView<uint>, ArrayView<float>, ArrayView<float>, ArrayView<float>, Int4Dims>(Int4Kernels.MatMulNBits);
        return new ActionStep(s => kernel(s, count, va, words, vtable, vbias, vy, dims));
    }

    private static GpuStep GatherNBits(LoweringContext c)
    {
        var (layout, vdata, vtable) = Packed(c, data: 0);
        var indices = c.RequiredInput(1);
        var y = c.Output(0);
        int count = LoweringContext.Count(y);
        if (count == 0) return ElementwiseLowerings.Nothing;
        var vy = c.View<float>(y);
        var dims = new Int4Dims(layout.K, layout.N, layout.Blocks, layout.BlockBytes, 0);
        if (indices.Type == DataType.Int64)
        {
            var k = c.Kernels.Auto<ArrayView<byte>, ArrayView<float>, ArrayView<float>, Int64Indices, Int4Dims>(Int4Kernels.GatherNBits<Int64Indices>);
            var ix = new Int64Indices { Values = c.View<long>(indices) };
            return new ActionStep(s => k(s, count, vdata, vtable, vy, ix, dims));
        }
        var k32 = c.Kernels.Auto<ArrayView<byte>, ArrayView<float>, ArrayView<float>, Int32Indices, Int4Dims>(Int4Kernels.GatherNBits<Int32Indices>);
        var ix32 = new Int32Indices { Values = c.View<int>(indices) };
        return new ActionStep(s => k32(s, count, vdata, vtable, vy, ix32, dims));
    }

    /// <summary>The packed weight of the node (values at input <paramref name="data"/>, scales and zero points at 2 and
    /// 3, all constants): its layout, its bytes on the device, and its scales and zero points as floats, interleaved so
    /// a thread reads its pair from one place. Converted once, here, so the kernels need no float16 arithmetic (which
    /// OpenCL devices may lack).</summary>
    private static (Int4Layout Layout, ArrayView<byte> Data, ArrayView<float> ScaleZero) Packed(LoweringContext c, int data)
    {
        var layout = new Int4Layout((int)Attr.Int(c.Node, "K", 0), (int)Attr.Int(c.Node, "N", 0), (int)Attr.Int(c.Node, "block_size", 0));
        c.ConstantInput(data, "packed values");
        var scales = c.ConstantInput(2, "scales").AsSpan<System.Half>();
        var zeroPoints = c.Input(3) is null ? default : c.ConstantInput(3, "zero points").AsSpan<byte>();
        var table = new float[2 * layout.ScaleCount];
        for (int s = 0; s < layout.ScaleCount; s++)
        {
            table[2 * s] = (float)scales[s];
            table[2 * s + 1] = zeroPoints.IsEmpty ? Int4Layout.SymmetricZeroPoint : (zeroPoints[s / 2] >> (s % 2 * 4)) & 15;
        }
        return (layout, c.Bytes(c.RequiredInput(data)), c.Upload(table));
    }
}
