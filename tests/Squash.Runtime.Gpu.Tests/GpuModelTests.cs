using static Squash.Runtime.Gpu.Tests.DeviceCase;

namespace Squash.Runtime.Gpu.Tests;

/// <summary>Device choice, host fallback, inputs and errors of <see cref="GpuModel"/>.</summary>
public class GpuModelTests
{
    [Fact]
    public void NodeWithoutDeviceKernelRunsOnTheHostBetweenDeviceNodes()
    {
        // Hardmax has no device kernel.
        var c = new MultiCase().Input("x", Random(1, 5, 3, 8));
        c.Node("Relu", ["x"], output: false);
        c.Node("Hardmax", [c.Last], output: false);
        c.Node("Neg", [c.Last]);
        var model = c.Check(0, 0, hostNodes: 1);
        Assert.Equal("Hardmax", model.HostNodes[0].Node.OpType);
        Assert.Contains(model.Warnings, w => w.Contains("Hardmax") && w.Contains("host"));
    }

    [Fact]
    public void ResizeThatMovesAnUnscaledAxisRunsOnTheHost() =>
        new MultiCase(opset: 19).Input("x", Random(1, 1, 2, 3, 5, 7)).Input("sizes", Tensor.From<long>([2, 3, 11, 4], 4), true)
            .Node("Resize", ["x", null, null, "sizes"], new()
            {
                ["coordinate_transformation_mode"] = Str("tf_half_pixel_for_nn"), ["nearest_mode"] = Str("ceil"),
            })
            .Check(0, 0, hostNodes: 1);

    [Fact]
    public void CpuDeviceRunsTheCpuRuntime()
    {
        var graph = ReluGraph();
        using var model = GpuModel.Create(graph, GpuDevice.Cpu);
        Assert.Equal(GpuBackend.CpuRuntime, model.Backend);
        var y = model.Run(new Dictionary<string, Tensor> { ["x"] = Tensor.From<float>([-1f, 2f], 2) })["y"];
        Assert.Equal([0f, 2f], y.AsSpan<float>().ToArray());
    }

    /// <summary>This test machine has no GPU (CI neither): Gpu must fail with SQ3001 and say what to install; Auto must
    /// fall back to the CPU runtime with a warning. On a machine with a GPU both take the GPU.</summary>
    [Fact]
    public void MissingGpuIsReportedOrFallsBack()
    {
        var graph = ReluGraph();
        try
        {
            using var gpu = GpuModel.Create(graph, GpuDevice.Gpu);
            Assert.NotEqual(GpuBackend.CpuRuntime, gpu.Backend);
            return;
        }
        catch (SquashException e)
        {
            Assert.Equal(GpuErrorCodes.DeviceUnavailable, e.Code);
            Assert.Contains("driver", e.Message);
        }
        var warnings = new List<string>();
        using var auto = GpuModel.Create(graph, GpuDevice.Auto, new GpuModelOptions { Warning = warnings.Add });
        Assert.Equal(GpuBackend.CpuRuntime, auto.Backend);
        Assert.Single(warnings);
        Assert.Equal([0f, 2f], auto.Run(new Dictionary<string, Tensor> { ["x"] = Tensor.From<float>([-1f, 2f], 2) })["y"].AsSpan<float>().ToArray());
    }

    [Fact]
    public void WrongInputIsRejected()
    {
        using var model = GpuModel.Create(ReluGraph(), GpuDevice.Emulator);
        var e = Assert.Throws<SquashException>(() => model.Run(new Dictionary<string, Tensor> { ["x"] = Tensor.From<float>([1f, 2f, 3f], 3) }));
        Assert.Equal(ErrorCodes.BadInput, e.Code);
        e = Assert.Throws<SquashException>(() => model.Run(new Dictionary<string, Tensor>()));
        Assert.Equal(ErrorCodes.BadInput, e.Code);
    }

    [Fact]
    public void RunsRepeatedlyOnTheSameArena()
    {
        using var model = GpuModel.Create(ReluGraph(), GpuDevice.Emulator);
        for (int i = 0; i < 3; i++)
        {
            var y = model.Run(new Dictionary<string, Tensor> { ["x"] = Tensor.From<float>([-i, i], 2) })["y"];
            Assert.Equal([0f, i], y.AsSpan<float>().ToArray());
        }
    }

    private static Ir.Graph ReluGraph()
    {
        var graph = new Ir.Graph("g");
        graph.OpsetImports[""] = 21;
        var x = new Ir.Value("x", DataType.Float, [2]);
        var y = new Ir.Value("y", DataType.Float, [2]);
        graph.Inputs.Add(x);
        graph.Nodes.Add(new Ir.Node("Relu", "r", "", 21).AddInput(x).AddOutput(y));
        graph.Outputs.Add(y);
        return graph;
    }
}
