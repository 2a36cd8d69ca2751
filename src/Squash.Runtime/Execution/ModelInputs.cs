namespace Squash.Runtime.Execution;

/// <summary>Checks and copies named inputs for the generated <see cref="ISquashModel.Run"/>.</summary>
public static class ModelInputs
{
    /// <summary>Throws unless <paramref name="inputs"/> has exactly the names of <paramref name="specs"/>.</summary>
    /// <exception cref="SquashException">An input is missing or unknown (SQ1009).</exception>
    public static void CheckNames(IReadOnlyDictionary<string, Tensor> inputs, IReadOnlyList<TensorSpec> specs)
    {
        foreach (var spec in specs)
            if (!inputs.ContainsKey(spec.Name))
                throw new SquashException(ErrorCodes.BadInput, $"Input '{spec.Name}' is missing. The model's inputs are: {string.Join(", ", specs.Select(s => s.Name))}.");
        foreach (var name in inputs.Keys)
            if (!specs.Any(s => s.Name == name))
                throw new SquashException(ErrorCodes.BadInput, $"The model has no input named '{name}'. Its inputs are: {string.Join(", ", specs.Select(s => s.Name))}.");
    }

    /// <summary>Copies input <paramref name="spec"/> into <paramref name="destination"/> after checking type and shape.</summary>
    /// <exception cref="SquashException">The input's type or shape differs from the model's (SQ1009).</exception>
    public static void CopyInto(IReadOnlyDictionary<string, Tensor> inputs, TensorSpec spec, Tensor destination)
    {
        var t = inputs[spec.Name];
        if (t.DataType != spec.DataType || !Shapes.Equal(t.Shape, destination.Shape))
            throw new SquashException(ErrorCodes.BadInput,
                $"Input '{spec.Name}' must be {DataTypes.Name(spec.DataType)}{Shapes.Format(destination.Shape)}, not {DataTypes.Name(t.DataType)}{Shapes.Format(t.Shape)}.");
        t.Bytes.CopyTo(destination.Bytes);
    }
}
