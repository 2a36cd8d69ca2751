using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Squash.Runtime.Kernels;

/// <summary>
/// Int8 weights packed once into an int8 micro-kernel's panel layout, with the per-channel weight sums the zero-point
/// correction needs (<see cref="Int8Epilogue"/>). On the left (<see cref="PackLeft(ReadOnlySpan{sbyte}, int, int, int)"/>) the channels are the rows of
/// the product (a convolution over NCHW: <c>Y[M,N] = W[M,K] x im2col(X)[K,N]</c>); on the right
/// (<see cref="PackRight(ReadOnlySpan{sbyte}, int, bool, int, int)"/>) they are its columns (a MatMul: <c>Y[M,N] = X[M,K] x W[K,N]</c>).
/// </summary>
/// <remarks>
/// Weights must lie in [-<see cref="MaxMagnitude"/>, <see cref="MaxMagnitude"/>] (7-bit symmetric, see
/// docs/quantization.md): VPMADDUBSW saturates the sum of two u8 x s8 products to int16, and only this range keeps it
/// exact for every uint8 activation. Packing throws otherwise rather than let results be silently wrong.
/// Layout: panels of Mr (left) or Nr (right) channels; within a panel the depth is grouped in quads of 4 (K padded
/// with zeros to a multiple of 4) and, per quad, each channel's 4 bytes are contiguous. Immutable, thread-safe, and
/// specific to the machine's kernel, so it is built at run time and never serialized.
/// </remarks>
public sealed unsafe class Int8PackedWeights
{
    /// <summary>The largest weight magnitude the GEMM kernels multiply exactly.</summary>
    public const int MaxMagnitude = 64;

    private readonly byte[] _storage;
    private readonly int _offset;
    private readonly int[] _sums;

    private Int8PackedWeights(Int8Kernel kernel, bool isLeft, int channels, int depth)
    {
        Kernel = kernel;
        IsLeft = isLeft;
        Channels = channels;
        Depth = depth;
        Quads = (depth + 3) / 4;
        Width = isLeft ? kernel.Mr : kernel.Nr;
        PaddedChannels = (channels + Width - 1) / Width * Width;
        long bytes = (long)PaddedChannels * Quads * 4 + 64;
        if (bytes > Array.MaxLength) throw new ArgumentException("The matrix is too large to pack.");
        // Pinned so that kernels hold a plain pointer; 64 spare bytes to align panels to a cache line.
        _storage = GC.AllocateArray<byte>((int)bytes, pinned: true);
        nint address = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_storage));
        _offset = (int)((64 - (address & 63)) & 63);
        _sums = new int[channels];
    }

    /// <summary>The micro-kernel the panels are laid out for.</summary>
    internal Int8Kernel Kernel { get; }

    /// <summary>True for weights on the left (channels are rows of the product), false on the right.</summary>
    public bool IsLeft { get; }

    /// <summary>Output channels: M on the left, N on the right.</summary>
    public int Channels { get; }

    /// <summary>The shared dimension K.</summary>
    public int Depth { get; }

    /// <summary>Per output channel, the sum of its K weights.</summary>
    public ReadOnlySpan<int> WeightSums => _sums;

    /// <summary>K rounded up to quads of 4, divided by 4.</summary>
    internal int Quads { get; }

    /// <summary>Channels per panel: the kernel's Mr or Nr.</summary>
    internal int Width { get; }

    /// <summary><see cref="Channels"/> rounded up to whole panels.</summary>
    internal int PaddedChannels { get; }

    /// <summary>The first packed byte.</summary>
    internal byte* Data => (byte*)Unsafe.AsPointer(ref _storage[_offset]);

    /// <summary>A source of this matrix's panels for the GEMM driver.</summary>
    internal PrepackedInt8Panels Source => new(Data, Quads);

    /// <summary>Packs W [<paramref name="m"/>, <paramref name="k"/>] (row stride <paramref name="ldw"/>) as the left
    /// operand: channel i is row i. A convolution's weights [M, C/G, KH, KW] are this matrix per group.</summary>
    public static Int8PackedWeights PackLeft(ReadOnlySpan<sbyte> w, int ldw, int m, int k) => PackLeft(w, ldw, m, k, Int8Kernel.Best);

    /// <summary>Packs W [<paramref name="k"/>, <paramref name="n"/>] (or [n, k] when <paramref name="transposed"/>),
    /// row stride <paramref name="ldw"/>, as the right operand: channel j is column j.</summary>
    public static Int8PackedWeights PackRight(ReadOnlySpan<sbyte> w, int ldw, bool transposed, int k, int n) =>
        PackRight(w, ldw, transposed, k, n, Int8Kernel.Best);

    /// <summary>True when every value is within [-<see cref="MaxMagnitude"/>, <see cref="MaxMagnitude"/>].</summary>
    public static bool IsInRange(ReadOnlySpan<sbyte> w)
    {
        foreach (sbyte value in w)
            if (value < -MaxMagnitude || value > MaxMagnitude) return false;
        return true;
    }

    internal static Int8PackedWeights PackLeft(ReadOnlySpan<sbyte> w, int ldw, int m, int k, Int8Kernel kernel)
    {
        Int8Gemm.CheckOperand(w.Length, m, k, ldw, nameof(w));
        var packed = new Int8PackedWeights(kernel, true, m, k);
        fixed (sbyte* pw = w) packed.Fill(pw, ldw, 1);
        return packed;
    }

    internal static Int8PackedWeights PackRight(ReadOnlySpan<sbyte> w, int ldw, bool transposed, int k, int n, Int8Kernel kernel)
    {
        Int8Gemm.CheckOperand(w.Length, transposed ? n : k, transposed ? k : n, ldw, nameof(w));
        var packed = new Int8PackedWeights(kernel, false, n, k);
        fixed (sbyte* pw = w)
        {
            if (transposed) packed.Fill(pw, ldw, 1);
            else packed.Fill(pw, 1, ldw);
        }
        return packed;
    }

    /// <summary>Fills the panels from element (channel, depth) at <c>w[channel * channelStride + depth * depthStride]</c>.</summary>
    private void Fill(sbyte* w, nint channelStride, nint depthStride)
    {
        byte* data = Data;
        nint panelBytes = (nint)Width * Quads * 4;
        for (int c = 0; c < Channels; c++)
        {
            byte* dst = data + c / Width * panelBytes + c % Width * 4;
            int sum = 0;
            for (int p = 0; p < Depth; p++)
            {
                sbyte value = w[c * channelStride + p * depthStride];
                if (value < -MaxMagnitude || value > MaxMagnitude)
                    throw new ArgumentException($"Weight {value} (channel {c}, depth {p}) is outside [-{MaxMagnitude}, {MaxMagnitude}], " +
                        "the range the int8 kernels multiply exactly (see docs/quantization.md).", nameof(w));
                sum += value;
                dst[p / 4 * Width * 4 + p % 4] = (byte)value;
            }
            _sums[c] = sum;
        }
    }
}

