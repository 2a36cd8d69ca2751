using Squash.Compiler.CodeGen;
using Squash.Compiler.Compilation;
using Squash.Compiler.Onnx;
using Squash.Compiler.Passes;
using Squash.Compiler.Quantization;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Compiler.Tests.Passes;

/// <summary>
/// Int4 weight packing (round-to-nearest codes, the packed layout, the ONNX Runtime layout), the rewriting pass, and
/// the export: ONNX Runtime runs the exported com.microsoft MatMulNBits nodes and must agree with Squash's int4 kernels.
/// </summary>
/// <remarks>
/// Squash against ONNX Runtime: both dequantize the same int4 values and scales, so they differ only in the order of
/// fp32 sums (and ONNX Runtime may form scale * q + offset in another order, an ulp per weight). The bound is
/// |squash - ort| &lt;= 1e-5 * sum |x * w| + 1e-6 per output, a bound on fp32 rounding of such sums for K up to about a
/// thousand; a wrong nibble order, scale or zero point moves outputs by a whole quantization step (about 1e-2 here).
/// </remarks>
public sealed class Int4QuantizationTests
{
    private static float[] Random(Random rng, int n, double scale = 1)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)((rng.NextDouble() * 2 - 1) * scale);
        return x;
    }

    [Fact]
    public void RoundToNearest_Symmetric_MapsTheLargestMagnitudeToMinusEight()
    {
        // One block of 32: the largest magnitude is -2 (at index 3), so scale = -2 / -8 = 0.25 and -2 -> code 0.
        var column = new float[32];
        column[0] = 1f; column[1] = -0.3f; column[2] = 0.125f; column[3] = -2f; column[4] = 1.8f; column[5] = 0.3751f;
        var codes = RoundToNearestQuantizer.Instance.Quantize(new() { Columns = column, K = 32, N = 1, BlockSize = 32, Symmetric = true });
        Assert.Equal(0.25f, codes.Scales[0]);
        Assert.Equal(8, codes.ZeroPoints[0]);
        // 1/0.25 = 4 -> 12; -0.3/0.25 = -1.2 -> 7; 0.5 -> 0 (half to even) -> 8; -8 -> 0; 7.2 -> 7 -> 15; 1.5004 -> 2 -> 10; 0 -> 8.
        Assert.Equal(new byte[] { 12, 7, 8, 0, 15, 10, 8 }, codes.Codes[..7]);

        // A positive extreme gives a negative scale (llama.cpp's Q4_0 and ONNX Runtime do the same): 3 -> code 0.
        column.AsSpan().Clear();
        column[7] = 3f; column[8] = -1f;
        codes = RoundToNearestQuantizer.Instance.Quantize(new() { Columns = column, K = 32, N = 1, BlockSize = 32, Symmetric = true });
        Assert.Equal(-0.375f, codes.Scales[0]);
        Assert.Equal(0, codes.Codes[7]);
        Assert.Equal(11, codes.Codes[8]); // -1 / -0.375 = 2.67 -> 3 -> 11
    }

    [Fact]
    public void RoundToNearest_Asymmetric_KeepsZeroExact()
    {
        // Range [min(0, -1), max(0, 2)] = [-1, 2]: scale 0.2, zero point 5; 0 is code 5 exactly.
        var column = new float[64];
        column[0] = -1f; column[1] = 2f; column[2] = 0.1f;
        for (int i = 32; i < 64; i++) column[i] = 0.5f + i / 64f; // second block all positive: min is 0
        var codes = RoundToNearestQuantizer.Instance.Quantize(new() { Columns = column, K = 64, N = 1, BlockSize = 32, Symmetric = false });
        Assert.Equal((float)(Half)0.2f, codes.Scales[0]);
        Assert.Equal(5, codes.ZeroPoints[0]);
        Assert.Equal(0, codes.Codes[0]);
        Assert.Equal(15, codes.Codes[1]);
        Assert.Equal(5, codes.Codes[3]);
        Assert.Equal(0, codes.ZeroPoints[1]);
        Assert.Equal(15, codes.Codes[63]);
    }

    [Theory]
    [InlineData(96, 10, 32, true)]
    [InlineData(200, 7, 64, false)]
    [InlineData(256, 5, 128, true)]
    public void Quantize_ErrorIsWithinHalfAStep_AndOnnxRuntimeLayoutHoldsTheSameValues(int k, int n, int blockSize, bool symmetric)
    {
        var rng = new Random(k + n);
        var w = Random(rng, k * n);
        var packed = Int4WeightPacking.Quantize(w, k, n, transposed: false, blockSize, symmetric);
        var dq = Int4WeightPacking.Dequantize(packed);
        var (b, scales, zeroPoints) = Int4WeightPacking.ToOnnxRuntime(packed);
        Assert.Equal(symmetric, zeroPoints is null);
        Assert.Equal((int[])[n, packed.Layout.Blocks, blockSize / 2], b.Shape);
        int blocks = packed.Layout.Blocks;
        for (int col = 0; col < n; col++)
            for (int row = 0; row < k; row++)
            {
                int blk = row / blockSize, e = row % blockSize;
                float scale = scales.AsSpan<float>()[col * blocks + blk];
                // Rounding to nearest: within half a step (plus the step's float16 rounding) where the codes reach; a
                // symmetric block reaches -8 steps on the side of its extreme but only 7 on the other, where values
                // within the last step are clipped to 7 steps.
                float value = w[row * n + col], step = Math.Abs(scale);
                bool clipped = symmetric && Math.Abs(value) > 7.5f * step && Math.Sign(value) == Math.Sign(scale);
                Assert.True(Math.Abs(dq[row * n + col] - value) <= step * (clipped ? 1.0001f : 0.5001f) + 1e-7f, $"W[{row},{col}]");
                // ONNX Runtime's MatMulNBits: element e of a block is byte e/2, low nibble when e is even.
                byte packedByte = b.AsSpan<byte>()[(col * blocks + blk) * (blockSize / 2) + e / 2];
                int q = e % 2 == 0 ? packedByte & 0xF : packedByte >> 4;
                int zero = zeroPoints is null ? 8 : (zeroPoints.AsSpan<byte>()[col * ((blocks + 1) / 2) + blk / 2] >> (4 * (blk % 2))) & 0xF;
                Assert.Equal((q - zero) * scale, dq[row * n + col]);
            }
    }

    /// <summary>x [2, 3, K] · W1 (MatMul), then a Gemm with transB and a bias, and a Gather from an embedding table.</summary>
    private static (Model Model, Dictionary<string, Tensor> Inputs) SmallModel(int k, int n, int seed)
    {
        var rng = new Random(seed);
        var g = new GraphBuilder();
        var x = g.Input("x", DataType.Float, 2, 3, k);
        var w1 = g.Constant(Tensor.From<float>(Random(rng, k * n), k, n), "w1");
        var h = g.Node("MatMul", x, w1);
        var flat = g.Node("Reshape", h, g.Constant(Tensor.From<long>([6, n], 2), "flat_shape"));
        var w2 = g.Constant(Tensor.From<float>(Random(rng, n * k), k, n).Reshape([k, n]), "w2_t");
        var bias = g.Constant(Tensor.From<float>(Random(rng, k), 1, k), "bias");
        var y = g.NodeWith("Gemm", [("transB", AttributeValue.Int(1)), ("beta", AttributeValue.Float(0.5f))], [flat, w2, bias])[0];
        y.Name = "y";
        g.Output(y);
        var ids = g.Input("ids", DataType.Int64, 4);
        var table = g.Constant(Tensor.From<float>(Random(rng, 40 * k), 40, k), "embedding");
        var e = g.NodeWith("Gather", [("axis", AttributeValue.Int(0))], [table, ids])[0];
        e.Name = "e";
        g.Output(e);
        var inputs = new Dictionary<string, Tensor>
        {
            ["x"] = Tensor.From<float>(Random(rng, 6 * k), 2, 3, k),
            ["ids"] = Tensor.From<long>([0, 39, -1, 7], 4),
        };
        return (g.Build(), inputs);
    }

    [Theory]
    [InlineData(256, 96, 32, true)]
    [InlineData(256, 96, 64, false)]
    [InlineData(200, 130, 128, true)] // partial last blocks (200 and 130 along K), N not a multiple of 4
    public void Pass_RewritesMatMulGemmAndGather_AndOnnxRuntimeAgreesOnTheExport(int k, int n, int blockSize, bool symmetric)
    {
        var (model, inputs) = SmallModel(k, n, k * n + blockSize);
        var graph = model.Graph;
        var w1 = graph.Initializers.Single(v => v.Name == "w1").Constant!;
        var w2 = graph.Initializers.Single(v => v.Name == "w2_t").Constant!;
        var table = graph.Initializers.Single(v => v.Name == "embedding").Constant!;
        var options = new Int4QuantizationOptions { BlockSize = blockSize, Symmetric = symmetric, MinElements = 1000 };
        Assert.True(new Int4MatMulQuantization(options).Run(graph, new PassContext()));
        Assert.Equal(["MatMulNBits", "Reshape", "MatMulNBits", "GatherNBits"], graph.Nodes.Select(node => node.OpType));
        Assert.DoesNotContain(graph.Initializers, v => v.Name is "w1" or "w2_t" or "embedding");
        Assert.Equal(1, graph.OpsetImports["com.squash"]);

        // Squash's int4 outputs: the products with the dequantized weights, and the dequantized rows.
        var squash = new GraphExecutor(graph).Run(inputs);
        var dq1 = Int4WeightPacking.Dequantize(Int4WeightPacking.Quantize(w1.AsSpan<float>(), k, n, false, blockSize, symmetric));
        var dq2 = Int4WeightPacking.Dequantize(Int4WeightPacking.Quantize(w2.AsSpan<float>(), n, k, true, blockSize, symmetric));
        var dqTable = Int4WeightPacking.Dequantize(Int4WeightPacking.Quantize(table.AsSpan<float>(), k, 40, true, blockSize, symmetric));
        var x = inputs["x"].AsSpan<float>();
        var hidden = new double[6 * n];
        for (int r = 0; r < 6; r++)
            for (int c = 0; c < n; c++)
                for (int p = 0; p < k; p++) hidden[r * n + c] += (double)x[r * k + p] * dq1[p * n + c];
        var y = squash["y"].AsSpan<float>();
        var bias = graph.Initializers.Single(v => v.Name.StartsWith("bias", StringComparison.Ordinal) && v.Constant!.Rank == 1).Constant!.AsSpan<float>();
        for (int r = 0; r < 6; r++)
            for (int c = 0; c < k; c++)
            {
                double sum = bias[c], abs = Math.Abs(sum);
                for (int p = 0; p < n; p++)
                {
                    double t = hidden[r * n + p] * dq2[p * k + c];
                    sum += t;
                    abs += Math.Abs(t);
                }
                Assert.True(Math.Abs(y[r * k + c] - sum) <= 1e-4 * abs + 1e-5, $"y[{r},{c}] = {y[r * k + c]}, expected {sum}");
            }
        long[] ids = [0, 39, 39, 7];
        for (int i = 0; i < ids.Length; i++)
            for (int p = 0; p < k; p++) Assert.Equal(dqTable[p * 40 + ids[i]], squash["e"].AsSpan<float>()[i * k + p]);

        // The export runs under ONNX Runtime with the same int4 values.
        Assert.Equal(3, Int4OnnxRuntimeExport.Convert(graph));
        Assert.Equal(["MatMulNBits", "Reshape", "MatMulNBits", "Gather"], graph.Nodes.Select(node => node.OpType));
        Assert.Equal(["com.microsoft", "", "com.microsoft", ""], graph.Nodes.Select(node => node.Domain));
        var bytes = OnnxWriter.ToBytes(model);
        Assert.Equal(1, OnnxLoader.Load(bytes, null).Graph.OpsetImports["com.microsoft"]);
        using var ort = new OrtReference(bytes);
        var expected = ort.Run(inputs);
        AssertCloseToSumOfTerms(expected["y"], squash["y"], inputs, hidden, dq2, k, n);
        Assert.Equal(expected["e"].AsSpan<float>().ToArray(), squash["e"].AsSpan<float>().ToArray());
    }

    /// <summary>
    /// int8 activations (accuracy_level 4): one row through a MatMul and a Gemm with bias. ONNX Runtime runs the export
    /// with the same attribute and quantizes the row as Squash does (per block, 127 / max|x|, half to even), so the two
    /// differ only in the order of fp32 sums: 1e-5 of the sum of |terms| plus 1e-6, as for fp32 activations. The row is
    /// a graph input, so no earlier rounding difference can move a value across a rounding midpoint (inside a model
    /// one can: stories260K's test compares likelihoods instead). Against fp32 activations the outputs must move by
    /// far more than that bound, or the int8 path did not run.
    /// </summary>
    [Theory]
    [InlineData(256, 96, 32, true)]
    [InlineData(256, 96, 64, false)]
    [InlineData(200, 130, 128, true)]
    public void Pass_Int8Activations_OnnxRuntimeAgreesOnTheExport(int k, int n, int blockSize, bool symmetric)
    {
        Model Build(Int4ActivationPrecision activations)
        {
            var rng = new Random(k + n + blockSize);
            var g = new GraphBuilder();
            var x = g.Input("x", DataType.Float, 1, k);
            var h = g.Node("MatMul", x, g.Constant(Tensor.From<float>(Random(rng, k * n), k, n), "w1"));
            h.Name = "h";
            var y = g.NodeWith("Gemm", [("transB", AttributeValue.Int(1))],
                [h, g.Constant(Tensor.From<float>(Random(rng, n * k), k, n), "w2_t"), g.Constant(Tensor.From<float>(Random(rng, k), k), "bias")])[0];
            y.Name = "y";
            g.Output(h);
            g.Output(y);
            var model = g.Build();
            var options = new Int4QuantizationOptions { BlockSize = blockSize, Symmetric = symmetric, MinElements = 1000, ActivationPrecision = activations };
            Assert.True(new Int4MatMulQuantization(options).Run(model.Graph, new PassContext()));
            return model;
        }
        var row = Random(new Random(3), k);
        row[k / 2] = 9f; // one outlier: its block gets a coarse scale, the others do not
        var inputs = new Dictionary<string, Tensor> { ["x"] = Tensor.From<float>(row, 1, k) };
        var int8 = Build(Int4ActivationPrecision.Int8);
        Assert.All(int8.Graph.Nodes, node => Assert.Equal(4, node.Attributes["accuracy_level"].IntValue));
        var squash = new GraphExecutor(int8.Graph).Run(inputs);
        var fp32 = new GraphExecutor(Build(Int4ActivationPrecision.Fp32).Graph).Run(inputs);
        var (w1, w2) = (DequantizedWeight(int8.Graph, 0, k, n), DequantizedWeight(int8.Graph, 1, n, k));

        Assert.Equal(2, Int4OnnxRuntimeExport.Convert(int8.Graph));
        Assert.All(int8.Graph.Nodes, node => Assert.Equal(4, node.Attributes["accuracy_level"].IntValue));
        using var ort = new OrtReference(OnnxWriter.ToBytes(int8));
        var expected = ort.Run(inputs);

        // Sum of |terms| of each output, from the fp32-activation path (the int8 terms are within a percent of them).
        var hidden = fp32["h"].AsSpan<float>().ToArray();
        double worst = 0, moved = 0;
        for (int c = 0; c < n + k; c++)
        {
            bool first = c < n;
            int col = first ? c : c - n;
            double abs = 0;
            for (int p = 0; p < (first ? k : n); p++) abs += first ? Math.Abs(row[p] * w1[p * n + col]) : Math.Abs(hidden[p] * w2[p * k + col]);
            double bound = 1e-5 * abs + 1e-6;
            string name = first ? "h" : "y";
            float a = expected[name].AsSpan<float>()[col], b = squash[name].AsSpan<float>()[col], f = fp32[name].AsSpan<float>()[col];
            Assert.True(Math.Abs(a - b) <= bound, $"{name}[{col}]: ONNX Runtime {a}, Squash {b}, bound {bound}");
            worst = Math.Max(worst, Math.Abs(a - b) / bound);
            moved = Math.Max(moved, Math.Abs(b - f) / bound);
        }
        Assert.True(moved > 100, $"int8 activations moved the outputs by at most {moved:F1} bounds: the int8 path did not run");
    }

    /// <summary>The [K, N] weight of the <paramref name="index"/>-th MatMulNBits, dequantized.</summary>
    private static float[] DequantizedWeight(Graph graph, int index, int k, int n)
    {
        var node = graph.Nodes.Where(x => x.OpType == "MatMulNBits").ElementAt(index);
        var packed = new Int4PackedWeight(new Int4Layout(k, n, (int)node.Attributes["block_size"].IntValue),
            node.Input(1)!.Constant!, node.Input(2)!.Constant!, node.Input(3)?.Constant);
        return Int4WeightPacking.Dequantize(packed);
    }

    private static void AssertCloseToSumOfTerms(Tensor ort, Tensor squash, Dictionary<string, Tensor> inputs, double[] hidden, float[] dq2, int k, int n)
    {
        _ = inputs;
        var a = ort.AsSpan<float>();
        var b = squash.AsSpan<float>();
        for (int r = 0; r < 6; r++)
            for (int c = 0; c < k; c++)
            {
                double abs = 0;
                for (int p = 0; p < n; p++) abs += Math.Abs(hidden[r * n + p] * dq2[p * k + c]);
                Assert.True(Math.Abs(a[r * k + c] - b[r * k + c]) <= 1e-5 * abs + 1e-6, $"y[{r},{c}]: ONNX Runtime {a[r * k + c]}, Squash {b[r * k + c]}");
            }
    }

    [Fact]
    public void Pass_LeavesSmallAndNonConstantWeightsAlone()
    {
        var g = new GraphBuilder();
        var x = g.Input("x", DataType.Float, 1, 64);
        var small = g.Constant(new Tensor(DataType.Float, 64, 64), "small");
        var w = g.Input("w", DataType.Float, 64, 64);
        var y = g.Node("MatMul", g.Node("MatMul", x, small), w);
        var gemm = g.NodeWith("Gemm", [("transA", AttributeValue.Int(1))], [g.Node("Reshape", y, g.Constant(Tensor.From<long>([64, 1], 2))), g.Constant(new Tensor(DataType.Float, 64, 4096))])[0];
        g.Output(gemm);
        Assert.False(new Int4MatMulQuantization(new Int4QuantizationOptions { MinElements = 64 * 64 + 1 }).Run(g.Graph, new PassContext()));
        Assert.DoesNotContain(g.Graph.Nodes, n => n.Domain.Length > 0);
    }

    [Fact]
    public void Operator_RejectsWrongPackedSizes()
    {
        var g = new GraphBuilder();
        var x = g.Input("x", DataType.Float, 1, 64);
        g.Output(g.Node("MatMul", x, g.Constant(Tensor.From<float>(Random(new Random(1), 64 * 8), 64, 8), "w")));
        new Int4MatMulQuantization(new Int4QuantizationOptions { MinElements = 1 }).Run(g.Graph, new PassContext());
        var node = g.Graph.Nodes.Single();
        node.Attributes["N"] = AttributeValue.Int(12);
        var e = Assert.Throws<SquashException>(() => new GraphExecutor(g.Graph).Run(new Dictionary<string, Tensor> { ["x"] = new Tensor(DataType.Float, 1, 64) }));
        Assert.Contains("need", e.Message);
        node.Attributes["N"] = AttributeValue.Int(8);
        node.Attributes["bits"] = AttributeValue.Int(3);
        e = Assert.Throws<SquashException>(() => new GraphExecutor(g.Graph));
        Assert.Equal(ErrorCodes.UnsupportedAttribute, e.Code);
        node.Attributes["bits"] = AttributeValue.Int(4);
        node.Attributes["accuracy_level"] = AttributeValue.Int(5);
        e = Assert.Throws<SquashException>(() => new GraphExecutor(g.Graph));
        Assert.Contains("accuracy_level = 5", e.Message);
    }

    /// <summary>An int4 model saved to ONNX (com.squash nodes) compiles to a C# class that gives the interpreter's outputs bit for bit.</summary>
    [Theory]
    [InlineData(3, Int4ActivationPrecision.Fp32)]
    [InlineData(1, Int4ActivationPrecision.Int8)] // one row: the int8-activation GEMV, accuracy_level carried into the class
    public void QuantizedModel_CompilesToAGeneratedClass(int rows, Int4ActivationPrecision activations)
    {
        var rng = new Random(4);
        var g = new GraphBuilder();
        var x = g.Input("x", DataType.Float, 1, rows, 128);
        var h = g.Node("MatMul", x, g.Constant(Tensor.From<float>(Random(rng, 128 * 40), 128, 40), "w1"));
        var y = g.Node("MatMul", h, g.Constant(Tensor.From<float>(Random(rng, 40 * 64), 40, 64), "w2"));
        y.Name = "y";
        g.Output(y);
        var model = g.Build();
        new Int4MatMulQuantization(new Int4QuantizationOptions { MinElements = 1, Symmetric = false, ActivationPrecision = activations }).Run(model.Graph, new PassContext());
        Assert.Equal(2, model.Graph.Nodes.Count(n => n.OpType == "MatMulNBits"));
        var dir = Directory.CreateTempSubdirectory("squash-int4-codegen-").FullName;
        try
        {
            string path = Path.Combine(dir, "int4.onnx");
            OnnxWriter.Save(model, path);
            var result = ModelCompiler.Compile(new CompileRequest
            {
                ModelPath = path,
                OutputDirectory = dir,
                OutputName = "Int4Model",
                InputShapes = new Dictionary<string, int[]>(),
                Class = new ModelClassOptions { ClassName = "Int4Model", Namespace = "Tests", WeightsName = "Tests.Int4Model.sqw", SourceFileName = "", SourceSha256 = "" },
            });
            var assembly = InMemoryCompiler.Compile([File.ReadAllText(result.SourcePath)], [("Tests.Int4Model.sqw", File.ReadAllBytes(result.WeightsPath!))]);
            var compiled = (ISquashModel)Activator.CreateInstance(assembly.GetType("Tests.Int4Model")!, [1])!;
            var inputs = new Dictionary<string, Tensor> { ["x"] = Tensor.From<float>(Random(rng, rows * 128), 1, rows, 128) };
            var expected = new GraphExecutor(OnnxLoader.Load(path).Graph).Run(inputs)["y"];
            Assert.Equal(expected.AsSpan<float>().ToArray(), compiled.Run(inputs)["y"].AsSpan<float>().ToArray());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
