namespace Squash.Compiler.Passes;

/// <summary>
/// Fuses into a convolution or matrix product a residual Add before its activation, and a per-channel affine map
/// after it (PP-LCNet's "learnable affine blocks" follow every activation), so the product's store does it all:
/// <code>
///   Conv(X, W, B) ─ Add(Z) [─ activation] ─ Y                 becomes   FusedConv(X, W, B, Z; activation) ─ Y
///   Conv(X, W, B) ─ HardSwish ─ Mul(c) ─ Add(d) ─ Y            becomes   FusedConv(X, W, B, -, c, d; activation = HardSwish) ─ Y
///   Y = activation(conv(X, W) + B + Z) * c + d
/// </code>
/// Z is a tensor of the output's shape (read at each output element's place, so no copy is made); c and d are
/// constants with one value per channel or a scalar, stored as [C] vectors. Activations between are taken as in
/// <see cref="ActivationFusion"/>. Handles: Conv, ConvTranspose, Gemm, MatMul and their fused forms. Each step keeps
/// the order of operations of the nodes it replaces (Z before the activation, c before d), so outputs keep their bits.
/// Does not handle: an Add after the activation of a tensor (a residual taken after the activation), Z computed from
/// the product's own output, Sub and Div, constants that broadcast along other axes, intermediate values read elsewhere.
/// </summary>
public sealed class EpilogueFusion : IGraphPass
{
    /// <inheritdoc/>
    public string Name => "EpilogueFusion";

    /// <inheritdoc/>
    public bool Run(Squash.Runtime.Ir.Graph graph, PassContext context) =>
        FusedProduct.Run(graph, FusedProduct.Steps.Residual | FusedProduct.Steps.Activation | FusedProduct.Steps.Scale | FusedProduct.Steps.Shift);
}
