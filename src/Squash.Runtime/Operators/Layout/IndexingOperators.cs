namespace Squash.Runtime.Operators;

/// <summary>Indexing: Gather GatherElements GatherND ScatterND.</summary>
internal static class IndexingOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        _ = registry;
    }
}
