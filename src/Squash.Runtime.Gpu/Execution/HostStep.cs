using ILGPU;
using ILGPU.Runtime;
using Squash.Runtime.Ir;
using Squash.Runtime.Operators;

namespace Squash.Runtime.Gpu.Execution;

/// <summary>
/// A node without a device kernel, run by its CPU operator: its computed inputs are downloaded, the operator runs on the
/// host, and its outputs are uploaded back into the arena. One round trip per run of the node (the stream is drained
/// first), so a model keeps all its other nodes on the device.
/// </summary>
internal sealed class HostStep : GpuStep
{
    private readonly Operator _operator;
    private readonly KernelContext _context;
    private readonly Tensor?[] _inputs;
    private readonly Tensor[] _outputs;
    private readonly (ArrayView<byte> Device, Tensor Host)[] _downloads;
    private readonly (ArrayView<byte> Device, Tensor Host)[] _uploads;

    public HostStep(Operator op, IReadOnlyList<Value?> inputs, IReadOnlyList<Value> outputs, DeviceMemory memory, KernelContext context, string reason)
    {
        _operator = op;
        _context = context;
        Reason = reason;
        var downloads = new List<(ArrayView<byte>, Tensor)>();
        _inputs = new Tensor?[inputs.Count];
        for (int k = 0; k < inputs.Count; k++)
        {
            var v = inputs[k];
            if (v is null) continue;
            if (v.Constant is { } c) { _inputs[k] = c; continue; }
            var host = new Tensor(v.Type, v.Shape!);
            _inputs[k] = host;
            downloads.Add((memory.Bytes(v), host));
        }
        _downloads = [.. downloads];
        _outputs = new Tensor[outputs.Count];
        _uploads = new (ArrayView<byte>, Tensor)[outputs.Count];
        for (int k = 0; k < outputs.Count; k++)
        {
            _outputs[k] = new Tensor(outputs[k].Type, outputs[k].Shape!);
            _uploads[k] = (memory.Bytes(outputs[k]), _outputs[k]);
        }
    }

    /// <summary>Why the node runs on the host.</summary>
    public string Reason { get; }

    public override void Run(AcceleratorStream stream)
    {
        foreach (var (device, host) in _downloads) Transfers.Download(stream, device, host.Bytes);
        stream.Synchronize();
        _operator.Run(_context, _inputs, _outputs);
        foreach (var (device, host) in _uploads) Transfers.Upload(stream, host.Bytes, device);
    }
}
