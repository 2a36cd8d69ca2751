namespace Squash.Runtime.Operators;

/// <summary>Softmax and LogSoftmax.</summary>
internal static class SoftmaxOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        _ = registry;
    }
}
