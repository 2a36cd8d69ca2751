using System.Globalization;

namespace Squash.Compiler.Quantization;

/// <summary>How an activation's range is chosen from the values calibration observes.</summary>
public enum CalibrationMethod
{
    /// <summary>The smallest and largest values seen (<see cref="MinMaxObserver"/>).</summary>
    MinMax,
    /// <summary>Percentiles of the values, cutting rare outliers (<see cref="PercentileObserver"/>).</summary>
    Percentile,
    /// <summary>The threshold whose quantized distribution is closest in KL divergence, as TensorRT's entropy
    /// calibrator (<see cref="EntropyObserver"/>).</summary>
    Entropy,
    /// <summary>The threshold with the least expected squared quantization error (<see cref="MseObserver"/>).</summary>
    Mse,
}

/// <summary>The calibration method and its parameters. Everything here is part of the calibration cache key.</summary>
public sealed record CalibrationSettings
{
    /// <summary>How ranges are chosen. MinMax by default, as ONNX Runtime's <c>quantize_static</c>.</summary>
    public CalibrationMethod Method { get; init; } = CalibrationMethod.MinMax;

    /// <summary>Histogram bins per sign for the histogram methods (2048, as ONNX Runtime and TensorRT).</summary>
    public int HistogramBins { get; init; } = 2048;

    /// <summary>The percentile of the values kept by <see cref="CalibrationMethod.Percentile"/>, in (50, 100].</summary>
    public double Percentile { get; init; } = 99.99;

    /// <summary>The integers activations are quantized to. Entropy and MSE optimise the range for this many levels.</summary>
    public QuantizationRange ActivationRange { get; init; } = QuantizationRange.UInt8;

    /// <summary>Clipping thresholds the MSE method tries on its geometric grid (<see cref="MseObserver"/>).</summary>
    public int MseCandidates { get; init; } = 256;

    /// <summary>Whether calibration also measures the mean input of each Conv, MatMul and Gemm so that the int8 rewrite
    /// corrects the bias that rounding the weights adds (docs/quantization.md, "Bias correction"). On by default.</summary>
    public bool BiasCorrection { get; init; } = true;

    /// <summary>Throws unless every parameter is usable.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A parameter is out of range.</exception>
    public void Validate()
    {
        if (!Enum.IsDefined(Method))
            throw new ArgumentOutOfRangeException(nameof(Method), $"Unknown calibration method {(int)Method}.");
        ActivationRange.Validate();
        if (HistogramBins < ActivationRange.Levels || HistogramBins > 1 << 20)
            throw new ArgumentOutOfRangeException(nameof(HistogramBins),
                $"{HistogramBins} histogram bins: use from {ActivationRange.Levels} (the quantized levels) to {1 << 20}.");
        if (!(Percentile > 50 && Percentile <= 100))
            throw new ArgumentOutOfRangeException(nameof(Percentile), $"The percentile {Percentile} must be in (50, 100].");
        if (MseCandidates is < 2 or > 1 << 16)
            throw new ArgumentOutOfRangeException(nameof(MseCandidates), $"{MseCandidates} MSE candidates: use 2 to {1 << 16}.");
    }

    /// <summary>The settings as one invariant line, for cache keys and reports.</summary>
    public string ToCanonicalString() => string.Create(CultureInfo.InvariantCulture,
        $"method={Method};bins={HistogramBins};percentile={Percentile:R};"
        + $"range={ActivationRange.Min},{ActivationRange.Max};mse-candidates={MseCandidates};bias-correction={BiasCorrection}");
}
