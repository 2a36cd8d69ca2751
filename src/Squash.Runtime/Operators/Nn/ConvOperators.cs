namespace Squash.Runtime.Operators;

/// <summary>Convolutions: Conv, ConvTranspose.</summary>
internal static class ConvOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        _ = registry;
    }
}
