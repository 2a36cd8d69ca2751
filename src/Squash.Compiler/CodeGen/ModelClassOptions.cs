namespace Squash.Compiler.CodeGen;

/// <summary>How the generated class looks and where it finds its weights.</summary>
public sealed record ModelClassOptions
{
    /// <summary>Class name (a C# identifier).</summary>
    public required string ClassName { get; init; }

    /// <summary>Namespace (dotted C# identifiers); empty for the global namespace.</summary>
    public required string Namespace { get; init; }

    /// <summary><c>public</c> or <c>internal</c>.</summary>
    public string Visibility { get; init; } = "public";

    /// <summary>Where the weights are: an embedded resource of the class's assembly, or a file next to the app.</summary>
    public WeightsStorage WeightsStorage { get; init; } = WeightsStorage.EmbeddedResource;

    /// <summary>Manifest resource name (EmbeddedResource) or file name relative to the app folder (File).</summary>
    public required string WeightsName { get; init; }

    /// <summary>File name of the source model, for documentation.</summary>
    public required string SourceFileName { get; init; }

    /// <summary>SHA-256 of the source model, for documentation and traceability.</summary>
    public required string SourceSha256 { get; init; }

    /// <summary>Precision the model was compiled for, for documentation.</summary>
    public string Precision { get; init; } = "fp32";

    /// <summary>The device the parameterless constructor runs on (the class's <c>DefaultDevice</c>; the other
    /// constructor takes one).</summary>
    public Squash.Runtime.Execution.SquashDevice Device { get; init; } = Squash.Runtime.Execution.SquashDevice.Cpu;

    /// <summary>Emit only the public API (design-time builds): members throw until a full build runs.</summary>
    public bool ApiOnly { get; init; }
}

/// <summary>Where the generated class loads its weights from.</summary>
public enum WeightsStorage
{
    /// <summary>A manifest resource embedded in the assembly (default).</summary>
    EmbeddedResource,

    /// <summary>A <c>.sqw</c> file copied next to the app.</summary>
    File,
}
