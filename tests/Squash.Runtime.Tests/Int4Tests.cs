using Squash.Runtime.Kernels;

namespace Squash.Runtime.Tests;

/// <summary>
/// The int4 kernels (GEMV for one row, dequantize + GEMM for several, dequantization) against a double-precision
/// reference built from the layout's documented addressing (<see cref="Int4Layout.Locate"/>), for every instruction
/// set this machine runs.
/// </summary>
/// <remarks>Tolerance: 1e-5 relative to the sum of |x * w| terms plus 1e-6, a bound on fp32 rounding in any summation
/// order for K up to about a thousand (GemmTests uses the same); the dequantized weights themselves are exact
/// (scale * small integer, rounded once), so a wrong nibble, scale, zero point or column moves results far more.</remarks>
public sealed class Int4Tests
{
    /// <summary>A random int4 weight: codes, scales and zero points, packed by the test from the layout's addressing.</summary>
    private sealed class RandomWeight
    {
        public RandomWeight(int k, int n, int blockSize, bool symmetric, int seed)
        {
            Layout = new Int4Layout(k, n, blockSize);
            var rng = new Random(seed);
            Codes = new int[n, k];
            ScaleOf = new float[n, Layout.Blocks];
            ZeroOf = new int[n, Layout.Blocks];
            Data = new byte[Layout.DataBytes];
            Scales = new Half[Layout.ScaleCount];
            ZeroPoints = symmetric ? [] : new byte[Layout.ZeroPointBytes];
            // Padding: q = zero point (weight 0), scale 0 for padded columns.
            for (int col = 0; col < Layout.PaddedN; col++)
                for (int b = 0; b < Layout.Blocks; b++)
                {
                    int at = Layout.ScaleIndex(col, b);
                    int zero = symmetric ? 8 : (col < n ? rng.Next(16) : 8);
                    var scale = col < n ? (Half)(rng.NextDouble() * 0.2 + 0.01) : Half.Zero;
                    Scales[at] = scale;
                    if (!symmetric) ZeroPoints[at / 2] |= (byte)(zero << (4 * (at & 1)));
                    for (int e = 0; e < blockSize; e++)
                    {
                        int kk = b * blockSize + e;
                        int q = col < n && kk < k ? rng.Next(16) : zero;
                        var (index, high) = Layout.Locate(kk, col);
                        Data[index] |= (byte)(high ? q << 4 : q);
                        if (col < n && kk < k) Codes[col, kk] = q;
                    }
                    if (col < n)
                    {
                        ScaleOf[col, b] = (float)scale;
                        ZeroOf[col, b] = zero;
                    }
                }
        }

        public Int4Layout Layout { get; }
        public int[,] Codes { get; }
        public float[,] ScaleOf { get; }
        public int[,] ZeroOf { get; }
        public byte[] Data { get; }
        public Half[] Scales { get; }
        public byte[] ZeroPoints { get; }

        public Int4Weights Weights => new(Layout, Data, Scales, ZeroPoints);

        /// <summary>The dequantized weight as fp32 computes it: (q - zero point) * scale, rounded once.</summary>
        public float Weight(int k, int n) => (Codes[n, k] - ZeroOf[n, k / Layout.BlockSize]) * ScaleOf[n, k / Layout.BlockSize];
    }

