namespace Squash.Runtime.Operators;

/// <summary>Pooling: AveragePool MaxPool GlobalAveragePool GlobalMaxPool.</summary>
internal static class PoolingOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        _ = registry;
    }
}