/// <summary>
/// Where the int8 GEMM gets one operand in packed form (layout of <see cref="Int8PackedWeights"/>): panels of
/// <c>width</c> indices (rows of the left operand, columns of the right) over all depth quads.
/// </summary>
internal unsafe interface IInt8PanelSource
{
    /// <summary>
    /// The panels of indices [<paramref name="start"/>, start + <paramref name="count"/>): ceil(count / width) panels
    /// of quads x width x 4 bytes, panel q at q * width * 4 * quads, indices past the end zero. Fills and returns
    /// <paramref name="scratch"/>, or returns pre-packed storage. <paramref name="start"/> is a multiple of width.
    /// </summary>
    byte* Panels(int start, int count, int width, byte* scratch);

    /// <summary>Scratch bytes <see cref="Panels"/> needs beyond the panels for <paramref name="count"/> indices.</summary>
    int ExtraScratch(int count);
}

/// <summary>Panels packed in advance for all channels.</summary>
internal readonly unsafe struct PrepackedInt8Panels(byte* data, int quads) : IInt8PanelSource
{
    public byte* Panels(int start, int count, int width, byte* scratch) => data + (nint)start * quads * 4;

    public int ExtraScratch(int count) => 0;
}

/// <summary>Rows of uint8 activations as the left operand: element (row, depth) at <c>data[row * ld + depth]</c>
/// (a MatMul's A).</summary>
internal readonly unsafe struct Int8LeftRows(byte* data, nint ld, int depth) : IInt8PanelSource
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public byte* Panels(int start, int count, int width, byte* scratch)
    {
        int quads = (depth + 3) / 4, whole = depth / 4;
        nint panelBytes = (nint)width * quads * 4;
        int panels = (count + width - 1) / width;
        for (int r = 0; r < panels * width; r++)
        {
            // Row r's quads go to every width-th int of its panel: a transpose of 4-byte units.
            int* dst = (int*)(scratch + r / width * panelBytes) + r % width;
            if (r >= count)
            {
                for (int q = 0; q < quads; q++) dst[q * width] = 0;
                continue;
            }
            byte* src = data + (start + r) * ld;
            for (int q = 0; q < whole; q++) dst[q * width] = Unsafe.ReadUnaligned<int>(src + 4 * q);
            if (whole < quads)
            {
                int last = 0;
                for (int j = 0; j < depth - 4 * whole; j++) last |= src[4 * whole + j] << (8 * j);
                dst[whole * width] = last;
            }
        }
        return scratch;
    }

    public int ExtraScratch(int count) => 0;
}