    public static TheoryData<int, int, int, bool> Shapes => new()
    {
        { 96, 13, 32, true },
        { 96, 13, 32, false },
        { 70, 8, 32, true },     // a partial last block
        { 200, 21, 64, false },  // partial block, padded columns
        { 256, 64, 128, true },
        { 512, 6, 256, false },
        { 512, 300, 32, true },  // more than one parallel chunk of columns
        { 232, 9, 32, false },   // blocks of 32 four at a time, then a remainder of three (the int8 GEMV's two paths)
        { 384, 23, 32, false },  // whole fours of blocks: the int8 GEMV's two-group path, the last pair's columns padded
        { 128, 12, 32, true },   // three groups: a pair, then one group alone
        { 2304, 44, 32, false }, // K past 2048 (GEMM depth blocks of 288)
        { 400, 20, 32, true },   // GEMM depth blocks of 200: the second starts inside a block of 32
        { 640, 9, 128, false },  // depth blocks of 320 across blocks of 128
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Multiply_MatchesReference_EveryIsaRowCountAndThreadCount(int k, int n, int blockSize, bool symmetric)
    {
        var w = new RandomWeight(k, n, blockSize, symmetric, k * 31 + n * 7 + blockSize);
        var rng = new Random(5);
        var bias = RandomArray(rng, n);
        foreach (var isa in Enum.GetValues<Int4Isa>())
        {
            if (!Int4Gemv.IsSupported(isa)) continue;
            foreach (int m in new[] { 1, 5 })
                foreach (int threads in new[] { 1, 2 })
                    foreach (bool withBias in new[] { false, true })
                    {
                        var a = RandomArray(rng, m * k);
                        var c = new float[m * n];
                        c.AsSpan().Fill(float.NaN); // every output must be written
                        Int4MatMul.Multiply(new KernelContext(threads), isa, m, a, w.Weights, withBias ? bias : default, c);
                        for (int i = 0; i < m; i++)
                            for (int j = 0; j < n; j++)
                            {
                                double sum = withBias ? bias[j] : 0, abs = Math.Abs(sum);
                                for (int p = 0; p < k; p++)
                                {
                                    double t = (double)a[i * k + p] * w.Weight(p, j);
                                    sum += t;
                                    abs += Math.Abs(t);
                                }
                                double got = c[i * n + j];
                                Assert.True(Math.Abs(got - sum) <= 1e-5 * abs + 1e-6,
                                    $"{isa}, m={m}, threads={threads}, bias={withBias}: C[{i},{j}] = {got}, expected {sum}");
                            }
                    }
        }
    }

    /// <summary>K beyond 32K: a group's scales no longer fit the kernel's stack buffer and come from the pool. Bound
    /// 1e-4 relative to the sum of |terms|: fp32 sums over 32800 values (blocked, 16 lanes) in any order.</summary>
    [Fact]
    public void Multiply_VeryLongRows()
    {
        const int k = 32800, n = 6;
        var w = new RandomWeight(k, n, 32, symmetric: false, seed: 9);
        var rng = new Random(2);
        var a = RandomArray(rng, k);
        foreach (var isa in Enum.GetValues<Int4Isa>())
        {
            if (!Int4Gemv.IsSupported(isa)) continue;
            var c = new float[n];
            Int4MatMul.Multiply(new KernelContext(1), isa, 1, a, w.Weights, default, c);
            for (int j = 0; j < n; j++)
            {
                double sum = 0, abs = 0;
                for (int p = 0; p < k; p++)
                {
                    double t = (double)a[p] * w.Weight(p, j);
                    sum += t;
                    abs += Math.Abs(t);
                }
                Assert.True(Math.Abs(c[j] - sum) <= 1e-4 * abs, $"{isa}: C[{j}] = {c[j]}, expected {sum}");
            }
        }
    }

    /// <summary>
    /// int8 activations (ONNX Runtime's accuracy_level 4): one row is quantized per block as the kernel documents
    /// (scale = max|x| / 127, code = x * (127 / max|x|) rounded half to even), and the reference sums
    /// (q - z) * code exactly, scaled by weight scale * activation scale, in double. Tolerance: 1e-5 relative to the
    /// sum of |terms| plus 1e-6, the fp32 rounding of the per-block scaling and the final sums in any order (the
    /// integer dot products are exact). A second check against the fp32 product bounds the activations' rounding:
    /// each code is off by at most half a step, so |error| &lt;= sum |w| * scale_b / 2 (plus the fp32 term).
    /// </summary>
    [Theory]
    [MemberData(nameof(Shapes))]
    public void Multiply_Int8Activations_MatchesIntegerReference_EveryIsa(int k, int n, int blockSize, bool symmetric)
    {
        var w = new RandomWeight(k, n, blockSize, symmetric, k * 13 + n * 3 + blockSize);
        var rng = new Random(11);
        var bias = RandomArray(rng, n);
        var a = RandomArray(rng, k);
        a[k / 3] = 7.5f; // one outlier, so blocks get different scales
        var (codes, scales) = QuantizeRow(a, blockSize);
        foreach (var isa in Enum.GetValues<Int4Isa>())
        {
            if (!Int4Gemv.IsSupported(isa)) continue;
            foreach (int threads in new[] { 1, 2 })
            {
                var c = new float[n];
                c.AsSpan().Fill(float.NaN);
                Int4MatMul.Multiply(new KernelContext(threads), isa, 1, a, w.Weights, bias, c, Int4ActivationPrecision.Int8);
                for (int j = 0; j < n; j++)
                {
                    double sum = bias[j], abs = Math.Abs(sum), exact = bias[j], bound = 0;
                    for (int b = 0; b * blockSize < k; b++)
                    {
                        long dot = 0;
                        for (int p = b * blockSize; p < Math.Min(k, (b + 1) * blockSize); p++)
                        {
                            dot += (long)(w.Codes[j, p] - w.ZeroOf[j, b]) * codes[p];
                            exact += (double)a[p] * w.Weight(p, j);
                            bound += Math.Abs(w.Weight(p, j)) * scales[b] / 2;
                        }
                        double t = dot * (double)w.ScaleOf[j, b] * scales[b];
                        sum += t;
                        abs += Math.Abs(t);
                    }
                    Assert.True(Math.Abs(c[j] - sum) <= 1e-5 * abs + 1e-6, $"{isa}, threads={threads}: C[{j}] = {c[j]}, integer reference {sum}");
                    Assert.True(Math.Abs(c[j] - exact) <= bound + 1e-5 * abs + 1e-6, $"{isa}: C[{j}] = {c[j]}, fp32 product {exact}, rounding bound {bound}");
                }
            }
        }
    }

    [Fact]
    public void Multiply_Int8Activations_NaNOrInfinityPoisonsEveryColumn_AndPromptsStayFp32()
    {
        var w = new RandomWeight(96, 8, 32, true, 3);
        var a = RandomArray(new Random(4), 96);
        a[40] = float.NaN;
        var c = new float[8];
        Int4MatMul.Multiply(new KernelContext(1), 1, a, w.Weights, default, c, Int4ActivationPrecision.Int8);
        Assert.All(c, v => Assert.True(float.IsNaN(v)));
        a[40] = 0;
        a[70] = float.PositiveInfinity; // in the last block, past the vector loop's whole chunks too
        Int4MatMul.Multiply(new KernelContext(1), 1, a, w.Weights, default, c, Int4ActivationPrecision.Int8);
        Assert.All(c, v => Assert.True(float.IsNaN(v)));
        // Two rows: fp32 compute (the attribute names a minimum accuracy), so equal to the fp32 path bit for bit.
        var rows = RandomArray(new Random(6), 2 * 96);
        var int8 = new float[16];
        var fp32 = new float[16];
        Int4MatMul.Multiply(new KernelContext(1), 2, rows, w.Weights, default, int8, Int4ActivationPrecision.Int8);
        Int4MatMul.Multiply(new KernelContext(1), 2, rows, w.Weights, default, fp32);
        Assert.Equal(fp32, int8);
    }

    /// <summary>The documented activation quantization: per block, scale = max|x| / 127, code = round-half-even(x * (127 / max|x|)).</summary>
    private static (int[] Codes, float[] Scales) QuantizeRow(float[] a, int blockSize)
    {
        int blocks = (a.Length + blockSize - 1) / blockSize;
        var codes = new int[a.Length];
        var scales = new float[blocks];
        for (int b = 0; b < blocks; b++)
        {
            int start = b * blockSize, end = Math.Min(a.Length, start + blockSize);
            float amax = 0;
            for (int p = start; p < end; p++) amax = Math.Max(amax, Math.Abs(a[p]));
            scales[b] = amax / 127f;
            float inverse = amax == 0 ? 0 : 127f / amax;
            for (int p = start; p < end; p++) codes[p] = Math.Clamp((int)MathF.Round(a[p] * inverse, MidpointRounding.ToEven), -127, 127);
        }
        return (codes, scales);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Dequantize_GivesEachColumnExactly(int k, int n, int blockSize, bool symmetric)
    {
        var w = new RandomWeight(k, n, blockSize, symmetric, k + n + blockSize);
        int stride = k + 3;
        var rows = new float[n * stride];
        Int4MatMul.Dequantize(w.Weights, 0, n, rows, stride);
        for (int j = 0; j < n; j++)
            for (int p = 0; p < k; p++)
                Assert.Equal(w.Weight(p, j), rows[j * stride + p]);
        // One column from the middle, as GatherNBits asks.
        var one = new float[k];
        Int4MatMul.Dequantize(w.Weights, n / 2, 1, one, k);
        for (int p = 0; p < k; p++) Assert.Equal(w.Weight(p, n / 2), one[p]);
    }

    [Fact]
    public void Layout_DescribesTheDocumentedBytes()
    {
        // docs/int4.md: groups of 4 columns, [group][block][column][block/2] bytes, byte j = element j | element j + 16 << 4.
        var layout = new Int4Layout(70, 6, 32);
        Assert.Equal((3, 2, 96, 70), (layout.Blocks, layout.Groups, layout.PaddedK, layout.K));
        Assert.Equal(8, layout.PaddedN);
        Assert.Equal(2 * 3 * 4 * 16, layout.DataBytes);
        Assert.Equal(2 * 3 * 4, layout.ScaleCount);
        Assert.Equal((int[])[2, 3, 4, 16], layout.DataShape);
        Assert.Equal((0, false), layout.Locate(0, 0));
        Assert.Equal((0, true), layout.Locate(16, 0));
        Assert.Equal((16, false), layout.Locate(0, 1));
        Assert.Equal((64 + 5, true), layout.Locate(32 + 21, 0));
        Assert.Equal((3 * 64 + 2 * 16 + 1, false), layout.Locate(1, 6));
        Assert.Equal(3 * 4 + 4 + 2, layout.ScaleIndex(6, 1));
        Assert.Throws<ArgumentException>(() => new Int4Layout(64, 4, 48));
        Assert.Throws<ArgumentException>(() => new Int4Layout(0, 4, 32));
    }

    [Fact]
    public void Multiply_RejectsMismatchedSpans()
    {
        var w = new RandomWeight(64, 8, 32, true, 1);
        var context = new KernelContext(1);
        Assert.Throws<ArgumentException>(() => Int4MatMul.Multiply(context, 2, new float[64], w.Weights, default, new float[16]));
        Assert.Throws<ArgumentException>(() => Int4MatMul.Multiply(context, 1, new float[64], w.Weights, new float[3], new float[8]));
        Assert.Throws<ArgumentException>(() => new Int4Weights(w.Layout, w.Data.AsSpan(1), w.Scales, default));
    }

    private static float[] RandomArray(Random rng, int n)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        return x;
    }
}
