using Google.Protobuf;
using Squash.Runtime;

namespace Squash.Compiler.Onnx;

/// <summary>Reads and writes serialized ONNX <c>TensorProto</c> files (<c>.pb</c>), the format of the ONNX
/// conformance suite's inputs and outputs.</summary>
public static class OnnxTensorFile
{
    /// <summary>Reads a tensor and its name.</summary>
    /// <exception cref="SquashException">The file is not a valid, supported tensor.</exception>
    public static (string Name, Tensor Tensor) Read(string path)
    {
        global::Onnx.TensorProto proto;
        try { proto = global::Onnx.TensorProto.Parser.ParseFrom(File.ReadAllBytes(path)); }
        catch (InvalidProtocolBufferException e)
        {
            throw new SquashException(ErrorCodes.FileError, $"'{path}' is not a serialized ONNX tensor: {e.Message}");
        }
        return (proto.Name, TensorProtoReader.Read(proto, baseDirectory: null, $"'{path}'"));
    }

    /// <summary>Writes a tensor as a serialized <c>TensorProto</c>.</summary>
    public static void Write(string path, string name, Tensor tensor) =>
        AtomicFile.Write(path, OnnxWriter.WriteTensor(name, tensor).ToByteArray());
}
