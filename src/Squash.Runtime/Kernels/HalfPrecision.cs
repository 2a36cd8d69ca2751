using System.Numerics.Tensors;

namespace Squash.Runtime.Kernels;

/// <summary>Float16 and bfloat16 tensors staged through float: kernels compute in fp32 and round back to nearest-even.</summary>
internal static class HalfPrecision
{
    /// <summary>True for the 16-bit float types.</summary>
    public static bool IsHalf(DataType type) => type is DataType.Float16 or DataType.BFloat16;

    /// <summary>The elements of a float, float16 or bfloat16 tensor widened to float (a copy unless already float).</summary>
    public static float[] ToSingle(Tensor tensor)
    {
        var result = new float[tensor.ElementCount];
        switch (tensor.DataType)
        {
            case DataType.Float: tensor.AsSpan<float>().CopyTo(result); break;
            case DataType.Float16: FloatConversions.ToSingle(tensor.AsSpan<Half>(), result); break;
            case DataType.BFloat16:
                var source = tensor.AsSpan<BFloat16>();
                for (int i = 0; i < result.Length; i++) result[i] = (float)source[i];
                break;
            default: throw new ArgumentException($"{DataTypes.Name(tensor.DataType)} is not a float type.", nameof(tensor));
        }
        return result;
    }

    /// <summary>Rounds <paramref name="values"/> to the element type of <paramref name="target"/> and stores them there.</summary>
    public static void FromSingle(ReadOnlySpan<float> values, Tensor target)
    {
        switch (target.DataType)
        {
            case DataType.Float: values.CopyTo(target.AsSpan<float>()); break;
            case DataType.Float16: TensorPrimitives.ConvertToHalf(values, target.AsSpan<Half>()); break;
            case DataType.BFloat16:
                var destination = target.AsSpan<BFloat16>();
                for (int i = 0; i < values.Length; i++) destination[i] = (BFloat16)values[i];
                break;
            default: throw new ArgumentException($"{DataTypes.Name(target.DataType)} is not a float type.", nameof(target));
        }
    }
}
