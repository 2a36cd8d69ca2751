using Squash.Build.Tests.Support;

namespace Squash.Build.Tests.EndToEnd;

/// <summary>
/// The packed Squash.Build in a fresh console project, the way users get it: <c>&lt;PackageReference
/// Include="Squash.Build" /&gt;</c> and <c>SquashModel</c> items. One pack, one project per test, reused across steps
/// (each step depends on the state the previous one left). Binary logs of every build are kept in the root
/// when a test fails.
/// </summary>
[Trait("Category", "EndToEnd")]
[Collection(EndToEndCollection.Name)]
public sealed class EndToEndTests(PackedFeed feed)
{
    private const string ModelA = "models/scale_shift.onnx";
    // Same file name in another folder: the outputs must not collide (Grpc.Tools issue 17672).
    private const string ModelB = "models/extra/scale_shift.onnx";

    private const string ItemA = $"""<SquashModel Include="{ModelA}" InputShapes="x=2,4" />""";
    private const string ItemB = $"""<SquashModel Include="{ModelB}" ClassName="Affine" Namespace="Consumer.Models" Visibility="internal" WeightsStorage="File" ConstantInputs="k=10" Device="auto" />""";

    private const string ExpectedA = "ScaleShift 1.5 2.5 3.5 4.5 0.5 2.5 6.5 12.5";
    private const string ExpectedB = "Affine 10.25 20.5 30.75";
    // Device="auto" (case-insensitive) becomes the class's default; without Squash.Runtime.Gpu registered it runs on the CPU.
    private const string ExpectedDevice = "Affine Auto CPU";

    private const string Program = """
        using System.Globalization;

        static string Format(float[] values) => string.Join(" ", values.Select(v => v.ToString(CultureInfo.InvariantCulture)));

        var scaleShift = new Consumer.ScaleShift();
        Console.WriteLine("ScaleShift " + Format(scaleShift.Run(new float[] { 1, 1, 1, 1, 0, 1, 2, 3 })));
        #if HAS_AFFINE
        var affine = new Consumer.Models.Affine();
        Console.WriteLine("Affine " + Format(affine.Run(new float[] { 1, 2, 3 })));
        Console.WriteLine($"Affine {Consumer.Models.Affine.DefaultDevice} {affine.DeviceName}");
        #endif
        """;

