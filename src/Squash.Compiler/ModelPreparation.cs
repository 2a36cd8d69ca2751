using Squash.Compiler.Onnx;
using Squash.Compiler.Passes;
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

    /// <summary>Simplifies <paramref name="model"/>'s graph in place.</summary>
    public static void Simplify(Model model, Action<string>? log = null) =>
        Pipeline.Simplify().Run(model.Graph, new PassContext { Log = log });
}
