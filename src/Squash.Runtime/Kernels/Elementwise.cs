using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Squash.Runtime.Kernels;

/// <summary>Maps a span of <typeparamref name="TIn"/> to a span of <typeparamref name="TOut"/> of the same length,
/// element by element. The spans are either disjoint or the same memory.</summary>
internal delegate void SpanMap<TIn, TOut>(ReadOnlySpan<TIn> x, Span<TOut> y);

/// <summary>An elementwise float function, written once for every vector width, with its double counterpart.</summary>
internal interface IFloatFunction
{
    /// <summary>The function on each lane of a float vector.</summary>
    TV Invoke<TV>(TV x) where TV : struct, IFloatVector<TV>;

    /// <summary>The function in double precision (the path for double tensors, and a reference for tests).</summary>
    double Invoke(double x);
}

/// <summary>An elementwise function on any primitive number type, as a portable-width vector and a scalar.</summary>
internal interface INumericFunction<T> where T : unmanaged, INumber<T>
{
    /// <summary>The function on each lane.</summary>
    Vector<T> Invoke(Vector<T> x);

    /// <summary>The function on one value (the tail of a span).</summary>
    T Invoke(T x);
}

/// <summary>Drivers that apply elementwise functions to contiguous spans.</summary>
internal static class Elementwise
{
    /// <summary>Elements converted at a time when a float16 or bfloat16 span is computed in float.</summary>
    private const int ChunkSize = 1024;

    /// <summary>Applies <paramref name="function"/> with the widest accelerated float vectors.</summary>
    public static void Map<TF>(TF function, ReadOnlySpan<float> x, Span<float> y) where TF : struct, IFloatFunction
    {
        if (x.Length != y.Length) throw new ArgumentException("The spans differ in length.", nameof(y));
        if (Float512.IsHardwareAccelerated) Map<TF, Float512>(function, x, y);
        else if (Float256.IsHardwareAccelerated) Map<TF, Float256>(function, x, y);
        else Map<TF, Float128>(function, x, y);
    }

    /// <summary>Applies <paramref name="function"/> at one vector width. Stores are aligned to the vector size (a
    /// store that splits a cache line costs extra); the head before the first aligned element and the tail run
    /// through a padded vector, so every element gets the same arithmetic whatever its position.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe void Map<TF, TV>(TF function, ReadOnlySpan<float> x, Span<float> y)
        where TF : struct, IFloatFunction where TV : struct, IFloatVector<TV>
    {
        ref float xs = ref MemoryMarshal.GetReference(x);
        ref float ys = ref MemoryMarshal.GetReference(y);
        int n = x.Length, i = 0;
        if (n >= 2 * TV.Count)
        {
            // A moving GC may shift the buffer afterwards; that only costs speed.
            int misaligned = (int)((nuint)Unsafe.AsPointer(ref ys) / sizeof(float) % (nuint)TV.Count);
            if (misaligned != 0)
            {
                i = TV.Count - misaligned;
                Partial<TF, TV>(function, x[..i], y[..i]);
            }
        }
        for (; i <= n - TV.Count; i += TV.Count)
            function.Invoke(TV.Load(ref xs, (nuint)i)).Store(ref ys, (nuint)i);
        if (i < n) Partial<TF, TV>(function, x[i..], y[i..]);
    }

    /// <summary>Applies <paramref name="function"/> to fewer elements than a vector holds, through a padded copy.</summary>
    private static void Partial<TF, TV>(TF function, ReadOnlySpan<float> x, Span<float> y)
        where TF : struct, IFloatFunction where TV : struct, IFloatVector<TV>
    {
        Span<float> padded = stackalloc float[Float512.Count];
        x.CopyTo(padded);
        ref float t = ref MemoryMarshal.GetReference(padded);
        function.Invoke(TV.Load(ref t, 0)).Store(ref t, 0);
        padded[..x.Length].CopyTo(y);
    }

    /// <summary>Applies the double-precision form of <paramref name="function"/>.</summary>
    public static void Map<TF>(TF function, ReadOnlySpan<double> x, Span<double> y) where TF : struct, IFloatFunction
    {
        if (x.Length != y.Length) throw new ArgumentException("The spans differ in length.", nameof(y));
        for (int i = 0; i < x.Length; i++) y[i] = function.Invoke(x[i]);
    }

    /// <summary>Applies <paramref name="function"/> to float16 values widened to float, rounding back ties to even.</summary>
    public static void Map<TF>(TF function, ReadOnlySpan<Half> x, Span<Half> y) where TF : struct, IFloatFunction =>
        ThroughFloat(new FunctionInPlace<TF>(function), x, y);

