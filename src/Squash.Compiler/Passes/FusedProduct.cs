using Squash.Runtime;
using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;
using Squash.Runtime.Operators;

namespace Squash.Compiler.Passes;

/// <summary>
/// Grows a product (Conv, ConvTranspose, Gemm, MatMul) into its com.squash fused form by absorbing the elementwise
/// nodes after it, one at a time, into the epilogue the kernels apply as they store results:
/// <code>
///   Y = activation(product + bias + Z) * scale + shift
/// </code>
/// Shared by <see cref="ActivationFusion"/> and <see cref="EpilogueFusion"/>, which allow different steps. A step is
/// absorbed only where it keeps the order of operations of the nodes it replaces (so results keep their bits):
/// MatMul's bias before anything else, Z before the activation, the activation once, the scale before the shift.
/// </summary>
internal static class FusedProduct
{
    /// <summary>The steps a node after the product can become.</summary>
    [Flags]
    public enum Steps
    {
        /// <summary>MatMul's bias: Add of a constant with one value per column.</summary>
        Bias = 1,
        /// <summary>Add of a tensor shaped like the output.</summary>
        Residual = 2,
        /// <summary>Relu, Clip with constant bounds, LeakyRelu, HardSigmoid, HardSwish, Sigmoid.</summary>
        Activation = 4,
        /// <summary>Mul by a constant with one value per channel (or a scalar).</summary>
        Scale = 8,
        /// <summary>Add of a constant with one value per channel (or a scalar).</summary>
        Shift = 16,
    }

    private const int BiasInput = 2;

    /// <summary>Absorbs, for each product of <paramref name="graph"/>, as many following nodes as <paramref name="allowed"/>
    /// permits. Returns true when anything changed.</summary>
    public static bool Run(Graph graph, Steps allowed)
    {
        // Fused nodes need the com.squash import, which only the main graph holds.
        if (graph.OpsetImports.Count == 0) return false;
        // One walk with the rewrites applied at the end: re-sorting per match made hostile models quadratic.
        var rewrite = new GraphRewrite(graph);
        bool rewired = false;
        foreach (var product in graph.Nodes)
        {
            if (!rewrite.IsLive(product) || !IsProduct(product)) continue;
            while (rewrite.SoleConsumer(product.Outputs[0]) is { } next && rewrite.IsLive(next)
                && TryAbsorb(rewrite, graph, product, next, allowed, ref rewired))
                rewrite.Absorb(product, next);
        }
        bool changed = rewrite.Apply();
        // A residual produced after the product in the list must now come before it.
        if (rewired) graph.SortTopologically();
        return changed;
    }

    /// <summary>True for a float product this class can grow, fused already or not.</summary>
    public static bool IsProduct(Node node)
    {
        if (node.Outputs.Count != 1 || node.Outputs[0] is not { Type: DataType.Float, Shape: { Length: > 0 } shape } || shape[ChannelAxis(node, shape)] < 0)
            return false;
        string type = node.Domain == OperatorRegistry.SquashDomain && node.OpType.StartsWith("Fused", StringComparison.Ordinal)
            ? node.OpType["Fused".Length..]
            : node.Domain.Length == 0 ? node.OpType : "";
        return type switch
        {
            "Conv" or "ConvTranspose" or "Gemm" => true,
            // MatMul's channels are B's columns; a 1-D B has none.
            "MatMul" => node.Input(1)?.Shape is { Length: >= 2 },
            _ => false,
        };
    }

    private static bool IsConvolution(Node node) => node.OpType.EndsWith("Conv", StringComparison.Ordinal) || node.OpType.EndsWith("ConvTranspose", StringComparison.Ordinal);

    private static bool IsMatMul(Node node) => node.OpType.EndsWith("MatMul", StringComparison.Ordinal);

    /// <summary>Channels are axis 1 of a convolution's output and the last axis of a matrix product's.</summary>
    private static int ChannelAxis(Node node, int[] shape) => IsConvolution(node) ? 1 : shape.Length - 1;

    private static bool Has(Node node, int input) => node.Input(input) is not null;

    private static bool HasActivation(Node node) => node.Attributes.ContainsKey("activation");

