using Ocr;
using Squash.Compiler.Tests.Models;
using Squash.Compiler.Tests.Support;
using Squash.Runtime;

namespace Squash.Compiler.Tests.Samples;

/// <summary>
/// The PP-OCR models behind <see cref="ISquashModel"/> with the sample's fixed shapes, run by ONNX Runtime, so the OCR
/// pipeline can be tested without the generated classes (which need the MSBuild targets).
/// </summary>
internal sealed class OrtSquashModel : ISquashModel, IDisposable
{
    private readonly OrtReference _session;

    public OrtSquashModel(string modelFile, int[] inputShape, int[] outputShape)
    {
        var graph = Compiler.Onnx.OnnxLoader.Load(PpOcr.ModelPath(modelFile)).Graph;
        Inputs = [new TensorSpec(graph.Inputs[0].Name, DataType.Float, inputShape)];
        Outputs = [new TensorSpec(graph.Outputs[0].Name, DataType.Float, outputShape)];
        _session = new OrtReference(PpOcr.ModelPath(modelFile));
    }

    public IReadOnlyList<TensorSpec> Inputs { get; }

    public IReadOnlyList<TensorSpec> Outputs { get; }

    public IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs) => _session.Run(inputs);

    public void Dispose() => _session.Dispose();
}

/// <summary>The sample's three models (det 640 × 640, cls 48 × 192, rec 48 × 320) and its pipeline, on ONNX Runtime.</summary>
internal sealed class OrtOcr : IDisposable
{
    private readonly OrtSquashModel _det = new(PpOcr.Det, [1, 3, 640, 640], [1, 1, 640, 640]);
    private readonly OrtSquashModel _cls = new(PpOcr.Cls, [1, 3, 48, 192], [1, 2]);
    private readonly OrtSquashModel _rec = new(PpOcr.Rec, [1, 3, 48, 320], [1, 40, 6625]);

    public OrtOcr()
    {
        Detector = new TextDetector(_det);
        Classifier = new TextClassifier(_cls);
        Recognizer = new TextRecognizer(_rec, new CtcDecoder(File.ReadAllLines(PpOcr.ModelPath("ppocr_keys_v1.txt"))));
        Pipeline = new OcrPipeline(Detector, Classifier, Recognizer);
    }

    public TextDetector Detector { get; }

    public TextClassifier Classifier { get; }

    public TextRecognizer Recognizer { get; }

    public OcrPipeline Pipeline { get; }

    public void Dispose()
    {
        _det.Dispose();
        _cls.Dispose();
        _rec.Dispose();
    }
}
