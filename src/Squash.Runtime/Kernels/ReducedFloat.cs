using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace Squash.Runtime.Kernels;

/// <summary>
/// Widens float16 and bfloat16 tensors to float and rounds back (to nearest, ties to even), so that kernels
/// written for float serve the 16-bit types with fp32 arithmetic.
/// </summary>
internal static class ReducedFloat
{
    /// <summary>True for the types this class converts.</summary>
    public static bool Handles(DataType type) => type is DataType.Float16 or DataType.BFloat16;

    /// <summary>Copies a float16 or bfloat16 tensor into <paramref name="destination"/> as floats.</summary>
    public static void Widen(Tensor source, Span<float> destination)
    {
        if (source.DataType == DataType.Float16)
        {
            FloatConversions.ToSingle(source.AsSpan<Half>(), destination);
            return;
        }
        // bfloat16 is the upper half of a float: widening is a shift.
        ReadOnlySpan<ushort> bits = MemoryMarshal.Cast<BFloat16, ushort>(source.AsSpan<BFloat16>());
        Span<uint> wide = MemoryMarshal.Cast<float, uint>(destination);
        for (int i = 0; i < bits.Length; i++) wide[i] = (uint)bits[i] << 16;
    }

    /// <summary>Rounds <paramref name="source"/> into a float16 or bfloat16 tensor.</summary>
    public static void Narrow(ReadOnlySpan<float> source, Tensor destination)
    {
        if (destination.DataType == DataType.Float16)
        {
            TensorPrimitives.ConvertToHalf(source, destination.AsSpan<Half>());
            return;
        }
        Span<BFloat16> target = destination.AsSpan<BFloat16>();
        for (int i = 0; i < source.Length; i++) target[i] = (BFloat16)source[i];
    }

    /// <summary>
    /// Float views of a 16-bit input and output in <paramref name="context"/>'s scratch memory: the input widened,
    /// the output to be narrowed with <see cref="Narrow"/> once computed.
    /// </summary>
    public static (Tensor Input, Tensor Output) Stage(KernelContext context, Tensor input, int[] outputShape)
    {
        int inBytes = input.ElementCount * sizeof(float);
        int outBytes = checked((int)Shapes.ElementCount(outputShape) * sizeof(float));
        byte[] scratch = context.Scratch(checked(inBytes + outBytes));
        var wideInput = new Tensor(DataType.Float, input.Shape, scratch, 0);
        Widen(input, wideInput.AsSpan<float>());
        return (wideInput, new Tensor(DataType.Float, outputShape, scratch, inBytes));
    }
}
