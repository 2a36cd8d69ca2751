namespace Squash.Runtime.Operators;

/// <summary>Shape arithmetic: Shape Size Reshape Flatten Squeeze Unsqueeze Expand ConstantOfShape Range.</summary>
internal static class ShapeOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        _ = registry;
    }
}
