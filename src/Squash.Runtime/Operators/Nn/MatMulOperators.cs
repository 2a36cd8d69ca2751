using System.Numerics;
using Squash.Runtime.Ir;
using Squash.Runtime.Kernels;

namespace Squash.Runtime.Operators;

/// <summary>Matrix products: MatMul, Gemm, Einsum.</summary>
internal static class MatMulOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        registry.Add("MatMul", n => new MatMulOperator(n), minOpset: 1);
        registry.Add("Gemm", n => new GemmOperator(n), minOpset: 7);
        registry.Add("Einsum", n => new EinsumOperator(n), minOpset: 12);
    }

    /// <summary>True for the element types the products support: fp32 natively, float16 and bfloat16 through fp32,
    /// double and 32/64-bit integers exactly.</summary>
    public static bool IsSupported(DataType type) => type is DataType.Float or DataType.Float16 or DataType.BFloat16
        or DataType.Double or DataType.Int32 or DataType.Int64 or DataType.UInt32 or DataType.UInt64;

    /// <summary>An exception for an unsupported element type.</summary>
    public static SquashException UnsupportedType(Node node, DataType type) =>
        new(ErrorCodes.UnsupportedDataType,
            $"{node.Describe()}: {node.OpType} of {DataTypes.Name(type)} is not supported (float, float16, bfloat16, double, int32, int64, uint32 and uint64 are).",
            node.Name);

    /// <summary>Stores a constant operand packed on first use, unless another thread got there first (a race packs
    /// twice and keeps one); returns the stored one. Use as <c>Volatile.Read(ref slot) ?? Publish(ref slot, Pack(...))</c>.</summary>
    public static PackedMatrix Publish(ref PackedMatrix? slot, PackedMatrix packed) =>
        Interlocked.CompareExchange(ref slot, packed, null) ?? packed;
}

/// <summary>
/// NumPy matmul: <c>Y = A x B</c> over the last two axes, batch axes broadcast, a 1-D A taken as a row and a 1-D B as
/// a column (and their unit axis dropped from Y). A constant 2-D B (a weight) is packed once. With
/// fused, com.squash FusedMatMul: <c>Y = A x B + bias</c> (input 2, [N], optional) followed by
/// <see cref="FusedOutput"/>'s steps, B of rank 2 or more, fp32.
/// </summary>
internal sealed class MatMulOperator : Operator
{
    private static readonly long[] s_firstMatrix = [0];
    private readonly FusedOutput? _fused;
    private PackedMatrix? _packedB;
    private Layout? _layout;

    /// <summary>What Run derives from the operand shapes, kept for the last pair of shapes so that a run allocates nothing.</summary>
    private sealed record Layout(int[] A, int[] B, bool BIsMatrix, bool ABatchIsOutput, long[] AOffsets, long[] BOffsets);

    public MatMulOperator(Node node, bool fused = false) : base(node)
    {
        _fused = fused ? new FusedOutput(node, Attributes) : null;
    }

    public override void InferOutputs(InferenceContext context)
    {
        var type = context.InputType(0);
        if (!MatMulOperators.IsSupported(type)) throw MatMulOperators.UnsupportedType(Node, type);
        if (context.InputType(1) != type)
            throw Invalid($"B is {DataTypes.Name(context.InputType(1))} but A is {DataTypes.Name(type)}; they must match.");
        var a = context.InputShape(0);
        var b = context.InputShape(1);
        var output = a is null || b is null ? null : OutputShape(a, b);
        if (_fused is not null)
        {
            if (b is { Length: < 2 }) throw Invalid($"B must have at least two dimensions, not {Shapes.Format(b)}.");
            _fused.Check(context, type, output, output is null ? 0 : output.Length - 1);
            if (context.HasInput(2) && context.InputShape(2) is { } bias && output is { Length: > 0 } && output[^1] >= 0
                && Shapes.IsKnown(bias) && (bias.Length != 1 || bias[0] != output[^1]))
                throw Invalid($"the bias {Shapes.Format(bias)} must hold one value per column ([{output[^1]}]).");
        }
        context.SetOutput(0, type, output);
    }

