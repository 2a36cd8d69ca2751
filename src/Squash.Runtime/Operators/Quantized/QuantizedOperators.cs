namespace Squash.Runtime.Operators;

/// <summary>
/// Quantization: ONNX QuantizeLinear and DequantizeLinear, and Squash's int8 operators (domain com.squash), which the
/// int8 rewrite (Squash.Compiler.Quantization) produces and docs/quantization.md describes.
/// </summary>
internal static class QuantizedOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        registry.Add("QuantizeLinear", n => new QuantizeLinearOperator(n), minOpset: 10);
        registry.Add("DequantizeLinear", n => new DequantizeLinearOperator(n), minOpset: 10);
    }
}
