using Squash.Runtime.Ir;

namespace Squash.Runtime.Execution;

/// <summary>Where a generated class runs. The <c>Device</c> metadata of a <c>SquashModel</c> item sets the default;
/// the class's constructor takes one to override it.</summary>
public enum SquashDevice
{
    /// <summary>Squash's CPU runtime (the default). Never touches a GPU backend.</summary>
    Cpu,

    /// <summary>A GPU (CUDA, then OpenCL) through the registered backend; a <see cref="SquashException"/> when none is
    /// registered (SQ1103) or the backend finds no GPU (SQ1101).</summary>
    Gpu,

    /// <summary>A GPU when a backend is registered and finds one (CUDA, then OpenCL), else the CPU runtime.</summary>
    Auto,
}

/// <summary>A model prepared on a device by a registered <see cref="IDeviceBackend"/>.</summary>
public interface IDeviceModel : IDisposable
{
    /// <summary>The device's name, for messages and logs.</summary>
    string DeviceName { get; }

    /// <summary>Runs the model; returns new host tensors by output name.</summary>
    /// <exception cref="SquashException">An input is missing or does not match its type and shape (SQ1009).</exception>
    IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs);
}

/// <summary>Prepares fully shaped graphs on a device. Squash.Runtime.Gpu implements it; an app opts in by calling
/// <c>SquashGpu.Register()</c>, so that apps that never do load no GPU code (and trim it away).</summary>
public interface IDeviceBackend
{
    /// <summary>Prepares <paramref name="graph"/> for <paramref name="device"/> (<see cref="SquashDevice.Gpu"/> or
    /// <see cref="SquashDevice.Auto"/>). Returns null for Auto when there is no GPU; throws for Gpu.</summary>
    /// <param name="graph">Every shape known, optimized, as the generated class's static plan.</param>
    /// <param name="device">Gpu or Auto.</param>
    /// <param name="threadCount">Threads for nodes that run on the host.</param>
    IDeviceModel? Open(Graph graph, SquashDevice device, int threadCount);
}

/// <summary>The registered device backend, and how generated classes reach it.</summary>
public static class SquashDevices
{
    private static volatile IDeviceBackend? s_backend;

    /// <summary>The registered backend, or null.</summary>
    public static IDeviceBackend? Backend => s_backend;

    /// <summary>Registers the backend that <see cref="SquashDevice.Gpu"/> and <see cref="SquashDevice.Auto"/> use
    /// (the last registration wins).</summary>
    public static void Register(IDeviceBackend backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        s_backend = backend;
    }

    /// <summary>Called by generated classes: the device model for <paramref name="device"/>, or null to run on the CPU
    /// runtime (Cpu, or Auto without a backend or a GPU).</summary>
    /// <param name="device">The requested device.</param>
    /// <param name="graph">Builds the class's graph; called only when a backend will use it.</param>
    /// <param name="threadCount">Threads for nodes that run on the host.</param>
    /// <param name="className">The generated class, for messages.</param>
    /// <exception cref="SquashException">Gpu was requested and no backend is registered (SQ1103), or the backend found
    /// no GPU (SQ1101).</exception>
    public static IDeviceModel? Open(SquashDevice device, Func<Graph> graph, int threadCount, string className)
    {
        ArgumentNullException.ThrowIfNull(graph);
        if (device == SquashDevice.Cpu) return null;
        if (device is not (SquashDevice.Gpu or SquashDevice.Auto))
            throw new ArgumentOutOfRangeException(nameof(device), device, "Use SquashDevice.Cpu, Gpu or Auto.");
        var backend = s_backend;
        if (backend is null)
        {
            if (device == SquashDevice.Auto) return null;
            throw new SquashException(ErrorCodes.DeviceBackendMissing,
                $"{className} was asked to run on the GPU, but no GPU backend is registered. Reference the Squash.Runtime.Gpu " +
                "package and call Squash.Runtime.Gpu.SquashGpu.Register() once at startup, before creating the model; or use " +
                "SquashDevice.Cpu (or Auto, which runs on the CPU when there is no GPU).");
        }
        return backend.Open(graph(), device, threadCount);
    }

    /// <summary>Called by generated classes whose shapes are not all known: the device needs a static plan.
    /// Cpu and Auto run on the CPU runtime.</summary>
    /// <exception cref="SquashException">Gpu was requested (SQ1104).</exception>
    public static void RejectDynamic(SquashDevice device, string className)
    {
        if (device == SquashDevice.Gpu)
            throw new SquashException(ErrorCodes.DeviceNeedsStaticShapes,
                $"{className} was asked to run on the GPU, but some of its dimensions are set per call: the GPU runs only fully " +
                "shaped models. Pin the input shapes with the InputShapes metadata of its SquashModel item, or use SquashDevice.Cpu or Auto.");
    }

    /// <summary>Assembles a graph from nodes built on their own (each with fresh values for its inputs, as generated
    /// classes build them): node inputs and graph outputs are linked to the graph input or earlier node output of the
    /// same name; constants stay as they are.</summary>
    /// <param name="name">The graph's name.</param>
    /// <param name="opsets">The opset of each domain the graph imports.</param>
    /// <param name="inputs">The graph inputs.</param>
    /// <param name="nodes">The nodes, in execution order.</param>
    /// <param name="outputs">The graph outputs: placeholders named like the value they are, or constants.</param>
    public static Graph Link(string name, (string Domain, int Version)[] opsets, Value[] inputs, Node[] nodes, Value[] outputs)
    {
        ArgumentNullException.ThrowIfNull(opsets);
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(nodes);
        ArgumentNullException.ThrowIfNull(outputs);
        var graph = new Graph(name);
        foreach (var (domain, version) in opsets) graph.OpsetImports[domain] = version;
        var byName = new Dictionary<string, Value>(StringComparer.Ordinal);
        foreach (var v in inputs)
        {
            graph.Inputs.Add(v);
            byName[v.Name] = v;
        }
        Value Resolve(Value v) => v.Constant is null && byName.TryGetValue(v.Name, out var r) ? r : v;
        foreach (var node in nodes)
        {
            for (int i = 0; i < node.Inputs.Count; i++)
                if (node.Inputs[i] is { } v) node.SetInput(i, Resolve(v));
            foreach (var sub in node.Subgraphs)
            {
                // Outer values a subgraph reads were built fresh too.
                var outer = new Dictionary<Value, Value>();
                foreach (var v in sub.OuterValues())
                    if (Resolve(v) is var r && !ReferenceEquals(r, v)) outer[v] = r;
                sub.ReplaceUses(outer);
            }
            graph.Nodes.Add(node);
            foreach (var o in node.Outputs) byName[o.Name] = o;
        }
        foreach (var v in outputs) graph.Outputs.Add(Resolve(v));
        return graph;
    }
}
