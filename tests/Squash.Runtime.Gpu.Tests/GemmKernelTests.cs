using static Squash.Runtime.Gpu.Tests.DeviceCase;

namespace Squash.Runtime.Gpu.Tests;

/// <summary>
/// MatMul, Gemm and Conv on the device against the CPU operators. Tolerance: rtol 1e-4, atol 1e-5. Both sides
/// accumulate in fp32 but in different orders (64 x 64 x 16 tiles against the CPU's blocked GEMM); with K up to a few
/// hundred and inputs in [-1, 1], reordering error stays below K * 2^-24 * sum|a*b|, about 1e-5 absolute.
/// </summary>
public class GemmKernelTests
{
    [Theory]
    [InlineData(new[] { 5, 7 }, new[] { 7, 3 })]
    [InlineData(new[] { 70, 33 }, new[] { 33, 130 })]
    [InlineData(new[] { 2, 3, 9, 17 }, new[] { 2, 3, 17, 5 })]
    [InlineData(new[] { 3, 9, 17 }, new[] { 17, 5 })]
    [InlineData(new[] { 17 }, new[] { 2, 17, 4 })]
    [InlineData(new[] { 4, 17 }, new[] { 17 })]
    public void MatMul(int[] a, int[] b) =>
        Check("MatMul", [new("a", Random(1, 1, a)), new("b", Random(2, 1, b))], 1e-4f, 1e-5f);
}