    [Fact]
    public void BuildsRunsAndRebuildsOnlyWhatChanged()
    {
        var app = new ConsumerProject(feed, "Consumer");
        try
        {
            TestModels.ScaleShift(app.PathOf(ModelA));
            TestModels.Affine(app.PathOf(ModelB));
            app.WriteProject(ItemA + ItemB, "HAS_AFFINE");
            app.WriteProgram(Program);

            // First build: both models compile; the app runs and prints the expected numbers.
            var first = app.Build();
            Assert.Equal(new[] { app.PathOf(ModelA), app.PathOf(ModelB) }.Order(), ConsumerProject.CompiledModels(first).Order());
            Assert.Equal([ExpectedA, ExpectedB, ExpectedDevice], app.Run());
            // The runtime reaches the output folder; the compiler and MSBuild's assemblies never do. File weights are
            // copied under their resource name, embedded ones are not.
            var files = Directory.GetFiles(app.OutputDirectory).Select(Path.GetFileName).ToHashSet();
            Assert.Contains("Squash.Runtime.dll", files);
            Assert.Contains("Consumer.Models.Affine.sqw", files);
            Assert.DoesNotContain("Consumer.ScaleShift.sqw", files);
            foreach (var f in files)
                Assert.False(f!.StartsWith("squash.", StringComparison.Ordinal) || f.StartsWith("Squash.Compiler", StringComparison.Ordinal)
                    || f.StartsWith("Squash.Build", StringComparison.Ordinal) || f.StartsWith("Microsoft.Build", StringComparison.Ordinal)
                    || f.StartsWith("Google.Protobuf", StringComparison.Ordinal), $"{f} must not be in the consumer's output");

            // The package has methods with loops (the kernels) compiled optimized at their first call
            // (TieredCompilationQuickJitForLoops=false in Squash.Build.props, unless the project sets it).
            string runtimeConfig = File.ReadAllText(Path.Combine(app.OutputDirectory, "Consumer.runtimeconfig.json"));
            Assert.Matches("\"System.Runtime.TieredCompilation.QuickJitForLoops\":\\s*false", runtimeConfig);

            // Nothing changed: the compiler does not run.
            var second = app.Build();
            Assert.True(ConsumerProject.CompiledModels(second).Count == 0, app.Describe("a no-op build ran the compiler", second));

            // One of two models touched: only that one recompiles.
            File.SetLastWriteTimeUtc(app.PathOf(ModelA), DateTime.UtcNow.AddSeconds(1));
            var touched = app.Build();
            Assert.Equal([app.PathOf(ModelA)], ConsumerProject.CompiledModels(touched));

            // dotnet clean removes every generated file.
            var clean = app.Dotnet("clean");
            Assert.True(clean.ExitCode == 0, app.Describe("dotnet clean failed", clean));
            foreach (var file in app.OutputsOf(ModelA).Concat(app.OutputsOf(ModelB)))
                Assert.False(File.Exists(file), $"{file} survived dotnet clean");
            Assert.False(File.Exists(Path.Combine(app.SquashDirectory, "squash.manifest")));

            // A design-time build (IntelliSense) writes only the classes' API, and no weights; the project compiles.
            var designTime = app.Build("-p:DesignTimeBuild=true");
            Assert.Equal(2, ConsumerProject.CompiledModels(designTime).Count);
            Assert.Contains(designTime.Lines, l => l.Contains("squash.dll compile", StringComparison.Ordinal) && l.Contains("--api-only", StringComparison.Ordinal));
            Assert.Contains("generated by a design-time build", File.ReadAllText(app.OutputsOf(ModelA)[0]), StringComparison.Ordinal);
            Assert.False(File.Exists(app.OutputsOf(ModelA)[1]), "a design-time build wrote weights");

            // The next full build replaces the stubs with the real classes.
            var full = app.Build();
            Assert.Equal(2, ConsumerProject.CompiledModels(full).Count);
            Assert.Equal([ExpectedA, ExpectedB, ExpectedDevice], app.Run());

            // A model removed from the project: its outputs are pruned, its copied weights removed, the other stays.
            app.WriteProject(ItemA);
            var removed = app.Build();
            Assert.Empty(ConsumerProject.CompiledModels(removed));
            foreach (var file in app.OutputsOf(ModelB)) Assert.False(File.Exists(file), $"{file} of the removed model was not pruned");
            Assert.True(File.Exists(app.OutputsOf(ModelA)[1]));
            Assert.False(File.Exists(Path.Combine(app.OutputDirectory, "Consumer.Models.Affine.sqw")));
            Assert.Equal([ExpectedA], app.Run());
        }
        catch
        {
            feed.Keep = true;
            throw;
        }
    }

