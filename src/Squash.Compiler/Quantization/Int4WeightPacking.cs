using Squash.Runtime;
using Squash.Runtime.Kernels;

namespace Squash.Compiler.Quantization;

/// <summary>What an int4 quantizer is asked to quantize: one weight, as columns (column n's K values contiguous).</summary>
/// <remarks>Activation-aware methods (<see cref="GptqQuantizer"/>) also read <see cref="Activations"/>, the statistics of
/// the inputs that multiply this weight, from a calibration run (<see cref="Int4Calibration"/>).</remarks>
public sealed class Int4QuantizationRequest
{
    /// <summary>The weight as N columns of K values: <c>Columns[n * K + k] = W[k, n]</c> for y = x W.</summary>
    public required float[] Columns { get; init; }

    /// <summary>Input features (the reduction axis, along which blocks run).</summary>
    public required int K { get; init; }

    /// <summary>Output features.</summary>
    public required int N { get; init; }

    /// <summary>Values per block along K.</summary>
    public required int BlockSize { get; init; }

    /// <summary>True for symmetric blocks (zero point 8), false for a zero point per block.</summary>
    public required bool Symmetric { get; init; }

    /// <summary>The weight's name, for messages.</summary>
    public string Name { get; init; } = "";

    /// <summary>Statistics of the activations this weight multiplies, or null when none were collected (quantizers that
    /// need them fall back to round-to-nearest).</summary>
    public Int4ActivationStatistics? Activations { get; init; }
}

/// <summary>An int4 weight in neutral form, before packing: a code per value and a scale and zero point per block.</summary>
/// <param name="Codes">Codes 0..15, <c>Codes[n * K + k]</c>.</param>
/// <param name="Scales">One scale per (column, block), <c>Scales[n * blocks + b]</c>, already representable in float16.</param>
/// <param name="ZeroPoints">One zero point 0..15 per (column, block), same indexing (all 8 when symmetric).</param>
public sealed record Int4Codes(byte[] Codes, float[] Scales, byte[] ZeroPoints);

/// <summary>
/// Chooses the int4 codes and block parameters of a weight. <see cref="RoundToNearestQuantizer"/> is the baseline;
/// activation-aware methods (AWQ's per-channel scaling, GPTQ's error feedback) implement this interface with the
/// calibration statistics they need, and the packer and kernels stay as they are.
/// </summary>
public interface IInt4Quantizer
{
    /// <summary>Name for logs and reports.</summary>
    string Name { get; }

    /// <summary>Quantizes one weight.</summary>
    Int4Codes Quantize(Int4QuantizationRequest request);
}

/// <summary>
/// Round-to-nearest (RTN) per block, as ONNX Runtime's MatMul4BitsQuantizer and llama.cpp's Q4_0 do it.
/// Symmetric: scale = m / -8 where m is the value of largest magnitude (its sign kept), so m maps to code 0 exactly
/// and the 16 codes cover [-8, 7] * scale; codes = clamp(round(v / scale) + 8, 0, 15). Asymmetric: the range
/// [min(0, min v), max(0, max v)] (0 stays exact) in 15 steps, zero point = clamp(round(-min / scale), 0, 15).
/// Scales are rounded to float16 first and the codes computed with the rounded scale; rounding is half to even.
/// </summary>
public sealed class RoundToNearestQuantizer : IInt4Quantizer
{
    /// <summary>The shared instance.</summary>
    public static RoundToNearestQuantizer Instance { get; } = new();

    /// <inheritdoc/>
    public string Name => "rtn";

    /// <inheritdoc/>
    public Int4Codes Quantize(Int4QuantizationRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        int k = request.K, n = request.N, bs = request.BlockSize;
        int blocks = (k + bs - 1) / bs;
        var codes = new byte[(long)n * k];
        var scales = new float[n * blocks];
        var zeros = new byte[n * blocks];
        for (int col = 0; col < n; col++)
        {
            for (int b = 0; b < blocks; b++)
            {
                int start = b * bs, length = Math.Min(bs, k - start);
                var values = request.Columns.AsSpan(col * k + start, length);
                var (scale, zero) = BlockParameters(values, request.Symmetric, request.Name);
                scales[col * blocks + b] = scale;
                zeros[col * blocks + b] = (byte)zero;
                var target = codes.AsSpan(col * k + start, length);
                for (int i = 0; i < length; i++)
                    target[i] = Code(values[i], scale, zero);
            }
        }
        return new Int4Codes(codes, scales, zeros);
    }

    /// <summary>The scale and zero point round-to-nearest gives a block.</summary>
    /// <exception cref="SquashException">The scale overflows float16 (SQ1006).</exception>
    internal static (float Scale, int Zero) BlockParameters(ReadOnlySpan<float> values, bool symmetric, string name)
    {
        var (scale, zero) = symmetric ? SymmetricBlock(values) : AsymmetricBlock(values);
        if (float.IsInfinity(scale))
            throw new SquashException(ErrorCodes.UnsupportedDataType,
                $"Weight '{name}' has values beyond what int4 blocks with float16 scales can hold (|w| > {(float)Half.MaxValue * 8}); leave it in fp32 (raise the size threshold or exclude it).");
        return (scale, zero);
    }

