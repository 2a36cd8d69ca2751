using System.Collections;
using Microsoft.Build.Framework;

namespace Squash.Build.Tests.Support;

/// <summary>A build engine that records what tasks log, so tasks can be tested without MSBuild.</summary>
internal sealed class MockBuildEngine : IBuildEngine3
{
    public List<BuildErrorEventArgs> Errors { get; } = [];
    public List<BuildWarningEventArgs> Warnings { get; } = [];
    public List<BuildMessageEventArgs> Messages { get; } = [];

    /// <summary>Errors as <c>CODE file: message</c>, for readable assertion failures.</summary>
    public string ErrorText => string.Join("\n", Errors.Select(e => $"{e.Code} {e.File}: {e.Message}"));

    public bool ContinueOnError => false;
    public int LineNumberOfTaskNode => 0;
    public int ColumnNumberOfTaskNode => 0;
    public string ProjectFileOfTaskNode => "test.csproj";

    public void LogErrorEvent(BuildErrorEventArgs e) => Errors.Add(e);
    public void LogWarningEvent(BuildWarningEventArgs e) => Warnings.Add(e);
    public void LogMessageEvent(BuildMessageEventArgs e) => Messages.Add(e);
    public void LogCustomEvent(CustomBuildEventArgs e) { }

    /// <summary>The command lines tasks logged (ToolTask logs the command it runs).</summary>
    public IEnumerable<string> CommandLines => Messages.OfType<TaskCommandLineEventArgs>().Select(m => m.CommandLine);

    public bool IsRunningMultipleNodes => false;

    // A tool task yields the node while its tool runs.
    public void Yield() { }
    public void Reacquire() { }

    public bool BuildProjectFile(string projectFileName, string[] targetNames, IDictionary globalProperties, IDictionary targetOutputs) =>
        throw new NotSupportedException();

    public bool BuildProjectFile(string projectFileName, string[] targetNames, IDictionary globalProperties, IDictionary targetOutputs, string toolsVersion) =>
        throw new NotSupportedException();

    public bool BuildProjectFilesInParallel(string[] projectFileNames, string[] targetNames, IDictionary[] globalProperties, IDictionary[] targetOutputsPerProject, string[] toolsVersion, bool useResultsCache, bool unloadProjectsOnCompletion) =>
        throw new NotSupportedException();

    public BuildEngineResult BuildProjectFilesInParallel(string[] projectFileNames, string[] targetNames, IDictionary[] globalProperties, IList<string>[] removeGlobalProperties, string[] toolsVersion, bool returnTargetOutputs) =>
        throw new NotSupportedException();
}
