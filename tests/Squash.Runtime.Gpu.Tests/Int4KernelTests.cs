using Squash.Compiler.Quantization;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;
using Squash.Runtime.Operators;

namespace Squash.Runtime.Gpu.Tests;

/// <summary>
/// MatMulNBits (com.squash, int4 weights with the dequantization fused into the product) on the CPU accelerator against
/// the CPU operator. Tolerance rtol 1e-4, atol 2e-5: both sum 80 fp32 products of values in [-1, 1], the CPU of
/// dequantized weights (w = (q - zp) * scale rounded to fp32), the device of codes scaled once per block, so the
/// roundings differ by a few ulp of the partial sums. GatherNBits must be exact: both compute (q - zp) * scale, rounded
/// once in fp32.
/// </summary>
public class Int4KernelTests
{
    /// <summary>Rows of A up to 16 run one group per four columns (a decode step), more one thread per output: 1, 6
    /// and 20 rows cover both kernels.</summary>
    [Theory]
    [InlineData(true, true, 32, 0, 6)]
    [InlineData(false, false, 32, 0, 6)]
    [InlineData(false, true, 64, 0, 6)]
    [InlineData(true, false, 32, 4, 6)] // accuracy_level 4: the device computes in fp32, which the attribute (a minimum) allows
    [InlineData(true, true, 32, 0, 1)]
    [InlineData(false, true, 32, 0, 20)]
    public void MatMulNBitsMatchesTheCpuOperator(bool symmetric, bool bias, int blockSize, int accuracyLevel, int rows)
    {
        // K = 80: the last block is partial; N = 10: the last column group is padded; A has two batch dimensions.
        const int K = 80, N = 10;
        var weight = DeviceCase.Random(7, 0.5f, K, N);
        var packed = Int4WeightPacking.Quantize(weight.AsSpan<float>(), K, N, transposed: false, blockSize, symmetric);
        var a = rows == 6 ? DeviceCase.Random(8, 1f, 2, 3, K) : DeviceCase.Random(8, 1f, rows, K);

        var graph = new Graph("int4");
        graph.OpsetImports[""] = 21;
        graph.OpsetImports[OperatorRegistry.SquashDomain] = 1;
        var x = new Value("a", DataType.Float, a.Shape);
        graph.Inputs.Add(x);
        var node = new Node("MatMulNBits", "mm", OperatorRegistry.SquashDomain, 1);
        node.Attributes["K"] = AttributeValue.Int(K);
        node.Attributes["N"] = AttributeValue.Int(N);
        node.Attributes["bits"] = AttributeValue.Int(4);
        node.Attributes["block_size"] = AttributeValue.Int(blockSize);
        if (accuracyLevel != 0) node.Attributes["accuracy_level"] = AttributeValue.Int(accuracyLevel);
        node.AddInput(x).AddInput(Constant(graph, "data", packed.Data)).AddInput(Constant(graph, "scales", packed.Scales))
            .AddInput(packed.ZeroPoints is null ? null : Constant(graph, "zero_points", packed.ZeroPoints))
            .AddInput(bias ? Constant(graph, "bias", DeviceCase.Random(9, 1f, N)) : null);
        var y = new Value("y", DataType.Float, [.. a.Shape[..^1], N]);
        node.AddOutput(y);
        graph.Nodes.Add(node);
        graph.Outputs.Add(y);
        Assert.Equal(symmetric, packed.ZeroPoints is null);

        var inputs = new Dictionary<string, Tensor> { ["a"] = a };
        var expected = new GraphExecutor(graph).Run(inputs)["y"];
        using var model = GpuModel.Create(graph, GpuDevice.Emulator);
        BackendCompiler.CompileAll(model);
        Assert.Empty(model.HostNodes.Select(h => h.Reason));
        DeviceCase.AssertClose(expected, model.Run(inputs)["y"], 1e-4f, 2e-5f, "MatMulNBits");
    }

    [Theory]
    [InlineData(true, DataType.Int64)]
    [InlineData(false, DataType.Int32)]
    public void GatherNBitsMatchesTheCpuOperator(bool symmetric, DataType indexType)
    {
        // A table of N = 10 rows of K = 80 (column n of the packed [K, N] weight is row n), rows read twice and from
        // the end (-1 is row 9).
        const int K = 80, N = 10;
        var packed = Int4WeightPacking.Quantize(DeviceCase.Random(11, 0.5f, N, K).AsSpan<float>(), K, N, transposed: true, 32, symmetric);
        long[] rows = [0, 9, -1, 4, 4, 7];
        var indices = indexType == DataType.Int64 ? Tensor.From<long>(rows, 2, 3) : Tensor.From<int>(rows.Select(i => (int)i).ToArray(), 2, 3);

        var graph = new Graph("int4");
        graph.OpsetImports[""] = 21;
        graph.OpsetImports[OperatorRegistry.SquashDomain] = 1;
        var x = new Value("ids", indexType, [2, 3]);
        graph.Inputs.Add(x);
        var node = new Node("GatherNBits", "embed", OperatorRegistry.SquashDomain, 1);
        node.Attributes["K"] = AttributeValue.Int(K);
        node.Attributes["N"] = AttributeValue.Int(N);
        node.Attributes["bits"] = AttributeValue.Int(4);
        node.Attributes["block_size"] = AttributeValue.Int(32);
        node.AddInput(Constant(graph, "data", packed.Data)).AddInput(x).AddInput(Constant(graph, "scales", packed.Scales))
            .AddInput(packed.ZeroPoints is null ? null : Constant(graph, "zero_points", packed.ZeroPoints));
        var y = new Value("y", DataType.Float, [2, 3, K]);
        node.AddOutput(y);
        graph.Nodes.Add(node);
        graph.Outputs.Add(y);

        var inputs = new Dictionary<string, Tensor> { ["ids"] = indices };
        var expected = new GraphExecutor(graph).Run(inputs)["y"];
        using var model = GpuModel.Create(graph, GpuDevice.Emulator);
        BackendCompiler.CompileAll(model);
        Assert.Empty(model.HostNodes.Select(h => h.Reason));
        DeviceCase.AssertClose(expected, model.Run(inputs)["y"], 0, 0, "GatherNBits");
    }

    private static Value Constant(Graph graph, string name, Tensor t)
    {
        var v = new Value(name, t);
        graph.Initializers.Add(v);
        return v;
    }
}
