namespace Squash.Runtime.Gpu;

/// <summary>Where a <see cref="GpuModel"/> runs.</summary>
public enum GpuDevice
{
    /// <summary>A GPU when there is one (CUDA, then OpenCL), else Squash's CPU runtime. Never fails for lack of a GPU.</summary>
    Auto,

    /// <summary>A GPU: CUDA, then OpenCL. Fails with <see cref="GpuErrorCodes.DeviceUnavailable"/> when neither is
    /// present.</summary>
    Gpu,

    /// <summary>Squash's CPU runtime (the vectorized kernels of <c>Squash.Runtime</c>); ILGPU is not initialised.</summary>
    Cpu,

    /// <summary>The GPU kernels run by ILGPU's CPU accelerator, an emulator (threads stand for GPU threads; about a
    /// hundred times slower than the CPU runtime). For testing the device path on machines without a GPU.</summary>
    Emulator,
}

/// <summary>The backend a <see cref="GpuModel"/> ended up on.</summary>
public enum GpuBackend
{
    /// <summary>Squash's CPU runtime.</summary>
    CpuRuntime,

    /// <summary>An NVIDIA GPU through CUDA (PTX).</summary>
    Cuda,

    /// <summary>A GPU through OpenCL.</summary>
    OpenCL,

    /// <summary>ILGPU's CPU accelerator (emulated GPU).</summary>
    Emulator,
}

/// <summary>Error codes of the GPU runtime (SQ1101 and up: errors are SQ1xxx, docs/diagnostics.md).</summary>
public static class GpuErrorCodes
{
    /// <summary>The requested device is not present or could not be started.</summary>
    public const string DeviceUnavailable = "SQ1101";

    /// <summary>A kernel could not be compiled for, or failed on, the device.</summary>
    public const string DeviceFailure = "SQ1102";
}
