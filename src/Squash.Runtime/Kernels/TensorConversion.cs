using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace Squash.Runtime.Kernels;

/// <summary>
/// Converts tensors between element types with ONNX Cast's rules: floats round to the nearest value of a narrower
/// float type (ties to even; out of range gives infinity); floats truncate toward zero into integers, saturating
/// at the integer's range (NaN gives 0; ONNX leaves out-of-range values undefined); integers wrap into narrower
/// integers (keep the low bits); bool is 0 or 1, and any nonzero value (NaN included) converts to true.
/// </summary>
internal static class TensorConversion
{
    /// <summary>Elements one thread takes at a time.</summary>
    private const int Grain = 1 << 15;

    /// <summary>Elements converted through a float buffer at a time (bfloat16 and bool conversions).</summary>
    private const int ChunkSize = 1024;

    /// <summary>Converts <paramref name="x"/> into <paramref name="y"/>, which has the same element count.</summary>
    /// <exception cref="NotSupportedException">One of the types has no fixed size (string).</exception>
    public static void Convert(KernelContext context, Tensor x, Tensor y)
    {
        if (x.ElementCount != y.ElementCount) throw new ArgumentException("The tensors differ in element count.", nameof(y));
        if (x.DataType == y.DataType)
        {
            x.Bytes.CopyTo(y.Bytes);
            return;
        }
        switch (x.DataType)
        {
            case DataType.Float: From<float>(context, x, y); break;
            case DataType.Double: From<double>(context, x, y); break;
            case DataType.Float16: From<Half>(context, x, y); break;
            case DataType.Int8: From<sbyte>(context, x, y); break;
            case DataType.Int16: From<short>(context, x, y); break;
            case DataType.Int32: From<int>(context, x, y); break;
            case DataType.Int64: From<long>(context, x, y); break;
            case DataType.UInt8: From<byte>(context, x, y); break;
            case DataType.UInt16: From<ushort>(context, x, y); break;
            case DataType.UInt32: From<uint>(context, x, y); break;
            case DataType.UInt64: From<ulong>(context, x, y); break;
            // A bool is stored as the byte 0 or 1, which is the number it converts to.
            case DataType.Bool: From<byte>(context, x, y); break;
            case DataType.BFloat16: context.For(x.ElementCount, new FromBFloat16Body(x, y), Grain); break;
            default: throw Unsupported(x.DataType);
        }
    }

    private static void From<TFrom>(KernelContext context, Tensor x, Tensor y) where TFrom : unmanaged, INumberBase<TFrom>
    {
        int n = x.ElementCount;
        switch (y.DataType)
        {
            case DataType.Float: context.For(n, new Body<TFrom, float>(x, y), Grain); break;
            case DataType.Double: context.For(n, new Body<TFrom, double>(x, y), Grain); break;
            case DataType.Float16: context.For(n, new Body<TFrom, Half>(x, y), Grain); break;
            case DataType.Int8: context.For(n, new Body<TFrom, sbyte>(x, y), Grain); break;
            case DataType.Int16: context.For(n, new Body<TFrom, short>(x, y), Grain); break;
            case DataType.Int32: context.For(n, new Body<TFrom, int>(x, y), Grain); break;
            case DataType.Int64: context.For(n, new Body<TFrom, long>(x, y), Grain); break;
            case DataType.UInt8: context.For(n, new Body<TFrom, byte>(x, y), Grain); break;
            case DataType.UInt16: context.For(n, new Body<TFrom, ushort>(x, y), Grain); break;
            case DataType.UInt32: context.For(n, new Body<TFrom, uint>(x, y), Grain); break;
            case DataType.UInt64: context.For(n, new Body<TFrom, ulong>(x, y), Grain); break;
            case DataType.Bool: context.For(n, new ToBoolBody<TFrom>(x, y), Grain); break;
            case DataType.BFloat16: context.For(n, new ToBFloat16Body<TFrom>(x, y), Grain); break;
            default: throw Unsupported(y.DataType);
        }
    }

    /// <summary>Converts between number types (not bool or bfloat16).</summary>
    private static void ConvertSpan<TFrom, TTo>(ReadOnlySpan<TFrom> x, Span<TTo> y)
        where TFrom : unmanaged, INumberBase<TFrom> where TTo : unmanaged, INumberBase<TTo>
    {
        // The dedicated float16 conversions are vectorized.
        if (typeof(TFrom) == typeof(float) && typeof(TTo) == typeof(Half))
            FloatConversions.ToHalf(MemoryMarshal.Cast<TFrom, float>(x), MemoryMarshal.Cast<TTo, Half>(y));
        else if (typeof(TFrom) == typeof(Half) && typeof(TTo) == typeof(float))
            FloatConversions.ToSingle(MemoryMarshal.Cast<TFrom, Half>(x), MemoryMarshal.Cast<TTo, float>(y));
        else
            TensorPrimitives.ConvertTruncating(x, y);
    }

