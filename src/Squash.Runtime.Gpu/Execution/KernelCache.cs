using System.Reflection;
using ILGPU;
using ILGPU.Runtime;
using Squash.Runtime.Gpu.Kernels;

namespace Squash.Runtime.Gpu.Execution;

/// <summary>Loads (compiles) each kernel once per accelerator. Implicitly grouped kernels take an <see cref="Index1D"/>
/// and let ILGPU pick the group size; explicitly grouped ones take a <see cref="KernelConfig"/> (grid and group sizes
/// chosen by the caller, needed for shared memory and barriers).</summary>
internal sealed class KernelCache(Accelerator accelerator)
{
    private readonly Dictionary<MethodInfo, Delegate> _loaded = [];
    private readonly HashSet<MethodInfo> _grouped = [];

    /// <summary>Threads a one-dimensional launch uses at most: enough to fill the device (every multiprocessor at full
    /// occupancy); on the CPU accelerator, one group, because each group costs a synchronization of its threads.</summary>
    public int MaxThreads { get; } = accelerator.AcceleratorType == AcceleratorType.CPU
        ? accelerator.MaxNumThreadsPerGroup
        : accelerator.NumMultiprocessors * accelerator.MaxNumThreadsPerMultiprocessor;

    /// <summary>Groups a persistent (tile- or row-looping) launch uses at most, by the same reasoning.</summary>
    public int MaxGroups => IsEmulator ? 1 : int.MaxValue;

    /// <summary>True on ILGPU's CPU accelerator (kernels pick smaller groups there).</summary>
    public bool IsEmulator => accelerator.AcceleratorType == AcceleratorType.CPU;

    private Range1D Range(int count) => new() { Count = count, Stride = Math.Max(1, Math.Min(count, MaxThreads)) };

    /// <summary>Every kernel loaded so far, and whether it is explicitly grouped (tests compile them for CUDA and
    /// OpenCL too).</summary>
    public IEnumerable<(MethodInfo Method, bool ExplicitlyGrouped)> Methods => _loaded.Keys.Select(m => (m, _grouped.Contains(m)));

    private T Grouped<T>(Delegate kernel, Func<T> load) where T : Delegate
    {
        _grouped.Add(kernel.Method);
        return Get(kernel, load);
    }

    private T Get<T>(Delegate kernel, Func<T> load) where T : Delegate
    {
        if (!_loaded.TryGetValue(kernel.Method, out var d))
        {
            try { d = load(); }
            catch (Exception e) when (e is not SquashException)
            {
                throw new SquashException(GpuErrorCodes.DeviceFailure,
                    $"The kernel {kernel.Method.DeclaringType?.Name}.{kernel.Method.Name} could not be compiled for {accelerator.Name}: {e.Message}", inner: e);
            }
            _loaded[kernel.Method] = d;
        }
        return (T)d;
    }

    public Action<AcceleratorStream, int, T1, T2> Auto<T1, T2>(Action<Index1D, Range1D, T1, T2> k)
        where T1 : struct where T2 : struct
    {
        var loaded = Get(k, () => accelerator.LoadAutoGroupedKernel(k));
        return (s, n, a1, a2) => { var r = Range(n); loaded(s, r.Stride, r, a1, a2); };
    }

    public Action<AcceleratorStream, int, T1, T2, T3> Auto<T1, T2, T3>(Action<Index1D, Range1D, T1, T2, T3> k)
        where T1 : struct where T2 : struct where T3 : struct
    {
        var loaded = Get(k, () => accelerator.LoadAutoGroupedKernel(k));
        return (s, n, a1, a2, a3) => { var r = Range(n); loaded(s, r.Stride, r, a1, a2, a3); };
    }

    public Action<AcceleratorStream, int, T1, T2, T3, T4> Auto<T1, T2, T3, T4>(Action<Index1D, Range1D, T1, T2, T3, T4> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct
    {
        var loaded = Get(k, () => accelerator.LoadAutoGroupedKernel(k));
        return (s, n, a1, a2, a3, a4) => { var r = Range(n); loaded(s, r.Stride, r, a1, a2, a3, a4); };
    }

    public Action<AcceleratorStream, int, T1, T2, T3, T4, T5> Auto<T1, T2, T3, T4, T5>(Action<Index1D, Range1D, T1, T2, T3, T4, T5> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct
    {
        var loaded = Get(k, () => accelerator.LoadAutoGroupedKernel(k));
        return (s, n, a1, a2, a3, a4, a5) => { var r = Range(n); loaded(s, r.Stride, r, a1, a2, a3, a4, a5); };
    }

    public Action<AcceleratorStream, int, T1, T2, T3, T4, T5, T6> Auto<T1, T2, T3, T4, T5, T6>(Action<Index1D, Range1D, T1, T2, T3, T4, T5, T6> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct
    {
        var loaded = Get(k, () => accelerator.LoadAutoGroupedKernel(k));
        return (s, n, a1, a2, a3, a4, a5, a6) => { var r = Range(n); loaded(s, r.Stride, r, a1, a2, a3, a4, a5, a6); };
    }

    public Action<AcceleratorStream, int, T1, T2, T3, T4, T5, T6, T7> Auto<T1, T2, T3, T4, T5, T6, T7>(Action<Index1D, Range1D, T1, T2, T3, T4, T5, T6, T7> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct
    {
        var loaded = Get(k, () => accelerator.LoadAutoGroupedKernel(k));
        return (s, n, a1, a2, a3, a4, a5, a6, a7) => { var r = Range(n); loaded(s, r.Stride, r, a1, a2, a3, a4, a5, a6, a7); };
    }

    public Action<AcceleratorStream, KernelConfig, T1, T2, T3> Grouped<T1, T2, T3>(Action<T1, T2, T3> k)
        where T1 : struct where T2 : struct where T3 : struct =>
        Grouped(k, () => accelerator.LoadKernel(k));

    public Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4> Grouped<T1, T2, T3, T4>(Action<T1, T2, T3, T4> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct =>
        Grouped(k, () => accelerator.LoadKernel(k));

    public Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4, T5> Grouped<T1, T2, T3, T4, T5>(Action<T1, T2, T3, T4, T5> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct =>
        Grouped(k, () => accelerator.LoadKernel(k));

    public Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4, T5, T6> Grouped<T1, T2, T3, T4, T5, T6>(Action<T1, T2, T3, T4, T5, T6> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct =>
        Grouped(k, () => accelerator.LoadKernel(k));

    public Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4, T5, T6, T7> Grouped<T1, T2, T3, T4, T5, T6, T7>(Action<T1, T2, T3, T4, T5, T6, T7> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct =>
        Grouped(k, () => accelerator.LoadKernel(k));
}
