namespace Squash.Runtime;

/// <summary>
/// A problem with a model or its inputs that the user can fix. <see cref="Code"/> is a stable diagnostic code
/// (<c>SQ####</c>) listed with its remedy in docs/diagnostics.md.
/// </summary>
public class SquashException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="code">Diagnostic code, for example <see cref="ErrorCodes.UnsupportedOperator"/>.</param>
    /// <param name="message">What is wrong and what to do, in one or two sentences.</param>
    /// <param name="nodeName">The ONNX node concerned, if any.</param>
    /// <param name="inner">The underlying exception, if any.</param>
    public SquashException(string code, string message, string? nodeName = null, Exception? inner = null)
        : base(message, inner)
    {
        Code = code;
        NodeName = nodeName;
    }

    /// <summary>Diagnostic code such as <c>SQ1003</c>.</summary>
    public string Code { get; }

    /// <summary>Name of the ONNX node concerned, if any.</summary>
    public string? NodeName { get; }
}

/// <summary>The diagnostic codes. Errors are SQ1000-SQ1999, warnings SQ2000-SQ5999 (see docs/diagnostics.md).</summary>
public static class ErrorCodes
{
    /// <summary>The model file does not exist.</summary>
    public const string ModelNotFound = "SQ1001";
    /// <summary>The model file is not a valid ONNX protobuf.</summary>
    public const string CorruptModel = "SQ1002";
    /// <summary>An operator (or operator version or domain) is not supported.</summary>
    public const string UnsupportedOperator = "SQ1003";
    /// <summary>An attribute, or an attribute value, of a supported operator is not supported.</summary>
    public const string UnsupportedAttribute = "SQ1004";
    /// <summary>The model breaks the ONNX specification (missing input, bad shapes, cycles, duplicate names...).</summary>
    public const string InvalidModel = "SQ1005";
    /// <summary>A data type is not supported where it is used.</summary>
    public const string UnsupportedDataType = "SQ1006";
    /// <summary>An external data reference is invalid or leaves the model's folder.</summary>
    public const string ExternalData = "SQ1007";
    /// <summary>A tensor shape cannot be resolved at build time.</summary>
    public const string UnresolvedShape = "SQ1008";
    /// <summary>An input given at run time does not match the model (name, type or shape).</summary>
    public const string BadInput = "SQ1009";
    /// <summary>A file could not be read or written.</summary>
    public const string FileError = "SQ1010";
    /// <summary>A model is larger than the limits Squash checks before allocating.</summary>
    public const string TooLarge = "SQ1011";
    /// <summary>A compiler option (a <c>SquashModel</c> metadata value such as ClassName or InputShapes) is invalid.</summary>
    public const string InvalidOption = "SQ1012";
    /// <summary>The compiler process failed without reporting a diagnostic (reported by the build task).</summary>
    public const string CompilerFailed = "SQ1013";
    /// <summary>The compiler or the dotnet host that runs it cannot be found (reported by the build task).</summary>
    public const string CompilerNotFound = "SQ1014";
    /// <summary>A project that is not C# has <c>SquashModel</c> items (reported by the build targets).</summary>
    public const string UnsupportedProject = "SQ1015";
    /// <summary>The calibration data set is missing, malformed or does not match the model's inputs.</summary>
    public const string CalibrationData = "SQ1016";
    /// <summary>Int8 quantization was asked for in a way that cannot work: no calibration folder, or a model whose input
    /// shapes are not pinned.</summary>
    public const string QuantizationSetup = "SQ1020";
    /// <summary>Int4 calibration statistics do not fit the weight they are applied to, or are not a valid Gram matrix.</summary>
    public const string Int4Calibration = "SQ1050";
    /// <summary>An int4 exclusion names no MatMul, Gemm or Gather node or weight of the model.</summary>
    public const string Int4Exclusion = "SQ1051";
    /// <summary>A weights file entry names a storage type this runtime cannot read into its data type (a newer or damaged
    /// writer).</summary>
    public const string WeightsStorageType = "SQ1060";
    /// <summary>A generated class was asked to run on a GPU, but no GPU backend is registered (Squash.Runtime.Gpu's
    /// <c>SquashGpu.Register()</c> was not called).</summary>
    public const string DeviceBackendMissing = "SQ1103";
    /// <summary>A generated class whose shapes are not all known was asked to run on a GPU (the device needs a static
    /// memory plan).</summary>
    public const string DeviceNeedsStaticShapes = "SQ1104";
    /// <summary>A sensitivity profile file cannot be read, is not a profile, or was made for another model.</summary>
    public const string SensitivityProfile = "SQ1040";
    /// <summary>The quantized model misses its accuracy target (AccuracyTarget) on the held-out calibration samples.</summary>
    public const string AccuracyTargetMissed = "SQ1041";
    /// <summary>Warning: the quantized model misses its accuracy target, and AccuracyTargetAction is warn.</summary>
    public const string AccuracyTargetMissedWarning = "SQ2010";
    /// <summary>Warning: a committed sensitivity profile does not match the model's units; it is measured again.</summary>
    public const string StaleSensitivityProfile = "SQ2011";
}