    private int[] OutputShape(int[] a, int[] b)
    {
        if (a.Length == 0 || b.Length == 0) throw Invalid("MatMul needs operands of at least one dimension, not scalars.");
        int ka = a[^1], kb = b.Length == 1 ? b[0] : b[^2];
        if (ka >= 0 && kb >= 0 && ka != kb)
            throw Invalid($"A {Shapes.Format(a)} and B {Shapes.Format(b)} do not agree on the shared dimension ({ka} and {kb}).");
        int[] batch;
        try
        {
            batch = Shapes.Broadcast(a.Length > 2 ? a[..^2] : [], b.Length > 2 ? b[..^2] : []);
        }
        catch (ArgumentException e)
        {
            throw Invalid($"the batch dimensions of A {Shapes.Format(a)} and B {Shapes.Format(b)} cannot be broadcast: {e.Message}");
        }
        var shape = new List<int>(batch);
        if (a.Length > 1) shape.Add(a[^2]);
        if (b.Length > 1) shape.Add(b[^1]);
        return [.. shape];
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var a = Required(inputs, 0);
        var b = Required(inputs, 1);
        var y = outputs[0];
        int m = a.Rank == 1 ? 1 : a.Shape[^2], k = a.Shape[^1], n = b.Rank == 1 ? 1 : b.Shape[^1];
        var layout = Volatile.Read(ref _layout);
        if (layout is null || !Shapes.Equal(layout.A, a.Shape) || !Shapes.Equal(layout.B, b.Shape))
        {
            var shape = OutputShape(a.Shape, b.Shape);
            int[] aBatch = a.Rank > 2 ? a.Shape[..^2] : [], bBatch = b.Rank > 2 ? b.Shape[..^2] : [];
            int[] outBatch = shape[..Math.Max(0, shape.Length - (a.Rank > 1 ? 1 : 0) - (b.Rank > 1 ? 1 : 0))];
            layout = new Layout((int[])a.Shape.Clone(), (int[])b.Shape.Clone(), Array.TrueForAll(bBatch, d => d == 1),
                Shapes.Equal(aBatch, outBatch), BatchedGemm.Offsets(outBatch, aBatch, (long)m * k), BatchedGemm.Offsets(outBatch, bBatch, (long)k * n));
            Volatile.Write(ref _layout, layout);
        }
        var (aOffsets, bOffsets) = (layout.AOffsets, layout.BOffsets);
        switch (a.DataType)
        {
            case DataType.Float:
                var epilogue = new GemmEpilogue();
                if (_fused is not null)
                {
                    var bias = Optional(inputs, 2);
                    if (bias is not null && bias.ElementCount != n) throw Invalid($"the bias has {bias.ElementCount} values for {n} columns.");
                    epilogue = _fused.Complete(new GemmEpilogue { ColumnBias = bias is null ? [] : bias.AsSpan<float>() }, inputs, y, n, channelsAreRows: false);
                }
                Multiply(context, m, n, k, a.AsSpan<float>(), layout, b, y.AsSpan<float>(), epilogue);
                break;
            case DataType.Float16 or DataType.BFloat16:
                var result = new float[y.ElementCount];
                var bFloat = Tensor.From<float>(HalfPrecision.ToSingle(b), b.Shape);
                Multiply(context, m, n, k, HalfPrecision.ToSingle(a), layout, bFloat, result, new GemmEpilogue());
                HalfPrecision.FromSingle(result, y);
                break;
            case DataType.Double: Generic<double>(m, n, k, a, aOffsets, b, bOffsets, y); break;
            case DataType.Int32: Generic<int>(m, n, k, a, aOffsets, b, bOffsets, y); break;
            case DataType.Int64: Generic<long>(m, n, k, a, aOffsets, b, bOffsets, y); break;
            case DataType.UInt32: Generic<uint>(m, n, k, a, aOffsets, b, bOffsets, y); break;
            case DataType.UInt64: Generic<ulong>(m, n, k, a, aOffsets, b, bOffsets, y); break;
            default: throw MatMulOperators.UnsupportedType(Node, a.DataType);
        }
    }

