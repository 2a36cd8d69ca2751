using Google.Protobuf;
using P = global::Onnx;

namespace Squash.Tools.OnnxFuzzer;

/// <summary>A model the mutations start from.</summary>
/// <param name="Name">Where it comes from (for reports).</param>
/// <param name="Bytes">The serialized model.</param>
public sealed record FuzzSeed(string Name, byte[] Bytes);

/// <summary>One generated input: which seed and mutations made it.</summary>
/// <param name="Iteration">Its index in the campaign (with the campaign's seed, enough to regenerate it).</param>
/// <param name="Seed">The seed model's name.</param>
/// <param name="Mutations">The mutations applied, in order.</param>
/// <param name="Bytes">The mutated model.</param>
public sealed record FuzzInput(long Iteration, string Seed, IReadOnlyList<string> Mutations, byte[] Bytes);

/// <summary>What a campaign ran and found.</summary>
public sealed class FuzzReport
{
    /// <summary>Inputs run.</summary>
    public long Inputs { get; set; }

    /// <summary>Count of outcomes by signature (accepted, the refusal codes, and one entry per distinct finding).</summary>
    public SortedDictionary<string, long> Outcomes { get; } = new(StringComparer.Ordinal);

    /// <summary>Count of inputs by mutation kind.</summary>
    public SortedDictionary<string, long> Mutations { get; } = new(StringComparer.Ordinal);

    /// <summary>The first input of every distinct finding, by signature.</summary>
    public SortedDictionary<string, (FuzzInput Input, FuzzOutcome Outcome)> Findings { get; } = new(StringComparer.Ordinal);

    /// <summary>A few lines for a console or a test failure.</summary>
    public string Summary()
    {
        var lines = new List<string> { $"{Inputs} inputs" };
        lines.AddRange(Outcomes.Select(o => $"  {o.Key}: {o.Value}"));
        lines.Add("mutations:");
        lines.AddRange(Mutations.Select(m => $"  {m.Key}: {m.Value}"));
        foreach (var (signature, (input, outcome)) in Findings)
            lines.Add($"FINDING {signature}: iteration {input.Iteration}, seed {input.Seed}, mutations [{string.Join(", ", input.Mutations)}]: {outcome.Message}");
        return string.Join(Environment.NewLine, lines);
    }
}

/// <summary>
/// Generates inputs from seeds with <see cref="StructuredMutator"/> and <see cref="WireMutator"/>, deterministically
/// from a campaign seed (iteration i of seed s is always the same input), and runs them through a <see cref="FuzzTarget"/>.
/// </summary>
public sealed class FuzzCampaign
{
    private readonly IReadOnlyList<FuzzSeed> _seeds;
    private readonly P.ModelProto?[] _parsed;
    private readonly int[] _large;
    private readonly int _seed;

    /// <summary>Creates a campaign over <paramref name="seeds"/>.</summary>
    public FuzzCampaign(IReadOnlyList<FuzzSeed> seeds, int seed)
    {
        if (seeds.Count == 0) throw new ArgumentException("At least one seed is needed.", nameof(seeds));
        _seeds = seeds;
        _seed = seed;
        _parsed = new P.ModelProto?[seeds.Count];
        _large = [.. Enumerable.Range(0, seeds.Count).Where(i => seeds[i].Bytes.Length > 100_000)];
    }

    /// <summary>The seeds of the vendored models: every ONNX conformance case and the PP-OCR classifier.</summary>
    public static List<FuzzSeed> DefaultSeeds(string repositoryRoot)
    {
        string assets = Path.Combine(repositoryRoot, "testassets");
        var seeds = new List<FuzzSeed>();
        foreach (string dir in Directory.GetDirectories(Path.Combine(assets, "onnx-node")).Order(StringComparer.Ordinal))
        {
            string path = Path.Combine(dir, "model.onnx");
            if (File.Exists(path)) seeds.Add(new FuzzSeed(Path.GetFileName(dir), File.ReadAllBytes(path)));
        }
        string cls = Path.Combine(assets, "models", "ppocr", "ch_ppocr_mobile_v2.0_cls_infer.onnx");
        if (File.Exists(cls)) seeds.Add(new FuzzSeed("ppocr-cls", File.ReadAllBytes(cls)));
        return seeds;
    }

