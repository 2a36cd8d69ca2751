using Squash.Cli.Commands;
using Squash.Runtime;

namespace Squash.Cli;

/// <summary>Dispatches <c>squash VERB ...</c> to a command and turns every user-facing failure into one line on
/// standard error and an exit code: 0 success, 1 a problem with the model or data, 2 a usage error.</summary>
public static class CommandLine
{
    private static readonly (string Verb, string Summary, Func<Arguments, TextWriter, int> Run)[] s_commands =
    [
        ("inspect", "inputs, outputs, operators, parameters and opsets of a model", InspectCommand.Run),
        ("run", "run a model on .npy inputs and write its outputs as .npy", RunCommand.Run),
        ("compile", "generate the C# class and weights for a model (what the build runs)", CompileCommand.Run),
        ("export", "write the model as ONNX, optionally with int4 weights for ONNX Runtime (MatMulNBits)", ExportCommand.Run),
        ("bench", "time a model (median, min, max ms) and, with --profile, each operator type", BenchCommand.Run),
    ];

    /// <summary>Runs the command line and returns the process exit code.</summary>
    public static int Execute(string[] args, TextWriter stdout, TextWriter stderr)
    {
        try
        {
            args = ResponseFiles.Expand(args);
        }
        catch (IOException e)
        {
            stderr.WriteLine($"squash: error {ErrorCodes.FileError}: cannot read response file: {e.Message}");
            return 2;
        }
        // With --msbuild, errors go to standard output in MSBuild's canonical format, which the build task parses.
        bool msbuild = args.Contains("--msbuild");
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            WriteUsage(stdout);
            return args.Length == 0 ? 2 : 0;
        }
        var command = s_commands.FirstOrDefault(c => c.Verb == args[0]);
        if (command.Verb is null)
        {
            stderr.WriteLine($"squash: unknown command '{args[0]}'. Run 'squash --help' for the list.");
            return 2;
        }
        try
        {
            return command.Run(new Arguments(args[1..]), stdout);
        }
        catch (UsageException e)
        {
            // The build passes only options it knows, so a usage error there is a version mismatch: still report it
            // as a coded error on the model rather than as a line the task cannot attribute.
            if (msbuild) stdout.WriteLine($"{MsBuildOrigin(args)} : error {ErrorCodes.InvalidOption}: squash {command.Verb}: {e.Message}");
            else stderr.WriteLine($"squash {command.Verb}: {e.Message}");
            return 2;
        }
        catch (SquashException e)
        {
            if (msbuild) stdout.WriteLine($"{MsBuildOrigin(args)} : error {e.Code}: {e.Message}");
            else stderr.WriteLine($"squash {command.Verb}: error {e.Code}: {e.Message}");
            return 1;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            if (msbuild) stdout.WriteLine($"{MsBuildOrigin(args)} : error {ErrorCodes.FileError}: {e.Message}");
            else stderr.WriteLine($"squash {command.Verb}: error {ErrorCodes.FileError}: {e.Message}");
            return 1;
        }
    }

    /// <summary>The file an MSBuild error points at: the model (the first positional argument after the verb).</summary>
    private static string MsBuildOrigin(string[] args)
    {
        for (int i = 1; i < args.Length; i++)
        {
            if (args[i].StartsWith("--", StringComparison.Ordinal))
            {
                if (!args[i].Contains('=') && i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal)) i++;
                continue;
            }
            return Path.GetFullPath(args[i]);
        }
        return "squash";
    }

    private static void WriteUsage(TextWriter w)
    {
        w.WriteLine("usage: squash <command> [arguments]");
        w.WriteLine();
        foreach (var (verb, summary, _) in s_commands) w.WriteLine($"  {verb,-10} {summary}");
        w.WriteLine();
        w.WriteLine("Run 'squash <command> --help' for a command's arguments.");
    }
}

/// <summary>A command line the user got wrong; reported with exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);
