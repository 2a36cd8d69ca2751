namespace Squash.Compiler.Tests.Support;

/// <summary>Locations of the repository's test assets.</summary>
internal static class TestPaths
{
    private static readonly Lazy<string> s_root = new(() =>
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Squash.Build.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Cannot find the repository root (Squash.Build.sln) above " + AppContext.BaseDirectory);
    });

    /// <summary>The repository root.</summary>
    public static string Root => s_root.Value;

    /// <summary>testassets/.</summary>
    public static string Assets => Path.Combine(Root, "testassets");

    /// <summary>A path under testassets/.</summary>
    public static string Asset(params string[] parts) => Path.Combine([Assets, .. parts]);
}
