using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Squash.Runtime.Kernels;

/// <summary>
/// Conversions between fp32 and 8-bit quantized tensors with one scale and zero point (per tensor), as ONNX
/// QuantizeLinear and DequantizeLinear define them: <c>q = saturate(roundHalfEven(x / scale) + zeroPoint)</c> and
/// <c>x = (q - zeroPoint) * scale</c>. Vectorized; the scalar tails compute the same roundings, so results do not
/// depend on the position of an element.
/// </summary>
public static unsafe class Int8Quantize
{
    /// <summary>
    /// <c>y = clamp(roundHalfEven(x / scale) + zeroPoint, min, max)</c> as uint8 (the division, not a multiplication
    /// by the reciprocal, as ONNX specifies). NaN becomes <paramref name="min"/>; infinities saturate.
    /// </summary>
    public static void Quantize(ReadOnlySpan<float> x, float scale, byte zeroPoint, Span<byte> y, byte min = 0, byte max = 255)
    {
        CheckLengths(x.Length, y.Length);
        if (min > max) throw new ArgumentException($"The output range [{min}, {max}] is empty.", nameof(min));
        if (Quantize512.IsAccelerated) Quantize<Vector512<int>, Vector512<float>, Quantize512>(x, scale, zeroPoint, min, max, y);
        else if (Quantize256.IsAccelerated) Quantize<Vector256<int>, Vector256<float>, Quantize256>(x, scale, zeroPoint, min, max, y);
        else Quantize<Vector128<int>, Vector128<float>, Quantize128>(x, scale, zeroPoint, min, max, y);
    }

    /// <summary><c>y = (float)(x - zeroPoint) * scale</c> for uint8 x.</summary>
    public static void Dequantize(ReadOnlySpan<byte> x, float scale, byte zeroPoint, Span<float> y)
    {
        CheckLengths(x.Length, y.Length);
        if (Quantize512.IsAccelerated) Dequantize<Vector512<int>, Vector512<float>, Quantize512>(x, scale, zeroPoint, y);
        else if (Quantize256.IsAccelerated) Dequantize<Vector256<int>, Vector256<float>, Quantize256>(x, scale, zeroPoint, y);
        else Dequantize<Vector128<int>, Vector128<float>, Quantize128>(x, scale, zeroPoint, y);
    }

    /// <summary><c>y = (float)(x - zeroPoint) * scale</c> for int8 x.</summary>
    public static void Dequantize(ReadOnlySpan<sbyte> x, float scale, sbyte zeroPoint, Span<float> y)
    {
        CheckLengths(x.Length, y.Length);
        if (Quantize512.IsAccelerated) Dequantize<Vector512<int>, Vector512<float>, Quantize512>(x, scale, zeroPoint, y);
        else if (Quantize256.IsAccelerated) Dequantize<Vector256<int>, Vector256<float>, Quantize256>(x, scale, zeroPoint, y);
        else Dequantize<Vector128<int>, Vector128<float>, Quantize128>(x, scale, zeroPoint, y);
    }

    /// <summary><see cref="Quantize(ReadOnlySpan{float}, float, byte, Span{byte}, byte, byte)"/> with lanes of one width
    /// (tests run every width); the lengths are checked.</summary>
    internal static void Quantize<TInt, TFloat, TLanes>(ReadOnlySpan<float> x, float scale, byte zeroPoint, byte min, byte max, Span<byte> y)
        where TInt : struct
        where TFloat : struct
        where TLanes : struct, IQuantizeLanes<TInt, TFloat>
    {
        CheckLengths(x.Length, y.Length);
        fixed (float* px = x)
        fixed (byte* py = y) Quantize<TInt, TFloat, TLanes>(px, x.Length, scale, zeroPoint, min, max, py);
    }

    /// <summary>Dequantization of uint8 with lanes of one width; the lengths are checked.</summary>
    internal static void Dequantize<TInt, TFloat, TLanes>(ReadOnlySpan<byte> x, float scale, byte zeroPoint, Span<float> y)
        where TInt : struct
        where TFloat : struct
        where TLanes : struct, IQuantizeLanes<TInt, TFloat>
    {
        CheckLengths(x.Length, y.Length);
        fixed (byte* px = x)
        fixed (float* py = y) Dequantize<TInt, TFloat, TLanes, Unsigned>(px, x.Length, scale, zeroPoint, py);
    }

    /// <summary>Dequantization of int8 with lanes of one width; the lengths are checked.</summary>
    internal static void Dequantize<TInt, TFloat, TLanes>(ReadOnlySpan<sbyte> x, float scale, sbyte zeroPoint, Span<float> y)
        where TInt : struct
        where TFloat : struct
        where TLanes : struct, IQuantizeLanes<TInt, TFloat>
    {
        CheckLengths(x.Length, y.Length);
        fixed (sbyte* px = x)
        fixed (float* py = y) Dequantize<TInt, TFloat, TLanes, Signed>((byte*)px, x.Length, scale, zeroPoint, py);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Quantize<TInt, TFloat, TLanes>(float* x, int length, float scale, byte zeroPoint, byte min, byte max, byte* y)
        where TInt : struct
        where TFloat : struct
        where TLanes : struct, IQuantizeLanes<TInt, TFloat>
    {
        float low = min - zeroPoint, high = max - zeroPoint;
        int i = 0;
        if (TLanes.IsAccelerated)
        {
            TFloat scaleV = TLanes.SplatFloat(scale), lowV = TLanes.SplatFloat(low), highV = TLanes.SplatFloat(high);
            TInt zero = TLanes.SplatInt(zeroPoint);
            for (; i + TLanes.Count <= length; i += TLanes.Count)
            {
                TFloat clamped = TLanes.Clamp(TLanes.Divide(TLanes.LoadFloat(x + i), scaleV), lowV, highV);
                TLanes.StoreBytes(TLanes.Add(TLanes.RoundToInt(clamped), zero), y + i);
            }
        }
        for (; i < length; i++)
            y[i] = (byte)(QuantizeScalar.RoundToInt(QuantizeScalar.Clamp(x[i] / scale, low, high)) + zeroPoint);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dequantize<TInt, TFloat, TLanes, TSign>(byte* x, int length, float scale, int zeroPoint, float* y)
        where TInt : struct
        where TFloat : struct
        where TLanes : struct, IQuantizeLanes<TInt, TFloat>
        where TSign : struct, IByteSign
    {
        int i = 0;
        if (TLanes.IsAccelerated)
        {
            TFloat scaleV = TLanes.SplatFloat(scale);
            TInt zero = TLanes.SplatInt(zeroPoint);
            for (; i + TLanes.Count <= length; i += TLanes.Count)
            {
                TInt q = TSign.IsSigned ? TLanes.LoadSBytes((sbyte*)x + i) : TLanes.LoadBytes(x + i);
                TLanes.StoreFloat(TLanes.Multiply(TLanes.ToFloat(TLanes.Subtract(q, zero)), scaleV), y + i);
            }
        }
        for (; i < length; i++)
            y[i] = (float)((TSign.IsSigned ? ((sbyte*)x)[i] : x[i]) - zeroPoint) * scale;
    }

    internal static void CheckLengths(int source, int destination)
    {
        if (destination < source)
            throw new ArgumentException($"The destination holds {destination} elements for {source}.", nameof(destination));
    }

    /// <summary>Whether bytes are read as int8 or uint8.</summary>
    private interface IByteSign
    {
        static abstract bool IsSigned { get; }
    }

    private struct Signed : IByteSign
    {
        public static bool IsSigned => true;
    }

    private struct Unsigned : IByteSign
    {
        public static bool IsSigned => false;
    }
}
