using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Squash.Build.Tasks;
using Squash.Build.Tests.Support;
using Squash.Compiler.Onnx;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Weights;
using Xunit.Abstractions;

namespace Squash.Build.Tests.EndToEnd;

/// <summary>
/// Builds that must come out the same or recover: clean builds of one project in two folders give the same generated
/// files; many models and parallel builds; two projects sharing a model built at the same time; compilers killed
/// mid-build. The packed packages, as in <see cref="EndToEndTests"/> (same feed). These are the slow tests of the
/// repository (about three minutes on two busy cores).
/// </summary>
[Trait("Category", "EndToEnd")]
[Collection(EndToEndCollection.Name)]
public sealed class RobustBuildTests(PackedFeed feed, ITestOutputHelper output)
{
    /// <summary>Prints one line per model: its name and its outputs in round-trip format.</summary>
    private static string Program(params (string Label, string Class, string Input)[] models)
    {
        var sb = new StringBuilder("""
            using System.Globalization;

            static string Format(float[] values) => string.Join(" ", values.Select(v => v.ToString("R", CultureInfo.InvariantCulture)));

            """);
        foreach (var (label, cls, input) in models)
            sb.Append($"Console.WriteLine(\"{label} \" + Format(new {cls}().Run({input})));\n");
        return sb.ToString();
    }

    /// <summary>The model's output for one input, from the interpreter in this process (the reference).</summary>
    private static float[] Reference(string model, float[] input, params int[] shape)
    {
        var graph = OnnxLoader.Load(model).Graph;
        var outputs = new GraphExecutor(graph).Run(new Dictionary<string, Tensor> { [graph.Inputs[0].Name] = Tensor.From<float>(input, shape) });
        return outputs[graph.Outputs[0].Name].AsSpan<float>().ToArray();
    }

