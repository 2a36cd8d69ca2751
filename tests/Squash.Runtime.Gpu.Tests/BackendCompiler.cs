using System.Reflection;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Backends;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.OpenCL;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace Squash.Runtime.Gpu.Tests;

/// <summary>
/// Compiles kernels to PTX without a GPU: ILGPU's PTX backend needs no driver. The CPU accelerator runs the kernels'
/// IL directly, so it cannot tell whether ILGPU's compiler accepts them; this does (for Turing, sm_75 with PTX ISA 7.0,
/// and Hopper, sm_90 with ISA 7.8), and to OpenCL C 2.0 source (the OpenCL C compiler itself, in the driver, is not
/// run). Every test that builds a model on the CPU accelerator compiles the kernels it loaded, each once per test run.
/// </summary>
internal static class BackendCompiler
{
    private static readonly Lock s_lock = new();
    private static readonly HashSet<MethodInfo> s_done = [];
    private static readonly (CudaArchitecture, CudaInstructionSet)[] s_targets =
        [(CudaArchitecture.SM_75, CudaInstructionSet.ISA_70), (CudaArchitecture.SM_90, CudaInstructionSet.ISA_78)];

    public static void CompileAll(GpuModel model)
    {
        lock (s_lock)
        {
            var todo = model.KernelMethods.Where(k => !s_done.Contains(k.Method)).ToList();
            if (todo.Count == 0) return;
            using var context = Context.Create(b => b.Optimize(OptimizationLevel.O2).EnableAlgorithms());
            foreach (var (arch, isa) in s_targets)
            {
                using var backend = new PTXBackend(context, arch, isa, nvvmAPI: null!);
                foreach (var (method, grouped) in todo)
                {
                    var entry = grouped ? EntryPointDescription.FromExplicitlyGroupedKernel(method) : EntryPointDescription.FromImplicitlyGroupedKernel(method);
                    CompiledKernel compiled;
                    try { compiled = backend.Compile(entry, default(KernelSpecialization)); }
                    catch (Exception e) { throw new Xunit.Sdk.XunitException($"{method.DeclaringType?.Name}.{method} does not compile for {arch}: {e.GetBaseException().Message}"); }
                    string ptx = ((PTXCompiledKernel)compiled).PTXAssembly;
                    Assert.Contains(".entry", ptx);
                    // A .NET method ILGPU does not map (MathF.FusedMultiplyAdd in 1.5) becomes a call to an undefined
                    // function, which compiles here and fails only when the driver links the module.
                    Assert.False(ptx.Contains(".extern .func", StringComparison.Ordinal), $"{method.DeclaringType?.Name}.{method.Name} calls an undefined function on {arch}");
                }
            }
            // OpenCL C 2.0 for a device with no optional capabilities (no fp16, fp64 or 64-bit atomics): the kernels
            // need none, except those marked [NeedsFloat64] (their lowerings keep them off OpenCL devices without
            // fp64), which are compiled for a device with fp64.
            using var plain = new CLBackend(context, new CLCapabilityContext(false, false, false, false, false), CLDeviceVendor.Other, CLCVersion.CL20);
            using var withFloat64 = new CLBackend(context, Float64Capabilities(), CLDeviceVendor.Other, CLCVersion.CL20);
            {
                foreach (var (method, grouped) in todo)
                {
                    var cl = method.GetCustomAttributes(typeof(Kernels.NeedsFloat64Attribute), false).Length > 0 ? withFloat64 : plain;
                    var entry = grouped ? EntryPointDescription.FromExplicitlyGroupedKernel(method) : EntryPointDescription.FromImplicitlyGroupedKernel(method);
                    CompiledKernel compiled;
                    try { compiled = cl.Compile(entry, default(KernelSpecialization)); }
                    catch (Exception e) { throw new Xunit.Sdk.XunitException($"{method.DeclaringType?.Name}.{method} does not compile for OpenCL: {e.GetBaseException().Message}"); }
                    Assert.Contains("kernel", ((CLCompiledKernel)compiled).Source);
                }
            }
            foreach (var (method, _) in todo) s_done.Add(method);
        }
    }

    /// <summary>The PTX of a kernel for sm_90 (tests read which instructions it uses).</summary>
    public static string Ptx(MethodInfo method, bool grouped = false)
    {
        lock (s_lock)
        {
            using var context = Context.Create(b => b.Optimize(OptimizationLevel.O2).EnableAlgorithms());
            var entry = grouped ? EntryPointDescription.FromExplicitlyGroupedKernel(method) : EntryPointDescription.FromImplicitlyGroupedKernel(method);
            using var backend = new PTXBackend(context, CudaArchitecture.SM_90, CudaInstructionSet.ISA_78, nvvmAPI: null!);
            return ((PTXCompiledKernel)backend.Compile(entry, default(KernelSpecialization))).PTXAssembly;
        }
    }

    /// <summary>OpenCL capabilities with fp64 and nothing else (the constructor's flags are found by what they set).</summary>
    private static CLCapabilityContext Float64Capabilities()
    {
        for (int i = 0; i < 5; i++)
        {
            var cap = new CLCapabilityContext(i == 0, i == 1, i == 2, i == 3, i == 4);
            if (cap.Float64 && !cap.Float16) return cap;
        }
        throw new InvalidOperationException("No CLCapabilityContext flag sets Float64.");
    }
}
