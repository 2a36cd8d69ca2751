using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Passes;

/// <summary>
/// Gamma migration (Outlier Suppression, Wei et al., NeurIPS 2022): moves a LayerNormalization's scale gamma and shift
/// beta out of the normalization and into the weights and biases of the linear layers it feeds. A large gamma[k]
/// stretches channel k of every token, so a few channels set the range of the whole tensor; without gamma and beta the
/// normalized tensor has zero mean and unit variance per token and a much tighter range to quantize, while the linear
/// layers compute exactly what they did:
/// <code>
///   x ─ LayerNormalization(γ, β) ─ y ─ MatMul(W) ─ Add(b) ─ z
///                                  └─ Add(r)   (a residual branch, or any other consumer)
///   becomes
///   x ─ LayerNormalization(1) ─ n ─ MatMul(W') ─ Add(b') ─ z        W'[k, j] = γ[k] W[k, j],  b' = b + β W
///                               └─ Mul(γ) ─ Add(β) ─ y ─ Add(r)     (y = γ n + β, as before)
/// </code>
/// since (γ n + β) W + b = n (diag(γ) W) + (β W + b). Where the normalized tensor also feeds consumers that are not
/// foldable linear layers (a residual Add, a nonlinearity, a graph output), gamma and beta go back onto that branch as
/// an elementwise Mul and Add, as the paper puts gamma onto the residual branch, so every consumer sees what it saw
/// before. Unlike the paper, which keeps β/γ in the normalization, beta migrates too (no division by a small gamma).
/// Weights and biases are computed in double and rounded once to fp32, so outputs move by about 1e-7 relative.
/// <para>
/// Handles: float LayerNormalization with constant gamma (and beta, or none) that is a scalar or varies only along the
/// last axis ([K], [1, K], ...), whatever its normalization axis; consumers MatMul(n, W) with a constant [K, N] weight
/// (its bias is the constant of a following Add, updated in place, or else a new Add) and Gemm(n, B) with transA = 0,
/// a constant B (either transB) and a constant or absent C that is a scalar or varies along its last axis; Shape and
/// Size consumers, which read no values. Fires only when at least one consumer is such a linear layer.
/// Does not handle: gamma varying along other axes; weights that are not constants (the layer is left on the restored
/// branch); migration through layout operators (LayerNormalization ─ Reshape ─ Transpose ─ Conv); RMSNormalization.
/// </para>
/// <para>
/// It changes no arithmetic that matters in fp32 and adds work on restored branches, so it belongs to the int8
/// pipeline (<see cref="Pipeline.QuantizationPrep"/>), not to <see cref="Pipeline.Optimize"/>.
/// </para>
/// </summary>
public sealed class LayerNormGammaMigration : IGraphPass
{
    /// <inheritdoc/>
    public string Name => "LayerNormGammaMigration";

    /// <inheritdoc/>
    public bool Run(Graph graph, PassContext context)
    {
        bool changed = false;
        var consumers = graph.Consumers();
        foreach (var norm in graph.Nodes.ToArray())
        {
            if (!GraphQueries.Is(norm, "LayerNormalization") || norm.Input(0) is null) continue;
            var gamma = norm.Input(1);
            var beta = norm.Input(2);
            if (gamma?.Constant is not { DataType: DataType.Float } gammaTensor) continue;
            if (beta is not null && beta.Constant is not { DataType: DataType.Float }) continue;
            if (IsAll(gammaTensor, 1) && (beta is null || IsAll(beta.Constant!, 0))) continue; // nothing to migrate
            var y = norm.Outputs[0];
            if (!consumers.TryGetValue(y, out var uses)) continue;

            var folds = new List<Fold>();
            var shapeReaders = new List<(Node Node, int Index)>();
            bool restore = graph.Outputs.Contains(y);
            foreach (var (node, index) in uses)
            {
                if (index >= 0 && ReadsOnlyShape(node)) shapeReaders.Add((node, index));
                else if (index == 0 && Plan(node, gammaTensor, beta?.Constant) is { } fold) folds.Add(fold);
                else restore = true;
            }
            if (folds.Count == 0) continue;

            // The normalization now yields n; y, where still read, is rebuilt from it on its own branch.
            var n = new Value(UniqueName(graph, y.Name + "_normalized"), y.Type, y.Shape);
            norm.SetOutput(0, n);
            var ones = new Tensor(DataType.Float, (int[])gammaTensor.Shape.Clone());
            ones.AsSpan<float>().Fill(1f);
            norm.SetInput(1, WeightMath.AddConstant(graph, norm.Name + "_unit_scale", ones));
            if (norm.Inputs.Count > 2) norm.TruncateInputs(2);
            foreach (var (node, index) in shapeReaders) node.SetInput(index, n);
            foreach (var fold in folds)
            {
                fold.Node.SetInput(0, n);
                Apply(graph, consumers, fold);
            }
            if (restore) Restore(graph, norm, n, gamma, beta, y);
            graph.SortTopologically();
            consumers = graph.Consumers();
            changed = true;
        }
        return changed;
    }

