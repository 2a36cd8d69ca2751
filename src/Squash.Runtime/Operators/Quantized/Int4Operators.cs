using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Operators;

/// <summary>
/// Weight-only int4 operators of the <c>com.squash</c> domain, written by the int4 quantization pass: MatMulNBits
/// (a MatMul or Gemm whose constant weight is packed in <see cref="Int4Layout"/>) and GatherNBits (an embedding lookup
/// into the same packed form). docs/int4.md describes the layout and the mapping to ONNX Runtime's com.microsoft ops.
/// </summary>
internal static class Int4Operators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        registry.Add(OperatorRegistry.SquashDomain, "MatMulNBits", n => new MatMulNBitsOperator(n), 1, 1);
        registry.Add(OperatorRegistry.SquashDomain, "GatherNBits", n => new GatherNBitsOperator(n), 1, 1);
    }
}

/// <summary>The attributes and packed inputs both int4 operators share: K, N, bits (4) and block_size; the packed
/// values, float16 scales and optional zero points at the inputs the operator names.</summary>
internal abstract class Int4Operator : Operator
{
    private readonly int _data, _scales, _zeroPoints;

    protected Int4Operator(Node node, int data, int scales, int zeroPoints) : base(node)
    {
        (_data, _scales, _zeroPoints) = (data, scales, zeroPoints);
        long k = Attributes.Int("K", -1), n = Attributes.Int("N", -1), bits = Attributes.Int("bits", 4), blockSize = Attributes.Int("block_size", -1);
        if (k <= 0 || n <= 0 || k > int.MaxValue || n > int.MaxValue) throw Invalid($"attributes K ({k}) and N ({n}) must be given and positive.");
        if (bits != 4) throw Unsupported($"bits = {bits}; Squash's packed weights are 4-bit.");
        if (blockSize is not (32 or 64 or 128 or 256)) throw Unsupported($"block_size = {blockSize}; use 32, 64, 128 or 256.");
        Layout = new Int4Layout((int)k, (int)n, (int)blockSize);
    }

    /// <summary>The packed weight's geometry.</summary>
    protected Int4Layout Layout { get; }

    /// <summary>Checks the types and sizes of the packed inputs where they are known.</summary>
    protected void CheckPacked(InferenceContext context)
    {
        Expect(context, _data, DataType.UInt8, Layout.DataBytes, "packed values");
        Expect(context, _scales, DataType.Float16, Layout.ScaleCount, "scales");
        if (context.HasInput(_zeroPoints)) Expect(context, _zeroPoints, DataType.UInt8, Layout.ZeroPointBytes, "zero points");
    }

    private void Expect(InferenceContext context, int input, DataType type, int count, string what)
    {
        if (context.InputType(input) != type) throw Invalid($"the {what} must be {DataTypes.Name(type)}, not {DataTypes.Name(context.InputType(input))}.");
        if (context.InputShape(input) is { } shape && Shapes.IsKnown(shape) && Shapes.ElementCount(shape) != count)
            throw Invalid($"the {what} have {Shapes.ElementCount(shape)} elements; K = {Layout.K}, N = {Layout.N}, block_size = {Layout.BlockSize} need {count}.");
    }

    /// <summary>The packed weight over the run's input tensors.</summary>
    protected Int4Weights Weights(ReadOnlySpan<Tensor?> inputs) => new(Layout,
        Required(inputs, _data).AsSpan<byte>(), Required(inputs, _scales).AsSpan<Half>(),
        Optional(inputs, _zeroPoints) is { } z ? z.AsSpan<byte>() : default);
}

/// <summary>
/// <c>Y[..., N] = A[..., K] W + bias</c> with W packed in <see cref="Int4Layout"/>. Inputs: A (float), packed values
/// (uint8), scales (float16), zero points (optional uint8; absent = symmetric, zero point 8), bias (optional float [N]).
/// Attribute accuracy_level, as ONNX Runtime's MatMulNBits: the minimum accuracy of A's arithmetic; 0 to 3 compute in
/// fp32, 4 lets a single row run with int8 activations (<see cref="Int4ActivationPrecision.Int8"/>).
/// </summary>
internal sealed class MatMulNBitsOperator : Int4Operator
{
    private readonly Int4ActivationPrecision _activations;

    public MatMulNBitsOperator(Node node) : base(node, 1, 2, 3)
    {
        long level = Attributes.Int("accuracy_level", 0);
        _activations = level switch
        {
            >= 0 and <= 3 => Int4ActivationPrecision.Fp32,
            4 => Int4ActivationPrecision.Int8,
            _ => throw Invalid($"accuracy_level = {level}; it must be 0 (unset), 1 (fp32), 2 (fp16), 3 (bf16) or 4 (int8)."),
        };
    }

    public override void InferOutputs(InferenceContext context)
    {
        if (context.InputType(0) != DataType.Float)
            throw Unsupported($"A of type {DataTypes.Name(context.InputType(0))}; int4 MatMulNBits takes float activations.");
        CheckPacked(context);
        if (context.HasInput(4))
        {
            if (context.InputType(4) != DataType.Float) throw Invalid("the bias must be float.");
            if (context.InputShape(4) is { } b && Shapes.IsKnown(b) && Shapes.ElementCount(b) != Layout.N)
                throw Invalid($"the bias has {Shapes.ElementCount(b)} elements, N is {Layout.N}.");
        }
        var a = context.InputShape(0);
        if (a is null)
        {
            context.SetOutput(0, DataType.Float, null);
            return;
        }
        if (a.Length == 0) throw Invalid("A must have at least one dimension.");
        if (a[^1] >= 0 && a[^1] != Layout.K) throw Invalid($"A's last dimension is {a[^1]}, K is {Layout.K}.");
        context.SetOutput(0, DataType.Float, [.. a.AsSpan(0, a.Length - 1), Layout.N]);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var a = Required(inputs, 0);
        int m = a.ElementCount / Layout.K;
        var bias = Optional(inputs, 4);
        Int4MatMul.Multiply(context, m, a.AsSpan<float>(), Weights(inputs), bias is null ? default : bias.AsSpan<float>(), outputs[0].AsSpan<float>(), _activations);
    }
}

/// <summary>
/// Embedding lookup into an int4-packed table: <c>Y[indices..., K] = E[indices]</c> where row i of the [N, K] table E
/// is column i of the packed weight (so one packed tensor serves a tied embedding and classifier). Inputs: packed
/// values, indices (int32 or int64; negative counts from the end), scales, zero points (optional), as ONNX Runtime's
/// GatherBlockQuantized orders them.
/// </summary>
internal sealed class GatherNBitsOperator(Node node) : Int4Operator(node, 0, 2, 3)
{
    public override void InferOutputs(InferenceContext context)
    {
        CheckPacked(context);
        IndexingOperators.CheckIndexType(context, 1, allowInt32: true);
        var indices = context.InputShape(1);
        context.SetOutput(0, DataType.Float, indices is null ? null : [.. indices, Layout.K]);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var indices = Required(inputs, 1);
        Span<int> rows = indices.ElementCount <= 256 ? stackalloc int[indices.ElementCount] : new int[indices.ElementCount];
        IndexingOperators.NormalizeIndices(indices, Layout.N, rows, Invalid);
        var weights = Weights(inputs);
        var output = outputs[0].AsSpan<float>();
        for (int i = 0; i < rows.Length; i++) Int4MatMul.Dequantize(weights, rows[i], 1, output.Slice(i * Layout.K, Layout.K), Layout.K);
    }
}
