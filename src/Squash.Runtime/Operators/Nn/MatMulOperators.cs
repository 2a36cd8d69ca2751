namespace Squash.Runtime.Operators;

/// <summary>Matrix products: MatMul, Gemm, Einsum.</summary>
internal static class MatMulOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        _ = registry;
    }
}
