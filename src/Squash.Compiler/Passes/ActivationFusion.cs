namespace Squash.Compiler.Passes;

/// <summary>
/// Fuses the activation after a convolution or matrix product (and MatMul's bias Add) into the product, which then
/// applies it while its results are still in registers instead of in a pass of its own over the output:
/// <code>
///   Conv(X, W, B) ─ Relu ─ Y                    becomes   com.squash.FusedConv(X, W, B; activation = Relu) ─ Y
///   MatMul(X, W) ─ Add(b) [─ Sigmoid] ─ Y        becomes   com.squash.FusedMatMul(X, W, b; activation = Sigmoid) ─ Y
///   Y = activation(product + bias)
/// </code>
/// Handles: Conv, ConvTranspose, Gemm, MatMul (B of rank 2 or more), and fused products without an activation yet
/// (such as one given a residual by <see cref="EpilogueFusion"/>); activations Relu, Clip with constant bounds,
/// LeakyRelu, HardSigmoid, HardSwish, Sigmoid; MatMul's bias as a constant Add with one value per column (or one in
/// all), also without an activation. The fused node computes what the nodes did, step for step, so outputs keep
/// their bits. Does not handle: intermediate values read elsewhere or graph outputs, non-float products, other
/// activations (Tanh, Gelu...), subgraphs.
/// </summary>
public sealed class ActivationFusion : IGraphPass
{
    /// <inheritdoc/>
    public string Name => "ActivationFusion";

    /// <inheritdoc/>
    public bool Run(Squash.Runtime.Ir.Graph graph, PassContext context) =>
        FusedProduct.Run(graph, FusedProduct.Steps.Bias | FusedProduct.Steps.Activation);
}
