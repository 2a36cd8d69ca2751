using System.Reflection;
using Squash.Compiler.CodeGen;
using Squash.Compiler.Compilation;
using Squash.Compiler.Onnx;
using Squash.Compiler.Tests.Support;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;

namespace Squash.Runtime.Gpu.Tests;

/// <summary>
/// The <c>Device</c> option of generated classes: a class compiled with Roslyn, as the build compiles it, run on the CPU
/// and, through the registered GPU backend, on ILGPU's CPU accelerator. Tolerance between the two: rtol 1e-4,
/// atol 1e-5, as for the GEMM kernels (a 3x3x3 convolution and a 600-term dot product summed in another order).
/// </summary>
public sealed class GeneratedDeviceTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("squash-gpu-gen-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>One test, in this order, because registration is process-wide: before it Gpu is an error and Auto is
    /// the CPU; after it both run on the device with the same API and results.</summary>
    [Fact]
    public void DeviceOptionChoosesWhereTheSameApiRuns()
    {
        var assembly = Compile(("Small", SquashDevice.Gpu, []), ("Dyn", SquashDevice.Cpu, []));
        var type = assembly.GetType("Tests.Small")!;
        Assert.Equal(SquashDevice.Gpu, type.GetField("DefaultDevice")!.GetValue(null));
        var x = DeviceCase.Random(5, 1f, 1, 3, 12, 12);
        var inputs = new Dictionary<string, Tensor> { ["x"] = x };

        using var cpu = Create(type, SquashDevice.Cpu);
        Assert.Equal("CPU", DeviceName(cpu));
        var expected = cpu.Run(inputs)["y"];
        using (var auto = Create(type, SquashDevice.Auto)) Assert.Equal("CPU", DeviceName(auto));
        if (SquashDevices.Backend is null)
        {
            // Gpu, given explicitly or by the Device metadata, without the backend registered.
            var e = Assert.Throws<SquashException>(() => Create(type, SquashDevice.Gpu));
            Assert.Equal(ErrorCodes.DeviceBackendMissing, e.Code);
            Assert.Contains("SquashGpu.Register()", e.Message);
            e = Assert.Throws<SquashException>(() => Create(type, null));
            Assert.Equal(ErrorCodes.DeviceBackendMissing, e.Code);
        }

        var warnings = new List<string>();
        SquashGpu.Register(new SquashGpuOptions { Emulate = true, Warning = warnings.Add });
        foreach (SquashDevice? device in new SquashDevice?[] { SquashDevice.Gpu, SquashDevice.Auto, null })
        {
            using var model = Create(type, device);
            Assert.StartsWith("Emulator", DeviceName(model));
            DeviceCase.AssertClose(expected, model.Run(inputs)["y"], 1e-4f, 1e-5f, $"{device} dictionary API");
            // The typed span and array API, through the same instance.
            var y = (float[])type.GetMethod("Run", [typeof(float[])])!.Invoke(model, [x.AsSpan<float>().ToArray()])!;
            DeviceCase.AssertClose(expected, Tensor.From<float>(y, 2, 5), 1e-4f, 1e-5f, $"{device} array API");
        }
        Assert.Empty(warnings);

        // A class with dimensions set per call cannot run on the device: Gpu says so, Auto runs on the CPU.
        var dyn = assembly.GetType("Tests.Dyn")!;
        var dynError = Assert.Throws<SquashException>(() => Create(dyn, SquashDevice.Gpu));
        Assert.Equal(ErrorCodes.DeviceNeedsStaticShapes, dynError.Code);
        using var dynAuto = Create(dyn, SquashDevice.Auto);
        Assert.Equal("CPU", DeviceName(dynAuto));
        DeviceCase.AssertClose(expected, dynAuto.Run(inputs)["y"], 0, 0, "dynamic class on the CPU");
    }

    /// <summary>A CPU-only app references the generated class and Squash.Runtime: neither may reference ILGPU or the
    /// GPU runtime, so such an app never loads them and trimming keeps them out.</summary>
    [Fact]
    public void GeneratedClassAndRuntimeDoNotReferenceTheGpuRuntime()
    {
        var assembly = Compile(("Small", SquashDevice.Auto, []));
        foreach (var a in new[] { assembly, typeof(Tensor).Assembly })
        {
            var names = a.GetReferencedAssemblies().Select(r => r.Name).ToArray();
            Assert.Contains("Squash.Runtime", names.Append(a.GetName().Name));
            Assert.DoesNotContain(names, n => n!.StartsWith("ILGPU", StringComparison.Ordinal) || n == "Squash.Runtime.Gpu");
        }
    }

    private static ISquashModel Create(Type type, SquashDevice? device)
    {
        try
        {
            return (ISquashModel)(device is null ? Activator.CreateInstance(type, [1])! : Activator.CreateInstance(type, [device.Value, 1])!);
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            throw e.InnerException;
        }
    }

    private static string DeviceName(ISquashModel model) => (string)model.GetType().GetProperty("DeviceName")!.GetValue(model)!;

    /// <summary>Compiles the small model once per class: (name, Device metadata, pinned shapes; empty keeps the batch
    /// dimension of "Dyn" dynamic).</summary>
    private Assembly Compile(params (string Name, SquashDevice Device, Dictionary<string, int[]> Shapes)[] classes)
    {
        var sources = new List<string>();
        var resources = new List<(string, byte[])>();
        foreach (var (name, device, shapes) in classes)
        {
            string path = Path.Combine(_dir, name + ".onnx");
            OnnxWriter.Save(SmallModel(dynamic: name == "Dyn"), path);
            var result = ModelCompiler.Compile(new CompileRequest
            {
                ModelPath = path,
                OutputDirectory = _dir,
                OutputName = name,
                InputShapes = shapes,
                Class = new ModelClassOptions
                {
                    ClassName = name, Namespace = "Tests", WeightsName = $"Tests.{name}.sqw", SourceFileName = "", SourceSha256 = "", Device = device,
                },
            });
            sources.Add(File.ReadAllText(result.SourcePath));
            resources.Add(($"Tests.{name}.sqw", File.ReadAllBytes(result.WeightsPath!)));
        }
        return InMemoryCompiler.Compile(sources, resources);
    }

    /// <summary>Conv, views (Reshape, Flatten), broadcast Mul/Add, MatMul and Softmax: device kernels, views and
    /// constants that the class's graph must link by name.</summary>
    private static Model SmallModel(bool dynamic)
    {
        int seed = 10;
        Tensor Random(params int[] shape) => DeviceCase.Random(seed++, 0.5f, shape);
        var b = new GraphBuilder();
        var x = b.Input("x", DataType.Float, 1, 3, 12, 12);
        if (dynamic) x.Shape = [-1, 3, 12, 12];
        var conv = b.Node("Conv", x, b.Constant(Random(6, 3, 3, 3)), b.Constant(Random(6)));
        var relu = b.Node("Relu", conv);
        var rows = b.Node("Reshape", relu, b.Constant(Tensor.From<long>([1, 6, 100], 3)));
        var scaled = b.Node("Mul", rows, b.Constant(Random(1, 6, 1)));
        var shifted = b.Node("Add", scaled, b.Constant(Random(100)));
        var flat = b.Node("Flatten", b.Node("Sigmoid", shifted));
        var probabilities = b.Node("Softmax", b.Node("MatMul", flat, b.Constant(Random(600, 10))));
        var y = b.Node("Reshape", probabilities, b.Constant(Tensor.From<long>([2, 5], 2)));
        y.Name = "y";
        b.Output(y);
        return b.Build();
    }
}
