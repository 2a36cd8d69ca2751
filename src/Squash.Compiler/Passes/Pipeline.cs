namespace Squash.Compiler.Passes;

/// <summary>The standard pass lists, in one place.</summary>
public static class Pipeline
{
    /// <summary>
    /// Clean-up that every compilation runs: simplify, fold what is known at build time, drop what is unused, and
    /// infer shapes (which lets more Shape-driven arithmetic fold).
    /// </summary>
    public static PassManager Simplify() => new(
    [
        new IdentityElimination(),
        new ConstantFolding(),
        new DeadNodeElimination(),
        new ShapeInference(),
    ]);
}