    private void Multiply(KernelContext context, int m, int n, int k, ReadOnlySpan<float> a, Layout layout, Tensor bTensor, Span<float> y,
        in GemmEpilogue epilogue)
    {
        var b = bTensor.AsSpan<float>();
        var (aOffsets, bOffsets, bIsMatrix) = (layout.AOffsets, layout.BOffsets, layout.BIsMatrix);
        if (n == 1)
        {
            // A matrix-vector product: as y^T = b^T x A^T the long dimension M becomes the tile's columns instead of
            // a single column padded to the tile width.
            BatchedGemm.Multiply(context, 1, m, k, b, bOffsets, k, false, a, aOffsets, k, true, null, y, epilogue.Transposed());
            return;
        }
        PackedMatrix? packed = null;
        if (bIsMatrix && ReferenceEquals(Node.Input(1)?.Constant, bTensor))
            packed = Volatile.Read(ref _packedB) ?? MatMulOperators.Publish(ref _packedB, PackedMatrix.PackRight(b, n, false, k, n));
        if (bIsMatrix && layout.ABatchIsOutput)
        {
            // One weight for every batch and A not broadcast: the batches are consecutive rows of one product.
            int rows = aOffsets.Length * m;
            BatchedGemm.Multiply(context, rows, n, k, a, s_firstMatrix, k, false, b, s_firstMatrix, n, false, packed, y, epilogue);
            return;
        }
        BatchedGemm.Multiply(context, m, n, k, a, aOffsets, k, false, b, bOffsets, n, false, packed, y, epilogue);
    }

    private static void Generic<T>(int m, int n, int k, Tensor a, long[] aOffsets, Tensor b, long[] bOffsets, Tensor y)
        where T : unmanaged, INumber<T>
    {
        var av = a.AsSpan<T>();
        var bv = b.AsSpan<T>();
        var yv = y.AsSpan<T>();
        for (int i = 0; i < aOffsets.Length; i++)
            GenericGemm.Multiply(false, false, m, n, k, av[(int)aOffsets[i]..], k, bv[(int)bOffsets[i]..], n, yv.Slice(i * m * n, m * n), n);
    }
}

/// <summary>
/// <c>Y = alpha * op(A) x op(B) + beta * C</c> for 2-D A and B, C broadcast to [M, N] (unidirectionally). A bias row
/// ([N] or [1, N]) or column ([M, 1]) with beta 1 is fused into the GEMM's store; a constant B (or A) is packed once.
/// Fused (com.squash FusedGemm, fp32): the same followed by <see cref="FusedOutput"/>'s steps, channels being columns.
/// </summary>
internal sealed class GemmOperator : Operator
{
    private readonly FusedOutput? _fused;
    private readonly float _alpha;
    private readonly float _beta;
    private readonly bool _transA;
    private readonly bool _transB;
    private PackedMatrix? _packedA;
    private PackedMatrix? _packedB;

    public GemmOperator(Node node, bool fused = false) : base(node)
    {
        _alpha = Attributes.Float("alpha", 1);
        _beta = Attributes.Float("beta", 1);
        _transA = Attributes.Int("transA", 0) != 0;
        _transB = Attributes.Int("transB", 0) != 0;
        _fused = fused ? new FusedOutput(node, Attributes) : null;
    }

    public override void InferOutputs(InferenceContext context)
    {
        var type = context.InputType(0);
        if (!MatMulOperators.IsSupported(type)) throw MatMulOperators.UnsupportedType(Node, type);
        for (int i = 1; i < 3; i++)
            if (context.HasInput(i) && context.InputType(i) != type)
                throw Invalid($"input {i} is {DataTypes.Name(context.InputType(i))} but A is {DataTypes.Name(type)}; they must match.");
        var a = context.InputShape(0);
        var b = context.InputShape(1);
        if (a is not null && a.Length != 2) throw Invalid($"A must be 2-D, not {Shapes.Format(a)}.");
        if (b is not null && b.Length != 2) throw Invalid($"B must be 2-D, not {Shapes.Format(b)}.");
        int m = a is null ? -1 : a[_transA ? 1 : 0], ka = a is null ? -1 : a[_transA ? 0 : 1];
        int n = b is null ? -1 : b[_transB ? 0 : 1], kb = b is null ? -1 : b[_transB ? 1 : 0];
        if (ka >= 0 && kb >= 0 && ka != kb)
            throw Invalid($"op(A) {Shapes.Format(a)} and op(B) {Shapes.Format(b)} do not agree on the shared dimension ({ka} and {kb}).");
        if (context.HasInput(2) && context.InputShape(2) is { } c) CheckBias(c, m, n);
        _fused?.Check(context, type, [m, n], channelAxis: 1);
        context.SetOutput(0, type, [m, n]);
    }