/// <summary>Rows of uint8 activations as the right operand: element (depth, column) at <c>data[depth * ld + column]</c>
/// (channels x pixels of an NCHW image, for a pointwise convolution).</summary>
internal readonly unsafe struct Int8RightRows(byte* data, nint ld, int depth) : IInt8PanelSource
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public byte* Panels(int start, int count, int width, byte* scratch)
    {
        int quads = (depth + 3) / 4;
        for (int q = 0; q < quads; q++)
        {
            byte* r0 = Row(4 * q, start), r1 = Row(4 * q + 1, start), r2 = Row(4 * q + 2, start), r3 = Row(4 * q + 3, start);
            Int8Interleave.Quad(r0, r1, r2, r3, count, scratch + q * width * 4, width, quads);
        }
        return scratch;
    }

    /// <summary>Depth row <paramref name="p"/> from column <paramref name="start"/>, or null past the depth.</summary>
    private byte* Row(int p, int start) => p < depth ? data + p * ld + start : null;

    public int ExtraScratch(int count) => 0;
}

/// <summary>The byte interleave that builds right panels from depth rows.</summary>
internal static unsafe class Int8Interleave
{
    /// <summary>
    /// Writes quad q of the right panels for <paramref name="count"/> columns: column c's bytes (r0[c], r1[c], r2[c],
    /// r3[c]) go to <c>dst + (c / width) * panelBytes + (c % width) * 4</c>, where <paramref name="dst"/> is quad q's
    /// place in panel 0 and panelBytes = width * 4 * quads. A null row reads as zeros; columns past
    /// <paramref name="count"/> up to the panel's end are zeroed.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Quad(byte* r0, byte* r1, byte* r2, byte* r3, int count, byte* dst, int width, int quads)
    {
        nint panelBytes = (nint)width * 4 * quads;
        // The place of column c, advanced four columns at a time (width is a multiple of 4), without a division.
        byte* panel = dst;
        int inPanel = 0;
        int c = 0;
        if (Sse2.IsSupported && r0 != null && r1 != null && r2 != null && r3 != null)
        {
            for (; c + 16 <= count; c += 16)
            {
                // Bytes of rows 0/1 and 2/3 interleaved, then their 16-bit pairs: four columns per 16-byte store.
                var a = Vector128.Load(r0 + c);
                var b = Vector128.Load(r1 + c);
                var x = Vector128.Load(r2 + c);
                var y = Vector128.Load(r3 + c);
                var ab0 = Sse2.UnpackLow(a, b).AsInt16();
                var ab1 = Sse2.UnpackHigh(a, b).AsInt16();
                var xy0 = Sse2.UnpackLow(x, y).AsInt16();
                var xy1 = Sse2.UnpackHigh(x, y).AsInt16();
                Put(Sse2.UnpackLow(ab0, xy0), ref panel, ref inPanel, width, panelBytes);
                Put(Sse2.UnpackHigh(ab0, xy0), ref panel, ref inPanel, width, panelBytes);
                Put(Sse2.UnpackLow(ab1, xy1), ref panel, ref inPanel, width, panelBytes);
                Put(Sse2.UnpackHigh(ab1, xy1), ref panel, ref inPanel, width, panelBytes);
            }
        }
        for (; c < count; c++)
        {
            byte* d = panel + inPanel * 4;
            d[0] = r0 == null ? (byte)0 : r0[c];
            d[1] = r1 == null ? (byte)0 : r1[c];
            d[2] = r2 == null ? (byte)0 : r2[c];
            d[3] = r3 == null ? (byte)0 : r3[c];
            if (++inPanel == width)
            {
                panel += panelBytes;
                inPanel = 0;
            }
        }
        if (inPanel != 0) new Span<byte>(panel + inPanel * 4, (width - inPanel) * 4).Clear();
    }

    /// <summary>Stores four interleaved columns and advances the place by four columns.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Put(Vector128<short> columns, ref byte* panel, ref int inPanel, int width, nint panelBytes)
    {
        columns.Store((short*)(panel + inPanel * 4));
        inPanel += 4;
        if (inPanel == width)
        {
            panel += panelBytes;
            inPanel = 0;
        }
    }
}

/// <summary>Per-thread packing buffers, reused across calls so that an int8 GEMM allocates nothing after warm-up.</summary>
internal static unsafe class Int8Scratch
{
    [ThreadStatic] private static byte[]? t_left;
    [ThreadStatic] private static byte[]? t_right;
    [ThreadStatic] private static byte[]? t_other;

    /// <summary>At least <paramref name="bytes"/> bytes for packed left panels, 64-byte aligned.</summary>
    public static byte* Left(int bytes) => Get(ref t_left, bytes);

    /// <summary>At least <paramref name="bytes"/> bytes for packed right panels, 64-byte aligned.</summary>
    public static byte* Right(int bytes) => Get(ref t_right, bytes);

    /// <summary>At least <paramref name="bytes"/> bytes for anything else (depthwise planes, row buffers), 64-byte aligned.</summary>
    public static byte* Other(int bytes) => Get(ref t_other, bytes);

    private static byte* Get(ref byte[]? buffer, int bytes)
    {
        if (buffer is null || buffer.Length < bytes + 64)
            buffer = GC.AllocateUninitializedArray<byte>(bytes + 64, pinned: true);
        nint address = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(buffer));
        return (byte*)((address + 63) & ~(nint)63);
    }
}
