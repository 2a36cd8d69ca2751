using Squash.Compiler;
using Squash.Compiler.Onnx;
using Squash.Compiler.Quantization;
using Squash.Runtime;

namespace Squash.Cli.Commands;

/// <summary><c>squash export MODEL OUT.onnx --precision int8 --calibration DIR</c>: the int8 model as standard ONNX QDQ
/// (<see cref="Int8QdqExport"/>), for ONNX Runtime or any other runtime.</summary>
internal static class ExportCommand
{
    public static int Run(Arguments args, TextWriter output)
    {
        if (args.Help)
        {
            output.WriteLine("usage: squash export MODEL.onnx OUT.onnx --precision int8 --calibration DIR [--input-shape NAME=D0,D1,...]...");
            output.WriteLine("         [--int8-exclude NODE;op:TYPE;...]");
            output.WriteLine("Writes the optimized, int8-quantized model as ONNX QDQ (QuantizeLinear / DequantizeLinear around float operators).");
            return 0;
        }
        string modelPath = args.Positional(0, "the model file (squash export MODEL.onnx OUT.onnx --precision int8 --calibration DIR)");
        string outputPath = args.Positional(1, "the output file (squash export MODEL.onnx OUT.onnx --precision int8 --calibration DIR)");
        string precision = args.Optional("precision") ?? "fp32";
        string? calibration = args.Optional("calibration");
        string? exclusions = args.Optional("int8-exclude");
        var shapeSpecs = args.All("input-shape");
        args.CheckNoneLeft(2);
        var int8 = Int8Preparation.Options(precision, calibration, exclusions)
            ?? throw new SquashException(ErrorCodes.QuantizationSetup, "squash export writes int8 models: give --precision int8 --calibration DIR.");

        var model = OnnxLoader.Load(modelPath);
        ModelPreparation.PinInputShapes(model, shapeSpecs.Count > 0 ? RunCommand.ParseShapes(shapeSpecs) : Int8Preparation.SampleShapes(model, int8.CalibrationFolder));
        ModelPreparation.Optimize(model);
        Int8Preparation.Quantize(model, int8, output.WriteLine);
        int replaced = Int8QdqExport.Convert(model.Graph);
        AtomicFile.Write(outputPath, OnnxWriter.ToBytes(model));
        output.WriteLine($"wrote {outputPath} ({replaced} int8 operators as QDQ)");
        return 0;
    }
}