    /// <summary>A linear consumer to rewrite: its weights scale row k by <see cref="Gamma"/>[k], and
    /// <see cref="Shift"/> (beta times the weights, [N]) joins its bias; Shift is null when beta is absent or zero.</summary>
    private sealed record Fold(Node Node, double[] Gamma, double[]? Shift, int N);

    /// <summary>The rewrite of a consumer that reads the normalized tensor as input 0, or null when it is not a linear
    /// layer with constant weights that this pass can fold into.</summary>
    private static Fold? Plan(Node node, Tensor gamma, Tensor? beta)
    {
        bool gemm = GraphQueries.Is(node, "Gemm");
        if (!gemm && !GraphQueries.Is(node, "MatMul")) return null;
        if (node.Input(1)?.Constant is not { DataType: DataType.Float, Rank: 2 } w) return null;
        bool transB = gemm && Flag(node, "transB");
        if (gemm && Flag(node, "transA")) return null;
        int k = transB ? w.Shape[1] : w.Shape[0], n = transB ? w.Shape[0] : w.Shape[1];
        if (gemm && node.Input(2) is { } c && (c.Constant is not { DataType: DataType.Float } ct || !AlongLastAxis(ct, n))) return null;
        var g = WeightMath.PerChannel(gamma, k, gamma.Rank - 1, gamma.Rank);
        var b = beta is null ? null : WeightMath.PerChannel(beta, k, beta.Rank - 1, beta.Rank);
        if (g is null || beta is not null && b is null) return null;

        double[]? shift = null;
        if (b is not null && b.Any(v => v != 0))
        {
            // beta W, in double over the original weights.
            shift = new double[n];
            var wv = w.AsSpan<float>();
            for (int row = 0; row < k; row++)
                for (int col = 0; col < n; col++)
                    shift[col] += b[row] * wv[transB ? col * k + row : row * n + col];
        }
        return new Fold(node, g, shift, n);
    }

