using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Squash.Runtime.Kernels;

/// <summary>
/// uint8 to uint8 kernels for the joins of an int8 region, where tensors with different scales meet: a change of
/// scale and zero point (each input of a Concat to the output's parameters) and the sum of two tensors (a residual
/// Add, as QLinearAdd). The arithmetic is fp32 with one multiplier per input,
/// <c>multiplier = inputScale / outputScale</c> (<see cref="Multiplier"/>), rounded half to even and saturated.
/// </summary>
public static unsafe class Int8Requantize
{
    /// <summary>The multiplier <c>inputScale / outputScale</c>, evaluated in double and rounded to fp32 once.</summary>
    public static float Multiplier(float inputScale, float outputScale) => (float)((double)inputScale / outputScale);

    /// <summary>
    /// <c>y = clamp(roundHalfEven((float)(x - inputZeroPoint) * multiplier) + outputZeroPoint, min, max)</c>.
    /// </summary>
    public static void Requantize(ReadOnlySpan<byte> x, byte inputZeroPoint, float multiplier, byte outputZeroPoint, Span<byte> y,
        byte min = 0, byte max = 255)
    {
        Int8Quantize.CheckLengths(x.Length, y.Length);
        if (min > max) throw new ArgumentException($"The output range [{min}, {max}] is empty.", nameof(min));
        RequantizeUnchecked(x, inputZeroPoint, multiplier, outputZeroPoint, y, min, max);
    }

    /// <summary><see cref="Requantize(ReadOnlySpan{byte}, byte, float, byte, Span{byte}, byte, byte)"/> on the widest lanes
    /// for a caller that checked the lengths and the range (one call per channel of a small map).</summary>
    internal static void RequantizeUnchecked(ReadOnlySpan<byte> x, byte inputZeroPoint, float multiplier, byte outputZeroPoint, Span<byte> y,
        byte min = 0, byte max = 255)
    {
        fixed (byte* px = x)
        fixed (byte* py = y)
        {
            if (Quantize512.IsAccelerated) Requantize<Vector512<int>, Vector512<float>, Quantize512>(px, x.Length, inputZeroPoint, multiplier, outputZeroPoint, min, max, py);
            else if (Quantize256.IsAccelerated) Requantize<Vector256<int>, Vector256<float>, Quantize256>(px, x.Length, inputZeroPoint, multiplier, outputZeroPoint, min, max, py);
            else Requantize<Vector128<int>, Vector128<float>, Quantize128>(px, x.Length, inputZeroPoint, multiplier, outputZeroPoint, min, max, py);
        }
    }

    /// <summary>
    /// <c>y = clamp(roundHalfEven(fma((float)(b - zb), mb, (float)(a - za) * ma)) + zy, min, max)</c>: the sum of two
    /// quantized tensors of one shape, requantized to the output's parameters (<c>ma = scaleA / scaleY</c>,
    /// <c>mb = scaleB / scaleY</c>). A fused ReLU is <paramref name="min"/> = <paramref name="outputZeroPoint"/>.
    /// </summary>
    public static void Add(ReadOnlySpan<byte> a, byte aZeroPoint, float aMultiplier, ReadOnlySpan<byte> b, byte bZeroPoint,
        float bMultiplier, byte outputZeroPoint, Span<byte> y, byte min = 0, byte max = 255)
    {
        if (a.Length != b.Length) throw new ArgumentException($"The inputs have {a.Length} and {b.Length} elements.", nameof(b));
        Int8Quantize.CheckLengths(a.Length, y.Length);
        if (min > max) throw new ArgumentException($"The output range [{min}, {max}] is empty.", nameof(min));
        var p = new AddParameters(aZeroPoint, aMultiplier, bZeroPoint, bMultiplier, outputZeroPoint, min, max);
        if (Quantize512.IsAccelerated) Add<Vector512<int>, Vector512<float>, Quantize512>(a, b, p, y);
        else if (Quantize256.IsAccelerated) Add<Vector256<int>, Vector256<float>, Quantize256>(a, b, p, y);
        else Add<Vector128<int>, Vector128<float>, Quantize128>(a, b, p, y);
    }

    /// <summary>The requantization with lanes of one width (tests run every width); the lengths are checked.</summary>
    internal static void Requantize<TInt, TFloat, TLanes>(ReadOnlySpan<byte> x, byte inputZeroPoint, float multiplier, byte outputZeroPoint,
        byte min, byte max, Span<byte> y)
        where TInt : struct
        where TFloat : struct
        where TLanes : struct, IQuantizeLanes<TInt, TFloat>
    {
        Int8Quantize.CheckLengths(x.Length, y.Length);
        fixed (byte* px = x)
        fixed (byte* py = y) Requantize<TInt, TFloat, TLanes>(px, x.Length, inputZeroPoint, multiplier, outputZeroPoint, min, max, py);
    }

