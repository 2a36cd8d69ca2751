using static Squash.Runtime.Gpu.Tests.DeviceCase;

namespace Squash.Runtime.Gpu.Tests;

/// <summary>Data movement and Cast on the device against the CPU operators: exact (no arithmetic), except linear
/// Resize (rtol 1e-5, atol 1e-6: the device blends both axes at once with weights rounded to fp32, the CPU one axis at
/// a time).</summary>
public class MovementKernelTests
{
    [Fact]
    public void ReshapeFamily()
    {
        var c = new MultiCase().Input("x", Random(1, 1, 2, 3, 1, 4)).Input("shape", Tensor.From<long>([6, -1], 2), true)
            .Input("axes", Tensor.From<long>([2], 1), true).Input("axes0", Tensor.From<long>([0], 1), true);
        c.Node("Reshape", ["x", "shape"]).Node("Flatten", ["x"], new() { ["axis"] = Int(2) })
            .Node("Squeeze", ["x", "axes"]).Node("Unsqueeze", ["x", "axes0"]).Node("Identity", ["x"]);
        c.Check(0, 0);
    }

    [Fact]
    public void Transpose()
    {
        var c = new MultiCase().Input("x", Random(1, 1, 2, 3, 4, 5)).Input("i", Int64s(2 * 3 * 4, 2, 3, 4));
        c.Node("Transpose", ["x"], new() { ["perm"] = Ints(0, 2, 3, 1) }).Node("Transpose", ["x"]).Node("Transpose", ["i"], new() { ["perm"] = Ints(1, 0, 2) });
        c.Check(0, 0);
    }

    [Fact]
    public void Slice()
    {
        var c = new MultiCase().Input("x", Random(1, 1, 4, 6, 8))
            .Input("s1", Tensor.From<long>([1, -5], 2), true).Input("e1", Tensor.From<long>([3, 100], 2), true).Input("a1", Tensor.From<long>([0, 2], 2), true)
            .Input("s2", Tensor.From<long>([-1, 5], 2), true).Input("e2", Tensor.From<long>([-100, 0], 2), true)
            .Input("a2", Tensor.From<long>([2, 1], 2), true).Input("st2", Tensor.From<long>([-3, -2], 2), true);
        c.Node("Slice", ["x", "s1", "e1", "a1"]).Node("Slice", ["x", "s2", "e2", "a2", "st2"]);
        c.Check(0, 0);
    }

    [Fact]
    public void ConcatExpandGather()
    {
        var c = new MultiCase().Input("a", Random(1, 1, 2, 3, 4)).Input("b", Random(2, 1, 2, 5, 4)).Input("e", Random(3, 1, 3, 1))
            .Input("shape", Tensor.From<long>([2, 3, 4], 3), true)
            .Input("idx", Tensor.From<long>([2, -1, 0, 2], 2, 2), true).Input("idx32", Tensor.From<int>([1, 0, 1], 3), true);
        c.Node("Concat", ["a", "b", "a"], new() { ["axis"] = Int(1) }).Node("Expand", ["e", "shape"])
            .Node("Gather", ["b", "idx"], new() { ["axis"] = Int(2) }).Node("Gather", ["a", "idx32"]);
        c.Check(0, 0);
    }

    [Fact]
    public void SplitAndWhere()
    {
        var cond = new Tensor(DataType.Bool, 3, 1);
        cond.Bytes[0] = 1;
        cond.Bytes[2] = 1;
        var c = new MultiCase().Input("x", Random(1, 1, 3, 10)).Input("y", Random(2, 1, 10)).Input("cond", cond)
            .Input("sizes", Tensor.From<long>([2, 5, 3], 3), true);
        c.Node("Where", ["cond", "x", "y"]);
        c.Node("Split", ["x", "sizes"], new() { ["axis"] = Int(1) }, outputs: 3);
        c.Check(0, 0);
    }

