using static Squash.Runtime.Gpu.Tests.DeviceCase;

namespace Squash.Runtime.Gpu.Tests;

/// <summary>
/// MatMul, Gemm and Conv on the device against the CPU operators. Tolerance: rtol 1e-4, atol 1e-5. Both sides
/// accumulate in fp32 but in different orders (the device's tiles against the CPU's blocked GEMM); with K at most 40
/// and inputs in [-1, 1], reordering error stays below K * 2^-24 * sum|a*b|, about 1e-6 absolute. Up to 16 rows of A
/// the device runs its GEMV kernel (K split across thread rows), beyond it the tiled GEMM: 16 and 17 rows are both here.
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
    [InlineData(new[] { 16, 40 }, new[] { 40, 9 })]
    [InlineData(new[] { 17, 40 }, new[] { 40, 33 })]
    public void MatMul(int[] a, int[] b) =>
        Check("MatMul", [new("a", Random(1, 1, a)), new("b", Random(2, 1, b))], 1e-4f, 1e-5f);
}

public class GemmOperatorTests
{
    [Theory]
    [InlineData(0, 0, 3, 1f, 1f)]
    [InlineData(1, 0, 1, 0.5f, 2f)]
    [InlineData(0, 1, 2, 1f, 0.25f)]
    [InlineData(1, 1, 0, 2f, 1f)]
    public void Gemm(int transA, int transB, int biasKind, float alpha, float beta)
    {
        int m = 9, k = 21, n = 70;
        var a = transA != 0 ? Random(3, 1, k, m) : Random(3, 1, m, k);
        var b = transB != 0 ? Random(4, 1, n, k) : Random(4, 1, k, n);
        // biasKind: 0 none, 1 scalar, 2 a row [n], 3 a full [m, n].
        Tensor? c = biasKind switch { 1 => Random(5, 1, 1), 2 => Random(5, 1, n), 3 => Random(5, 1, m, n), _ => null };
        CaseInput[] inputs = c is null ? [new("a", a), new("b", b, true)] : [new("a", a), new("b", b, true), new("c", c, true)];
        Check("Gemm", inputs, 1e-4f, 1e-5f, new() { ["transA"] = Int(transA), ["transB"] = Int(transB), ["alpha"] = Float(alpha), ["beta"] = Float(beta) });
    }
}

/// <summary>Conv through the three device paths: implicit-im2col GEMM, 1x1 GEMM, depthwise direct. Tolerance as for
/// GEMM (K = channels per group x taps, at most 27 here).</summary>
public class ConvKernelTests
{
    public static TheoryData<int[], int[], int, int[], int[], int[], string, bool> Cases => new()
    {
        // x shape, w shape, group, strides, pads, dilations, auto_pad, bias
        { [1, 3, 9, 11], [8, 3, 3, 3], 1, [1, 1], [1, 1, 1, 1], [1, 1], "NOTSET", true },
        { [2, 4, 10, 7], [6, 2, 3, 2], 2, [2, 1], [0, 1, 2, 0], [1, 1], "NOTSET", false },
        { [1, 8, 12, 12], [8, 1, 3, 3], 8, [2, 2], [1, 1, 1, 1], [1, 1], "NOTSET", true },
        { [1, 4, 9, 9], [8, 1, 5, 5], 4, [1, 1], [0, 0, 0, 0], [1, 1], "SAME_UPPER", true },
        { [1, 16, 6, 5], [70, 16, 1, 1], 1, [1, 1], [0, 0, 0, 0], [1, 1], "NOTSET", true },
        { [1, 3, 10, 10], [4, 3, 3, 3], 1, [1, 1], [2, 2, 2, 2], [2, 2], "NOTSET", true },
        { [1, 2, 8, 8], [3, 2, 2, 2], 1, [2, 2], [0, 0, 0, 0], [1, 1], "SAME_LOWER", false },
        { [1, 3, 17], [5, 3, 3], 1, [2], [1, 1], [1], "NOTSET", true },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Conv(int[] x, int[] w, int group, int[] strides, int[] pads, int[] dilations, string autoPad, bool bias)
    {
        var attrs = new Dictionary<string, Ir.AttributeValue>
        {
            ["group"] = Int(group),
            ["strides"] = Ints([.. strides.Select(v => (long)v)]),
            ["dilations"] = Ints([.. dilations.Select(v => (long)v)]),
        };
        if (autoPad == "NOTSET") attrs["pads"] = Ints([.. pads.Select(v => (long)v)]);
        else attrs["auto_pad"] = Str(autoPad);
        CaseInput[] inputs = bias
            ? [new("x", Random(6, 1, x)), new("w", Random(7, 1, w), true), new("b", Random(8, 1, w[0]), true)]
            : [new("x", Random(6, 1, x)), new("w", Random(7, 1, w), true)];
        Check("Conv", inputs, 1e-4f, 1e-5f, attrs);
    }
}

/// <summary>ConvTranspose (direct gather kernel) against the CPU operator: rtol 1e-4, atol 1e-5 as for Conv.</summary>
public class ConvTransposeKernelTests
{
    public static TheoryData<int[], int[], int, long[], long[]?, long[]?, long[]?, string> Cases => new()
    {
        // x, w, group, strides, pads, output_padding, output_shape, auto_pad
        { [1, 4, 5, 6], [4, 3, 2, 2], 1, [2, 2], null, null, null, "NOTSET" },
        { [1, 4, 5, 5], [4, 2, 3, 3], 2, [2, 2], [1, 1, 1, 1], [1, 0], null, "NOTSET" },
        { [2, 3, 4, 4], [3, 2, 3, 3], 1, [2, 1], null, null, [9, 5], "NOTSET" },
        { [1, 2, 4, 3], [2, 3, 3, 2], 1, [2, 2], null, null, null, "SAME_UPPER" },
        { [1, 2, 4, 3], [2, 3, 3, 3], 1, [2, 2], null, null, null, "SAME_LOWER" },
        { [1, 3, 7], [3, 2, 3], 1, [3], [1, 0], null, null, "NOTSET" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void ConvTranspose(int[] x, int[] w, int group, long[] strides, long[]? pads, long[]? outputPadding, long[]? outputShape, string autoPad)
    {
        var attrs = new Dictionary<string, Ir.AttributeValue> { ["group"] = Int(group), ["strides"] = Ints(strides), ["auto_pad"] = Str(autoPad) };
        if (pads is not null) attrs["pads"] = Ints(pads);
        if (outputPadding is not null) attrs["output_padding"] = Ints(outputPadding);
        if (outputShape is not null) attrs["output_shape"] = Ints(outputShape);
        int outChannels = w[1] * group;
        Check("ConvTranspose", [new("x", Random(6, 1, x)), new("w", Random(7, 1, w), true), new("b", Random(8, 1, outChannels), true)], 1e-4f, 1e-5f, attrs);
    }
}
