namespace Squash.Runtime;

/// <summary>Arithmetic on tensor shapes (arrays of dimensions, outermost first; -1 marks an unknown dimension).</summary>
public static class Shapes
{
    /// <summary>The largest element count a tensor may have.</summary>
    public const long MaxElements = int.MaxValue;

    /// <summary>The most dimensions a tensor may have: NumPy's limit. Real models stay far below; a hostile one that
    /// declares 130 000 Unsqueeze axes would otherwise make every pass walk shapes of that rank.</summary>
    public const int MaxRank = 64;

    /// <summary>Product of the dimensions, checked against <see cref="MaxElements"/>.</summary>
    /// <exception cref="ArgumentException">A dimension is negative or unknown, or the product is too large.</exception>
    public static long ElementCount(ReadOnlySpan<int> shape)
    {
        long count = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"Shape {Format(shape)} has a negative or unknown dimension.");
            count *= d;
            if (count > MaxElements) throw new ArgumentException($"Shape {Format(shape)} has more than {MaxElements} elements.");
        }
        return count;
    }

    /// <summary>Product of the dimensions, or false when a dimension is unknown or the product exceeds
    /// <see cref="MaxElements"/> (for sizes that come from a model, where an exception would be a crash).</summary>
    public static bool TryElementCount(ReadOnlySpan<int> shape, out long count)
    {
        count = 1;
        foreach (int d in shape)
        {
            if (d < 0) return false;
            count *= d;
            if (count > MaxElements) return false; // as ElementCount: refused even if a later dimension is 0
        }
        return true;
    }

    /// <summary>True when every dimension is known (non-negative).</summary>
    public static bool IsKnown(ReadOnlySpan<int> shape)
    {
        foreach (int d in shape) if (d < 0) return false;
        return true;
    }

    /// <summary>Row-major strides in elements.</summary>
    public static int[] Strides(ReadOnlySpan<int> shape)
    {
        var strides = new int[shape.Length];
        int s = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            strides[i] = s;
            s *= shape[i];
        }
        return strides;
    }

    /// <summary>Product of dimensions [start, end).</summary>
    public static int Product(ReadOnlySpan<int> shape, int start, int end)
    {
        int p = 1;
        for (int i = start; i < end; i++) p *= shape[i];
        return p;
    }

    /// <summary>Normalizes a possibly negative axis for a tensor of <paramref name="rank"/> dimensions.</summary>
    /// <exception cref="ArgumentException">The axis is out of range.</exception>
    public static int NormalizeAxis(long axis, int rank)
    {
        long a = axis < 0 ? axis + rank : axis;
        if (a < 0 || a >= Math.Max(rank, 1) && !(rank == 0 && a == 0))
            throw new ArgumentException($"Axis {axis} is out of range for rank {rank}.");
        return (int)a;
    }

    /// <summary>Multidirectional (NumPy) broadcasting of two shapes; unknown dimensions stay unknown.</summary>
    /// <exception cref="ArgumentException">The shapes cannot be broadcast together.</exception>
    public static int[] Broadcast(ReadOnlySpan<int> a, ReadOnlySpan<int> b)
    {
        int rank = Math.Max(a.Length, b.Length);
        var result = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int da = i < rank - a.Length ? 1 : a[i - (rank - a.Length)];
            int db = i < rank - b.Length ? 1 : b[i - (rank - b.Length)];
            if (da == db) result[i] = da;
            else if (da == 1) result[i] = db;
            else if (db == 1) result[i] = da;
            else if (da < 0) result[i] = db;
            else if (db < 0) result[i] = da;
            else throw new ArgumentException($"Shapes {Format(a)} and {Format(b)} cannot be broadcast together.");
        }
        return result;
    }

    /// <summary>Formats a shape as <c>[1,3,224,224]</c>, with <c>?</c> for unknown dimensions.</summary>
    public static string Format(ReadOnlySpan<int> shape)
    {
        // Messages stay readable for absurd ranks: the first dimensions, then the rank.
        const int MaxShown = 32;
        int shown = Math.Min(shape.Length, MaxShown);
        var parts = new string[shown];
        for (int i = 0; i < shown; i++) parts[i] = shape[i] < 0 ? "?" : shape[i].ToString(System.Globalization.CultureInfo.InvariantCulture);
        string more = shape.Length > MaxShown ? $",... ({shape.Length} dimensions)" : "";
        return "[" + string.Join(",", parts) + more + "]";
    }

    /// <summary>True when both shapes have the same rank and dimensions.</summary>
    public static bool Equal(ReadOnlySpan<int> a, ReadOnlySpan<int> b) => a.SequenceEqual(b);
}
