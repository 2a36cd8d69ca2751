namespace Squash.Runtime.Operators;

/// <summary>Type conversion: Cast.</summary>
internal static class CastOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        _ = registry;
    }
}
