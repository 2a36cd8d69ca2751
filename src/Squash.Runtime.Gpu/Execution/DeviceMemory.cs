using ILGPU;
using ILGPU.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;

namespace Squash.Runtime.Gpu.Execution;

/// <summary>
/// The device side of a plan: one arena laid out by <see cref="PlanLayout"/> (the same offsets as the CPU plan and the
/// generated code; graph inputs included, so a run uploads each input once into its slot), and the constants the
/// kernels read, each uploaded once on first use.
/// </summary>
internal sealed class DeviceMemory : IDisposable
{
    private readonly Accelerator _accelerator;
    private readonly PlanLayout _layout;
    private readonly Dictionary<Value, int> _slotOf = [];
    private readonly MemoryBuffer1D<byte, Stride1D.Dense> _arena;
    private readonly Dictionary<Value, ArrayView<byte>> _constants = [];
    private readonly List<MemoryBuffer> _owned = [];
    private readonly Dictionary<Value, ArrayView<byte>> _bound = [];
    private MemoryBuffer1D<byte, Stride1D.Dense>? _scratch;

    public DeviceMemory(Accelerator accelerator, PlanLayout layout)
    {
        _accelerator = accelerator;
        _layout = layout;
        for (int s = 0; s < layout.Slots.Count; s++) _slotOf[layout.Slots[s]] = s;
        _arena = accelerator.Allocate1D<byte>(Math.Max(1, layout.ArenaBytes));
    }

    /// <summary>Bytes of the arena.</summary>
    public long ArenaBytes => _layout.ArenaBytes;

    /// <summary>Bytes of the scratch buffer that steps use only while they run (fp16 nodes widened to fp32 by
    /// <c>HalfLowering</c>): steps run one after another on one stream, so every step shares the same bytes. Set before
    /// lowering; the buffer is allocated on first use.</summary>
    public long ScratchBytes { get; set; }

    /// <summary>Bytes of the scratch buffer allocated (0 when no step has used it).</summary>
    public long AllocatedScratchBytes => _scratch is null ? 0 : ScratchBytes;

    /// <summary>Bytes of constants uploaded so far.</summary>
    public long ConstantBytes { get; private set; }

    /// <summary>The device bytes of <paramref name="value"/>: its arena range, or its uploaded constant.</summary>
    public ArrayView<byte> Bytes(Value value)
    {
        if (_bound.TryGetValue(value, out var bound)) return bound;
        if (_slotOf.TryGetValue(value, out int s) && _layout.Offsets[s] >= 0)
        {
            long bytes = Shapes.ElementCount(value.Shape!) * DataTypes.SizeOf(value.Type);
            return _arena.View.SubView(_layout.Offsets[s], Math.Max(bytes, 0)).AsContiguous();
        }
        if (value.Constant is { } c)
        {
            if (!_constants.TryGetValue(value, out var view))
            {
                view = Upload(c.Bytes.ToArray());
                _constants[value] = view;
            }
            return view;
        }
        throw new InvalidOperationException($"'{value.Name}' has no place in the plan.");
    }

    /// <summary>True when <paramref name="value"/> is computed at run time into the arena (a graph input or a node's
    /// output), false for a constant.</summary>
    public bool InArena(Value value) => _slotOf.TryGetValue(value, out int s) && _layout.Offsets[s] >= 0;

    /// <summary><paramref name="bytes"/> bytes of the shared scratch buffer from <paramref name="offset"/>.</summary>
    public ArrayView<byte> Scratch(long offset, long bytes)
    {
        if (offset + bytes > ScratchBytes) throw new InvalidOperationException($"Scratch [{offset}, {offset + bytes}) is outside the {ScratchBytes} bytes planned.");
        _scratch ??= _accelerator.Allocate1D<byte>(Math.Max(1, ScratchBytes));
        return _scratch.View.SubView(offset, bytes).AsContiguous();
    }

    /// <summary>Makes <paramref name="value"/> (a value of a node rewritten for lowering) read and write
    /// <paramref name="view"/>.</summary>
    public void Bind(Value value, ArrayView<byte> view) => _bound[value] = view;

    /// <summary>Uploads <paramref name="data"/> into a buffer that lives as long as this memory.</summary>
    public ArrayView<T> Upload<T>(T[] data) where T : unmanaged
    {
        // An empty buffer is not allowed; one spare element keeps every view valid.
        var buffer = _accelerator.Allocate1D<T>(Math.Max(1, data.Length));
        if (data.Length > 0) buffer.View.SubView(0, data.Length).CopyFromCPU(data);
        _owned.Add(buffer);
        ConstantBytes += (long)data.Length * System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
        return buffer.View.SubView(0, data.Length).AsContiguous();
    }

    public void Dispose()
    {
        _arena.Dispose();
        _scratch?.Dispose();
        foreach (var b in _owned) b.Dispose();
    }
}
