namespace Squash.Runtime.Operators;

/// <summary>Activations: Relu LeakyRelu Elu Sigmoid HardSigmoid HardSwish Softplus Gelu Clip PRelu.</summary>
internal static class ActivationOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        _ = registry;
    }
}
