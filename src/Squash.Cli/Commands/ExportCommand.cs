using Squash.Compiler;
using Squash.Compiler.Onnx;
using Squash.Compiler.Passes;
using Squash.Compiler.Quantization;

namespace Squash.Cli.Commands;

/// <summary>
/// <c>squash export MODEL.onnx --output OUT.onnx [--precision int4 ...]</c>: writes the model as ONNX after Squash's
/// build-time simplification and, with int4, its MatMul/Gemm weights as com.microsoft MatMulNBits (embedding lookups as
/// Gather over the dequantized table), so that ONNX Runtime runs the same int4 weights the compiled class uses.
/// </summary>
/// <remarks>Only <see cref="ModelPreparation.Simplify"/> runs before quantization: Squash's fusions (attention, layer
/// normalization) produce com.squash nodes ONNX Runtime does not know. The weights and their quantization are the same
/// as in <c>squash compile</c>, whose optimizations do not touch MatMul or Gemm weights of decoders.</remarks>
internal static class ExportCommand
{
    public static int Run(Arguments args, TextWriter output)
    {
        if (args.Help)
        {
            output.WriteLine("usage: squash export MODEL.onnx --output OUT.onnx [--precision fp32|fp16|int4|int8] [int4 or int8 options] [--input-shape NAME=D0,...]");
            output.WriteLine("int8 writes standard ONNX QDQ (QuantizeLinear / DequantizeLinear around float operators) of the optimized model;");
            output.WriteLine("fp16 writes the optimized model with its weights rounded to float16 values (kept as float initializers).");
            output.WriteLine(PrecisionArguments.Usage);
            return 0;
        }
        string modelPath = args.Positional(0, "the model file (squash export MODEL.onnx --output OUT.onnx)");
        string outputPath = args.Optional("output") ?? throw new UsageException("--output OUT.onnx is required.");
        var precision = PrecisionArguments.Parse(args);
        var shapeSpecs = args.All("input-shape");
        args.CheckNoneLeft(1);

        var model = OnnxLoader.Load(modelPath);
        if (precision.IsInt8)
        {
            // The same pipeline as the build and squash run, so the export is the model they run.
            ModelPreparation.PinInputShapes(model, Int8Preparation.PlannedShapes(model, RunCommand.ParseShapes(shapeSpecs), precision.CalibrationFolder!));
            ModelPreparation.Optimize(model);
            ModelPreparation.ApplyPrecision(model, precision.Precision, calibrationFolder: precision.CalibrationFolder, log: output.WriteLine,
                int8: precision.Int8(), modelPath: modelPath);
            int replaced = Int8QdqExport.Convert(model.Graph);
            AtomicFile.Write(outputPath, OnnxWriter.ToBytes(model));
            output.WriteLine($"wrote {outputPath} ({replaced} int8 operators as QDQ)");
            return 0;
        }
        if (precision.Precision == "fp16")
        {
            // The weights the compiled class runs: rounded after the optimizations that fold into them.
            if (shapeSpecs.Count > 0) ModelPreparation.PinInputShapes(model, RunCommand.ParseShapes(shapeSpecs));
            ModelPreparation.Optimize(model);
            ModelPreparation.ApplyPrecision(model, "fp16", log: output.WriteLine);
            AtomicFile.Write(outputPath, OnnxWriter.ToBytes(model));
            output.WriteLine($"wrote {outputPath} (fp16 weights)");
            return 0;
        }
        ModelPreparation.Simplify(model);
        int converted = 0;
        if (precision.Precision == "int4")
        {
            var options = ModelPreparation.Calibrate(model, precision.Int4, precision.CalibrationFolder);
            new PassManager([new Int4MatMulQuantization(options), new DeadNodeElimination()]).Run(model.Graph, new PassContext());
            converted = Int4OnnxRuntimeExport.Convert(model.Graph);
        }
        OnnxWriter.Save(model, outputPath);
        output.WriteLine($"wrote {outputPath}" + (precision.Precision == "int4" ? $" ({converted} int4 node(s) for ONNX Runtime)" : ""));
        return 0;
    }
}
