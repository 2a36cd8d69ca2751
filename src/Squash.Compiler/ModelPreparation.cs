using Squash.Compiler.Onnx;
using Squash.Compiler.Passes;
using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Compiler;

/// <summary>The front of every compilation: load, then simplify with <see cref="Pipeline.Simplify"/>. The CLI, the
/// build and the tests all start here, so they run the same graph.</summary>
public static class ModelPreparation
{
    /// <summary>Loads <paramref name="path"/> and simplifies its graph.</summary>
    public static Model LoadAndSimplify(string path, Action<string>? log = null)
    {
        var model = OnnxLoader.Load(path);
        Simplify(model, log);
        return model;
    }

    /// <summary>
    /// Fixes the dimensions of graph inputs (InputShapes metadata, or the shapes of the data at hand) so that shape
    /// arithmetic folds and every tensor gets a static place in the memory plan.
    /// </summary>
    /// <exception cref="SquashException">An input does not exist, or the shape contradicts the model (SQ1005).</exception>
    public static void PinInputShapes(Model model, IReadOnlyDictionary<string, int[]> shapes)
    {
        var graph = model.Graph;
        foreach (var (name, shape) in shapes)
        {
            var input = graph.Inputs.FirstOrDefault(i => i.Name == name)
                ?? throw new SquashException(ErrorCodes.InvalidModel,
                    $"Cannot pin the shape of '{name}': the model has no such input. Its inputs are: {string.Join(", ", graph.Inputs.Select(i => i.Name))}.");
            if (shape.Any(d => d < 0))
                throw new SquashException(ErrorCodes.InvalidModel, $"Cannot pin '{name}' to {Shapes.Format(shape)}: dimensions must be 0 or more.");
            if (input.Shape is { } declared)
            {
                if (declared.Length != shape.Length)
                    throw new SquashException(ErrorCodes.InvalidModel,
                        $"Cannot pin '{name}' to {Shapes.Format(shape)}: the model declares rank {declared.Length} ({Shapes.Format(declared)}).");
                for (int d = 0; d < shape.Length; d++)
                    if (declared[d] >= 0 && declared[d] != shape[d])
                        throw new SquashException(ErrorCodes.InvalidModel,
                            $"Cannot pin '{name}' to {Shapes.Format(shape)}: dimension {d} is fixed to {declared[d]} by the model.");
            }
            input.Shape = (int[])shape.Clone();
        }
    }

    /// <summary>Simplifies <paramref name="model"/>'s graph in place.</summary>
    public static void Simplify(Model model, Action<string>? log = null) =>
        Pipeline.Simplify().Run(model.Graph, new PassContext { Log = log });
}
