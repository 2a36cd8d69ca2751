using System.Runtime.CompilerServices;

namespace Squash.Runtime;

/// <summary>Element types of tensors. The numeric values are ONNX's <c>TensorProto.DataType</c> codes.</summary>
public enum DataType : byte
{
    /// <summary>No type (an absent optional value).</summary>
    Undefined = 0,
    /// <summary>32-bit IEEE float.</summary>
    Float = 1,
    /// <summary>Unsigned 8-bit integer.</summary>
    UInt8 = 2,
    /// <summary>Signed 8-bit integer.</summary>
    Int8 = 3,
    /// <summary>Unsigned 16-bit integer.</summary>
    UInt16 = 4,
    /// <summary>Signed 16-bit integer.</summary>
    Int16 = 5,
    /// <summary>Signed 32-bit integer.</summary>
    Int32 = 6,
    /// <summary>Signed 64-bit integer.</summary>
    Int64 = 7,
    /// <summary>UTF-8 string (not supported by Squash kernels).</summary>
    String = 8,
    /// <summary>Boolean, one byte per element (0 or 1).</summary>
    Bool = 9,
    /// <summary>16-bit IEEE float.</summary>
    Float16 = 10,
    /// <summary>64-bit IEEE float.</summary>
    Double = 11,
    /// <summary>Unsigned 32-bit integer.</summary>
    UInt32 = 12,
    /// <summary>Unsigned 64-bit integer.</summary>
    UInt64 = 13,
    /// <summary>bfloat16: the upper 16 bits of a 32-bit float.</summary>
    BFloat16 = 16,
}

/// <summary>Facts about <see cref="DataType"/> values.</summary>
public static class DataTypes
{
    /// <summary>Size of one element in bytes; 0 for types without a fixed size.</summary>
    public static int SizeOf(DataType type) => type switch
    {
        DataType.Float or DataType.Int32 or DataType.UInt32 => 4,
        DataType.UInt8 or DataType.Int8 or DataType.Bool => 1,
        DataType.UInt16 or DataType.Int16 or DataType.Float16 or DataType.BFloat16 => 2,
        DataType.Int64 or DataType.Double or DataType.UInt64 => 8,
        _ => 0,
    };

    /// <summary>True for the types Squash kernels can hold in a tensor.</summary>
    public static bool IsSupported(DataType type) => SizeOf(type) != 0;

    /// <summary>True for floating-point types.</summary>
    public static bool IsFloatingPoint(DataType type) =>
        type is DataType.Float or DataType.Double or DataType.Float16 or DataType.BFloat16;

    /// <summary>True for signed and unsigned integer types (not bool).</summary>
    public static bool IsInteger(DataType type) => type is DataType.UInt8 or DataType.Int8 or DataType.UInt16
        or DataType.Int16 or DataType.Int32 or DataType.Int64 or DataType.UInt32 or DataType.UInt64;

    /// <summary>The lower-case name ONNX documents use, such as <c>float</c> or <c>int64</c>.</summary>
    public static string Name(DataType type) => type switch
    {
        DataType.Float => "float",
        DataType.UInt8 => "uint8",
        DataType.Int8 => "int8",
        DataType.UInt16 => "uint16",
        DataType.Int16 => "int16",
        DataType.Int32 => "int32",
        DataType.Int64 => "int64",
        DataType.String => "string",
        DataType.Bool => "bool",
        DataType.Float16 => "float16",
        DataType.Double => "double",
        DataType.UInt32 => "uint32",
        DataType.UInt64 => "uint64",
        DataType.BFloat16 => "bfloat16",
        _ => $"type{(int)type}",
    };

    /// <summary>The data type that a CLR element type stores.</summary>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not a tensor element type.</exception>
    public static DataType Of<T>() where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return DataType.Float;
        if (typeof(T) == typeof(byte)) return DataType.UInt8;
        if (typeof(T) == typeof(sbyte)) return DataType.Int8;
        if (typeof(T) == typeof(ushort)) return DataType.UInt16;
        if (typeof(T) == typeof(short)) return DataType.Int16;
        if (typeof(T) == typeof(int)) return DataType.Int32;
        if (typeof(T) == typeof(long)) return DataType.Int64;
        if (typeof(T) == typeof(bool)) return DataType.Bool;
        if (typeof(T) == typeof(Half)) return DataType.Float16;
        if (typeof(T) == typeof(double)) return DataType.Double;
        if (typeof(T) == typeof(uint)) return DataType.UInt32;
        if (typeof(T) == typeof(ulong)) return DataType.UInt64;
        if (typeof(T) == typeof(BFloat16)) return DataType.BFloat16;
        throw new NotSupportedException($"{typeof(T).Name} is not a tensor element type.");
    }

    /// <summary>True when a span of <typeparamref name="T"/> may view data of <paramref name="type"/>.</summary>
    internal static bool Matches<T>(DataType type) where T : unmanaged =>
        Of<T>() == type;

    /// <summary>Parses a name such as <c>float32</c>, <c>float</c>, <c>int64</c> or <c>fp16</c>.</summary>
    public static bool TryParse(string name, out DataType type)
    {
        type = name.ToLowerInvariant() switch
        {
            "float" or "float32" or "fp32" or "f32" => DataType.Float,
            "uint8" or "u8" => DataType.UInt8,
            "int8" or "i8" => DataType.Int8,
            "uint16" => DataType.UInt16,
            "int16" => DataType.Int16,
            "int32" or "int" => DataType.Int32,
            "int64" or "long" => DataType.Int64,
            "bool" => DataType.Bool,
            "float16" or "fp16" or "half" => DataType.Float16,
            "double" or "float64" => DataType.Double,
            "uint32" => DataType.UInt32,
            "uint64" => DataType.UInt64,
            "bfloat16" or "bf16" => DataType.BFloat16,
            _ => DataType.Undefined,
        };
        return type != DataType.Undefined;
    }
}

/// <summary>A bfloat16 value: the upper half of an IEEE 754 single, stored as its bits.</summary>
/// <param name="Bits">The raw 16 bits.</param>
public readonly record struct BFloat16(ushort Bits)
{
    /// <summary>Widens to float exactly.</summary>
    public static explicit operator float(BFloat16 value) =>
        BitConverter.Int32BitsToSingle(value.Bits << 16);

    /// <summary>Rounds a float to the nearest bfloat16, ties to even; NaN stays NaN.</summary>
    public static explicit operator BFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return new BFloat16((ushort)((bits >> 16) | 0x40));
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return new BFloat16((ushort)((bits + rounding) >> 16));
    }

    /// <inheritdoc/>
    public override string ToString() => ((float)this).ToString(System.Globalization.CultureInfo.InvariantCulture);
}
