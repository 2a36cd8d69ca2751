using System.Runtime.InteropServices;

namespace Squash.Runtime;

/// <summary>
/// A dense, row-major tensor: an element type, a shape and a view of bytes. Several tensors may view one
/// buffer (the memory plan of a model places every intermediate tensor in one arena).
/// </summary>
/// <remarks>Not thread-safe for writing; reading from several threads is safe.</remarks>
public sealed class Tensor
{
    private readonly byte[] _buffer;
    private readonly int _offset;

    /// <summary>Creates a view of <paramref name="buffer"/> starting at byte <paramref name="offset"/>.</summary>
    /// <exception cref="ArgumentException">The shape does not fit the bytes, or the type has no fixed size.</exception>
    public Tensor(DataType type, int[] shape, byte[] buffer, int offset)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(buffer);
        int size = DataTypes.SizeOf(type);
        if (size == 0) throw new ArgumentException($"Tensors of {DataTypes.Name(type)} are not supported.", nameof(type));
        long count = Shapes.ElementCount(shape);
        long bytes = count * size;
        if (offset < 0 || bytes > buffer.Length - (long)offset)
            throw new ArgumentException($"A {DataTypes.Name(type)} tensor of shape {Shapes.Format(shape)} does not fit the buffer.");
        DataType = type;
        Shape = shape;
        ElementCount = (int)count;
        _buffer = buffer;
        _offset = offset;
    }

    /// <summary>Allocates a zero-filled tensor.</summary>
    public Tensor(DataType type, params int[] shape)
        : this(type, shape, AllocateBuffer(type, shape), 0)
    {
    }

    /// <summary>Element type.</summary>
    public DataType DataType { get; }

    /// <summary>Dimensions, outermost first. Do not modify.</summary>
    public int[] Shape { get; }

    /// <summary>Number of dimensions.</summary>
    public int Rank => Shape.Length;

    /// <summary>Number of elements (the product of the dimensions; 1 for a scalar).</summary>
    public int ElementCount { get; }

    /// <summary>Number of bytes the elements occupy.</summary>
    public int ByteLength => ElementCount * DataTypes.SizeOf(DataType);

    /// <summary>The elements as a span of <typeparamref name="T"/>, which must match <see cref="DataType"/>.</summary>
    /// <exception cref="InvalidOperationException"><typeparamref name="T"/> does not match the element type.</exception>
    public Span<T> AsSpan<T>() where T : unmanaged
    {
        if (!DataTypes.Matches<T>(DataType))
            throw new InvalidOperationException($"A {DataTypes.Name(DataType)} tensor cannot be read as {typeof(T).Name}.");
        return MemoryMarshal.Cast<byte, T>(_buffer.AsSpan(_offset, ByteLength));
    }

    /// <summary>The raw bytes of the elements, little-endian.</summary>
    public Span<byte> Bytes => _buffer.AsSpan(_offset, ByteLength);

    /// <summary>A tensor with the same bytes and element type and another shape of equal element count.</summary>
    /// <exception cref="ArgumentException">The element counts differ.</exception>
    public Tensor Reshape(int[] shape)
    {
        if (Shapes.ElementCount(shape) != ElementCount)
            throw new ArgumentException($"Cannot view shape {Shapes.Format(Shape)} as {Shapes.Format(shape)}.");
        return new Tensor(DataType, shape, _buffer, _offset);
    }

    /// <summary>A deep copy that owns its own buffer.</summary>
    public Tensor Clone()
    {
        var copy = new Tensor(DataType, (int[])Shape.Clone());
        Bytes.CopyTo(copy.Bytes);
        return copy;
    }

    /// <summary>Creates a tensor that copies <paramref name="data"/>.</summary>
    public static Tensor From<T>(ReadOnlySpan<T> data, params int[] shape) where T : unmanaged
    {
        var tensor = new Tensor(DataTypes.Of<T>(), shape);
        if (data.Length != tensor.ElementCount)
            throw new ArgumentException($"{data.Length} values do not fill shape {Shapes.Format(shape)}.");
        data.CopyTo(tensor.AsSpan<T>());
        return tensor;
    }

    /// <summary>Creates a 0-d tensor holding one value.</summary>
    public static Tensor Scalar<T>(T value) where T : unmanaged => From<T>([value]);

    /// <summary>Reads element <paramref name="index"/> (flat, row-major) of any numeric type as a double.</summary>
    public double GetAsDouble(int index) => DataType switch
    {
        DataType.Float => AsSpan<float>()[index],
        DataType.Double => AsSpan<double>()[index],
        DataType.Float16 => (double)AsSpan<Half>()[index],
        DataType.BFloat16 => (float)AsSpan<BFloat16>()[index],
        DataType.Int8 => AsSpan<sbyte>()[index],
        DataType.UInt8 => AsSpan<byte>()[index],
        DataType.Int16 => AsSpan<short>()[index],
        DataType.UInt16 => AsSpan<ushort>()[index],
        DataType.Int32 => AsSpan<int>()[index],
        DataType.UInt32 => AsSpan<uint>()[index],
        DataType.Int64 => AsSpan<long>()[index],
        DataType.UInt64 => AsSpan<ulong>()[index],
        DataType.Bool => AsSpan<bool>()[index] ? 1 : 0,
        _ => throw new NotSupportedException(DataTypes.Name(DataType)),
    };

    /// <summary>Reads element <paramref name="index"/> of an integer or bool tensor as a long.</summary>
    public long GetAsInt64(int index) => DataType switch
    {
        DataType.Int64 => AsSpan<long>()[index],
        DataType.Int32 => AsSpan<int>()[index],
        DataType.UInt64 => (long)AsSpan<ulong>()[index],
        _ => (long)GetAsDouble(index),
    };

    /// <summary>All elements of an integer tensor as longs (shape inputs such as Reshape's).</summary>
    public long[] ToInt64Array()
    {
        var result = new long[ElementCount];
        for (int i = 0; i < result.Length; i++) result[i] = GetAsInt64(i);
        return result;
    }

    /// <inheritdoc/>
    public override string ToString() => $"{DataTypes.Name(DataType)}{Shapes.Format(Shape)}";

    private static byte[] AllocateBuffer(DataType type, int[] shape)
    {
        long bytes = Shapes.ElementCount(shape) * DataTypes.SizeOf(type);
        if (bytes > Array.MaxLength)
            throw new ArgumentException($"A {DataTypes.Name(type)} tensor of shape {Shapes.Format(shape)} needs {bytes} bytes, more than one buffer can hold.");
        return new byte[bytes];
    }
}
