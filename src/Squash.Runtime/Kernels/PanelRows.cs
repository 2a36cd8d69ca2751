using System.Runtime.CompilerServices;

namespace Squash.Runtime.Kernels;

/// <summary>
/// How a micro-kernel finds the NR floats of each depth of one B panel. Packed panels store them one after another;
/// a convolution over a zero-padded image finds them at fixed offsets into the image (<see cref="ShiftedRows"/>),
/// so that it needs no packing at all.
/// </summary>
internal unsafe interface IPanelRows<TSelf> where TSelf : struct, IPanelRows<TSelf>
{
    /// <summary>The first of the NR floats at depth <paramref name="p"/>; <paramref name="nr"/> is the kernel's NR.</summary>
    float* Row(int p, int nr);

    /// <summary>The panel <paramref name="columns"/> columns to the right in a slab of depth <paramref name="kc"/>.</summary>
    TSelf Advance(int columns, int kc);
}

/// <summary>A packed panel: depth rows of NR floats one after another; panels of a slab follow each other.</summary>
internal readonly unsafe struct PackedRows(float* panel) : IPanelRows<PackedRows>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float* Row(int p, int nr) => panel + (nint)p * nr;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public PackedRows Advance(int columns, int kc) => new(panel + (nint)columns * kc);
}

/// <summary>Depth row p of the columns starting at <c>origin</c> is at <c>origin + offsets[p]</c>: a window of the
/// image for one tap of one channel.</summary>
internal readonly unsafe struct ShiftedRows(float* origin, int* offsets) : IPanelRows<ShiftedRows>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float* Row(int p, int nr) => origin + offsets[p];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ShiftedRows Advance(int columns, int kc) => new(origin + columns, offsets);
}

/// <summary>The right operand of a GEMM, slab by slab.</summary>
internal unsafe interface IRightOperand<TRows> where TRows : struct, IPanelRows<TRows>
{
    /// <summary>The columns [<paramref name="start"/>, start + <paramref name="count"/>) over depths
    /// [<paramref name="p0"/>, p0 + <paramref name="kc"/>), packed into <paramref name="scratch"/> if the operand
    /// needs packing, as the rows of the slab's first panel.</summary>
    TRows Slab(int start, int count, int p0, int kc, int width, float* scratch);
}

/// <summary>A right operand that is packed into panels (on the fly or in advance).</summary>
internal readonly unsafe struct PackedRight<TSource>(TSource source) : IRightOperand<PackedRows>
    where TSource : struct, IPanelSource
{
    public PackedRows Slab(int start, int count, int p0, int kc, int width, float* scratch) =>
        new(source.Panels(start, count, p0, kc, width, scratch));
}

/// <summary>
/// The im2col matrix of a stride-1 convolution read in place from a zero-padded image [C, HP, WP]: output positions
/// are numbered on the padded grid (<c>j = oh * WP + ow</c>), where tap (kh, kw) of channel c reads
/// <c>image[c * HP * WP + j + kh * DH * WP + kw * DW]</c>, a constant offset per depth row. Columns with ow &gt;= OW are
/// computed and discarded.
/// </summary>
internal readonly unsafe struct ShiftedImage(float* image, int* offsets) : IRightOperand<ShiftedRows>
{
    public ShiftedRows Slab(int start, int count, int p0, int kc, int width, float* scratch) =>
        new(image + start, offsets + p0);
}
