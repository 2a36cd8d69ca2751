namespace Squash.Runtime.Operators;

/// <summary>Data movement: Concat Split Slice Transpose Tile Pad DepthToSpace SpaceToDepth Trilu.</summary>
internal static class MovementOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        _ = registry;
    }
}