    /// <summary>
    /// <c>Precision="int8"</c> with <c>Calibration</c>: the model is calibrated and compiled; the calibration files are
    /// inputs of the build (an added sample with an old timestamp, an edited one), and a no-op build neither compiles nor
    /// calibrates. The scale-shift model has no product, so its arithmetic stays fp32 and the output is exact.
    /// </summary>
    [Fact]
    public void Int8CalibrationFilesAreBuildInputs()
    {
        var app = new ConsumerProject(feed, "Int8Consumer");
        try
        {
            TestModels.ScaleShift(app.PathOf(ModelA));
            string calibration = app.PathOf("calib");
            Directory.CreateDirectory(calibration);
            void Sample(string name) =>
                Squash.Runtime.IO.Npy.Write(Path.Combine(calibration, name), Squash.Runtime.Tensor.From<float>([1, 2, 3, 4, 0, 1, 2, 3], 2, 4));
            Sample("000.npy");
            app.WriteProject($"""<SquashModel Include="{ModelA}" InputShapes="x=2,4" Precision="int8" Calibration="calib" />""");
            app.WriteProgram(Program);

            var first = app.Build();
            Assert.Equal([app.PathOf(ModelA)], ConsumerProject.CompiledModels(first));
            Assert.Equal([ExpectedA], app.Run());
            Assert.True(File.Exists(Path.Combine(app.SquashDirectory, Path.GetFileNameWithoutExtension(app.OutputsOf(ModelA)[1]) + ".calibration.json")));

            var second = app.Build();
            Assert.True(ConsumerProject.CompiledModels(second).Count == 0, app.Describe("a no-op build ran the compiler", second));

            // A sample added with an old timestamp (as a copy keeps it) still recompiles: the file list is an option.
            Sample("001.npy");
            File.SetLastWriteTimeUtc(Path.Combine(calibration, "001.npy"), DateTime.UtcNow.AddDays(-1));
            Assert.Equal([app.PathOf(ModelA)], ConsumerProject.CompiledModels(app.Build()));

            // An edited sample is newer than the stamp.
            File.SetLastWriteTimeUtc(Path.Combine(calibration, "000.npy"), DateTime.UtcNow.AddSeconds(1));
            Assert.Equal([app.PathOf(ModelA)], ConsumerProject.CompiledModels(app.Build()));
            Assert.Equal([ExpectedA], app.Run());
        }
        catch
        {
            feed.Keep = true;
            throw;
        }
    }

    /// <summary>
    /// NativeAOT compiles for a fixed instruction set (x86-64-v2 by default on x64, where the kernels lose AVX2 and run
    /// 8x slower): an x64 NativeAOT app gets x86-64-v3 unless the project chooses; other architectures, JIT apps and
    /// projects that set <c>IlcInstructionSet</c> are left alone. Read with <c>dotnet msbuild -getProperty</c> on the
    /// restored app, as the ILCompiler targets read it when they write ilc's response file.
    /// </summary>
    [Fact]
    public void NativeAotOnX64TargetsAvx2UnlessTheProjectChooses()
    {
        var app = new ConsumerProject(feed, "AotConsumer");
        try
        {
            TestModels.ScaleShift(app.PathOf(ModelA));
            app.WriteProject(ItemA);
            app.WriteProgram(Program);
            var restore = app.Dotnet("restore");
            Assert.True(restore.ExitCode == 0, app.Describe("restore failed", restore));
            string InstructionSet(params string[] properties)
            {
                var query = app.Dotnet("msbuild", ["-getProperty:IlcInstructionSet", .. properties]);
                Assert.True(query.ExitCode == 0, app.Describe("the property query failed", query));
                return query.Lines.LastOrDefault(l => l.Length > 0) ?? "";
            }
            Assert.Equal("x86-64-v3", InstructionSet("-p:PublishAot=true", "-p:RuntimeIdentifier=linux-x64"));
            Assert.Equal("x86-64-v3", InstructionSet("-p:PublishAot=true", "-p:RuntimeIdentifier=win-x64"));
            Assert.Equal("x86-64-v4", InstructionSet("-p:PublishAot=true", "-p:RuntimeIdentifier=linux-x64", "-p:IlcInstructionSet=x86-64-v4"));
            Assert.Equal("", InstructionSet("-p:PublishAot=true", "-p:RuntimeIdentifier=linux-arm64"));
            Assert.Equal("", InstructionSet("-p:RuntimeIdentifier=linux-x64"));
        }
        catch
        {
            feed.Keep = true;
            throw;
        }
    }

