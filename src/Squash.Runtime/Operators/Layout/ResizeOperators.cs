namespace Squash.Runtime.Operators;

/// <summary>Resize (and Upsample).</summary>
internal static class ResizeOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        _ = registry;
    }
}