    /// <summary>C must broadcast unidirectionally to [M, N].</summary>
    private void CheckBias(int[] c, int m, int n)
    {
        bool ok = c.Length <= 2;
        if (ok && c.Length >= 1) ok = c[^1] is 1 or < 0 || n < 0 || c[^1] == n;
        if (ok && c.Length == 2) ok = c[0] is 1 or < 0 || m < 0 || c[0] == m;
        if (!ok) throw Invalid($"C {Shapes.Format(c)} cannot be broadcast to the output [{m},{n}].");
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var a = Required(inputs, 0);
        var b = Required(inputs, 1);
        var c = Optional(inputs, 2);
        var y = outputs[0];
        int m = y.Shape[0], n = y.Shape[1], k = a.Shape[_transA ? 0 : 1];
        if (c is not null) CheckBias(c.Shape, m, n);
        if (a.DataType == DataType.Float)
        {
            Multiply(context, m, n, k, a.AsSpan<float>(), b.AsSpan<float>(), c, y.AsSpan<float>(),
                ReferenceEquals(Node.Input(0)?.Constant, a), ReferenceEquals(Node.Input(1)?.Constant, b), inputs, y);
            return;
        }
        if (HalfPrecision.IsHalf(a.DataType))
        {
            var result = new float[y.ElementCount];
            var cFloat = c is null ? null : Tensor.From<float>(HalfPrecision.ToSingle(c), c.Shape);
            Multiply(context, m, n, k, HalfPrecision.ToSingle(a), HalfPrecision.ToSingle(b), cFloat, result, false, false, [], null);
            HalfPrecision.FromSingle(result, y);
            return;
        }
        switch (a.DataType)
        {
            case DataType.Double: Generic<double>(m, n, k, a, b, c, y); break;
            case DataType.Int32: Generic<int>(m, n, k, a, b, c, y); break;
            case DataType.Int64: Generic<long>(m, n, k, a, b, c, y); break;
            case DataType.UInt32: Generic<uint>(m, n, k, a, b, c, y); break;
            case DataType.UInt64: Generic<ulong>(m, n, k, a, b, c, y); break;
            default: throw MatMulOperators.UnsupportedType(Node, a.DataType);
        }
    }

    /// <summary>The fp32 product; <paramref name="inputs"/> and <paramref name="output"/> give the fused steps' inputs
    /// (for a fused node, whose output is then fp32).</summary>
    private void Multiply(KernelContext context, int m, int n, int k, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Tensor? c,
        Span<float> y, bool aIsConstant, bool bIsConstant, ReadOnlySpan<Tensor?> inputs, Tensor? output)
    {
        int lda = _transA ? m : k, ldb = _transB ? k : n;
        ReadOnlySpan<float> rowBias = [], columnBias = [];
        float beta = 0;
        if (c is not null && _beta != 0)
        {
            var cv = c.AsSpan<float>();
            // A bias vector with beta 1 is added in the GEMM's store; anything else is broadcast into Y first.
            if (_beta == 1 && c.ElementCount == n && n > 1 && c.Shape[^1] == n) columnBias = cv;
            else if (_beta == 1 && c.Rank == 2 && c.Shape[1] == 1 && c.Shape[0] == m && m > 1) rowBias = cv;
            else
            {
                Broadcast(cv, c.Shape, y, m, n);
                beta = _beta;
            }
        }
        var epilogue = new GemmEpilogue { Alpha = _alpha, Beta = beta, RowBias = rowBias, ColumnBias = columnBias };
        if (_fused is not null && output is not null) epilogue = _fused.Complete(epilogue, inputs, output, n, channelsAreRows: false);
        if (bIsConstant)
        {
            var packed = Volatile.Read(ref _packedB) ?? MatMulOperators.Publish(ref _packedB, PackedMatrix.PackRight(b, ldb, _transB, k, n));
            Gemm.Multiply(context, _transA, m, a, lda, packed, y, n, epilogue);
        }
        else if (aIsConstant)
        {
            var packed = Volatile.Read(ref _packedA) ?? MatMulOperators.Publish(ref _packedA, PackedMatrix.PackLeft(a, lda, _transA, m, k));
            Gemm.Multiply(context, packed, _transB, n, b, ldb, y, n, epilogue);
        }
        else
        {
            Gemm.Multiply(context, _transA, _transB, m, n, k, a, lda, b, ldb, y, n, epilogue);
        }
    }