    /// <summary>Applies <paramref name="function"/> to bfloat16 values widened to float, rounding back ties to even.</summary>
    public static void Map<TF>(TF function, ReadOnlySpan<BFloat16> x, Span<BFloat16> y) where TF : struct, IFloatFunction =>
        ThroughFloat(new FunctionInPlace<TF>(function), x, y);

    /// <summary>Applies a numeric function with portable-width vectors and a scalar tail.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Map<T, TF>(TF function, ReadOnlySpan<T> x, Span<T> y)
        where T : unmanaged, INumber<T> where TF : struct, INumericFunction<T>
    {
        if (x.Length != y.Length) throw new ArgumentException("The spans differ in length.", nameof(y));
        ref T xs = ref MemoryMarshal.GetReference(x);
        ref T ys = ref MemoryMarshal.GetReference(y);
        int n = x.Length, i = 0;
        if (Vector.IsHardwareAccelerated)
            for (; i <= n - Vector<T>.Count; i += Vector<T>.Count)
                function.Invoke(Vector.LoadUnsafe(ref xs, (nuint)i)).StoreUnsafe(ref ys, (nuint)i);
        for (; i < n; i++) Unsafe.Add(ref ys, i) = function.Invoke(Unsafe.Add(ref xs, i));
    }

    /// <summary>A float16 kernel that widens to float, applies <paramref name="map"/> and rounds back (ties to even).</summary>
    public static SpanMap<Half, Half> ForFloat16(SpanMap<float, float> map) => (x, y) => ThroughFloat(new DelegateInPlace(map), x, y);

    /// <summary>A bfloat16 kernel that widens to float, applies <paramref name="map"/> and rounds back (ties to even).</summary>
    public static SpanMap<BFloat16, BFloat16> ForBFloat16(SpanMap<float, float> map) => (x, y) => ThroughFloat(new DelegateInPlace(map), x, y);

    /// <summary>A float16 kernel with a result of another type, computed on the input widened to float.</summary>
    public static SpanMap<Half, TOut> ForFloat16To<TOut>(SpanMap<float, TOut> map) => (x, y) =>
    {
        Span<float> buffer = stackalloc float[ChunkSize];
        for (int i = 0; i < x.Length; i += ChunkSize)
        {
            int count = Math.Min(ChunkSize, x.Length - i);
            var chunk = buffer[..count];
            FloatConversions.ToSingle(x.Slice(i, count), chunk);
            map(chunk, y.Slice(i, count));
        }
    };

    /// <summary>A bfloat16 kernel with a result of another type, computed on the input widened to float.</summary>
    public static SpanMap<BFloat16, TOut> ForBFloat16To<TOut>(SpanMap<float, TOut> map) => (x, y) =>
    {
        Span<float> buffer = stackalloc float[ChunkSize];
        for (int i = 0; i < x.Length; i += ChunkSize)
        {
            int count = Math.Min(ChunkSize, x.Length - i);
            var chunk = buffer[..count];
            FloatConversions.ToSingle(x.Slice(i, count), chunk);
            map(chunk, y.Slice(i, count));
        }
    };

    private static void ThroughFloat<TOp>(TOp op, ReadOnlySpan<Half> x, Span<Half> y) where TOp : struct, IInPlace
    {
        if (x.Length != y.Length) throw new ArgumentException("The spans differ in length.", nameof(y));
        Span<float> buffer = stackalloc float[ChunkSize];
        for (int i = 0; i < x.Length; i += ChunkSize)
        {
            int count = Math.Min(ChunkSize, x.Length - i);
            var chunk = buffer[..count];
            FloatConversions.ToSingle(x.Slice(i, count), chunk);
            op.Apply(chunk);
            FloatConversions.ToHalf(chunk, y.Slice(i, count));
        }
    }

    private static void ThroughFloat<TOp>(TOp op, ReadOnlySpan<BFloat16> x, Span<BFloat16> y) where TOp : struct, IInPlace
    {
        if (x.Length != y.Length) throw new ArgumentException("The spans differ in length.", nameof(y));
        Span<float> buffer = stackalloc float[ChunkSize];
        for (int i = 0; i < x.Length; i += ChunkSize)
        {
            int count = Math.Min(ChunkSize, x.Length - i);
            var chunk = buffer[..count];
            FloatConversions.ToSingle(x.Slice(i, count), chunk);
            op.Apply(chunk);
            FloatConversions.ToBFloat16(chunk, y.Slice(i, count));
        }
    }

    /// <summary>A float computation done in place on a buffer.</summary>
    private interface IInPlace
    {
        void Apply(Span<float> values);
    }

    private readonly struct FunctionInPlace<TF>(TF function) : IInPlace where TF : struct, IFloatFunction
    {
        public void Apply(Span<float> values) => Map(function, values, values);
    }

    private readonly struct DelegateInPlace(SpanMap<float, float> map) : IInPlace
    {
        public void Apply(Span<float> values) => map(values, values);
    }
}
