using Squash.Compiler;
using Squash.Compiler.Quantization;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;

namespace Squash.Benchmarks;

/// <summary>
/// PP-OCR models quantized to int8 as the tests quantize them (calibrated on testassets/data/ppocr/calib, det with the
/// first half of its first stage in fp32: PpOcrInt8Tests.DetExclusions). Calibration runs at the calibration data's shape; the ranges,
/// keyed by value name, then quantize the same graph pinned to the benchmark's shape (det runs at 640x640, its data
/// is 480x480).
/// </summary>
internal static class Int8Models
{
    private const string DetExclusions = "p2o.Conv.1;p2o.Conv.2;p2o.Conv.3;p2o.Conv.4;p2o.Conv.5";

    private static readonly Dictionary<string, CalibrationResult> s_calibrations = [];

    /// <summary>The int8 plan Squash runs on the CPU: fused after quantization, as the compiler does for a CPU class
    /// (the float layers' bias, activation and elementwise chains; before 2026-11-26 the benchmark left this out and
    /// ran those layers unfused).</summary>
    public static ExecutionPlan Plan(string file, string task, int[] shape)
    {
        var model = Quantized(file, task, shape);
        ModelPreparation.Fuse(model);
        return ExecutionPlan.Create(model.Graph);
    }

    /// <summary>The mixed-precision plan of <c>Precision="auto"</c> with <paramref name="method"/> calibration and
    /// <paramref name="target"/> (rec's accuracy-first configuration, PpOcrInt8Tests.RecAutoMeetsTheLineAgreementBar),
    /// through the build's pipeline; the calibration data must have the benchmark's shape.</summary>
    public static ExecutionPlan AutoPlan(string file, string task, int[] shape, string method, string target)
    {
        string folder = Path.Combine(Assets.Root, "testassets", "data", "ppocr", "calib", task);
        var model = global::Squash.Compiler.Onnx.OnnxLoader.Load(Assets.Model(file));
        ModelPreparation.PinInputShapes(model, new Dictionary<string, int[]> { [model.Graph.Inputs[0].Name] = shape });
        ModelPreparation.Optimize(model);
        var options = QuantizationOptions.FromText("auto", folder, method, target: target);
        var outcome = ModelPreparation.ApplyPrecision(model, "auto", calibrationFolder: folder, int8: options, modelPath: Assets.Model(file))!;
        ModelPreparation.Fuse(model);
        Console.WriteLine($"{task} auto ({method}, {target}): {outcome.Rewrite.Int8Count} of {outcome.Rewrite.Units.Count} units int8");
        return ExecutionPlan.Create(model.Graph);
    }

    /// <summary>The int8 graph (com.squash int8 operators), for runtimes that plan it themselves (the GPU's).</summary>
    public static Graph Graph(string file, string task, int[] shape) => Quantized(file, task, shape).Graph;

    /// <summary>The same int8 model as standard ONNX QDQ (<see cref="Int8QdqExport"/>), for ONNX Runtime.</summary>
    public static byte[] Qdq(string file, string task, int[] shape)
    {
        var model = Quantized(file, task, shape);
        Int8QdqExport.Convert(model.Graph);
        return global::Squash.Compiler.Onnx.OnnxWriter.ToBytes(model);
    }

    private static Model Quantized(string file, string task, int[] shape)
    {
        string folder = Path.Combine(Assets.Root, "testassets", "data", "ppocr", "calib", task);
        Model Prepared(int[] pinned)
        {
            var model = global::Squash.Compiler.Onnx.OnnxLoader.Load(Assets.Model(file));
            ModelPreparation.PinInputShapes(model, new Dictionary<string, int[]> { [model.Graph.Inputs[0].Name] = pinned });
            ModelPreparation.Optimize(model);
            return model;
        }
        if (!s_calibrations.TryGetValue(task, out var calibration))
        {
            var calibrationModel = Prepared(Int8Preparation.SampleShapes(Prepared(shape), folder).Values.Single());
            var data = CalibrationDataSet.Open(folder, calibrationModel.Graph.Inputs);
            s_calibrations[task] = calibration = new Calibrator().Calibrate(ExecutionPlan.Create(calibrationModel.Graph), data);
        }
        var target = Prepared(shape);
        var plan = QuantizationPlan.Create(target.Graph, QuantizationExclusions.Parse(task == "det" ? DetExclusions : null));
        Int8Quantization.Apply(target.Graph, calibration, plan);
        return target;
    }
}