    /// <summary>The quantized sum with lanes of one width (tests run every width); the lengths are checked.</summary>
    internal static void Add<TInt, TFloat, TLanes>(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, in AddParameters p, Span<byte> y)
        where TInt : struct
        where TFloat : struct
        where TLanes : struct, IQuantizeLanes<TInt, TFloat>
    {
        if (a.Length != b.Length) throw new ArgumentException($"The inputs have {a.Length} and {b.Length} elements.", nameof(b));
        Int8Quantize.CheckLengths(a.Length, y.Length);
        fixed (byte* pa = a)
        fixed (byte* pb = b)
        fixed (byte* py = y) Add<TInt, TFloat, TLanes>(pa, pb, a.Length, p, py);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Requantize<TInt, TFloat, TLanes>(byte* x, int length, byte inputZeroPoint, float multiplier, byte outputZeroPoint,
        byte min, byte max, byte* y)
        where TInt : struct
        where TFloat : struct
        where TLanes : struct, IQuantizeLanes<TInt, TFloat>
    {
        float low = min - outputZeroPoint, high = max - outputZeroPoint;
        int i = 0;
        if (TLanes.IsAccelerated)
        {
            TFloat multiplierV = TLanes.SplatFloat(multiplier), lowV = TLanes.SplatFloat(low), highV = TLanes.SplatFloat(high);
            TInt inZero = TLanes.SplatInt(inputZeroPoint), outZero = TLanes.SplatInt(outputZeroPoint);
            // Two vectors a step through one pack (cls's squeeze-and-excitation multiplies 5.3 -> 3.7 µs per 200
            // channels of 192 values), then one.
            for (; i + 2 * TLanes.Count <= length; i += 2 * TLanes.Count)
            {
                TFloat first = TLanes.Multiply(TLanes.ToFloat(TLanes.Subtract(TLanes.LoadBytes(x + i), inZero)), multiplierV);
                TFloat second = TLanes.Multiply(TLanes.ToFloat(TLanes.Subtract(TLanes.LoadBytes(x + i + TLanes.Count), inZero)), multiplierV);
                TLanes.StoreBytes(TLanes.Add(TLanes.RoundToInt(StoreBounds.Apply<TInt, TFloat, TLanes>(first, lowV, highV, min == 0)), outZero),
                    TLanes.Add(TLanes.RoundToInt(StoreBounds.Apply<TInt, TFloat, TLanes>(second, lowV, highV, min == 0)), outZero), y + i);
            }
            for (; i + TLanes.Count <= length; i += TLanes.Count)
            {
                TFloat scaled = TLanes.Multiply(TLanes.ToFloat(TLanes.Subtract(TLanes.LoadBytes(x + i), inZero)), multiplierV);
                TLanes.StoreBytes(TLanes.Add(TLanes.RoundToInt(TLanes.Clamp(scaled, lowV, highV)), outZero), y + i);
            }
        }
        for (; i < length; i++)
        {
            float scaled = (float)(x[i] - inputZeroPoint) * multiplier;
            y[i] = (byte)(QuantizeScalar.RoundToInt(QuantizeScalar.Clamp(scaled, low, high)) + outputZeroPoint);
        }
    }

    /// <summary>The parameters of <see cref="Add(ReadOnlySpan{byte}, byte, float, ReadOnlySpan{byte}, byte, float, byte, Span{byte}, byte, byte)"/>.</summary>
    internal readonly record struct AddParameters(byte AZeroPoint, float AMultiplier, byte BZeroPoint, float BMultiplier,
        byte OutputZeroPoint, byte Min, byte Max);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Add<TInt, TFloat, TLanes>(byte* a, byte* b, int length, in AddParameters p, byte* y)
        where TInt : struct
        where TFloat : struct
        where TLanes : struct, IQuantizeLanes<TInt, TFloat>
    {
        float low = p.Min - p.OutputZeroPoint, high = p.Max - p.OutputZeroPoint;
        int i = 0;
        if (TLanes.IsAccelerated)
        {
            TFloat ma = TLanes.SplatFloat(p.AMultiplier), mb = TLanes.SplatFloat(p.BMultiplier);
            TFloat lowV = TLanes.SplatFloat(low), highV = TLanes.SplatFloat(high);
            TInt za = TLanes.SplatInt(p.AZeroPoint), zb = TLanes.SplatInt(p.BZeroPoint), zy = TLanes.SplatInt(p.OutputZeroPoint);
            // Two vectors a step through one pack, then one.
            for (; i + 2 * TLanes.Count <= length; i += 2 * TLanes.Count)
            {
                TFloat first = TLanes.MultiplyAdd(TLanes.ToFloat(TLanes.Subtract(TLanes.LoadBytes(b + i), zb)), mb,
                    TLanes.Multiply(TLanes.ToFloat(TLanes.Subtract(TLanes.LoadBytes(a + i), za)), ma));
                TFloat second = TLanes.MultiplyAdd(TLanes.ToFloat(TLanes.Subtract(TLanes.LoadBytes(b + i + TLanes.Count), zb)), mb,
                    TLanes.Multiply(TLanes.ToFloat(TLanes.Subtract(TLanes.LoadBytes(a + i + TLanes.Count), za)), ma));
                TLanes.StoreBytes(TLanes.Add(TLanes.RoundToInt(StoreBounds.Apply<TInt, TFloat, TLanes>(first, lowV, highV, p.Min == 0)), zy),
                    TLanes.Add(TLanes.RoundToInt(StoreBounds.Apply<TInt, TFloat, TLanes>(second, lowV, highV, p.Min == 0)), zy), y + i);
            }
            for (; i + TLanes.Count <= length; i += TLanes.Count)
            {
                TFloat fa = TLanes.Multiply(TLanes.ToFloat(TLanes.Subtract(TLanes.LoadBytes(a + i), za)), ma);
                TFloat sum = TLanes.MultiplyAdd(TLanes.ToFloat(TLanes.Subtract(TLanes.LoadBytes(b + i), zb)), mb, fa);
                TLanes.StoreBytes(TLanes.Add(TLanes.RoundToInt(TLanes.Clamp(sum, lowV, highV)), zy), y + i);
            }
        }
        for (; i < length; i++)
        {
            float sum = MathF.FusedMultiplyAdd((float)(b[i] - p.BZeroPoint), p.BMultiplier, (float)(a[i] - p.AZeroPoint) * p.AMultiplier);
            y[i] = (byte)(QuantizeScalar.RoundToInt(QuantizeScalar.Clamp(sum, low, high)) + p.OutputZeroPoint);
        }
    }
}