    /// <summary>Absorbs <paramref name="next"/> into <paramref name="product"/> when it is an allowed step that may
    /// come after what the product already does; false (and nothing changed) otherwise.</summary>
    private static bool TryAbsorb(GraphRewrite rewrite, Graph graph, Node product, Node next, Steps allowed, ref bool rewired)
    {
        var y = product.Outputs[0];
        var shape = y.Shape!;
        if (next.Outputs.Count != 1 || next.Domain.Length != 0) return false;
        bool hasResidual = Has(product, FusedOutput.ResidualInput), hasScale = Has(product, FusedOutput.ScaleInput);
        bool hasShift = Has(product, FusedOutput.ShiftInput), hasActivation = HasActivation(product);
        bool nothingAfterBias = !hasResidual && !hasActivation && !hasScale && !hasShift;

        if (next.OpType is "Add" or "Mul" && next.Inputs.Count == 2)
        {
            var other = next.Input(0) == y ? next.Input(1) : next.Input(0);
            if (other is null || other == y) return false;
            int channels = shape[ChannelAxis(product, shape)];
            var perChannel = WeightMath.PerChannel(other.Constant, channels, ChannelAxis(product, shape), shape.Length);
            if (next.OpType == "Mul")
            {
                if (!allowed.HasFlag(Steps.Scale) || perChannel is null || hasScale || hasShift) return false;
                return Set(rewrite, graph, product, FusedOutput.ScaleInput, perChannel, "_scale");
            }
            if (perChannel is not null)
            {
                if (allowed.HasFlag(Steps.Bias) && IsMatMul(product) && nothingAfterBias && !Has(product, BiasInput))
                    return Set(rewrite, graph, product, BiasInput, perChannel, "_bias");
                if (!allowed.HasFlag(Steps.Shift) || hasShift) return false;
                return Set(rewrite, graph, product, FusedOutput.ShiftInput, perChannel, "_shift");
            }
            if (!allowed.HasFlag(Steps.Residual) || !nothingAfterBias || other.Type != DataType.Float
                || other.Shape is not { } z || !Shapes.IsKnown(z) || !Shapes.IsKnown(shape) || !Shapes.Equal(z, shape))
                return false;
            // Z cannot be computed from the product: the product's output has this Add as its only reader.
            MakeFused(graph, product);
            SetInput(product, FusedOutput.ResidualInput, other);
            rewired = true;
            return true;
        }

        if (!allowed.HasFlag(Steps.Activation) || hasActivation || hasScale || hasShift || Activation(next) is not { } activation)
            return false;
        MakeFused(graph, product);
        product.Attributes["activation"] = AttributeValue.String(activation.Kind.ToString());
        float[] parameters = activation.Kind switch
        {
            GemmActivationKind.Clip or GemmActivationKind.HardSigmoid => [activation.Alpha, activation.Beta],
            GemmActivationKind.LeakyRelu => [activation.Alpha],
            _ => [],
        };
        if (parameters.Length > 0) product.Attributes["activation_params"] = AttributeValue.FloatList(parameters);
        return true;
    }

    /// <summary>The activation a node computes, when it is one the kernels fuse (with the standalone operator's defaults).</summary>
    public static GemmActivation? Activation(Node node)
    {
        if (node.Domain.Length != 0 || node.Inputs.Count == 0 || node.Outputs.Count != 1) return null;
        float Attribute(string name, float fallback) => node.Attributes.TryGetValue(name, out var a) ? a.FloatValue : fallback;
        switch (node.OpType)
        {
            case "Relu": return GemmActivation.Relu;
            case "Sigmoid": return GemmActivation.Sigmoid;
            case "HardSwish": return GemmActivation.HardSwish;
            case "LeakyRelu": return GemmActivation.LeakyRelu(Attribute("alpha", 0.01f));
            case "HardSigmoid": return GemmActivation.HardSigmoid(Attribute("alpha", 0.2f), Attribute("beta", 0.5f));
            case "Clip":
                // As ClipOperator: attributes before opset 11, scalar inputs after, the float range by default.
                float? low = Bound(node, 1, "min"), high = Bound(node, 2, "max");
                if (low is null || high is null) return null;
                return GemmActivation.Clip(low.Value, high.Value);
            default: return null;
        }
    }

    private static float? Bound(Node clip, int input, string attribute)
    {
        if (clip.Attributes.TryGetValue(attribute, out var a)) return a.FloatValue;
        if (clip.Input(input) is not { } v) return input == 1 ? -float.MaxValue : float.MaxValue;
        return v.Constant is { ElementCount: 1, DataType: DataType.Float } t ? t.AsSpan<float>()[0] : null;
    }

    /// <summary>Stores a per-channel constant as input <paramref name="index"/> of the fused node.</summary>
    private static bool Set(GraphRewrite rewrite, Graph graph, Node product, int index, double[] values, string suffix)
    {
        MakeFused(graph, product);
        SetInput(product, index, rewrite.AddConstant(product.Name + suffix, WeightMath.Vector(values)));
        return true;
    }

    /// <summary>Turns a standard product into its com.squash form (same inputs and attributes; the fused operators
    /// read the standard ones).</summary>
    private static void MakeFused(Graph graph, Node product)
    {
        if (product.Domain == OperatorRegistry.SquashDomain) return;
        product.OpType = "Fused" + product.OpType;
        product.Domain = OperatorRegistry.SquashDomain;
        product.OpsetVersion = FusedOperators.Opset;
        graph.OpsetImports[OperatorRegistry.SquashDomain] = FusedOperators.Opset;
    }

    private static void SetInput(Node node, int index, Value value)
    {
        while (node.Inputs.Count <= index) node.AddInput(null);
        node.SetInput(index, value);
    }
}