    private void Generic<T>(int m, int n, int k, Tensor a, Tensor b, Tensor? c, Tensor y)
        where T : unmanaged, INumber<T>
    {
        var yv = y.AsSpan<T>();
        GenericGemm.Multiply(_transA, _transB, m, n, k, a.AsSpan<T>(), _transA ? m : k, b.AsSpan<T>(), _transB ? k : n, yv, n);
        if (_alpha == 1 && (c is null || _beta == 0)) return;
        var bias = new T[m * n];
        if (c is not null) Broadcast(c.AsSpan<T>(), c.Shape, bias, m, n);
        if (_alpha == 1 && _beta == 1)
        {
            for (int i = 0; i < yv.Length; i++) yv[i] += bias[i];
            return;
        }
        // Scaled in double, then converted back (truncating toward zero for integers).
        for (int i = 0; i < yv.Length; i++)
            yv[i] = T.CreateTruncating(_alpha * double.CreateTruncating(yv[i]) + (c is null ? 0 : _beta * double.CreateTruncating(bias[i])));
    }

    /// <summary>Writes C broadcast to [m, n] into <paramref name="y"/>.</summary>
    private static void Broadcast<T>(ReadOnlySpan<T> c, int[] shape, Span<T> y, int m, int n)
    {
        int rows = shape.Length == 2 ? shape[0] : 1, cols = shape.Length >= 1 ? shape[^1] : 1;
        for (int i = 0; i < m; i++)
        {
            var row = y.Slice(i * n, n);
            var source = c.Slice((rows == 1 ? 0 : i) * cols, cols);
            if (cols == 1) row.Fill(source[0]);
            else source.CopyTo(row);
        }
    }
}

/// <summary>
/// Einstein summation over any number of operands, with implicit and explicit outputs, ellipses (broadcast) and
/// repeated labels (diagonals). Two fp32 operands without diagonals or private summed labels run as a batched GEMM
/// (batch labels, then free labels of each side, summed labels shared); everything else runs a direct loop over
/// the labels.
/// </summary>
internal sealed class EinsumOperator : Operator
{
    /// <summary>Label ids of broadcast (ellipsis) axes start here; letters are their character codes.</summary>
    private const int EllipsisLabel = 256;

    /// <summary>Per operand, its labels in axis order, with -1 where the ellipsis stands.</summary>
    private readonly int[][] _terms;

    /// <summary>The output's labels (-1 for the ellipsis), or null for the implicit output.</summary>
    private readonly int[]? _output;

    public EinsumOperator(Node node) : base(node)
    {
        string equation = Attributes.String("equation", "");
        string compact = equation.Replace(" ", "", StringComparison.Ordinal);
        int arrow = compact.IndexOf("->", StringComparison.Ordinal);
        string left = arrow < 0 ? compact : compact[..arrow];
        _terms = left.Split(',').Select(t => ParseTerm(t, equation)).ToArray();
        _output = arrow < 0 ? null : ParseTerm(compact[(arrow + 2)..], equation);
        if (_output is not null && _output.Distinct().Count() != _output.Length)
            throw Invalid($"the output of equation '{equation}' repeats a label.");
    }

    private int[] ParseTerm(string term, string equation)
    {
        var labels = new List<int>();
        for (int i = 0; i < term.Length; i++)
        {
            char ch = term[i];
            if (char.IsAsciiLetter(ch)) labels.Add(ch);
            else if (ch == '.' && term.AsSpan(i).StartsWith("...") && !labels.Contains(-1))
            {
                labels.Add(-1);
                i += 2;
            }
            else throw Invalid($"equation '{equation}' is malformed at '{term}': terms hold letters and at most one '...'.");
        }
        return [.. labels];
    }