    private static void AssertClose(float[] expected, string line, string label)
    {
        Assert.StartsWith(label + " ", line, StringComparison.Ordinal);
        float[] actual = [.. line[(label.Length + 1)..].Split(' ').Select(v => float.Parse(v, CultureInfo.InvariantCulture))];
        Assert.Equal(expected.Length, actual.Length);
        // The class runs the optimized graph (fused, folded), the reference the model as written: rounding differs.
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-4f * (1 + Math.Abs(expected[i])), $"{label}[{i}]: {actual[i]}, expected {expected[i]}");
    }

    private static readonly float[] s_convInput = [.. Enumerable.Range(0, 3 * 16 * 16).Select(i => MathF.Sin(i * 0.37f))];
    private const string ConvInput = "Enumerable.Range(0, 3 * 16 * 16).Select(i => MathF.Sin(i * 0.37f)).ToArray()";

    private static string ScaleShiftLine(string label, float factor) =>
        label + " " + string.Join(" ", new float[] { 1, 1, 1, 1, 0, 1, 2, 3 }.Select((x, i) => (x * (i % 4 + 1) * factor + 0.5f).ToString("R", CultureInfo.InvariantCulture)));

    private const string ScaleShiftInput = "new float[] { 1, 1, 1, 1, 0, 1, 2, 3 }";

    /// <summary>Runs a test; when it fails, the feed's folder (projects, binary logs) stays for inspection.</summary>
    private void Keeping(Action test)
    {
        try
        {
            test();
        }
        catch
        {
            feed.Keep = true;
            throw;
        }
    }

    private async Task Keeping(Func<Task> test)
    {
        try
        {
            await test();
        }
        catch
        {
            feed.Keep = true;
            throw;
        }
    }

    [Fact]
    public void CleanBuildsInTwoFoldersGenerateTheSameFiles() => Keeping(() =>
    {
        // One project, in two folders of different depths: every absolute path differs.
        var apps = new[] { new ConsumerProject(feed, "Same", "same-a"), new ConsumerProject(feed, "Same", "same-b/one/more/level") };
        string[] models = ["models/net.onnx", "models/scale_shift.onnx"];
        foreach (var app in apps)
        {
            TestModels.SmallConvNet(app.PathOf(models[0]));
            TestModels.ScaleShift(app.PathOf(models[1]));
            app.WriteProject($"""
                <SquashModel Include="{models[0]}" />
                <SquashModel Include="{models[1]}" InputShapes="x=2,4" WeightsStorage="File" />
                """);
            app.WriteProgram(Program(("Net", "Consumer.Net", ConvInput), ("ScaleShift", "Consumer.ScaleShift", ScaleShiftInput)));
        }

        var runs = apps.Select(app =>
        {
            var build = app.Build();
            Assert.Equal(2, ConsumerProject.CompiledModels(build).Count);
            return app.Run();
        }).ToArray();

        Assert.Equal(runs[0], runs[1]);
        AssertClose(Reference(apps[0].PathOf(models[0]), s_convInput, 1, 3, 16, 16), runs[0][0], "Net");
        Assert.Equal(ScaleShiftLine("ScaleShift", 1), runs[0][1]);
        // Everything the compiler wrote, by model (names carry a hash of the model's path). The options files and
        // stamps are the build's own: options name the model's and compiler's absolute paths, stamps are empty.
        var generated = apps.Select(app =>
        {
            var files = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
            foreach (var model in models)
            {
                string name = ModelOptions.OutputName(app.PathOf(model));
                foreach (var file in Directory.GetFiles(app.SquashDirectory, name + ".*"))
                {
                    string suffix = Path.GetFileName(file)[name.Length..];
                    if (suffix is not (".options" or ".stamp" or ".api.stamp")) files[model + suffix] = File.ReadAllBytes(file);
                }
            }
            return files;
        }).ToArray();
        Assert.Equal(["models/net.onnx.g.cs", "models/net.onnx.sqw", "models/scale_shift.onnx.g.cs", "models/scale_shift.onnx.sqw"], generated[0].Keys);
        FileSets.AssertSame(generated[0], generated[1], "between clean builds in two folders");
        Assert.Equal(File.ReadAllBytes(Path.Combine(apps[0].OutputDirectory, "Consumer.ScaleShift.sqw")),
            File.ReadAllBytes(Path.Combine(apps[1].OutputDirectory, "Consumer.ScaleShift.sqw")));
    });

    [Fact]
    public void TenModelsBuildWithParallelBuilds() => Keeping(() =>
    {
        var app = new ConsumerProject(feed, "Many");
        var items = new StringBuilder();
        var program = new List<(string, string, string)>();
        for (int i = 0; i < 10; i++)
        {
            TestModels.ScaleShift(app.PathOf($"models/m{i}.onnx"), factor: i + 1);
            items.Append($"""<SquashModel Include="models/m{i}.onnx" InputShapes="x=2,4" WeightsStorage="{(i % 2 == 0 ? "EmbeddedResource" : "File")}" />""").Append('\n');
            program.Add(($"M{i}", $"Consumer.M{i}", ScaleShiftInput));
        }
        app.WriteProject(items.ToString());
        app.WriteProgram(Program([.. program]));
        string[] expected = [.. Enumerable.Range(0, 10).Select(i => ScaleShiftLine($"M{i}", i + 1))];

        // Every build of the harness has node reuse off (-nr:false).
        var parallel = app.Build("-m");
        Assert.Equal(10, ConsumerProject.CompiledModels(parallel).Distinct().Count());
        Assert.Equal(expected, app.Run());

        var rebuild = app.Build("-m:2", "--no-incremental");
        Assert.Equal(10, ConsumerProject.CompiledModels(rebuild).Distinct().Count());
        Assert.Equal(expected, app.Run());
        Assert.Empty(Directory.GetFiles(app.SquashDirectory, "*.tmp"));
    });

    [Fact]
    public Task TwoProjectsSharingAModelBuildAtTheSameTime() => Keeping(async () =>
    {
        string folder = Path.Combine(feed.Root, "shared");
        string model = Path.Combine(folder, "models", "net.onnx");
        TestModels.SmallConvNet(model);
        var apps = new[] { new ConsumerProject(feed, "SharedOne", "shared/one"), new ConsumerProject(feed, "SharedTwo", "shared/two") };
        foreach (var app in apps)
        {
            app.WriteProject("""<SquashModel Include="../models/net.onnx" />""");
            app.WriteProgram(Program(("Net", "Consumer.Net", ConvInput)));
        }
        var expected = Reference(model, s_convInput, 1, 3, 16, 16);

        void AssertRuns()
        {
            foreach (var app in apps) AssertClose(expected, Assert.Single(app.Run()), "Net");
        }

        // Two dotnet build processes started together.
        var builds = await Task.WhenAll(apps.Select(app => Task.Run(() => app.Dotnet("build"))));
        for (int i = 0; i < apps.Length; i++)
        {
            Assert.True(builds[i].ExitCode == 0, apps[i].Describe("one of two simultaneous builds failed", builds[i]));
            Assert.Equal([model], ConsumerProject.CompiledModels(builds[i]));
        }
        AssertRuns();

        // One solution, both projects rebuilt in parallel build nodes.
        File.WriteAllText(Path.Combine(folder, "shared.slnx"), """
            <Solution>
              <Project Path="one/SharedOne.csproj" />
              <Project Path="two/SharedTwo.csproj" />
            </Solution>
            """);
        var solution = DotNet.Run(folder, feed.Environment, "build", "shared.slnx", "-m", "--no-incremental", "-nr:false", "-tl:off", "-v:n",
            "-bl:" + Path.Combine(feed.Logs, "shared-solution.binlog"));
        Assert.True(solution.ExitCode == 0, apps[0].Describe("the solution build failed", solution));
        Assert.Equal([model, model], ConsumerProject.CompiledModels(solution));
        AssertRuns();
    });

    [Fact]
    public Task KilledCompilersLeaveNothingTheNextBuildTrusts() => Keeping(async () =>
    {
        // The compiler is found by its command line, which only Linux shows to a test without extra packages (/proc).
        if (!OperatingSystem.IsLinux()) return;
        var app = new ConsumerProject(feed, "Killed");
        const string Model = "models/dense.onnx";
        // 16 MB of weights: the compiler runs long enough to be killed while loading, folding or writing.
        TestModels.Dense(app.PathOf(Model), width: 1024, layers: 4);
        app.WriteProject($"""<SquashModel Include="{Model}" />""");
        app.WriteProgram(Program(("Dense", "Consumer.Dense", "Enumerable.Range(0, 1024).Select(i => MathF.Cos(i * 0.01f)).ToArray()")));
        string compiler = Path.Combine(feed.Root, "packages", "squash.build");

        // A good build first, timed, so that the kills land at chosen points of a compiler's run and over good outputs.
        var first = Task.Run(() => app.Dotnet("build"));
        var lifetime = await CompilerLifetime(compiler, first);
        Assert.True((await first).ExitCode == 0, app.Describe("the first build failed", await first));
        var log = new List<string> { $"an uninterrupted compiler ran {lifetime.TotalMilliseconds:F0} ms; left {Outputs(app, Model)}" };

        // Kills from start-up to the writing of the outputs. Before each build the model changes (other weights), so
        // each compilation has new outputs to write over the last good ones or over what the killed one before left.
        bool killed = false, lastKilled = false;
        double[] points = [0, 0.6, 0.95];
        for (int attempt = 0; attempt < points.Length; attempt++)
        {
            TestModels.Dense(app.PathOf(Model), width: 1024, layers: 4, seed: attempt + 1);
            int delay = (int)(lifetime.TotalMilliseconds * points[attempt]);
            var build = Task.Run(() => app.Dotnet("build"));
            bool sent = await KillWhenSeen(compiler, delay, build);
            var result = await build;
            Assert.True(ConsumerProject.CompiledModels(result).Count == 1, app.Describe($"attempt {attempt} did not run the compiler", result));
            lastKilled = result.ExitCode != 0;
            log.Add($"attempt {attempt}: kill after {delay} ms {(sent ? "sent" : "not sent")}, build {(lastKilled ? "failed" : "succeeded")}; left {Outputs(app, Model)}");
            if (!lastKilled) continue;
            killed = true;
            // The task reports the dead compiler on the model and the build stops before C# (no CS error).
            app.AssertError(result, Model, "SQ1013");
            Assert.DoesNotContain(result.Lines, l => l.Contains(": error CS", StringComparison.Ordinal));
            // Whatever the compiler wrote, the incremental check does not trust it: no stamp newer than the model.
            string stamp = app.OutputsOf(Model)[3];
            Assert.True(!File.Exists(stamp) || File.GetLastWriteTimeUtc(stamp) < File.GetLastWriteTimeUtc(app.PathOf(Model)), string.Join("\n", log));
        }
        foreach (var line in log) output.WriteLine(line);
        Assert.True(killed, "no kill landed while the compiler ran:\n" + string.Join("\n", log));

        var final = app.Build();
        if (lastKilled) Assert.Equal([app.PathOf(Model)], ConsumerProject.CompiledModels(final));
        // The class matches its weights (it checks the checksum when it loads them) and computes the last model.
        var outputs = app.OutputsOf(Model);
        Assert.Equal(ClassChecksum(outputs[0]), WeightsChecksum(outputs[1]));
        var input = Enumerable.Range(0, 1024).Select(i => MathF.Cos(i * 0.01f)).ToArray();
        AssertClose(Reference(app.PathOf(Model), input, 1, 1024), Assert.Single(app.Run()), "Dense");
        Assert.Empty(Directory.GetFiles(app.SquashDirectory, "*.tmp"));
        // And the build after that has nothing to do.
        Assert.Empty(ConsumerProject.CompiledModels(app.Build()));
    });

    /// <summary>The weights checksum a generated class expects (null for none), in hexadecimal.</summary>
    private static string? ClassChecksum(string source) =>
        File.Exists(source) && Regex.Match(File.ReadAllText(source), "WeightsChecksum = 0x([0-9A-F]{16})UL") is { Success: true } m ? m.Groups[1].Value : null;

    /// <summary>The checksum of a weights file (null for none), in hexadecimal.</summary>
    private static string? WeightsChecksum(string weights)
    {
        if (!File.Exists(weights)) return null;
        using var stream = File.OpenRead(weights);
        return WeightsFile.Read(stream).Checksum.ToString("X16", CultureInfo.InvariantCulture);
    }

    /// <summary>What a model's outputs are, for the log: whether the class matches the weights, temporary files.</summary>
    private static string Outputs(ConsumerProject app, string model)
    {
        var files = app.OutputsOf(model);
        string? expected = ClassChecksum(files[0]), actual = WeightsChecksum(files[1]);
        string state = expected is null ? "no class" : actual is null ? "a class without weights" : expected == actual ? "a class and its weights" : "a class and other weights";
        int temporary = Directory.Exists(app.SquashDirectory) ? Directory.GetFiles(app.SquashDirectory, "*.tmp").Length : 0;
        string stamp = !File.Exists(files[3]) ? "no stamp"
            : File.GetLastWriteTimeUtc(files[3]) < File.GetLastWriteTimeUtc(app.PathOf(model)) ? "a stamp older than the model" : "a stamp as new as the model";
        return $"{state}, {temporary} temporary files, {stamp}";
    }

    /// <summary>How long the first compiler process whose command line contains <paramref name="marker"/> runs, from
    /// when it is first seen until it is gone.</summary>
    private static async Task<TimeSpan> CompilerLifetime(string marker, Task build)
    {
        while (!build.IsCompleted)
        {
            foreach (var pid in ProcessesWith(marker, "squash.dll"))
            {
                var clock = Stopwatch.StartNew();
                // An exited process, even one not reaped yet, has an empty command line.
                while (ProcessesWith(marker, "squash.dll").Contains(pid)) await Task.Delay(5);
                return clock.Elapsed;
            }
            await Task.Delay(5);
        }
        throw new InvalidOperationException("The build ended before a compiler was seen.");
    }

    /// <summary>
    /// Waits for a compiler process whose command line contains <paramref name="marker"/> (the path of this feed's
    /// package, so no other build's compiler), then kills it after <paramref name="delayMs"/>. Returns whether the kill
    /// was sent while it ran; false when the build ended first or the compiler exited before the delay.
    /// </summary>
    private static async Task<bool> KillWhenSeen(string marker, int delayMs, Task build)
    {
        while (!build.IsCompleted)
        {
            foreach (var pid in ProcessesWith(marker, "squash.dll"))
            {
                await Task.Delay(delayMs);
                try
                {
                    using var process = Process.GetProcessById(pid);
                    if (process.HasExited) return false;
                    process.Kill();
                    return true;
                }
                catch (ArgumentException)
                {
                    return false; // already gone
                }
                catch (InvalidOperationException)
                {
                    return false;
                }
            }
            await Task.Delay(10);
        }
        return false;
    }

    /// <summary>Ids of the processes whose command line contains every one of <paramref name="parts"/> (Linux).</summary>
    private static IEnumerable<int> ProcessesWith(params string[] parts)
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out int pid)) continue;
            string commandLine;
            try
            {
                commandLine = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ');
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue; // exited meanwhile, or not ours
            }
            if (parts.All(p => commandLine.Contains(p, StringComparison.Ordinal))) yield return pid;
        }
    }
}
