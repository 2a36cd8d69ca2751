using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;

namespace Squash.Tools.OnnxFuzzer;

/// <summary>Command line for long fuzzing runs, replaying files and minimizing findings.</summary>
public static class Program
{
    private const string Usage =
        "usage: OnnxFuzzer [--seed S] [--first I] [--iterations N | --minutes M] [--timeout-ms T (processor time per input)] [--out DIR] [--no-execute]\n" +
        "       OnnxFuzzer --replay FILE...            run files and print how each ends\n" +
        "       OnnxFuzzer --seed S --show I [--out DIR] regenerate iteration I (written to DIR/iteration-I.onnx)\n" +
        "       OnnxFuzzer --dump FILE                 print a model as JSON (long fields cut)\n" +
        "       OnnxFuzzer --write-corpus DIR          write the hand-built hostile cases (testassets/fuzz-corpus)\n" +
        "Findings are minimized and written to DIR (default fuzz-findings) as SIGNATURE-HASH.onnx with a .txt beside.";

    /// <summary>Entry point: 0 when no finding, 1 when there were findings, 2 for bad usage.</summary>
    public static int Main(string[] args)
    {
        int seed = 1, timeoutMs = 2000;
        long first = 0, iterations = long.MaxValue, show = -1;
        double minutes = double.PositiveInfinity;
        string outDir = "fuzz-findings";
        bool execute = true;
        var replay = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            string arg = args[i];
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{arg} needs a value");
            try
            {
                switch (arg)
                {
                    case "--seed": seed = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--first": first = long.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--iterations": iterations = long.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--minutes": minutes = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--timeout-ms": timeoutMs = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--out": outDir = Next(); break;
                    case "--show": show = long.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--no-execute": execute = false; break;
                    case "--dump": Console.WriteLine(Dump(File.ReadAllBytes(Next()))); return 0;
                    case "--time-load": TimeLoad(File.ReadAllBytes(Next())); return 0;
                    case "--write-corpus": CorpusCases.Write(Next()); return 0;
                    case "--replay":
                        while (i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal)) replay.Add(args[++i]);
                        if (replay.Count == 0) throw new ArgumentException("--replay needs files");
                        break;
                    case "--help" or "-h": Console.WriteLine(Usage); return 0;
                    default: throw new ArgumentException($"unknown option {arg}");
                }
            }
            catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
            {
                Console.Error.WriteLine($"OnnxFuzzer: {e.Message}\n{Usage}");
                return 2;
            }
        }

        using var sandbox = new FuzzSandbox();
        var target = new FuzzTarget { Timeout = TimeSpan.FromMilliseconds(timeoutMs), Execute = execute, BaseDirectory = sandbox.ModelDirectory };
        if (replay.Count > 0)
        {
            int findings = 0;
            foreach (string file in replay)
            {
                var outcome = target.Run(File.ReadAllBytes(file));
                if (outcome.Kind == OutcomeKind.Finding) findings++;
                Console.WriteLine($"{file}: {outcome.Kind} {outcome.Signature} ({outcome.Stage}, {outcome.Elapsed.TotalMilliseconds:0} ms, {outcome.AllocatedBytes >> 10} KB; {outcome.Timeline}): {outcome.Message}");
                if (outcome.Kind == OutcomeKind.Finding && outcome.Error is not null) Console.WriteLine(outcome.Error);
            }
            return findings > 0 ? 1 : 0;
        }

        // The repository above the tool, or above the current folder (for a copy of the tool run from elsewhere).
        string repository;
        try { repository = FuzzCampaign.FindRepositoryRoot(AppContext.BaseDirectory); }
        catch (DirectoryNotFoundException) { repository = FuzzCampaign.FindRepositoryRoot(Environment.CurrentDirectory); }
        var campaign = new FuzzCampaign(FuzzCampaign.DefaultSeeds(repository), seed);
        Directory.CreateDirectory(outDir);
        if (show >= 0)
        {
            var input = campaign.Generate(show);
            string path = Path.Combine(outDir, $"iteration-{show}.onnx");
            File.WriteAllBytes(path, input.Bytes);
            Console.WriteLine($"{path}: seed {input.Seed}, mutations [{string.Join(", ", input.Mutations)}]");
            return 0;
        }

        var watch = Stopwatch.StartNew();
        var deadline = TimeSpan.FromMinutes(Math.Min(minutes, 1e7));
        string progressPath = Path.Combine(outDir, "last-iteration.txt");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        long total = 0;
        var report = campaign.Run(target, first, iterations == long.MaxValue ? long.MaxValue - first : iterations,
            stop: () => watch.Elapsed > deadline || target.LeakedThreads > 2,
            // A stack overflow ends the process: the last iteration written here regenerates the input (--show).
            starting: input => File.WriteAllText(progressPath, input.Iteration.ToString(CultureInfo.InvariantCulture)),
            finished: (input, outcome) =>
            {
                if (++total % 1000 == 0) Console.WriteLine($"{total} inputs, {watch.Elapsed.TotalMinutes:0.0} min, {seen.Count} distinct findings");
                if (outcome.Kind != OutcomeKind.Finding || !seen.Add(outcome.Signature)) return;
                Console.WriteLine($"FINDING {outcome.Signature} at iteration {input.Iteration} [{string.Join(", ", input.Mutations)}]: {outcome.Message}");
                // Hangs are not minimized (each attempt would take the whole time limit), allocations briefly.
                int budget = outcome.Signature.StartsWith("hang", StringComparison.Ordinal) ? 0
                    : outcome.Signature.StartsWith("allocation", StringComparison.Ordinal) ? 100 : 1500;
                var bytes = budget == 0 ? input.Bytes : Minimizer.Minimize(input.Bytes, b => target.Run(b).Signature == outcome.Signature, budget);
                string name = $"{Slug(outcome.Signature)}-{Convert.ToHexStringLower(SHA256.HashData(bytes))[..8]}";
                File.WriteAllBytes(Path.Combine(outDir, name + ".onnx"), bytes);
                File.WriteAllText(Path.Combine(outDir, name + ".txt"),
                    $"seed {seed} iteration {input.Iteration} from {input.Seed}\nmutations: {string.Join(", ", input.Mutations)}\n{outcome.Signature}\n{outcome.Error?.ToString() ?? outcome.Message}\n");
            });
        Console.WriteLine(report.Summary());
        Console.WriteLine($"{watch.Elapsed.TotalMinutes:0.0} min, {report.Inputs / Math.Max(1, watch.Elapsed.TotalSeconds):0} inputs/s");
        return report.Findings.Count > 0 ? 1 : 0;
    }

    private static void TimeLoad(byte[] bytes)
    {
        for (int k = 0; k < 3; k++)
        {
            var w = Stopwatch.StartNew();
            var proto = global::Onnx.ModelProto.Parser.ParseFrom(bytes);
            var parse = w.Elapsed;
            try { Squash.Compiler.Onnx.OnnxLoader.Load(bytes, null); } catch (Squash.Runtime.SquashException) { }
            Console.WriteLine($"parse {parse.TotalMilliseconds:0} ms, parse+load {(w.Elapsed - parse).TotalMilliseconds:0} ms ({proto.Graph?.Node.Count} nodes)");
        }
    }

    private static string Dump(byte[] bytes)
    {
        try
        {
            var model = global::Onnx.ModelProto.Parser.ParseFrom(bytes);
            string json = new Google.Protobuf.JsonFormatter(Google.Protobuf.JsonFormatter.Settings.Default.WithIndentation()).Format(model);
            return string.Join('\n', json.Split('\n').Select(line => line.Length > 200 ? line[..200] + "..." : line));
        }
        catch (Google.Protobuf.InvalidProtocolBufferException e)
        {
            return $"not a model: {e.Message}";
        }
    }

    private static string Slug(string s)
    {
        var chars = s.Select(c => char.IsAsciiLetterOrDigit(c) ? c : '-').ToArray();
        return new string(chars).Replace("--", "-", StringComparison.Ordinal).Trim('-');
    }
}
