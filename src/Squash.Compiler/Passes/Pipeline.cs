namespace Squash.Compiler.Passes;

/// <summary>The standard pass lists, in one place.</summary>
public static class Pipeline
{
    /// <summary>
    /// Clean-up that changes no arithmetic: simplify, fold what is known at build time, drop what is unused, and infer
    /// shapes (which lets more Shape-driven arithmetic fold). Outputs stay bit-identical.
    /// </summary>
    public static PassManager Simplify() => new(
    [
        new IdentityElimination(),
        new ConstantFolding(),
        new DeadNodeElimination(),
        new ShapeInference(),
    ]);

    /// <summary>
    /// What every compilation runs: <see cref="Simplify"/>, then folds of per-channel affine maps (BatchNormalization,
    /// constant Mul/Add) into the weights of the convolution or Gemm before them, recognition of layer normalization
    /// and hard-swish written out in elementary operators, then fusion of what follows a convolution or matrix product
    /// (bias, residual, activation, per-channel affine map) into its store, and of the remaining chains of elementwise
    /// nodes into single passes. Folding rounds weights once in fp32, so outputs move by about 1e-6 relative; the
    /// fusions keep every bit.
    /// </summary>
    public static PassManager Optimize() => new(
    [
        new IdentityElimination(),
        new ConstantFolding(),
        new DeadNodeElimination(),
        new ShapeInference(),
        new ConvBatchNormFusion(),
        new ConvAffineFusion(),
        new LayerNormFusion(),
        new HardSwishFusion(),
        new ActivationFusion(),
        new EpilogueFusion(),
        new ElementwiseFusion(),
    ]);
}
