using System.Reflection;
using System.Runtime.Loader;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Squash.Compiler.Tests.Support;

/// <summary>Compiles generated C# with Roslyn in memory (warnings as errors, nullable on, latest language) and loads
/// it, with the given manifest resources embedded, as the build would.</summary>
internal static class InMemoryCompiler
{
    private static readonly Lazy<MetadataReference[]> s_references = new(() =>
    {
        var paths = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator).ToList();
        paths.Add(typeof(Squash.Runtime.Tensor).Assembly.Location);
        return [.. paths.Distinct(StringComparer.Ordinal).Where(File.Exists).Select(p => MetadataReference.CreateFromFile(p))];
    });

    public static Assembly Compile(IEnumerable<string> sources, IEnumerable<(string Name, byte[] Data)> resources)
    {
        var parse = new CSharpParseOptions(LanguageVersion.Latest);
        var trees = sources.Select(s => CSharpSyntaxTree.ParseText(s, parse)).ToArray();
        var options = new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary,
            nullableContextOptions: NullableContextOptions.Enable,
            generalDiagnosticOption: ReportDiagnostic.Error,
            optimizationLevel: OptimizationLevel.Release,
            specificDiagnosticOptions: new Dictionary<string, ReportDiagnostic> { ["CS1701"] = ReportDiagnostic.Suppress, ["CS1702"] = ReportDiagnostic.Suppress });
        var compilation = CSharpCompilation.Create("Generated" + Guid.NewGuid().ToString("N"), trees, s_references.Value, options);
        using var pe = new MemoryStream();
        var manifest = resources.Select(r => new ResourceDescription(r.Name, () => new MemoryStream(r.Data), isPublic: true)).ToArray();
        var emit = compilation.Emit(pe, manifestResources: manifest);
        var errors = emit.Diagnostics.Where(d => d.Severity >= DiagnosticSeverity.Warning).ToArray();
        Assert.True(emit.Success && errors.Length == 0,
            "generated code does not compile cleanly:\n" + string.Join("\n", errors.Take(20).Select(d => d.ToString())));
        pe.Position = 0;
        return new AssemblyLoadContext(null, isCollectible: true).LoadFromStream(pe);
    }
}
