using Squash.Runtime.Kernels;

namespace Squash.Runtime.Tests;

/// <summary>The data-movement kernels against element-by-element references. Copies are exact, so equality is
/// required; random bytes make any misplaced element visible.</summary>
public sealed class MovementTests
{
    public static TheoryData<int, int[], int[], int> Permutations() => new()
    {
        // 2-D shapes around the 8x8 (4x4 for 8 bytes) SIMD tiles and the 128-byte strips.
        { 4, [37, 53], [1, 0], 1 },
        { 4, [64, 64], [1, 0], 1 },
        { 4, [200, 24], [1, 0], 3 },
        { 2, [37, 53], [1, 0], 1 },
        { 2, [130, 72], [1, 0], 2 },
        { 8, [37, 53], [1, 0], 1 },
        { 8, [16, 40], [1, 0], 4 },
        { 1, [37, 53], [1, 0], 1 },
        { 1, [300, 9], [1, 0], 2 },
        // Batched transposes, axes that merge, and an inner axis that stays put.
        { 4, [3, 17, 19], [0, 2, 1], 1 },
        { 4, [3, 17, 19], [2, 0, 1], 2 },
        { 4, [3, 17, 19], [1, 2, 0], 1 },
        { 4, [3, 17, 19], [2, 1, 0], 3 },
        { 4, [2, 3, 4, 5], [0, 2, 1, 3], 1 },
        { 2, [2, 3, 4, 5], [3, 1, 2, 0], 2 },
        { 8, [2, 3, 4, 5], [1, 0, 3, 2], 1 },
        { 1, [2, 3, 4, 5], [0, 3, 1, 2], 1 },
        // NCHW to NHWC and back, with a small channel count.
        { 4, [2, 3, 33, 41], [0, 2, 3, 1], 2 },
        { 4, [2, 33, 41, 3], [0, 3, 1, 2], 2 },
        // A DepthToSpace-like 6-D view and size-1 axes that vanish.
        { 4, [1, 2, 2, 3, 5, 7], [0, 3, 4, 1, 5, 2], 1 },
        { 2, [1, 5, 1, 7, 1], [4, 3, 2, 1, 0], 1 },
    };