    /// <summary>Nonzero (NaN included) to true.</summary>
    private static void ToBool<TFrom>(ReadOnlySpan<TFrom> x, Span<bool> y) where TFrom : unmanaged, INumberBase<TFrom>
    {
        TensorPrimitives.IsZero(x, y);
        var bytes = MemoryMarshal.Cast<bool, byte>(y);
        TensorPrimitives.Xor(bytes, (byte)1, bytes);
    }

    /// <summary>Converts floats into <paramref name="y"/> from element <paramref name="offset"/> on.</summary>
    private static void FromSingle(ReadOnlySpan<float> x, Tensor y, int offset)
    {
        int n = x.Length;
        switch (y.DataType)
        {
            case DataType.Float: x.CopyTo(Elements<float>(y).Slice(offset, n)); break;
            case DataType.Double: ConvertSpan(x, Elements<double>(y).Slice(offset, n)); break;
            case DataType.Float16: ConvertSpan(x, Elements<Half>(y).Slice(offset, n)); break;
            case DataType.Int8: ConvertSpan(x, Elements<sbyte>(y).Slice(offset, n)); break;
            case DataType.Int16: ConvertSpan(x, Elements<short>(y).Slice(offset, n)); break;
            case DataType.Int32: ConvertSpan(x, Elements<int>(y).Slice(offset, n)); break;
            case DataType.Int64: ConvertSpan(x, Elements<long>(y).Slice(offset, n)); break;
            case DataType.UInt8: ConvertSpan(x, Elements<byte>(y).Slice(offset, n)); break;
            case DataType.UInt16: ConvertSpan(x, Elements<ushort>(y).Slice(offset, n)); break;
            case DataType.UInt32: ConvertSpan(x, Elements<uint>(y).Slice(offset, n)); break;
            case DataType.UInt64: ConvertSpan(x, Elements<ulong>(y).Slice(offset, n)); break;
            case DataType.Bool: ToBool(x, Elements<bool>(y).Slice(offset, n)); break;
            case DataType.BFloat16: FloatConversions.ToBFloat16(x, Elements<BFloat16>(y).Slice(offset, n)); break;
            default: throw Unsupported(y.DataType);
        }
    }

    /// <summary>The elements of <paramref name="t"/> as <typeparamref name="T"/>, which has the element size
    /// (bool viewed as byte).</summary>
    private static Span<T> Elements<T>(Tensor t) where T : unmanaged => MemoryMarshal.Cast<byte, T>(t.Bytes);

    private static NotSupportedException Unsupported(DataType type) =>
        new($"Conversions of {DataTypes.Name(type)} are not supported.");

    private readonly struct Body<TFrom, TTo>(Tensor x, Tensor y) : IRangeBody
        where TFrom : unmanaged, INumberBase<TFrom> where TTo : unmanaged, INumberBase<TTo>
    {
        public void Invoke(int start, int end) => ConvertSpan(Elements<TFrom>(x)[start..end], Elements<TTo>(y)[start..end]);
    }

    private readonly struct ToBoolBody<TFrom>(Tensor x, Tensor y) : IRangeBody where TFrom : unmanaged, INumberBase<TFrom>
    {
        public void Invoke(int start, int end) => ToBool(Elements<TFrom>(x)[start..end], Elements<bool>(y)[start..end]);
    }

    /// <summary>Through float: exact for every source type but 64-bit integers and double, which round twice
    /// (to float, then to bfloat16).</summary>
    private readonly struct ToBFloat16Body<TFrom>(Tensor x, Tensor y) : IRangeBody where TFrom : unmanaged, INumberBase<TFrom>
    {
        public void Invoke(int start, int end)
        {
            var source = Elements<TFrom>(x);
            var destination = Elements<BFloat16>(y);
            Span<float> buffer = stackalloc float[ChunkSize];
            for (int i = start; i < end; i += ChunkSize)
            {
                int count = Math.Min(ChunkSize, end - i);
                var chunk = buffer[..count];
                ConvertSpan(source.Slice(i, count), chunk);
                FloatConversions.ToBFloat16(chunk, destination.Slice(i, count));
            }
        }
    }

    /// <summary>Widens bfloat16 to float (exactly), then converts the floats.</summary>
    private readonly struct FromBFloat16Body(Tensor x, Tensor y) : IRangeBody
    {
        public void Invoke(int start, int end)
        {
            var source = Elements<BFloat16>(x);
            Span<float> buffer = stackalloc float[ChunkSize];
            for (int i = start; i < end; i += ChunkSize)
            {
                int count = Math.Min(ChunkSize, end - i);
                var chunk = buffer[..count];
                FloatConversions.ToSingle(source.Slice(i, count), chunk);
                FromSingle(chunk, y, i);
            }
        }
    }
}
