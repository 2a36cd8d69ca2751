using Squash.Build.Tests.Support;

namespace Squash.Build.Tests.EndToEnd;

/// <summary>
/// Packs Squash.Runtime and Squash.Build (from the build these tests belong to, without building again) into a local
/// feed in a temporary root that consumer projects live in. The root has its own <c>nuget.config</c> (the local feed
/// for Squash.*, the machine's package cache and configured sources for everything else),
/// <c>Directory.Packages.props</c>, and an isolated <c>NUGET_PACKAGES</c>, so nothing leaks from or into the machine's
/// NuGet cache.
/// </summary>
public sealed class PackedFeed : IDisposable
{
    /// <summary>Creates the feed; runs <c>dotnet pack</c> twice.</summary>
    public PackedFeed()
    {
        Root = Directory.CreateTempSubdirectory("squash-e2e-").FullName;
        Directory.CreateDirectory(Logs);
        foreach (var project in new[] { "src/Squash.Runtime/Squash.Runtime.csproj", "src/Squash.Build/Squash.Build.csproj" })
        {
            // No restore: NUGET_PACKAGES is the machine's here, and the repository's restore state must stay as it is.
            var result = DotNet.Run(Repository.Root, new Dictionary<string, string?>(),
                "pack", project, "-c", Repository.Configuration, "--no-build", "--no-restore", "-o", FeedDirectory,
                "-nr:false", "-tl:off", "-v:m");
            if (result.ExitCode != 0) throw new InvalidOperationException($"dotnet pack {project} failed:\n{result.Output}");
        }
        string package = Directory.GetFiles(FeedDirectory, "Squash.Build.*.nupkg").Single();
        Version = Path.GetFileNameWithoutExtension(package)["Squash.Build.".Length..];
        WriteRootFiles();
    }

    /// <summary>The temporary root.</summary>
    public string Root { get; }

    /// <summary>The local feed with the packed packages.</summary>
    public string FeedDirectory => Path.Combine(Root, "feed");

    /// <summary>Binary logs of every build, kept with the root when a test fails.</summary>
    public string Logs => Path.Combine(Root, "logs");

    /// <summary>The version of the packed packages.</summary>
    public string Version { get; }

    /// <summary>Environment of every build in the root: an isolated package cache.</summary>
    public IReadOnlyDictionary<string, string?> Environment => new Dictionary<string, string?>
    {
        ["NUGET_PACKAGES"] = Path.Combine(Root, "packages"),
        // The compiler under test is the packed one; a developer's override must not replace it.
        ["SQUASH_COMPILER"] = null,
        // No compiler server left running after the tests.
        ["UseSharedCompilation"] = "false",
    };

    /// <summary>Set when a test failed: the root stays for inspection (its path is in the failure message).</summary>
    public bool Keep { get; set; }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (Keep || System.Environment.GetEnvironmentVariable("SQUASH_KEEP_E2E") == "1") return;
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
            // A process that outlived its test may still hold a file; the temp folder is cleaned eventually.
        }
    }

    private void WriteRootFiles()
    {
        // Stop MSBuild's walk up the folders: nothing above the root may change the consumer projects.
        File.WriteAllText(Path.Combine(Root, "Directory.Build.props"), "<Project />\n");
        File.WriteAllText(Path.Combine(Root, "Directory.Build.targets"), "<Project />\n");
        File.WriteAllText(Path.Combine(Root, "Directory.Packages.props"), $"""
            <Project>
              <PropertyGroup>
                <ManagePackageVersionsCentrally>true</ManagePackageVersionsCentrally>
              </PropertyGroup>
              <ItemGroup>
                <PackageVersion Include="Squash.Build" Version="{Version}" />
              </ItemGroup>
            </Project>
            """);

        // Squash.* come only from the local feed (a package of the same version elsewhere must never win); other
        // packages from the machine's package cache (used as a feed: fast, offline) or the machine's sources.
        var sources = new List<(string Key, string Value)> { ("squash-local", FeedDirectory) };
        string machineCache = System.Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } cache ? cache
            : Path.Combine(System.Environment.GetFolderPath(System.Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        if (Directory.Exists(machineCache)) sources.Add(("machine-cache", machineCache));
        var listed = DotNet.Run(Repository.Root, new Dictionary<string, string?>(), "nuget", "list", "source", "--format", "short");
        int n = 0;
        foreach (var line in listed.Lines)
            if (line.StartsWith("E ", StringComparison.Ordinal)) sources.Add(($"machine-source-{n++}", line[2..].Trim()));

        string Escape(string s) => System.Security.SecurityElement.Escape(s);
        var config = new System.Text.StringBuilder();
        config.Append("<configuration>\n  <packageSources>\n    <clear />\n");
        foreach (var (key, value) in sources) config.Append($"    <add key=\"{key}\" value=\"{Escape(value)}\" />\n");
        config.Append("  </packageSources>\n  <packageSourceMapping>\n    <clear />\n");
        config.Append("    <packageSource key=\"squash-local\">\n      <package pattern=\"Squash.Build\" />\n      <package pattern=\"Squash.Runtime\" />\n    </packageSource>\n");
        foreach (var (key, _) in sources.Skip(1))
            config.Append($"    <packageSource key=\"{key}\">\n      <package pattern=\"*\" />\n    </packageSource>\n");
        config.Append("  </packageSourceMapping>\n</configuration>\n");
        File.WriteAllText(Path.Combine(Root, "nuget.config"), config.ToString());
    }
}

/// <summary>
/// The end-to-end test classes share one <see cref="PackedFeed"/> (packing is the slow part) and run one after another:
/// their builds share the feed's package cache and the machine's cores.
/// </summary>
[CollectionDefinition(Name)]
public sealed class EndToEndCollection : ICollectionFixture<PackedFeed>
{
    /// <summary>The collection's name.</summary>
    public const string Name = "EndToEnd";
}
