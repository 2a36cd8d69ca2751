using Squash.Runtime.Ir;
using Squash.Runtime.Operators;

namespace Squash.Runtime.Gpu.Tests;

/// <summary>
/// The fused attention (com.squash Attention) on the CPU accelerator against the CPU operator: grouped-query heads (4
/// query heads over 2 key/value heads), 70 keys (two tiles, the second partial), no mask, a bool mask with a row whose
/// keys are all hidden (NaN on both) and a row whose first tile is hidden, and an additive float mask with -infinity
/// entries. Tolerance rtol 1e-4, atol 1e-5: dot products of 8 fp32 products and sums over 70 keys in another order,
/// and exp from MathF on the emulator against the CPU's vector polynomial (1-2 ulp each).
/// </summary>
public class AttentionKernelTests
{
    [Fact]
    public void AttentionMatchesTheCpuOperator()
    {
        const int T = 70;
        var mask = new bool[3 * T];
        for (int j = 0; j < T; j++)
        {
            mask[j] = false;                 // query 0: every key hidden
            mask[T + j] = j >= 64;           // query 1: the first tile hidden
            mask[2 * T + j] = j % 3 != 1;    // query 2: a pattern
        }
        var bias = DeviceCase.Random(5, 2f, 2, 1, 3, T);
        var b = bias.AsSpan<float>();
        for (int i = 0; i < b.Length; i += 7) b[i] = float.NegativeInfinity;
        var m = new MultiCase()
            .Input("q", DeviceCase.Random(1, 1f, 2, 4, 3, 8)).Input("k", DeviceCase.Random(2, 1f, 2, 2, T, 8))
            .Input("v", DeviceCase.Random(3, 1f, 2, 2, T, 5))
            .Input("mask", Tensor.From<bool>(mask, 1, 1, 3, T), true)
            .Input("bias", bias);
        m.Node("Attention", ["q", "k", "v"], domain: OperatorRegistry.SquashDomain);
        m.Node("Attention", ["q", "k", "v", "mask"], new() { ["scale"] = DeviceCase.Float(0.3f) }, domain: OperatorRegistry.SquashDomain);
        m.Node("Attention", ["q", "k", "v", "bias"], domain: OperatorRegistry.SquashDomain);
        m.Check(1e-4f, 1e-5f);
    }
}
