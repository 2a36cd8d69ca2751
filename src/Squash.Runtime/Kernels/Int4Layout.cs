namespace Squash.Runtime.Kernels;

/// <summary>
/// The geometry of Squash's block-wise int4 weight layout (docs/int4.md gives it byte by byte). A weight W[K, N] (the
/// right operand of MatMul: y = x W) is cut along K into blocks of <see cref="BlockSize"/> values; every (column,
/// block) pair has a float16 scale and, when asymmetric, a 4-bit zero point: w = (q - zero point) * scale with q in
/// 0..15 (symmetric blocks use zero point 8). Columns are interleaved in groups of <see cref="ColumnGroup"/> so that
/// the GEMV reads one sequential stream, and each block's bytes are "half-split" (byte j holds element j in its low
/// nibble and element j + BlockSize/2 in its high nibble, as llama.cpp's Q4_0), so the kernels need no shuffling of x.
/// </summary>
/// <remarks>
/// Padding: K is padded to whole blocks with q = zero point (weight exactly 0); N is padded to whole groups with
/// q = zero point and scale 0. The kernels always run whole blocks and whole groups.
/// </remarks>
public readonly record struct Int4Layout
{
    /// <summary>Columns interleaved per group.</summary>
    public const int ColumnGroup = 4;

    /// <summary>The zero point of symmetric blocks (q = 8 is the weight 0).</summary>
    public const int SymmetricZeroPoint = 8;

    /// <summary>Describes a K x N weight in blocks of <paramref name="blockSize"/> values along K.</summary>
    /// <exception cref="ArgumentException">A dimension is not positive or the block size is not supported.</exception>
    public Int4Layout(int k, int n, int blockSize)
    {
        if (k <= 0 || n <= 0) throw new ArgumentException($"An int4 weight needs positive dimensions, not {k} x {n}.");
        if (!IsSupportedBlockSize(blockSize))
            throw new ArgumentException($"Block size {blockSize} is not supported; use 32, 64, 128 or 256.", nameof(blockSize));
        K = k;
        N = n;
        BlockSize = blockSize;
        Blocks = (k + blockSize - 1) / blockSize;
        Groups = (n + ColumnGroup - 1) / ColumnGroup;
        if ((long)Groups * Blocks * ColumnGroup * (blockSize / 2) > Array.MaxLength)
            throw new ArgumentException($"An int4 weight of {k} x {n} is larger than one buffer can hold.");
    }

    /// <summary>Input features (rows of W, the reduction axis).</summary>
    public int K { get; }

    /// <summary>Output features (columns of W).</summary>
    public int N { get; }

    /// <summary>Values per block along K.</summary>
    public int BlockSize { get; }

    /// <summary>Blocks per column: ceil(K / BlockSize).</summary>
    public int Blocks { get; }

    /// <summary>Column groups: ceil(N / ColumnGroup).</summary>
    public int Groups { get; }

    /// <summary>K rounded up to whole blocks.</summary>
    public int PaddedK => Blocks * BlockSize;

    /// <summary>N rounded up to whole groups.</summary>
    public int PaddedN => Groups * ColumnGroup;

    /// <summary>Bytes of one (column, block): two values per byte.</summary>
    public int BlockBytes => BlockSize / 2;

    /// <summary>Bytes of the packed values.</summary>
    public int DataBytes => Groups * Blocks * ColumnGroup * BlockBytes;

    /// <summary>Number of scales (and of zero points): one per (padded column, block).</summary>
    public int ScaleCount => Groups * Blocks * ColumnGroup;

    /// <summary>Bytes of the packed zero points (two per byte).</summary>
    public int ZeroPointBytes => ScaleCount / 2;

    /// <summary>Shape of the packed values as a uint8 tensor: [groups, blocks, 4, block_size / 2].</summary>
    public int[] DataShape => [Groups, Blocks, ColumnGroup, BlockBytes];

    /// <summary>Shape of the scales as a float16 tensor: [groups, blocks, 4].</summary>
    public int[] ScaleShape => [Groups, Blocks, ColumnGroup];

    /// <summary>Shape of the zero points as a uint8 tensor: [groups, blocks, 2].</summary>
    public int[] ZeroPointShape => [Groups, Blocks, ColumnGroup / 2];

    /// <summary>The block sizes the kernels support: powers of two from 32 (one 16-byte load per column and block) to 256.</summary>
    public static bool IsSupportedBlockSize(int blockSize) => blockSize is 32 or 64 or 128 or 256;

    /// <summary>Index of the scale (and zero point) of column <paramref name="n"/>, block <paramref name="block"/>.</summary>
    public int ScaleIndex(int n, int block) => ((n / ColumnGroup) * Blocks + block) * ColumnGroup + n % ColumnGroup;

    /// <summary>Offset of the first byte of column <paramref name="n"/>, block <paramref name="block"/>.</summary>
    public int BlockOffset(int n, int block) => ScaleIndex(n, block) * BlockBytes;

    /// <summary>Where element <paramref name="k"/> of column <paramref name="n"/> lives: its byte and whether it is the high nibble.</summary>
    public (int Byte, bool High) Locate(int k, int n)
    {
        int block = k / BlockSize, e = k % BlockSize;
        return (BlockOffset(n, block) + e % BlockBytes, e >= BlockBytes);
    }

    /// <summary>The shape of a packed-data tensor for this layout, checked.</summary>
    internal void CheckData(int bytes, string what)
    {
        if (bytes != DataBytes) throw new ArgumentException($"{what}: {bytes} bytes of packed int4 values, the layout ({this}) needs {DataBytes}.");
    }

    /// <inheritdoc/>
    public override string ToString() => $"K={K}, N={N}, block={BlockSize}";
}