    [Fact]
    public void BadModelsGiveCanonicalErrorsAndNoOutputs()
    {
        var app = new ConsumerProject(feed, "Broken");
        try
        {
            TestModels.ScaleShift(app.PathOf(ModelA));
            TestModels.ScaleShift(app.PathOf("models/meta.onnx"));
            TestModels.Corrupt(app.PathOf("models/corrupt.onnx"));
            TestModels.Unsupported(app.PathOf("models/unsupported.onnx"));
            TestModels.ScaleShift(app.PathOf("models/dynamic.onnx"));
            app.WriteProgram("System.Console.WriteLine(new Consumer.ScaleShift().Inputs.Count);\n");

            // Problems the build sees before any compiler runs: all reported at once, nothing compiled.
            app.WriteProject(ItemA + """
                <SquashModel Include="models/missing.onnx" />
                <SquashModel Include="models/meta.onnx" ClassName="1abc" InputShapes="x=a,b" />
                """);
            var early = app.Dotnet("build");
            Assert.NotEqual(0, early.ExitCode);
            app.AssertError(early, "models/missing.onnx", "SQ1001");
            app.AssertError(early, "models/meta.onnx", "SQ1012", "ClassName='1abc'");
            app.AssertError(early, "models/meta.onnx", "SQ1012", "dimension 'a' of input 'x'");
            Assert.Empty(ConsumerProject.CompiledModels(early));

            // Problems the compiler finds: every model is compiled, each broken one reported, the good one kept.
            app.WriteProject(ItemA + """
                <SquashModel Include="models/corrupt.onnx" />
                <SquashModel Include="models/unsupported.onnx" />
                <SquashModel Include="models/dynamic.onnx" />
                """);
            var late = app.Dotnet("build");
            Assert.NotEqual(0, late.ExitCode);
            app.AssertError(late, "models/corrupt.onnx", "SQ1002");
            app.AssertError(late, "models/unsupported.onnx", "SQ1003", "Frobnicate");
            // Warnings come through as warnings (a model whose input stays dynamic still compiles).
            Assert.Contains(late.Lines, l => l.StartsWith($"{app.PathOf("models/dynamic.onnx")} : warning SQ2001: ", StringComparison.Ordinal));
            Assert.True(File.Exists(app.OutputsOf("models/dynamic.onnx")[0]));
            Assert.Equal(4, ConsumerProject.CompiledModels(late).Count);
            // A project in another language (here the C# project told it is Visual Basic) is refused up front.
            var language = app.Dotnet("build", "-p:Language=VB");
            Assert.NotEqual(0, language.ExitCode);
            Assert.Contains(language.Lines, l => l.StartsWith($"{app.PathOf("Broken.csproj")} : error SQ1015: ", StringComparison.Ordinal));
            Assert.Empty(ConsumerProject.CompiledModels(language));

            // SQUASH_COMPILER replaces the compiler (the seam tests use); one that fails silently still gives a coded
            // error per model. Another compiler changes every model's options: all of them run again.
            string fake = WriteFailingCompiler(app.PathOf("fake"));
            var silent = app.Dotnet(new Dictionary<string, string?> { ["SQUASH_COMPILER"] = fake }, "build");
            Assert.NotEqual(0, silent.ExitCode);
            app.AssertError(silent, ModelA, "SQ1013", "exit code 3");
            Assert.Contains(silent.Lines, l => l.Contains(fake + " compile ", StringComparison.Ordinal));
            Assert.True(File.Exists(app.OutputsOf(ModelA)[0]) && File.Exists(app.OutputsOf(ModelA)[1]));
            // No half-written output: neither generated files nor the compiler's temporary files.
            foreach (var model in new[] { "models/missing.onnx", "models/meta.onnx", "models/corrupt.onnx", "models/unsupported.onnx" })
                foreach (var file in app.OutputsOf(model).Where(f => !f.EndsWith(".options", StringComparison.Ordinal)))
                    Assert.False(File.Exists(file), $"{file} exists after a failed compilation");
            Assert.Empty(Directory.GetFiles(app.SquashDirectory, "*.tmp"));
        }
        catch
        {
            feed.Keep = true;
            throw;
        }
    }

    /// <summary>A compiler that prints nothing and exits with 3.</summary>
    private static string WriteFailingCompiler(string pathWithoutExtension)
    {
        if (OperatingSystem.IsWindows())
        {
            File.WriteAllText(pathWithoutExtension + ".cmd", "@exit /b 3\r\n");
            return pathWithoutExtension + ".cmd";
        }
        string path = pathWithoutExtension + ".sh";
        File.WriteAllText(path, "#!/bin/sh\nexit 3\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }
}