    /// <summary>The nearest code of <paramref name="value"/> (half to even), clamped to 0..15.</summary>
    internal static byte Code(float value, float scale, int zero) =>
        scale == 0 ? (byte)zero : (byte)Math.Clamp((int)MathF.Round(value / scale) + zero, 0, 15);

    private static (float Scale, int Zero) SymmetricBlock(ReadOnlySpan<float> values)
    {
        float extreme = 0;
        foreach (float v in values)
            if (MathF.Abs(v) > MathF.Abs(extreme)) extreme = v;
        return ((float)(Half)(extreme / -8f), Int4Layout.SymmetricZeroPoint);
    }

    private static (float Scale, int Zero) AsymmetricBlock(ReadOnlySpan<float> values)
    {
        float min = 0, max = 0;
        foreach (float v in values)
        {
            min = Math.Min(min, v);
            max = Math.Max(max, v);
        }
        float scale = (float)(Half)((max - min) / 15f);
        if (scale == 0) return (0, Int4Layout.SymmetricZeroPoint);
        return (scale, Math.Clamp((int)MathF.Round(-min / scale), 0, 15));
    }
}

/// <summary>A packed int4 weight: the tensors a MatMulNBits or GatherNBits node takes.</summary>
/// <param name="Layout">The geometry.</param>
/// <param name="Data">Packed values, uint8 <see cref="Int4Layout.DataShape"/>.</param>
/// <param name="Scales">Float16 scales, <see cref="Int4Layout.ScaleShape"/>.</param>
/// <param name="ZeroPoints">Packed uint8 zero points (<see cref="Int4Layout.ZeroPointShape"/>), or null when symmetric.</param>
public sealed record Int4PackedWeight(Int4Layout Layout, Tensor Data, Tensor Scales, Tensor? ZeroPoints)
{
    /// <summary>The runtime view of the tensors.</summary>
    public Int4Weights Weights => new(Layout, Data.AsSpan<byte>(), Scales.AsSpan<Half>(), ZeroPoints is null ? default : ZeroPoints.AsSpan<byte>());

    /// <summary>Bytes of the three tensors.</summary>
    public long Bytes => Data.ByteLength + Scales.ByteLength + (ZeroPoints?.ByteLength ?? 0);
}

/// <summary>
/// Packs weights into Squash's int4 layout (<see cref="Int4Layout"/>, docs/int4.md), and converts packed weights to
/// ONNX Runtime's MatMulNBits layout for export.
/// </summary>
public static class Int4WeightPacking
{
    /// <summary>Quantizes and packs a float weight given as [K, N] (MatMul's right operand) or, with
    /// <paramref name="transposed"/>, as [N, K] (Gemm's transB, an embedding table).</summary>
    public static Int4PackedWeight Quantize(ReadOnlySpan<float> weight, int k, int n, bool transposed, int blockSize, bool symmetric,
        IInt4Quantizer? quantizer = null, string name = "", Int4ActivationStatistics? activations = null)
    {
        var layout = new Int4Layout(k, n, blockSize);
        if (weight.Length != (long)k * n) throw new ArgumentException($"{weight.Length} values do not make a {k} x {n} weight.", nameof(weight));
        float[] columns;
        if (transposed) columns = weight.ToArray();
        else
        {
            columns = new float[(long)k * n];
            for (int row = 0; row < k; row++)
            {
                var source = weight.Slice(row * n, n);
                for (int col = 0; col < n; col++) columns[col * k + row] = source[col];
            }
        }
        var request = new Int4QuantizationRequest { Columns = columns, K = k, N = n, BlockSize = blockSize, Symmetric = symmetric, Name = name,
            Activations = activations };
        var codes = (quantizer ?? RoundToNearestQuantizer.Instance).Quantize(request);
        return Pack(layout, codes, symmetric);
    }