    /// <summary>The labels of every axis, each label's size, and the output's labels, for operand shapes.</summary>
    private sealed record Plan(int[][] Axes, Dictionary<int, int> Sizes, int[] Output)
    {
        public int[] OutputShape => Output.Select(l => Sizes[l]).ToArray();
    }

    private Plan Resolve(int[][] shapes)
    {
        if (shapes.Length != _terms.Length)
            throw Invalid($"the equation has {_terms.Length} operands but the node has {shapes.Length} inputs.");
        int broadcastRank = 0;
        var ellipsisRanks = new int[shapes.Length];
        for (int i = 0; i < shapes.Length; i++)
        {
            int letters = _terms[i].Count(l => l >= 0);
            bool hasEllipsis = letters != _terms[i].Length;
            ellipsisRanks[i] = shapes[i].Length - letters;
            if (ellipsisRanks[i] < 0 || (!hasEllipsis && ellipsisRanks[i] != 0))
                throw Invalid($"operand {i} has shape {Shapes.Format(shapes[i])}, which does not match its term of {_terms[i].Length} labels.");
            broadcastRank = Math.Max(broadcastRank, ellipsisRanks[i]);
        }
        var axes = new int[shapes.Length][];
        var sizes = new Dictionary<int, int>();
        for (int i = 0; i < shapes.Length; i++)
        {
            axes[i] = new int[shapes[i].Length];
            int axis = 0;
            foreach (int label in _terms[i])
            {
                if (label >= 0)
                {
                    axes[i][axis] = label;
                    Merge(sizes, label, shapes[i][axis++], broadcast: false);
                    continue;
                }
                // Ellipsis axes are right-aligned across operands, like NumPy broadcasting.
                for (int t = 0; t < ellipsisRanks[i]; t++)
                {
                    int id = EllipsisLabel + broadcastRank - ellipsisRanks[i] + t;
                    axes[i][axis] = id;
                    Merge(sizes, id, shapes[i][axis++], broadcast: true);
                }
            }
        }
        int[] output;
        if (_output is null)
        {
            // Implicit output: the broadcast axes, then the letters used once, alphabetically.
            var counts = _terms.SelectMany(t => t).Where(l => l >= 0).GroupBy(l => l).Where(g => g.Count() == 1).Select(g => g.Key).Order();
            output = [.. Enumerable.Range(EllipsisLabel, broadcastRank), .. counts];
        }
        else
        {
            output = _output.SelectMany(l => l >= 0 ? [l] : Enumerable.Range(EllipsisLabel, broadcastRank)).ToArray();
            foreach (int label in output)
                if (!sizes.ContainsKey(label))
                    throw Invalid($"output label '{(char)label}' does not appear in any operand.");
        }
        for (int l = EllipsisLabel; l < EllipsisLabel + broadcastRank; l++) sizes.TryAdd(l, 1);
        return new Plan(axes, sizes, output);
    }

    /// <summary>Records that <paramref name="label"/> has <paramref name="size"/> (-1 when unknown) on one more axis.
    /// Broadcast (ellipsis) axes of size 1 stretch to the others.</summary>
    private void Merge(Dictionary<int, int> sizes, int label, int size, bool broadcast)
    {
        if (!sizes.TryGetValue(label, out int known) || known == size)
        {
            sizes[label] = size;
            return;
        }
        if (broadcast && size == 1) return;
        if (broadcast && known == 1)
        {
            sizes[label] = size;
            return;
        }
        if (known < 0 || size < 0)
        {
            // An unknown size must equal the known one (or be 1 where broadcasting, which keeps the known one).
            sizes[label] = Math.Max(known, size);
            return;
        }
        throw Invalid($"label {(label >= EllipsisLabel ? "'...'" : $"'{(char)label}'")} has sizes {known} and {size}, which do not match.");
    }

