using Squash.Runtime.Execution;
using Squash.Runtime.Ir;

namespace Squash.Runtime.Gpu;

/// <summary>Options of <see cref="SquashGpu.Register(SquashGpuOptions?)"/>.</summary>
public sealed class SquashGpuOptions
{
    /// <summary>Run <see cref="SquashDevice.Gpu"/> and <see cref="SquashDevice.Auto"/> on ILGPU's CPU accelerator (an
    /// emulator, about a hundred times slower than the CPU runtime) instead of a GPU: for testing the device path on
    /// machines without a GPU.</summary>
    public bool Emulate { get; init; }

    /// <summary>Receives warnings: nodes that run on the host, and Auto finding no GPU. Null: none are reported.</summary>
    public Action<string>? Warning { get; init; }
}

/// <summary>
/// Makes generated classes able to run on a GPU: call <see cref="Register(SquashGpuOptions?)"/> once at startup, then
/// create models with <see cref="SquashDevice.Gpu"/> or <see cref="SquashDevice.Auto"/> (or compile them with
/// <c>Device="Gpu"</c> or <c>"Auto"</c>). Apps that never call it never load ILGPU.
/// </summary>
public static class SquashGpu
{
    /// <summary>Registers the GPU backend with <see cref="SquashDevices"/> (the last registration wins).</summary>
    public static void Register(SquashGpuOptions? options = null) => SquashDevices.Register(new Backend(options ?? new SquashGpuOptions()));

    private sealed class Backend(SquashGpuOptions options) : IDeviceBackend
    {
        public IDeviceModel? Open(Graph graph, SquashDevice device, int threadCount)
        {
            var gpuOptions = new GpuModelOptions { ThreadCount = threadCount, Warning = options.Warning };
            try
            {
                return new DeviceModel(GpuModel.Create(graph, options.Emulate ? GpuDevice.Emulator : GpuDevice.Gpu, gpuOptions));
            }
            catch (SquashException e) when (device == SquashDevice.Auto && e.Code == GpuErrorCodes.DeviceUnavailable)
            {
                options.Warning?.Invoke($"{e.Message} Running on the CPU runtime.");
                return null;
            }
        }
    }

    private sealed class DeviceModel(GpuModel model) : IDeviceModel
    {
        public string DeviceName => $"{model.Backend} {model.DeviceName}";

        public IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs) => model.Run(inputs);

        public void Dispose() => model.Dispose();
    }
}