    /// <summary>The repository root (the folder holding Squash.Build.sln) above <paramref name="start"/>.</summary>
    public static string FindRepositoryRoot(string start)
    {
        var dir = new DirectoryInfo(start);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Squash.Build.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new DirectoryNotFoundException($"No Squash.Build.sln above {start}.");
    }

    /// <summary>The generator's seed for one iteration: SplitMix64 of the campaign seed and the index. Not
    /// <see cref="HashCode.Combine{T1, T2}"/>, which is seeded randomly per process: iterations then differed from run to
    /// run, and a finding in CI could not be regenerated.</summary>
    internal static int IterationSeed(int campaign, long iteration)
    {
        ulong z = unchecked(((ulong)(uint)campaign << 32) ^ (ulong)iteration) + 0x9E3779B97F4A7C15UL;
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return (int)(z ^ (z >> 31));
    }

    /// <summary>Generates input <paramref name="iteration"/>.</summary>
    public FuzzInput Generate(long iteration)
    {
        var rng = new Random(IterationSeed(_seed, iteration));
        // The large seeds are few but exercise the most operators: pick them a tenth of the time.
        int index = _large.Length > 0 && rng.Next(10) == 0 ? _large[rng.Next(_large.Length)] : rng.Next(_seeds.Count);
        var seed = _seeds[index];
        var mutations = new List<string>();
        byte[] bytes = seed.Bytes;
        int structured = rng.Next(0, 3), wire = rng.Next(0, 3);
        if (structured + wire == 0) structured = 1;
        if (structured > 0 && Parse(index) is { } proto)
        {
            var model = proto.Clone();
            for (int k = 0; k < structured; k++)
                if (StructuredMutator.Mutate(model, rng) is { } name) mutations.Add(name);
            // Stacked size mutations can exceed what protobuf writes (2 GB) or what is worth running (64 MB).
            try { bytes = model.CalculateSize() <= 64 << 20 ? model.ToByteArray() : seed.Bytes; }
            catch (Exception e) when (e is InvalidOperationException or OverflowException) { mutations.Add("unserializable"); }
        }
        for (int k = 0; k < wire; k++)
        {
            (bytes, string kind) = WireMutator.Mutate(bytes, rng);
            mutations.Add(kind);
        }
        return new FuzzInput(iteration, seed.Name, mutations, bytes);
    }

    private P.ModelProto? Parse(int index)
    {
        if (_parsed[index] is { } cached) return cached;
        try { return _parsed[index] = P.ModelProto.Parser.ParseFrom(_seeds[index].Bytes); }
        catch (InvalidProtocolBufferException) { return null; }
    }

    /// <summary>Runs iterations [<paramref name="first"/>, <paramref name="first"/> + <paramref name="count"/>) or until
    /// <paramref name="stop"/> says so (checked between inputs).</summary>
    public FuzzReport Run(FuzzTarget target, long first, long count, Func<bool>? stop = null,
        Action<FuzzInput>? starting = null, Action<FuzzInput, FuzzOutcome>? finished = null)
    {
        var report = new FuzzReport();
        for (long i = first; i < first + count; i++)
        {
            if (stop?.Invoke() == true) break;
            var input = Generate(i);
            starting?.Invoke(input);
            var outcome = target.Run(input.Bytes);
            report.Inputs++;
            string key = outcome.Kind == OutcomeKind.Finding ? "finding: " + outcome.Signature : outcome.Signature;
            report.Outcomes[key] = report.Outcomes.GetValueOrDefault(key) + 1;
            foreach (var m in input.Mutations)
            {
                string kind = m.Split(':')[0];
                report.Mutations[kind] = report.Mutations.GetValueOrDefault(kind) + 1;
            }
            if (outcome.Kind == OutcomeKind.Finding) report.Findings.TryAdd(outcome.Signature, (input, outcome));
            finished?.Invoke(input, outcome);
        }
        return report;
    }
}