    public override void InferOutputs(InferenceContext context)
    {
        var type = context.InputType(0);
        if (!MatMulOperators.IsSupported(type)) throw MatMulOperators.UnsupportedType(Node, type);
        var shapes = new int[Node.Inputs.Count][];
        for (int i = 0; i < shapes.Length; i++)
        {
            if (context.InputType(i) != type)
                throw Invalid($"input {i} is {DataTypes.Name(context.InputType(i))} but input 0 is {DataTypes.Name(type)}; they must match.");
            if (context.InputShape(i) is not { } shape)
            {
                context.SetOutput(0, type, null);
                return;
            }
            shapes[i] = shape;
        }
        context.SetOutput(0, type, Resolve(shapes).OutputShape);
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var operands = new Tensor[Node.Inputs.Count];
        for (int i = 0; i < operands.Length; i++) operands[i] = Required(inputs, i);
        var plan = Resolve(operands.Select(t => t.Shape).ToArray());
        var y = outputs[0];
        switch (y.DataType)
        {
            case DataType.Float:
                if (!TryBatchedGemm(context, plan, operands, y.AsSpan<float>())) Direct<float>(plan, operands, y);
                break;
            case DataType.Float16 or DataType.BFloat16:
                var staged = operands.Select(t => Tensor.From<float>(HalfPrecision.ToSingle(t), t.Shape)).ToArray();
                var result = new Tensor(DataType.Float, y.Shape);
                if (!TryBatchedGemm(context, plan, staged, result.AsSpan<float>())) Direct<float>(plan, staged, result);
                HalfPrecision.FromSingle(result.AsSpan<float>(), y);
                break;
            case DataType.Double: Direct<double>(plan, operands, y); break;
            case DataType.Int32: Direct<int>(plan, operands, y); break;
            case DataType.Int64: Direct<long>(plan, operands, y); break;
            case DataType.UInt32: Direct<uint>(plan, operands, y); break;
            case DataType.UInt64: Direct<ulong>(plan, operands, y); break;
            default: throw MatMulOperators.UnsupportedType(Node, y.DataType);
        }
    }

    /// <summary>
    /// Two operands as <c>Y[batch, m, n] = A[batch, m, k] x B[batch, k, n]</c> after permuting the axes of each into
    /// those groups; false when a label repeats within an operand, is summed in only one operand, or is broadcast.
    /// </summary>
    private static bool TryBatchedGemm(KernelContext context, Plan plan, Tensor[] operands, Span<float> y)
    {
        if (operands.Length != 2) return false;
        int[] a = plan.Axes[0], b = plan.Axes[1], output = plan.Output;
        if (a.Distinct().Count() != a.Length || b.Distinct().Count() != b.Length) return false;
        for (int i = 0; i < a.Length; i++) if (operands[0].Shape[i] != plan.Sizes[a[i]]) return false;
        for (int i = 0; i < b.Length; i++) if (operands[1].Shape[i] != plan.Sizes[b[i]]) return false;
        if (a.Any(l => !b.Contains(l) && !output.Contains(l)) || b.Any(l => !a.Contains(l) && !output.Contains(l))) return false;
        int[] batch = output.Where(l => a.Contains(l) && b.Contains(l)).ToArray();
        int[] rows = output.Where(l => a.Contains(l) && !b.Contains(l)).ToArray();
        int[] cols = output.Where(l => b.Contains(l) && !a.Contains(l)).ToArray();
        int[] shared = a.Where(l => b.Contains(l) && !output.Contains(l)).ToArray();
        int Size(IEnumerable<int> labels) => labels.Aggregate(1, (p, l) => p * plan.Sizes[l]);
        int batchSize = Size(batch), m = Size(rows), n = Size(cols), k = Size(shared);
        var left = Arrange(operands[0], a, [.. batch, .. rows, .. shared]);
        var right = Arrange(operands[1], b, [.. batch, .. shared, .. cols]);
        int[] produced = [.. batch, .. rows, .. cols];
        bool inPlace = produced.SequenceEqual(output);
        var result = inPlace ? y : new float[y.Length];
        var aOffsets = new long[batchSize];
        var bOffsets = new long[batchSize];
        for (int i = 0; i < batchSize; i++)
        {
            aOffsets[i] = (long)i * m * k;
            bOffsets[i] = (long)i * k * n;
        }
        BatchedGemm.Multiply(context, m, n, k, left, aOffsets, k, false, right, bOffsets, n, false, null, result);
        if (!inPlace) Permute(result, produced.Select(l => plan.Sizes[l]).ToArray(), output.Select(l => Array.IndexOf(produced, l)).ToArray(), y);
        return true;
    }

