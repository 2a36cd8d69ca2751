namespace Squash.Runtime.Kernels;

/// <summary>
/// The constant weights of a convolution, packed on first use in each form a kernel asks for: which kernel runs can
/// depend on the image size (Winograd pays only on wide enough images), so one model may need two forms. Safe to
/// share between threads; a race packs twice and keeps one.
/// </summary>
internal sealed class PackedConvWeights(Tensor weights)
{
    private PackedMatrix[]? _gemm;
    private PackedMatrix[]? _winograd;
    private PackedMatrix[]? _transposed;

    /// <summary>The weights as GEMM left operands (<see cref="Convolution.PackWeights"/>).</summary>
    public PackedMatrix[] Gemm(ConvGeometry g) =>
        Volatile.Read(ref _gemm) ?? Publish(ref _gemm, Convolution.PackWeights(g, weights.AsSpan<float>()));

    /// <summary>The Winograd-transformed weights (<see cref="WinogradConv.TransformWeights"/>).</summary>
    public PackedMatrix[] Winograd(ConvGeometry g) =>
        Volatile.Read(ref _winograd) ?? Publish(ref _winograd, WinogradConv.TransformWeights(g, weights.AsSpan<float>()));

    /// <summary>The weights of a transposed convolution (<see cref="TransposedConvolution.PackWeights"/>).</summary>
    public PackedMatrix[] Transposed(ConvGeometry g) =>
        Volatile.Read(ref _transposed) ?? Publish(ref _transposed, TransposedConvolution.PackWeights(g, weights.AsSpan<float>()));

    private static PackedMatrix[] Publish(ref PackedMatrix[]? slot, PackedMatrix[] packed) =>
        Interlocked.CompareExchange(ref slot, packed, null) ?? packed;
}
