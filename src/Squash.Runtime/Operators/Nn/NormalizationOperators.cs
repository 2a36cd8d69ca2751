namespace Squash.Runtime.Operators;

/// <summary>Normalization: BatchNormalization InstanceNormalization LayerNormalization RMSNormalization LRN.</summary>
internal static class NormalizationOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        _ = registry;
    }
}