    [Fact]
    public void Cast()
    {
        var x = Random(1, 300, 3, 7);
        var h = new Tensor(DataType.Float16, 3, 7);
        var hs = h.AsSpan<Half>();
        var rng = new Random(5);
        for (int i = 0; i < hs.Length; i++) hs[i] = (Half)(float)((rng.NextDouble() - 0.5) * 1e5);
        // Values near the half range's edges: subnormals, ties, overflow to infinity.
        var edges = Tensor.From<float>([0f, -0f, 1e-7f, 6.1e-5f, 65519f, 65520f, 1e6f, -3.0000002f, 2049f, 2051f, float.NaN, float.PositiveInfinity], 12);
        var c = new MultiCase().Input("x", x).Input("h", h).Input("edges", edges)
            .Input("i64", Int64s(100, 3, 7)).Input("i32", Tensor.From<int>([-5, 0, 7], 3)).Input("u8", Tensor.From<byte>([0, 200, 255], 3));
        foreach (var to in new[] { DataType.Int32, DataType.Int64, DataType.Bool, DataType.Float16, DataType.Float })
            c.Node("Cast", ["x"], new() { ["to"] = Int((long)to) });
        c.Node("Cast", ["edges"], new() { ["to"] = Int((long)DataType.Float16) });
        c.Node("Cast", ["h"], new() { ["to"] = Int((long)DataType.Float) });
        c.Node("Cast", ["i64"], new() { ["to"] = Int((long)DataType.Float) });
        c.Node("Cast", ["i64"], new() { ["to"] = Int((long)DataType.Int32) });
        c.Node("Cast", ["i32"], new() { ["to"] = Int((long)DataType.Float) });
        c.Node("Cast", ["i32"], new() { ["to"] = Int((long)DataType.Int64) });
        c.Node("Cast", ["u8"], new() { ["to"] = Int((long)DataType.Float) });
        c.Check(0, 0);
    }

    [Theory]
    [InlineData("nearest", "half_pixel", "round_prefer_floor", false)]
    [InlineData("nearest", "asymmetric", "floor", true)]
    [InlineData("nearest", "align_corners", "round_prefer_ceil", false)]
    [InlineData("nearest", "tf_half_pixel_for_nn", "floor", true)]
    [InlineData("linear", "half_pixel", "round_prefer_floor", true)]
    [InlineData("linear", "align_corners", "round_prefer_floor", false)]
    [InlineData("linear", "pytorch_half_pixel", "round_prefer_floor", true)]
    [InlineData("linear", "asymmetric", "round_prefer_floor", false)]
    [InlineData("linear", "half_pixel_symmetric", "round_prefer_floor", true)]
    public void Resize(string mode, string transform, string rounding, bool bySizes)
    {
        var c = new MultiCase(opset: 19).Input("x", Random(1, 1, 2, 3, 5, 7));
        var attrs = new Dictionary<string, Ir.AttributeValue> { ["mode"] = Str(mode), ["coordinate_transformation_mode"] = Str(transform), ["nearest_mode"] = Str(rounding) };
        if (bySizes) c.Input("sizes", Tensor.From<long>([2, 3, 11, 4], 4), true).Node("Resize", ["x", null, null, "sizes"], attrs);
        else c.Input("scales", Tensor.From<float>([1, 1, 2.5f, 0.6f], 4), true).Node("Resize", ["x", null, "scales"], attrs);
        c.Check(1e-5f, 1e-6f);
    }

    [Fact]
    public void Upsample() =>
        new MultiCase(opset: 9).Input("x", Random(1, 1, 1, 2, 3, 4)).Input("scales", Tensor.From<float>([1, 1, 2, 3], 4), true)
            .Node("Upsample", ["x", "scales"]).Node("Upsample", ["x", "scales"], new() { ["mode"] = Str("linear") }).Check(1e-5f, 1e-6f);

    private static Tensor Int64s(int modulo, params int[] shape)
    {
        var t = new Tensor(DataType.Int64, shape);
        var s = t.AsSpan<long>();
        for (int i = 0; i < s.Length; i++) s[i] = (i * 7919L) % modulo - modulo / 2;
        return t;
    }
}