    [Theory]
    [MemberData(nameof(Permutations))]
    public void TransposeMatchesReference(int elementSize, int[] shape, int[] perm, int threads)
    {
        var source = RandomBytes(Shapes.ElementCount(shape) * elementSize, shape.Length * 100 + perm[0]);
        var actual = new byte[source.Length];
        Transpose.Permute(new KernelContext(threads), elementSize, shape, perm, source, actual);

        var outShape = new int[shape.Length];
        for (int k = 0; k < shape.Length; k++) outShape[k] = shape[perm[k]];
        var inStrides = Shapes.Strides(shape);
        var outStrides = Shapes.Strides(outShape);
        var expected = new byte[source.Length];
        for (int o = 0; o < source.Length / elementSize; o++)
        {
            int i = 0;
            for (int k = 0; k < shape.Length; k++) i += o / outStrides[k] % outShape[k] * inStrides[perm[k]];
            Array.Copy(source, i * elementSize, expected, o * elementSize, elementSize);
        }
        Assert.Equal(expected, actual);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 2)]
    [InlineData(4, 1)]
    [InlineData(8, 3)]
    public void StridedCopyHandlesReversedBroadcastAndOffsetViews(int elementSize, int threads)
    {
        // Source viewed as [4, 3, 5] reversed on axis 2, broadcast on axis 1, written into a [6, 3, 9] destination
        // at [1, 0, 2] with its own strides.
        int[] shape = [4, 3, 5];
        long[] sourceStrides = [5, 0, -1];
        long sourceOffset = 4;
        long[] destinationStrides = [27, 9, 1];
        long destinationOffset = 27 + 2;
        var source = RandomBytes(20 * elementSize, elementSize);
        var actual = new byte[6 * 3 * 9 * elementSize];
        var expected = new byte[actual.Length];
        StridedCopy.Copy(new KernelContext(threads), elementSize, shape, source, sourceOffset, sourceStrides, actual, destinationOffset, destinationStrides);
        for (int a = 0; a < 4; a++)
            for (int b = 0; b < 3; b++)
                for (int c = 0; c < 5; c++)
                {
                    long s = sourceOffset + a * sourceStrides[0] + b * sourceStrides[1] + c * sourceStrides[2];
                    long d = destinationOffset + a * destinationStrides[0] + b * destinationStrides[1] + c * destinationStrides[2];
                    Array.Copy(source, s * elementSize, expected, d * elementSize, elementSize);
                }
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void StridedCopySplitsLongRowsAcrossThreads()
    {
        // One contiguous row of 100,000 floats: several 64 KiB chunks, an uneven last one.
        var source = RandomBytes(400_000, 7);
        var actual = new byte[source.Length];
        StridedCopy.Copy(new KernelContext(4), 4, [100_000], source, 0, [1], actual);
        Assert.Equal(source, actual);
    }

    [Fact]
    public void StridedCopyRejectsViewsOutsideTheBuffer()
    {
        var source = new byte[16];
        var destination = new byte[16];
        Assert.Throws<ArgumentException>(() =>
            StridedCopy.Copy(new KernelContext(1), 4, [2, 2], source, 1, [2, 1], destination));
        Assert.Throws<ArgumentException>(() =>
            StridedCopy.Copy(new KernelContext(1), 4, [4], source, 0, [-1], destination));
    }

    public static TheoryData<PadMode, int[], int[], int[]> PadCases() => new()
    {
        { PadMode.Constant, [3, 4], [1, 2], [0, 3] },
        { PadMode.Constant, [3, 5], [-1, 2], [2, -2] },
        { PadMode.Reflect, [3, 4], [2, 3], [2, 3] },
        // Pads longer than the axis reflect again, as NumPy does.
        { PadMode.Reflect, [2, 3], [3, 5], [4, 6] },
        { PadMode.Edge, [2, 3, 4], [1, 0, 2], [0, 2, 5] },
        { PadMode.Wrap, [3, 4], [4, 5], [1, 9] },
        { PadMode.Reflect, [1, 5], [1, 1], [2, 0] },
    };

    [Theory]
    [MemberData(nameof(PadCases))]
    public void PadMatchesReference(PadMode mode, int[] inputShape, int[] begin, int[] end)
    {
        int rank = inputShape.Length;
        var outputShape = new int[rank];
        for (int k = 0; k < rank; k++) outputShape[k] = inputShape[k] + begin[k] + end[k];
        int count = (int)Shapes.ElementCount(inputShape);
        var input = new float[count];
        for (int i = 0; i < count; i++) input[i] = i + 1;
        var source = Tensor.From<float>(input, inputShape);
        var output = new Tensor(DataType.Float, outputShape);
        Pad.Run(new KernelContext(2), inputShape, source.Bytes, outputShape, begin, mode, BitConverter.GetBytes(-7f), output.Bytes);

        var inStrides = Shapes.Strides(inputShape);
        var outStrides = Shapes.Strides(outputShape);
        var actual = output.AsSpan<float>();
        for (int o = 0; o < actual.Length; o++)
        {
            int i = 0;
            bool constant = false;
            for (int k = 0; k < rank; k++)
            {
                int x = o / outStrides[k] % outputShape[k] - begin[k], n = inputShape[k];
                if (x < 0 || x >= n)
                {
                    if (mode == PadMode.Constant) constant = true;
                    else if (mode == PadMode.Edge) x = Math.Clamp(x, 0, n - 1);
                    else if (mode == PadMode.Wrap) x = ((x % n) + n) % n;
                    else if (n == 1) x = 0;
                    else
                        while (x < 0 || x >= n) x = x < 0 ? -x : 2 * (n - 1) - x;
                }
                i += x * inStrides[k];
            }
            Assert.Equal(constant ? -7f : input[i], actual[o]);
        }
    }

    private static byte[] RandomBytes(long length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }
}
