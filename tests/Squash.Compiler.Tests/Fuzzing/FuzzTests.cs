using Google.Protobuf;
using Squash.Compiler.Tests.Support;
using Squash.Tools.OnnxFuzzer;
using P = global::Onnx;

namespace Squash.Compiler.Tests.Fuzzing;

/// <summary>A deterministic fuzz run over the vendored models, and the fuzzer's own machinery.</summary>
public sealed class FuzzTests(FuzzSandbox sandbox) : IClassFixture<FuzzSandbox>
{
    /// <summary>Inputs of the CI run: 10 s on the 2-core development machine when idle, 40 s when heavily loaded
    /// (the long runs use the console, see docs/fuzzing.md).</summary>
    private const int Iterations = 400;

    /// <summary>The campaign seed of the CI run; changing it gives other inputs, never other rules.</summary>
    private const int CampaignSeed = 8;

    /// <summary>The target the tests use. The processor-time budget counts the whole test process (other tests run
    /// beside this one), and a machine shared by many jobs stretches wall time by 50 or more: bounds are generous,
    /// since a real hang is unbounded.</summary>
    internal static FuzzTarget Target(FuzzSandbox sandbox) => new()
    {
        Timeout = TimeSpan.FromSeconds(30),
        WallTimeout = TimeSpan.FromMinutes(10),
        BaseDirectory = sandbox.ModelDirectory,
    };

    private static readonly Lazy<List<FuzzSeed>> s_seeds = new(() => FuzzCampaign.DefaultSeeds(TestPaths.Root));

    [Fact]
    public void SeededMutationsEndInCodedErrorsOrResults()
    {
        var campaign = new FuzzCampaign(s_seeds.Value, CampaignSeed);
        var report = campaign.Run(Target(sandbox), 0, Iterations);
        Assert.True(report.Findings.Count == 0, report.Summary());
        Assert.Equal(Iterations, report.Inputs);
        // Not a run where everything fails at the parser: some inputs compile, and several codes occur.
        Assert.True(report.Outcomes.GetValueOrDefault("accepted") > Iterations / 20, report.Summary());
        Assert.True(report.Outcomes.Keys.Count(k => k.StartsWith("SQ", StringComparison.Ordinal)) >= 5, report.Summary());
    }

    [Fact]
    public void EveryIterationCanBeRegeneratedFromTheSeed()
    {
        var a = new FuzzCampaign(s_seeds.Value, 123);
        var b = new FuzzCampaign(s_seeds.Value, 123);
        for (long i = 0; i < 30; i++)
        {
            var x = a.Generate(i);
            var y = b.Generate(29 - i); // a different order: an iteration depends on its index only
            var z = b.Generate(i);
            Assert.Equal(x.Bytes, z.Bytes);
            Assert.Equal(x.Mutations, z.Mutations);
            _ = y;
        }
        Assert.NotEqual(a.Generate(0).Bytes, new FuzzCampaign(s_seeds.Value, 124).Generate(0).Bytes);
    }

    [Fact]
    public void WireFormatReadsAndWritesEverySeedUnchanged()
    {
        foreach (var seed in s_seeds.Value)
        {
            Assert.True(ProtoWire.TryParse(seed.Bytes, out var fields), seed.Name);
            Assert.Equal(P.ModelProto.Parser.ParseFrom(seed.Bytes), P.ModelProto.Parser.ParseFrom(ProtoWire.Write(fields)));
        }
        Assert.False(ProtoWire.TryParse(new byte[] { 0x0A, 0x05, 0x01 }, out _)); // a length past the end
    }

    [Fact]
    public void MinimizerKeepsTheOutcomeAndDropsTheRest()
    {
        // A model whose only problem is an absolute external-data location, padded with unrelated nodes.
        var tensor = new P.TensorProto { Name = "w", DataType = 1, Dims = { 4 }, DataLocation = P.TensorProto.Types.DataLocation.External };
        tensor.ExternalData.Add(new P.StringStringEntryProto { Key = "location", Value = "/etc/passwd" });
        var graph = new P.GraphProto { Name = "g", Initializer = { tensor } };
        for (int i = 0; i < 20; i++) graph.Node.Add(new P.NodeProto { OpType = "Relu", Name = $"n{i}", Input = { "w" }, Output = { $"y{i}" } });
        var model = new P.ModelProto { IrVersion = 8, Graph = graph, OpsetImport = { new P.OperatorSetIdProto { Version = 17 } } }.ToByteArray();
        var target = Target(sandbox);
        string signature = target.Run(model).Signature;
        Assert.Equal("SQ1007", signature);
        var small = Minimizer.Minimize(model, b => target.Run(b).Signature == signature);
        Assert.Equal(signature, target.Run(small).Signature);
        Assert.True(small.Length < model.Length / 4, $"{small.Length} of {model.Length} bytes");
    }
}
