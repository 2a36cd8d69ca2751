using System.Text.RegularExpressions;
using Squash.Build.Tasks;
using Squash.Build.Tests.Support;

namespace Squash.Build.Tests.EndToEnd;

/// <summary>
/// A console project <c>NAME.csproj</c> in the feed's root (in folder <c>NAME</c>, or <paramref name="folder"/>) that
/// references the packed Squash.Build, and what its builds did.
/// </summary>
internal sealed class ConsumerProject(PackedFeed feed, string name, string? folder = null)
{
    private int _step;

    /// <summary>The project folder.</summary>
    public string Directory { get; } = System.IO.Directory.CreateDirectory(Path.Combine(feed.Root, folder ?? name)).FullName;

    /// <summary>The project file.</summary>
    public string ProjectFile => Path.Combine(Directory, name + ".csproj");

    /// <summary>The folder the generated files go to (Debug build).</summary>
    public string SquashDirectory => Path.Combine(Directory, "obj", "Debug", "net10.0", "squash");

    /// <summary>The output folder (Debug build).</summary>
    public string OutputDirectory => Path.Combine(Directory, "bin", "Debug", "net10.0");

    /// <summary>Full path of a file in the project.</summary>
    public string PathOf(string relative) => Path.GetFullPath(Path.Combine(Directory, relative));

    /// <summary>Writes the project file: a console app with <c>Squash.Build</c> and the given <c>SquashModel</c> items.</summary>
    public void WriteProject(string squashModelItems, string defineConstants = "") =>
        File.WriteAllText(ProjectFile, $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <ImplicitUsings>enable</ImplicitUsings>
                <Nullable>enable</Nullable>
                <!-- The generated code must compile without warnings in a strict project. -->
                <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
                <RootNamespace>Consumer</RootNamespace>
                <DefineConstants>$(DefineConstants);{defineConstants}</DefineConstants>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="Squash.Build" />
                {squashModelItems}
              </ItemGroup>
            </Project>
            """);

    /// <summary>Writes Program.cs.</summary>
    public void WriteProgram(string source) => File.WriteAllText(Path.Combine(Directory, "Program.cs"), source);

    /// <summary>Runs <c>dotnet VERB</c> on the project with a binary log named after the step.</summary>
    public DotNet.Result Dotnet(string verb, params string[] args) => Dotnet(new Dictionary<string, string?>(), verb, args);

    /// <summary>Runs <c>dotnet VERB</c> with some environment variables set (null removes one).</summary>
    public DotNet.Result Dotnet(IReadOnlyDictionary<string, string?> environment, string verb, params string[] args)
    {
        string log = Path.Combine(feed.Logs, $"{(folder ?? name).Replace('/', '-')}-{++_step:D2}-{verb}.binlog");
        var env = new Dictionary<string, string?>(feed.Environment);
        foreach (var (key, value) in environment) env[key] = value;
        return DotNet.Run(Directory, env, [verb, "-nr:false", "-tl:off", "-v:n", "-bl:" + log, .. args]);
    }

    /// <summary>Builds and requires success.</summary>
    public DotNet.Result Build(params string[] args)
    {
        var result = Dotnet("build", args);
        Assert.True(result.ExitCode == 0, Describe("the build failed", result));
        return result;
    }

    /// <summary>Runs the built program and returns its output lines.</summary>
    public string[] Run()
    {
        var result = DotNet.Run(Directory, feed.Environment, Path.Combine(OutputDirectory, name + ".dll"));
        Assert.True(result.ExitCode == 0, Describe("the program failed", result));
        return [.. result.Lines.Where(l => l.Length > 0)];
    }

    /// <summary>The models the compiler ran for, from the command lines the task logs (one per model).</summary>
    public static List<string> CompiledModels(DotNet.Result result)
    {
        var models = new List<string>();
        foreach (var line in result.Lines)
        {
            var m = Regex.Match(line, @"squash\.dll compile (\S+) ");
            if (m.Success) models.Add(m.Groups[1].Value);
        }
        return models;
    }

    /// <summary>The files the build owns for a model (see SquashPrepareModels).</summary>
    public string[] OutputsOf(string relativeModel)
    {
        string baseName = Path.Combine(SquashDirectory, ModelOptions.OutputName(PathOf(relativeModel)));
        return [baseName + ".g.cs", baseName + ".sqw", baseName + ".options", baseName + ".stamp", baseName + ".api.stamp"];
    }

    /// <summary>A failure message with the end of the output and where the logs are.</summary>
    public string Describe(string what, DotNet.Result result)
    {
        var tail = result.Lines.Where(l => l.Length > 0).TakeLast(40);
        return $"{what} (exit code {result.ExitCode}); logs in {feed.Logs}:\n{string.Join("\n", tail)}";
    }

    /// <summary>Asserts that the output has the canonical error <c>FILE : error CODE: ...</c>.</summary>
    public void AssertError(DotNet.Result result, string relativeModel, string code, string? text = null)
    {
        string file = PathOf(relativeModel);
        bool found = result.Lines.Any(l => l.StartsWith($"{file} : error {code}: ", StringComparison.Ordinal) && (text is null || l.Contains(text, StringComparison.Ordinal)));
        Assert.True(found, Describe($"expected '{file} : error {code}: {text}...'", result));
    }
}
