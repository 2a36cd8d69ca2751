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
    /// constant Mul/Add) into the weights of the convolution or Gemm before them, and recognition of layer normalization
    /// and hard-swish written out in elementary operators. Folding rounds weights once in fp32, so outputs move by about
    /// 1e-6 relative. The graph keeps standard operators only (the int8 pipeline and the GPU back end start from it);
    /// <see cref="Fuse"/> follows for the CPU's fp32 kernels.
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
    ]);

    /// <summary>
    /// What the CPU's fp32 code runs after <see cref="Optimize"/>: fusion of activations into the products before them,
    /// of a 3x3 convolution over a feature pyramid's upsampled, projected and gated maps into one that works at their
    /// own resolutions and channels (<see cref="GlobalPoolBeforePointwiseConv"/>, <see cref="PyramidConvFusion"/>;
    /// before the epilogue fusion, which would take a projection's Add as its residual), of what follows a convolution or
    /// matrix product (MatMul's bias, a residual, a per-channel affine map) into its store, of pairs of tiling transposed
    /// convolutions into one pass (<see cref="ConvTransposeChainFusion"/>), then of the remaining chains of elementwise nodes into single passes
    /// over memory. Makes com.squash Fused* nodes, which only the CPU's fp32 kernels run, so the int8 pipeline and the
    /// GPU back end do not run it. Each fused node computes what the nodes it replaces did, in the same order, so
    /// outputs keep their bits (up to the vectorized sigmoid's and exp's own rounding, the same in both), except
    /// <see cref="GlobalPoolBeforePointwiseConv"/>'s and <see cref="PyramidConvFusion"/>'s, which sum the same products
    /// in another order.
    /// </summary>
    public static PassManager Fuse() => new(
    [
        new ActivationFusion(),
        new GlobalPoolBeforePointwiseConv(),
        new PyramidConvFusion(),
        new DeadNodeElimination(),
        new EpilogueFusion(),
        new ConvTransposeChainFusion(),
        new ElementwiseFusion(),
    ]);

    /// <summary>
    /// What the int8 pipeline runs after <see cref="Optimize"/> and before calibration: rewrites that leave fp32 outputs
    /// unchanged (within about 1e-7 relative) but give activations ranges that quantize better. Today that is
    /// <see cref="LayerNormGammaMigration"/> (disable it by name in <see cref="PassContext.DisabledPasses"/> to measure
    /// its effect), then removal of the weights it replaced.
    /// </summary>
    public static PassManager QuantizationPrep() => new(
    [
        new LayerNormGammaMigration(),
        new DeadNodeElimination(),
    ]);

    /// <summary>
    /// What the int4 pipeline runs after <see cref="Optimize"/>: <see cref="AttentionFusion"/> (decoders' attention as one
    /// flash-style node where the pattern matches; not in <see cref="Optimize"/> because the GPU backend has no kernel
    /// for it yet), then <see cref="Quantization.Int4MatMulQuantization"/> with <paramref name="options"/>, then removal of the float
    /// weights and nodes nothing reads any more.
    /// </summary>
    public static PassManager Int4(Quantization.Int4QuantizationOptions options) => new(
    [
        new AttentionFusion(),
        new DeadNodeElimination(),
        new Quantization.Int4MatMulQuantization(options),
        new DeadNodeElimination(),
    ]);
}
