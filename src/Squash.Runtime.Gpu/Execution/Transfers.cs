using ILGPU;
using ILGPU.Runtime;

namespace Squash.Runtime.Gpu.Execution;

/// <summary>Host-device copies of raw bytes.</summary>
internal static class Transfers
{
    /// <summary>Copies <paramref name="source"/> to the device (ordered on <paramref name="stream"/>).</summary>
    public static void Upload(AcceleratorStream stream, ReadOnlySpan<byte> source, ArrayView<byte> target)
    {
        if (source.Length == 0) return;
        ArrayView1D<byte, Stride1D.Dense> view = target;
        view.CopyFromCPU(stream, source);
    }

    /// <summary>Copies <paramref name="source"/> from the device once the work queued before it is done.</summary>
    public static void Download(AcceleratorStream stream, ArrayView<byte> source, Span<byte> target)
    {
        if (target.Length == 0) return;
        ArrayView1D<byte, Stride1D.Dense> view = source;
        view.CopyToCPU(stream, target);
    }
}
