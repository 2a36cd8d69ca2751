namespace Squash.Runtime.Operators;

/// <summary>Recurrent layers: LSTM, GRU.</summary>
internal static class RecurrentOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        _ = registry;
    }
}
