using System.Numerics;
using System.Numerics.Tensors;

namespace Squash.Runtime.Kernels;

/// <summary>
/// Conversions between tensors of any numeric type and the float (or double) working buffers of kernels that
/// compute in floating point (interpolation, recurrent layers).
/// </summary>
public static class WorkingConversion
{
    /// <summary>Widens any numeric tensor into <paramref name="destination"/> (float or double).</summary>
    public static void ToWorking<T>(Tensor source, Span<T> destination) where T : unmanaged, IFloatingPointIeee754<T>
    {
        switch (source.DataType)
        {
            case DataType.Float: TensorPrimitives.ConvertTruncating<float, T>(source.AsSpan<float>(), destination); break;
            case DataType.Double: TensorPrimitives.ConvertTruncating<double, T>(source.AsSpan<double>(), destination); break;
            case DataType.Float16: TensorPrimitives.ConvertTruncating<Half, T>(source.AsSpan<Half>(), destination); break;
            case DataType.Int8: TensorPrimitives.ConvertTruncating<sbyte, T>(source.AsSpan<sbyte>(), destination); break;
            case DataType.UInt8: TensorPrimitives.ConvertTruncating<byte, T>(source.AsSpan<byte>(), destination); break;
            case DataType.Int16: TensorPrimitives.ConvertTruncating<short, T>(source.AsSpan<short>(), destination); break;
            case DataType.UInt16: TensorPrimitives.ConvertTruncating<ushort, T>(source.AsSpan<ushort>(), destination); break;
            case DataType.Int32: TensorPrimitives.ConvertTruncating<int, T>(source.AsSpan<int>(), destination); break;
            case DataType.UInt32: TensorPrimitives.ConvertTruncating<uint, T>(source.AsSpan<uint>(), destination); break;
            case DataType.Int64: TensorPrimitives.ConvertTruncating<long, T>(source.AsSpan<long>(), destination); break;
            case DataType.UInt64: TensorPrimitives.ConvertTruncating<ulong, T>(source.AsSpan<ulong>(), destination); break;
            case DataType.BFloat16:
            {
                var s = source.AsSpan<BFloat16>();
                for (int i = 0; i < s.Length; i++) destination[i] = T.CreateTruncating((float)s[i]);
                break;
            }
            default: throw new NotSupportedException(DataTypes.Name(source.DataType));
        }
    }

    /// <summary>
    /// Narrows working values into <paramref name="destination"/>: floats round to nearest even, integers round
    /// half to even and saturate (NaN becomes 0).
    /// </summary>
    /// <remarks>For integer destinations <paramref name="source"/> is rounded in place.</remarks>
    public static void FromWorking<T>(Span<T> source, Tensor destination) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (DataTypes.IsInteger(destination.DataType)) TensorPrimitives.Round(source, source);
        switch (destination.DataType)
        {
            case DataType.Float: TensorPrimitives.ConvertTruncating<T, float>(source, destination.AsSpan<float>()); break;
            case DataType.Double: TensorPrimitives.ConvertTruncating<T, double>(source, destination.AsSpan<double>()); break;
            case DataType.Float16: TensorPrimitives.ConvertTruncating<T, Half>(source, destination.AsSpan<Half>()); break;
            case DataType.Int8: TensorPrimitives.ConvertSaturating<T, sbyte>(source, destination.AsSpan<sbyte>()); break;
            case DataType.UInt8: TensorPrimitives.ConvertSaturating<T, byte>(source, destination.AsSpan<byte>()); break;
            case DataType.Int16: TensorPrimitives.ConvertSaturating<T, short>(source, destination.AsSpan<short>()); break;
            case DataType.UInt16: TensorPrimitives.ConvertSaturating<T, ushort>(source, destination.AsSpan<ushort>()); break;
            case DataType.Int32: TensorPrimitives.ConvertSaturating<T, int>(source, destination.AsSpan<int>()); break;
            case DataType.UInt32: TensorPrimitives.ConvertSaturating<T, uint>(source, destination.AsSpan<uint>()); break;
            case DataType.Int64: TensorPrimitives.ConvertSaturating<T, long>(source, destination.AsSpan<long>()); break;
            case DataType.UInt64: TensorPrimitives.ConvertSaturating<T, ulong>(source, destination.AsSpan<ulong>()); break;
            case DataType.BFloat16:
            {
                var d = destination.AsSpan<BFloat16>();
                for (int i = 0; i < d.Length; i++) d[i] = (BFloat16)float.CreateTruncating(source[i]);
                break;
            }
            default: throw new NotSupportedException(DataTypes.Name(destination.DataType));
        }
    }

    /// <summary>Writes float values into a tensor of any numeric type (rounding and saturating as <see cref="FromWorking{T}"/>).</summary>
    public static void FromFloat(float[] values, Tensor destination) => FromWorking<float>(values, destination);
}
