namespace Squash.Runtime.Operators;

/// <summary>Control flow: If.</summary>
internal static class ControlFlowOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        _ = registry;
    }
}
