using System.Reflection;
using ILGPU;
using ILGPU.Runtime;

namespace Squash.Runtime.Gpu.Execution;

/// <summary>Loads (compiles) each kernel once per accelerator. Implicitly grouped kernels take an <see cref="Index1D"/>
/// and let ILGPU pick the group size; explicitly grouped ones take a <see cref="KernelConfig"/> (grid and group sizes
/// chosen by the caller, needed for shared memory and barriers).</summary>
internal sealed class KernelCache(Accelerator accelerator)
{
    private readonly Dictionary<MethodInfo, Delegate> _loaded = [];

    /// <summary>Every kernel loaded so far (the test that compiles all kernels for CUDA reads it).</summary>
    public IEnumerable<MethodInfo> Methods => _loaded.Keys;

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

    public Action<AcceleratorStream, Index1D, T1, T2> Auto<T1, T2>(Action<Index1D, T1, T2> k)
        where T1 : struct where T2 : struct =>
        Get(k, () => accelerator.LoadAutoGroupedKernel(k));

    public Action<AcceleratorStream, Index1D, T1, T2, T3> Auto<T1, T2, T3>(Action<Index1D, T1, T2, T3> k)
        where T1 : struct where T2 : struct where T3 : struct =>
        Get(k, () => accelerator.LoadAutoGroupedKernel(k));

    public Action<AcceleratorStream, Index1D, T1, T2, T3, T4> Auto<T1, T2, T3, T4>(Action<Index1D, T1, T2, T3, T4> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct =>
        Get(k, () => accelerator.LoadAutoGroupedKernel(k));

    public Action<AcceleratorStream, Index1D, T1, T2, T3, T4, T5> Auto<T1, T2, T3, T4, T5>(Action<Index1D, T1, T2, T3, T4, T5> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct =>
        Get(k, () => accelerator.LoadAutoGroupedKernel(k));

    public Action<AcceleratorStream, Index1D, T1, T2, T3, T4, T5, T6> Auto<T1, T2, T3, T4, T5, T6>(Action<Index1D, T1, T2, T3, T4, T5, T6> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct =>
        Get(k, () => accelerator.LoadAutoGroupedKernel(k));

    public Action<AcceleratorStream, KernelConfig, T1, T2, T3> Grouped<T1, T2, T3>(Action<T1, T2, T3> k)
        where T1 : struct where T2 : struct where T3 : struct =>
        Get(k, () => accelerator.LoadKernel(k));

    public Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4> Grouped<T1, T2, T3, T4>(Action<T1, T2, T3, T4> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct =>
        Get(k, () => accelerator.LoadKernel(k));

    public Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4, T5> Grouped<T1, T2, T3, T4, T5>(Action<T1, T2, T3, T4, T5> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct =>
        Get(k, () => accelerator.LoadKernel(k));
}