    private static void Apply(Graph graph, Dictionary<Value, List<(Node Node, int Index)>> consumers, Fold fold)
    {
        var node = fold.Node;
        var w = node.Input(1)!;
        bool transB = GraphQueries.Is(node, "Gemm") && Flag(node, "transB");
        int n = fold.N;
        var scaled = WeightMath.Map(w.Constant!, (i, v) => v * fold.Gamma[transB ? i % fold.Gamma.Length : i / n]);
        node.SetInput(1, WeightMath.AddConstant(graph, w.Name + "_gamma", scaled));
        if (fold.Shift is not { } shift) return;

        if (GraphQueries.Is(node, "Gemm"))
        {
            // Y = alpha A B + beta_c C: the shift is multiplied by alpha with the product, so C' = C + alpha / beta_c shift.
            double alpha = node.Attributes.TryGetValue("alpha", out var a) ? a.FloatValue : 1;
            double betaC = node.Attributes.TryGetValue("beta", out var bc) ? bc.FloatValue : 1;
            Tensor bias;
            if (node.Input(2)?.Constant is { } c && betaC != 0)
                bias = c.ElementCount == 1
                    ? WeightMath.Vector([.. shift.Select(s => c.GetAsDouble(0) + alpha / betaC * s)])
                    : WeightMath.Map(c, (i, v) => v + alpha / betaC * shift[i % n]);
            else
            {
                // No C, or one that beta_c = 0 ignores: the shift becomes C, with beta_c = 1.
                bias = WeightMath.Vector([.. shift.Select(s => alpha * s)]);
                node.Attributes["beta"] = AttributeValue.Float(1);
            }
            var value = WeightMath.AddConstant(graph, node.Name + "_bias_beta", bias);
            if (node.Inputs.Count > 2) node.SetInput(2, value);
            else node.AddInput(value);
            return;
        }

        // MatMul: add the shift to the constant of the Add that follows (its bias), or else to a new Add.
        var z = node.Outputs[0];
        if (GraphQueries.SoleConsumer(graph, consumers, z) is { } add && GraphQueries.Is(add, "Add") && add.Inputs.Count == 2)
        {
            int side = add.Input(0) == z ? 1 : 0;
            if (add.Input(side)?.Constant is { DataType: DataType.Float } bt && add.Input(1 - side) == z && AlongLastAxis(bt, n))
            {
                var bias = bt.ElementCount == 1
                    ? WeightMath.Vector([.. shift.Select(s => bt.GetAsDouble(0) + s)])
                    : WeightMath.Map(bt, (i, v) => v + shift[i % n]);
                add.SetInput(side, WeightMath.AddConstant(graph, add.Input(side)!.Name + "_beta", bias));
                return;
            }
        }
        var product = new Value(UniqueName(graph, z.Name + "_product"), z.Type, z.Shape);
        node.SetOutput(0, product);
        var shiftAdd = new Node("Add", node.Name + "_beta", "", Math.Max(14, graph.DefaultOpset));
        shiftAdd.AddInput(product).AddInput(WeightMath.AddConstant(graph, node.Name + "_beta_shift", WeightMath.Vector(shift))).AddOutput(z);
        graph.Nodes.Add(shiftAdd);
    }

    /// <summary>Rebuilds <paramref name="y"/> = gamma n + beta for the consumers that still read it.</summary>
    private static void Restore(Graph graph, Node norm, Value n, Value gamma, Value? beta, Value y)
    {
        int opset = Math.Max(14, graph.DefaultOpset);
        var mul = new Node("Mul", norm.Name + "_gamma", "", opset).AddInput(n).AddInput(gamma);
        graph.Nodes.Add(mul);
        if (beta is null)
        {
            mul.AddOutput(y);
            return;
        }
        var scaled = new Value(UniqueName(graph, y.Name + "_scaled"), y.Type, y.Shape);
        mul.AddOutput(scaled);
        graph.Nodes.Add(new Node("Add", norm.Name + "_beta", "", opset).AddInput(scaled).AddInput(beta).AddOutput(y));
    }

    /// <summary>Shape and Size read only the dimensions, which the migration does not change.</summary>
    private static bool ReadsOnlyShape(Node node) => GraphQueries.Is(node, "Shape") || GraphQueries.Is(node, "Size");

    /// <summary>True for a scalar, or a tensor of <paramref name="n"/> values along its last axis ([N], [1, N]).</summary>
    private static bool AlongLastAxis(Tensor t, int n) =>
        t.ElementCount == 1 || t.Rank >= 1 && t.Shape[^1] == n && t.ElementCount == n;

    private static bool IsAll(Tensor t, float value)
    {
        foreach (float v in t.AsSpan<float>()) if (v != value) return false;
        return true;
    }

    private static bool Flag(Node node, string name) => node.Attributes.TryGetValue(name, out var a) && a.IntValue != 0;

    private static string UniqueName(Graph graph, string name)
    {
        var existing = new HashSet<string>(graph.AllValues().Select(v => v.Name), StringComparer.Ordinal);
        string unique = name;
        for (int i = 1; existing.Contains(unique); i++) unique = $"{name}_{i}";
        return unique;
    }
}