    /// <summary>The operand's elements with its axes (labelled <paramref name="labels"/>) in the order <paramref name="order"/>.</summary>
    private static ReadOnlySpan<float> Arrange(Tensor operand, int[] labels, int[] order)
    {
        if (labels.SequenceEqual(order)) return operand.AsSpan<float>();
        var permuted = new float[operand.ElementCount];
        Permute(operand.AsSpan<float>(), operand.Shape, order.Select(l => Array.IndexOf(labels, l)).ToArray(), permuted);
        return permuted;
    }

    /// <summary><c>dst</c> = <c>src</c> (of <paramref name="shape"/>) with axis i of dst being axis perm[i] of src.</summary>
    private static void Permute(ReadOnlySpan<float> src, int[] shape, int[] perm, Span<float> dst)
    {
        int rank = shape.Length;
        var srcStrides = Shapes.Strides(shape);
        var dims = perm.Select(p => shape[p]).ToArray();
        var strides = perm.Select(p => srcStrides[p]).ToArray();
        Span<int> index = stackalloc int[rank];
        long offset = 0;
        for (int i = 0; i < dst.Length; i++)
        {
            dst[i] = src[(int)offset];
            for (int d = rank - 1; d >= 0; d--)
            {
                offset += strides[d];
                if (++index[d] < dims[d]) break;
                offset -= (long)strides[d] * dims[d];
                index[d] = 0;
            }
        }
    }

    /// <summary>
    /// The definition, directly: every output element is the sum, over all values of the labels missing from the
    /// output, of the product of the operands' elements at those labels (a repeated label selects a diagonal, a
    /// broadcast axis is read with stride 0).
    /// </summary>
    private static void Direct<T>(Plan plan, Tensor[] operands, Tensor output)
        where T : unmanaged, INumber<T>
    {
        var labels = plan.Output.Concat(plan.Axes.SelectMany(x => x).Distinct().Where(l => !plan.Output.Contains(l))).ToArray();
        int outRank = plan.Output.Length;
        var sizes = labels.Select(l => plan.Sizes[l]).ToArray();
        // strides[i][j]: how far operand i moves when label j advances (summed over repeated axes).
        var strides = new long[operands.Length][];
        for (int i = 0; i < operands.Length; i++)
        {
            strides[i] = new long[labels.Length];
            var axisStrides = Shapes.Strides(operands[i].Shape);
            for (int axis = 0; axis < plan.Axes[i].Length; axis++)
                if (operands[i].Shape[axis] != 1 || sizes[Array.IndexOf(labels, plan.Axes[i][axis])] == 1)
                    strides[i][Array.IndexOf(labels, plan.Axes[i][axis])] += axisStrides[axis];
        }
        var data = operands.Select(t => t.AsSpan<T>().ToArray()).ToArray();
        var y = output.AsSpan<T>();
        int sumCount = Shapes.Product(sizes, outRank, sizes.Length);
        var index = new int[labels.Length];
        var offsets = new long[operands.Length];
        for (int o = 0; o < y.Length; o++)
        {
            // Position of output element o, then a walk over the summed labels.
            for (int j = outRank - 1, rest = o; j >= 0; j--)
            {
                index[j] = rest % sizes[j];
                rest /= sizes[j];
            }
            for (int j = outRank; j < labels.Length; j++) index[j] = 0;
            for (int i = 0; i < operands.Length; i++)
            {
                long offset = 0;
                for (int j = 0; j < outRank; j++) offset += index[j] * strides[i][j];
                offsets[i] = offset;
            }
            T sum = T.Zero;
            for (int s = 0; s < sumCount; s++)
            {
                T product = T.One;
                for (int i = 0; i < operands.Length; i++) product *= data[i][offsets[i]];
                sum += product;
                for (int j = labels.Length - 1; j >= outRank; j--)
                {
                    for (int i = 0; i < operands.Length; i++) offsets[i] += strides[i][j];
                    if (++index[j] < sizes[j]) break;
                    for (int i = 0; i < operands.Length; i++) offsets[i] -= strides[i][j] * sizes[j];
                    index[j] = 0;
                }
            }
            y[o] = sum;
        }
    }
}
