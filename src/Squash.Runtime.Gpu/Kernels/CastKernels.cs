using ILGPU;

namespace Squash.Runtime.Gpu.Kernels;

/// <summary>One element conversion of Cast.</summary>
internal interface IConvert<TIn, TOut>
    where TIn : unmanaged
    where TOut : unmanaged
{
    TOut Convert(TIn x);
}

#pragma warning disable CS1591 // One line per conversion: the types say what it does.
internal readonly struct FloatToInt32 : IConvert<float, int> { public int Convert(float x) => (int)x; }
internal readonly struct FloatToInt64 : IConvert<float, long> { public long Convert(float x) => (long)x; }
internal readonly struct FloatToBool : IConvert<float, byte> { public byte Convert(float x) => x != 0 ? (byte)1 : (byte)0; }
internal readonly struct FloatToHalf : IConvert<float, ushort> { public ushort Convert(float x) => HalfBits.FromFloat(x); }
internal readonly struct Int32ToFloat : IConvert<int, float> { public float Convert(int x) => x; }
internal readonly struct Int64ToFloat : IConvert<long, float> { public float Convert(long x) => x; }
internal readonly struct UInt8ToFloat : IConvert<byte, float> { public float Convert(byte x) => x; }
internal readonly struct Int8ToFloat : IConvert<sbyte, float> { public float Convert(sbyte x) => x; }
internal readonly struct BoolToFloat : IConvert<byte, float> { public float Convert(byte x) => x != 0 ? 1f : 0f; }
internal readonly struct HalfToFloat : IConvert<ushort, float> { public float Convert(ushort x) => HalfBits.ToFloat(x); }
internal readonly struct Int64ToInt32 : IConvert<long, int> { public int Convert(long x) => (int)x; }
internal readonly struct Int32ToInt64 : IConvert<int, long> { public long Convert(int x) => x; }
#pragma warning restore CS1591

/// <summary>Cast kernel.</summary>
internal static class CastKernels
{
    public static void Cast<TIn, TOut, TConvert>(Index1D index, Range1D r, ArrayView<TIn> x, ArrayView<TOut> y)
        where TIn : unmanaged
        where TOut : unmanaged
        where TConvert : struct, IConvert<TIn, TOut>
    {
        for (int i = index; i < r.Count; i += r.Stride)
            y[i] = default(TConvert).Convert(x[i]);
    }
}

/// <summary>IEEE binary16 conversions on bits (every backend has 32-bit integer arithmetic; not all have half).</summary>
internal static class HalfBits
{
    /// <summary>float to half, rounding to nearest even; overflow gives infinity, NaN stays NaN.</summary>
    public static ushort FromFloat(float value)
    {
        uint f = Interop.FloatAsInt(value);
        uint sign = (f >> 16) & 0x8000u;
        uint abs = f & 0x7FFFFFFFu;
        if (abs >= 0x7F800000u) return (ushort)(sign | (abs > 0x7F800000u ? 0x7E00u : 0x7C00u));
        // 65520 and above round to infinity.
        if (abs >= 0x477FF000u) return (ushort)(sign | 0x7C00u);
        if (abs < 0x38800000u)
        {
            // Below the smallest normal half (2^-14): a subnormal, in units of 2^-24 (scaling by 2^24 is exact).
            float scaled = Interop.IntAsFloat(abs) * 16777216f;
            return (ushort)(sign | (uint)DeviceMath.RoundHalfEven(scaled));
        }
        // Rebias the exponent (127 -> 15) and round the 13 dropped bits to nearest even.
        uint rounded = abs + 0xC8000FFFu + ((abs >> 13) & 1u);
        return (ushort)(sign | (rounded >> 13));
    }

    /// <summary>half to float (exact).</summary>
    public static float ToFloat(ushort half)
    {
        uint h = half;
        uint sign = (h & 0x8000u) << 16;
        uint exponent = (h >> 10) & 0x1Fu;
        uint mantissa = h & 0x3FFu;
        if (exponent == 0)
        {
            // Through int: uint to float goes through double in IL, which devices without fp64 lack.
            float v = (int)mantissa * 5.9604644775390625e-8f; // 2^-24
            return (h & 0x8000u) != 0 ? -v : v;
        }
        if (exponent == 31) return Interop.IntAsFloat(sign | 0x7F800000u | (mantissa << 13));
        return Interop.IntAsFloat(sign | ((exponent + 112u) << 23) | (mantissa << 13));
    }
}
