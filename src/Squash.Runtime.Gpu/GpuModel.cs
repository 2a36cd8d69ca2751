using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;
using Squash.Runtime.Execution;
using Squash.Runtime.Gpu.Execution;
using Squash.Runtime.Ir;

namespace Squash.Runtime.Gpu;

/// <summary>Options of <see cref="GpuModel.Create"/>.</summary>
public sealed class GpuModelOptions
{
    /// <summary>Threads for the CPU runtime and for nodes that run on the host (1: the calling thread only).</summary>
    public int ThreadCount { get; init; } = 1;

    /// <summary>Receives warnings: the device chosen by <see cref="GpuDevice.Auto"/> when it is not a GPU, and nodes
    /// that run on the host. Null: warnings are only kept in <see cref="GpuModel.Warnings"/>.</summary>
    public Action<string>? Warning { get; init; }
}

/// <summary>
/// A fully shaped model on a GPU (CUDA or OpenCL through ILGPU), or on the CPU runtime. On a device, the whole model
/// runs from one device arena laid out like the CPU plan: weights are uploaded once, each run uploads the inputs,
/// queues every node's kernels on one stream and downloads the outputs. A node without a device kernel runs on the
/// host by its CPU operator (one download and upload of its tensors; see <see cref="HostNodes"/>).
/// </summary>
/// <remarks>One run at a time per instance (concurrent calls wait for each other).</remarks>
public sealed class GpuModel : IDisposable
{
    private readonly Lock _lock = new();
    private readonly Context? _context;
    private readonly Accelerator? _accelerator;
    private readonly DeviceProgram? _program;
    private readonly ExecutionPlan? _plan;
    private readonly KernelContext _hostContext;
    private readonly List<string> _warnings = [];
    private bool _disposed;

    private GpuModel(Graph graph, GpuDevice device, GpuModelOptions options)
    {
        _hostContext = new KernelContext(options.ThreadCount);
        void Warn(string message)
        {
            _warnings.Add(message);
            options.Warning?.Invoke(message);
        }

        if (device == GpuDevice.Cpu)
        {
            _plan = ExecutionPlan.Create(graph);
            Backend = GpuBackend.CpuRuntime;
            DeviceName = "CPU runtime";
            return;
        }
        try
        {
            (_context, _accelerator, Backend) = device == GpuDevice.Emulator ? OpenEmulator() : OpenGpu();
        }
        catch (SquashException e) when (device == GpuDevice.Auto)
        {
            Warn($"{e.Message} Running on the CPU runtime.");
            _plan = ExecutionPlan.Create(graph);
            Backend = GpuBackend.CpuRuntime;
            DeviceName = "CPU runtime";
            return;
        }
        DeviceName = _accelerator.Name;
        try
        {
            _program = DeviceProgram.Create(graph, _accelerator, _hostContext);
        }
        catch
        {
            _accelerator.Dispose();
            _context.Dispose();
            throw;
        }
        foreach (var (node, reason) in _program.HostNodes)
            Warn($"{node.Describe()} runs on the host ({reason}): its tensors go to the host and back on every run.");
    }

    /// <summary>Prepares <paramref name="graph"/>, whose shapes must all be known (pin the input shapes and run shape
    /// inference first, as for <see cref="ExecutionPlan"/>), on <paramref name="device"/>.</summary>
    /// <exception cref="SquashException">A shape is unknown (SQ1008), a node is unsupported (SQ1003/SQ1004), or the
    /// requested device is not available (<see cref="GpuErrorCodes.DeviceUnavailable"/>).</exception>
    public static GpuModel Create(Graph graph, GpuDevice device = GpuDevice.Auto, GpuModelOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(graph);
        return new GpuModel(graph, device, options ?? new GpuModelOptions());
    }

    /// <summary>Where the model runs.</summary>
    public GpuBackend Backend { get; }

    /// <summary>The device's name (for messages and logs).</summary>
    public string DeviceName { get; }

    /// <summary>Nodes that run on the host instead of the device, with the reason (empty on the CPU runtime).</summary>
    public IReadOnlyList<(Node Node, string Reason)> HostNodes => _program?.HostNodes ?? [];

    /// <summary>Warnings given while preparing the model.</summary>
    public IReadOnlyList<string> Warnings => _warnings;

    /// <summary>Bytes of the activation arena (on the device, or on the host for the CPU runtime).</summary>
    public long ArenaBytes => _program?.ArenaBytes ?? _plan!.ArenaBytes;

    /// <summary>Bytes of the device scratch that fp16 nodes computed through the fp32 kernels share (their inputs and
    /// outputs widened to fp32, for the largest such node); 0 when no node needs it or on the CPU runtime.</summary>
    public long ScratchBytes => _program?.ScratchBytes ?? 0;

    /// <summary>The kernels compiled for the device (tests compile them for other backends too).</summary>
    internal IEnumerable<(System.Reflection.MethodInfo Method, bool ExplicitlyGrouped)> KernelMethods => _program?.Kernels.Methods ?? [];

    /// <summary>Runs the model. Returns new host tensors by output name.</summary>
    /// <exception cref="SquashException">An input is missing or does not match its type and shape.</exception>
    public Dictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _program is not null ? _program.Run(inputs) : _plan!.Run(inputs, _hostContext);
        }
    }

    /// <summary>Releases the device memory and the device.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
            _program?.Dispose();
            _accelerator?.Dispose();
            _context?.Dispose();
        }
    }

    /// <summary>CUDA first, then an OpenCL GPU.</summary>
    private static (Context, Accelerator, GpuBackend) OpenGpu()
    {
        var context = Context.Create(b => b.Cuda().OpenCL().Optimize(OptimizationLevel.O2).EnableAlgorithms());
        try
        {
            var cuda = context.GetCudaDevices();
            if (cuda.Count > 0) return (context, cuda[0].CreateAccelerator(context), GpuBackend.Cuda);
            foreach (var cl in context.GetCLDevices())
                if (cl.DeviceType == CLDeviceType.CL_DEVICE_TYPE_GPU) return (context, cl.CreateAccelerator(context), GpuBackend.OpenCL);
        }
        catch (Exception e) when (e is not SquashException)
        {
            context.Dispose();
            throw new SquashException(GpuErrorCodes.DeviceUnavailable, $"The GPU could not be started: {e.Message}", inner: e);
        }
        context.Dispose();
        throw new SquashException(GpuErrorCodes.DeviceUnavailable,
            "No GPU was found: Squash looks for CUDA, then OpenCL. For NVIDIA GPUs install the NVIDIA driver (it provides " +
            "libcuda / nvcuda.dll; the CUDA toolkit is not needed). For AMD or Intel GPUs install the vendor's OpenCL 2.0 runtime " +
            "(ROCm or the Intel compute runtime). Or use GpuDevice.Auto or GpuDevice.Cpu to run on the CPU.");
    }

    /// <summary>ILGPU's CPU accelerator with 16 threads in one group (4 warps of 4): every emulated GPU thread is an OS
    /// thread, and each barrier synchronizes all of a group's, so the kernels use small groups and loop over their work
    /// there (see <see cref="KernelCache"/>).</summary>
    private static (Context, Accelerator, GpuBackend) OpenEmulator()
    {
        var device = new CPUDevice(numThreadsPerWarp: 4, numWarpsPerMultiprocessor: 4, numMultiprocessors: 1);
        var context = Context.Create(b => b.CPU(device).Optimize(OptimizationLevel.O1).EnableAlgorithms());
        return (context, context.CreateCPUAccelerator(0, CPUAcceleratorMode.Parallel), GpuBackend.Emulator);
    }
}
