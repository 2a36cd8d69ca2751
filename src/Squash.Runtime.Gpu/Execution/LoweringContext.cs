using ILGPU;
using ILGPU.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Runtime.Gpu.Execution;

/// <summary>What a lowering sees while it turns one node into device work: the device views of the node's values,
/// their constant values, and a place to upload tables the kernels need.</summary>
internal sealed class LoweringContext
{
    private readonly DeviceMemory _memory;

    public LoweringContext(Accelerator accelerator, KernelCache kernels, DeviceMemory memory)
    {
        Accelerator = accelerator;
        Kernels = kernels;
        _memory = memory;
    }

    /// <summary>The device.</summary>
    public Accelerator Accelerator { get; }

    /// <summary>Compiled kernels.</summary>
    public KernelCache Kernels { get; }

    /// <summary>The node being lowered.</summary>
    public Node Node { get; set; } = null!;

    /// <summary>Input <paramref name="index"/> of the node, or null when absent.</summary>
    public Value? Input(int index) => Node.Input(index);

    /// <summary>Input <paramref name="index"/>, which must be present.</summary>
    public Value RequiredInput(int index) => Node.Input(index) ?? throw new NotOnDeviceException($"input {index} is absent");

    /// <summary>Output <paramref name="index"/>.</summary>
    public Value Output(int index) => Node.Outputs[index];

    /// <summary>The shape of <paramref name="value"/> (every shape of a planned graph is known).</summary>
    public static int[] Shape(Value value) => value.Shape!;

    /// <summary>The device elements of <paramref name="value"/> (constants are uploaded on first use).</summary>
    /// <exception cref="NotOnDeviceException">The element type is not <typeparamref name="T"/>.</exception>
    public ArrayView<T> View<T>(Value value) where T : unmanaged
    {
        if (DataTypes.Of<T>() != value.Type)
            throw new NotOnDeviceException($"'{value.Name}' is {DataTypes.Name(value.Type)}, the kernel takes {typeof(T).Name}");
        return _memory.Bytes(value).Cast<T>();
    }

    /// <summary>The device bytes of <paramref name="value"/>.</summary>
    public ArrayView<byte> Bytes(Value value) => _memory.Bytes(value);

    /// <summary>True when <paramref name="value"/> is computed at run time (in the arena), false for a constant.</summary>
    public bool InArena(Value value) => _memory.InArena(value);

    /// <summary>Bytes of the shared scratch buffer (see <see cref="DeviceMemory.ScratchBytes"/>).</summary>
    public ArrayView<byte> Scratch(long offset, long bytes) => _memory.Scratch(offset, bytes);

    /// <summary>Makes <paramref name="value"/> read and write <paramref name="view"/>.</summary>
    public void Bind(Value value, ArrayView<byte> view) => _memory.Bind(value, view);

    /// <summary>fp32 copies of fp16 constants, made once per model whichever nodes read them.</summary>
    public Dictionary<Value, Value> WideConstants { get; } = [];

    /// <summary>The value of input <paramref name="index"/>, which must be a constant.</summary>
    /// <exception cref="NotOnDeviceException">The input is computed at run time.</exception>
    public Tensor ConstantInput(int index, string what) =>
        Node.Input(index)?.Constant ?? throw new NotOnDeviceException($"{what} (input {index}) is not a constant");

    /// <summary>Uploads a table a kernel reads (uploaded once; lives as long as the model).</summary>
    public ArrayView<T> Upload<T>(T[] data) where T : unmanaged => _memory.Upload(data);

    /// <summary>Requires the first <paramref name="dataInputs"/> inputs that are present (the data; later inputs are
    /// parameters such as axes or sizes) and every output to be fp32.</summary>
    public void RequireFloat(int dataInputs = int.MaxValue)
    {
        foreach (var v in Node.Inputs.Take(dataInputs))
            if (v is not null && v.Type != DataType.Float) throw new NotOnDeviceException($"'{v.Name}' is {DataTypes.Name(v.Type)}; the device kernels compute fp32");
        foreach (var v in Node.Outputs)
            if (v.Type != DataType.Float) throw new NotOnDeviceException($"'{v.Name}' is {DataTypes.Name(v.Type)}; the device kernels compute fp32");
    }

    /// <summary>The float type of a node whose first <paramref name="dataInputs"/> present inputs and outputs are all
    /// fp32 or all fp16 (fp16 kernels compute in fp32 and round back, as the CPU does).</summary>
    /// <exception cref="NotOnDeviceException">Another type, or a mix.</exception>
    public DataType FloatType(int dataInputs = int.MaxValue)
    {
        var type = Node.Outputs[0].Type;
        if (type is not (DataType.Float or DataType.Float16))
            throw new NotOnDeviceException($"'{Node.Outputs[0].Name}' is {DataTypes.Name(type)}; the device kernels compute fp32 and fp16");
        foreach (var v in Node.Inputs.Take(dataInputs).Concat(Node.Outputs))
            if (v is not null && v.Type != type) throw new NotOnDeviceException($"'{v.Name}' is {DataTypes.Name(v.Type)}, '{Node.Outputs[0].Name}' {DataTypes.Name(type)}");
        return type;
    }

    /// <summary>Number of elements of <paramref name="value"/>.</summary>
    public static int Count(Value value) => (int)Shapes.ElementCount(value.Shape!);

    /// <summary>Normalizes a possibly negative axis.</summary>
    public int Axis(long axis, int rank)
    {
        long a = axis < 0 ? axis + rank : axis;
        if (a < 0 || a >= rank) throw new NotOnDeviceException($"axis {axis} is out of range for rank {rank}");
        return (int)a;
    }
}