    /// <summary>Packs codes into the layout; padding (past K, past N) gets the zero point, so its weights are exactly 0.</summary>
    /// <exception cref="ArgumentException">The codes do not fit the layout, or a code, zero point or scale is out of range.</exception>
    public static Int4PackedWeight Pack(Int4Layout layout, Int4Codes codes, bool symmetric)
    {
        ArgumentNullException.ThrowIfNull(codes);
        int k = layout.K, n = layout.N, blocks = layout.Blocks, half = layout.BlockBytes;
        if (codes.Codes.Length != (long)k * n || codes.Scales.Length != n * blocks || codes.ZeroPoints.Length != n * blocks)
            throw new ArgumentException($"The codes do not match the layout ({layout}).", nameof(codes));
        var data = new Tensor(DataType.UInt8, layout.DataShape);
        var scales = new Tensor(DataType.Float16, layout.ScaleShape);
        var zeroPoints = symmetric ? null : new Tensor(DataType.UInt8, layout.ZeroPointShape);
        var d = data.AsSpan<byte>();
        var s = scales.AsSpan<Half>();
        var z = zeroPoints is null ? default : zeroPoints.AsSpan<byte>();
        for (int col = 0; col < layout.PaddedN; col++)
        {
            for (int b = 0; b < blocks; b++)
            {
                int at = layout.ScaleIndex(col, b);
                int zero = col < n ? codes.ZeroPoints[col * blocks + b] : Int4Layout.SymmetricZeroPoint;
                float scale = col < n ? codes.Scales[col * blocks + b] : 0f;
                if (zero > 15 || symmetric && zero != Int4Layout.SymmetricZeroPoint)
                    throw new ArgumentException($"Zero point {zero} of column {col}, block {b} is not valid here.", nameof(codes));
                var half16 = (Half)scale;
                if ((float)half16 != scale) throw new ArgumentException($"Scale {scale} of column {col}, block {b} is not a float16 value.", nameof(codes));
                s[at] = half16;
                if (!symmetric) z[at / 2] |= (byte)(zero << (4 * (at & 1)));
                var blob = d.Slice(at * half, half);
                for (int j = 0; j < half; j++)
                    blob[j] = (byte)(Code(col, b * layout.BlockSize + j, zero) | Code(col, b * layout.BlockSize + half + j, zero) << 4);
            }
        }
        return new Int4PackedWeight(layout, data, scales, zeroPoints);

        int Code(int col, int row, int zero)
        {
            if (col >= n || row >= k) return zero;
            int q = codes.Codes[(long)col * k + row];
            if (q > 15) throw new ArgumentException($"Code {q} at ({row}, {col}) is not a 4-bit value.", nameof(codes));
            return q;
        }
    }

    /// <summary>The weight dequantized to float as [K, N] (for tests and references).</summary>
    public static float[] Dequantize(Int4PackedWeight weight)
    {
        ArgumentNullException.ThrowIfNull(weight);
        var layout = weight.Layout;
        var columns = new float[(long)layout.N * layout.K];
        Int4MatMul.Dequantize(weight.Weights, 0, layout.N, columns, layout.K);
        var result = new float[columns.Length];
        for (int col = 0; col < layout.N; col++)
            for (int row = 0; row < layout.K; row++) result[(long)row * layout.N + col] = columns[(long)col * layout.K + row];
        return result;
    }

    /// <summary>
    /// The same weight in ONNX Runtime's com.microsoft MatMulNBits form: B uint8 [N, blocks, block/2] with element 2i
    /// in the low nibble of byte i of its block and 2i+1 in the high nibble; scales float [N * blocks] (float16 widened,
    /// exactly); zero points uint8 [N * ceil(blocks/2)], two per byte, low nibble first, or null when symmetric
    /// (ONNX Runtime's default zero point is 8, Squash's symmetric one).
    /// </summary>
    public static (Tensor B, Tensor Scales, Tensor? ZeroPoints) ToOnnxRuntime(Int4PackedWeight weight)
    {
        ArgumentNullException.ThrowIfNull(weight);
        var layout = weight.Layout;
        int n = layout.N, blocks = layout.Blocks, half = layout.BlockBytes;
        var b = new Tensor(DataType.UInt8, n, blocks, half);
        var scales = new Tensor(DataType.Float, n * blocks);
        int zeroBytes = (blocks + 1) / 2;
        var zeroPoints = weight.ZeroPoints is null ? null : new Tensor(DataType.UInt8, n * zeroBytes);
        var data = weight.Data.AsSpan<byte>();
        var squashScales = weight.Scales.AsSpan<Half>();
        var output = b.AsSpan<byte>();
        var outScales = scales.AsSpan<float>();
        for (int col = 0; col < n; col++)
        {
            for (int blk = 0; blk < blocks; blk++)
            {
                int at = layout.ScaleIndex(col, blk);
                var blob = data.Slice(at * half, half);
                var target = output.Slice((col * blocks + blk) * half, half);
                for (int i = 0; i < half; i++) target[i] = (byte)(Code(blob, 2 * i, half) | Code(blob, 2 * i + 1, half) << 4);
                outScales[col * blocks + blk] = (float)squashScales[at];
                if (zeroPoints is not null)
                {
                    int zero = (weight.ZeroPoints!.AsSpan<byte>()[at / 2] >> (4 * (at & 1))) & 0xF;
                    zeroPoints.AsSpan<byte>()[col * zeroBytes + blk / 2] |= (byte)(zero << (4 * (blk & 1)));
                }
            }
        }
        return (b, scales, zeroPoints);

        // Element e of a Squash block: byte e % half, high nibble when e >= half.
        static int Code(ReadOnlySpan<byte> blob, int e, int half) => e < half ? blob[e] & 0xF : blob[e - half] >> 4;
    }
}
