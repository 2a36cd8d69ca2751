namespace Squash.Runtime.Operators;

/// <summary>Broadcasting binary and variadic elementwise ops: arithmetic, comparison, logic, Where, Max Min Mean Sum.</summary>
internal static class BinaryOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        _ = registry;
    }
}
