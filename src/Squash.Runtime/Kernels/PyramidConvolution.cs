using System.Numerics;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Squash.Runtime.Kernels;

/// <summary>
/// A 3x3 convolution (stride 1, padding 1, one group) of a feature pyramid's sum or concatenation of parts, each at the
/// output's resolution or nearest-upsampled from a lower one by an integer factor s, optionally a pointwise projection of
/// its input and scaled per channel at run time, computed without upsampling, projecting, scaling, adding or
/// concatenating (DBNet's head convolves four 24-channel maps, three of them upsampled 8x, 4x and 2x; its RSE-FPN
/// convolves at each level the sum of a gated 1x1 projection and the level above, upsampled 2x).
/// </summary>
/// <remarks>
/// <para>The convolution is linear in its input channels, so it is the sum of each part's convolution with its slice
/// of the weights (a sum of parts reads the same slice, a concatenation consecutive ones). A part
/// <c>g ⊙ (P x)</c> (P a pointwise projection [C, C_x], g per-channel scales) convolves x with the composed weights
/// <c>W diag(g) P</c>: C_x channels instead of C, the weights recomputed per image when g is known only at run time. A
/// full-resolution part runs <see cref="Convolution"/> (Winograd where it applies), which also adds the bias. For an
/// upsampled part, the nine taps' channel sums <c>Q_t = W_t x</c> are computed at the low resolution as one GEMM
/// ([9 M, C] x [C, h w]: s^2 times fewer multiply-adds than at full resolution), and each output value gathers its nine
/// taps' Q from the low-resolution pixels they read. With output row Y = s i + a, tap row dy reads low row i except
/// dy = 0 at a = 0 (row i - 1) and dy = 2 at a = s - 1 (row i + 1); likewise along the row, so once the three kernel
/// rows are summed into T_dx (one low-resolution row per kernel column), the output column X = s j + b takes
/// <c>B[j] = T_0[j - 1] + T_1[j] + T_2[j]</c> at b = 0, <c>C[j] = T_0[j] + T_1[j] + T_2[j + 1]</c> at b = s - 1 and
/// <c>A[j] = T_0[j] + T_1[j] + T_2[j]</c> between (padding reads zero). The activation is applied after all parts are
/// summed.</para>
/// <para>Accuracy: the sums are the same products in another order, not the unfused nodes' bits: measured within 1e-6
/// of the sum of |w x| per output, as the unfused graph's Winograd is (PyramidConvFusionTests).</para>
/// </remarks>
internal static unsafe class PyramidConvolution
{
    [ThreadStatic] private static float[]? t_taps;
    [ThreadStatic] private static float[]? t_rows;
    [ThreadStatic] private static float[]? t_weights;

    /// <summary>One part with its slice of the weights, prepared once.</summary>
    internal sealed class Part
    {
        private Expansion? _expansion;
        private ConvGeometry? _geometry;
        private readonly float[]? _tapSlice;
        private readonly PackedMatrix? _packedSlice;
        private readonly float[]? _projection;

        /// <summary>Prepares channels [<paramref name="first"/>, first + <paramref name="channels"/>) of the weights
        /// <paramref name="w"/> [M, C, 3, 3] for a part upsampled by <paramref name="scale"/> (1: full resolution). With
        /// <paramref name="projection"/> [channels, <paramref name="inputChannels"/>] (a pointwise convolution's
        /// weights), the part's input is the projection's; <paramref name="gated"/> parts are scaled per channel at run
        /// time (<see cref="Run"/>'s gates), after the projection.</summary>
        public Part(ReadOnlySpan<float> w, int outChannels, int inChannels, int first, int channels, int scale,
            ReadOnlySpan<float> projection = default, int inputChannels = 0, bool gated = false)
        {
            if (scale < 1) throw new ArgumentOutOfRangeException(nameof(scale), "The scale must be at least 1.");
            if (first < 0 || channels < 1 || first + channels > inChannels || w.Length != outChannels * inChannels * 9)
                throw new ArgumentException("The part's channels are not inside the weights.", nameof(channels));
            bool projected = !projection.IsEmpty;
            if (projected && (inputChannels < 1 || projection.Length != channels * inputChannels))
                throw new ArgumentException($"The projection has {projection.Length} values; it needs {channels} x {inputChannels}.", nameof(projection));
            Channels = channels;
            InputChannels = projected ? inputChannels : channels;
            Scale = scale;
            OutChannels = outChannels;
            Gated = gated;
            // Row t M + m of the tap matrix is tap t = 3 dy + dx of output channel m.
            int rows = 9 * outChannels;
            var taps = new float[rows * channels];
            for (int t = 0; t < 9; t++)
                for (int m = 0; m < outChannels; m++)
                    for (int c = 0; c < channels; c++)
                        taps[(t * outChannels + m) * channels + c] = w[((m * inChannels + first + c) * 3 + t / 3) * 3 + t % 3];
            if (gated)
            {
                _tapSlice = taps;
                if (projected)
                {
                    _projection = projection.ToArray();
                    _packedSlice = PackedMatrix.PackLeft(taps, channels, false, rows, channels);
                }
                return;
            }
            var effective = taps;
            if (projected)
            {
                effective = new float[rows * inputChannels];
                using var serial = new KernelContext(1);
                Gemm.Multiply(serial, false, false, rows, inputChannels, channels, taps, channels, projection, inputChannels,
                    effective, inputChannels, new GemmEpilogue());
            }
            if (scale == 1)
            {
                Weights = new Tensor(DataType.Float, outChannels, InputChannels, 3, 3);
                ToConvolutionWeights(effective, outChannels, InputChannels, Weights.AsSpan<float>());
                Packed = new PackedConvWeights(Weights);
            }
            else Taps = PackedMatrix.PackLeft(effective, InputChannels, false, rows, InputChannels);
        }

        /// <summary>Channels of the part at the convolution's input (its slice of the weights).</summary>
        public int Channels { get; }

        /// <summary>Channels of the part's input tensor: the projection's input channels, else <see cref="Channels"/>.</summary>
        public int InputChannels { get; }

        /// <summary>The upsampling factor (1: full resolution).</summary>
        public int Scale { get; }

        /// <summary>Output channels M.</summary>
        public int OutChannels { get; }

        /// <summary>Whether the part is scaled per channel at run time (its weights are composed per image).</summary>
        public bool Gated { get; }

        /// <summary>A full-resolution part's constant weights [M, C_x, 3, 3].</summary>
        internal Tensor? Weights { get; }

        /// <summary>The packing of <see cref="Weights"/>.</summary>
        internal PackedConvWeights? Packed { get; }

        /// <summary>An upsampled part's constant tap matrix [9 M, C_x].</summary>
        internal PackedMatrix? Taps { get; }

        /// <summary>A gated part's tap matrix <c>W diag(g) P</c> [9 M, C_x] for the scales <paramref name="gate"/> [C],
        /// into <paramref name="effective"/>; <paramref name="scratch"/> holds C C_x floats.</summary>
        internal void Compose(KernelContext context, ReadOnlySpan<float> gate, Span<float> effective, Span<float> scratch)
        {
            int rows = 9 * OutChannels;
            if (_projection is null)
            {
                for (int r = 0; r < rows; r++)
                    System.Numerics.Tensors.TensorPrimitives.Multiply(_tapSlice.AsSpan(r * Channels, Channels), gate, effective.Slice(r * Channels, Channels));
                return;
            }
            var scaled = scratch[..(Channels * InputChannels)];
            for (int c = 0; c < Channels; c++)
                System.Numerics.Tensors.TensorPrimitives.Multiply(_projection.AsSpan(c * InputChannels, InputChannels), gate[c], scaled.Slice(c * InputChannels, InputChannels));
            Gemm.Multiply(context, _packedSlice!, false, InputChannels, scaled, InputChannels, effective, InputChannels, new GemmEpilogue());
        }

        /// <summary>A full-resolution part's convolution of one image <paramref name="height"/> x <paramref name="width"/>
        /// (cached per size).</summary>
        internal ConvGeometry GeometryFor(int height, int width)
        {
            var g = Volatile.Read(ref _geometry);
            if (g is not null && g.Input[0] == height && g.Input[1] == width) return g;
            g = new ConvGeometry(1, InputChannels, OutChannels, 1, [height, width], [3, 3], [height, width], [1, 1], [1, 1], [1, 1]);
            Volatile.Write(ref _geometry, g);
            return g;
        }

        /// <summary>Where each output vector of a row <paramref name="width"/> wide takes its values (cached per width).</summary>
        internal Expansion ExpansionFor(int width)
        {
            var e = Volatile.Read(ref _expansion);
            if (e is not null && e.Width == width) return e;
            e = new Expansion(width, Scale);
            Volatile.Write(ref _expansion, e);
            return e;
        }
    }

    /// <summary>Tap-major [9 M, C] to a convolution's [M, C, 3, 3].</summary>
    private static void ToConvolutionWeights(ReadOnlySpan<float> taps, int m, int c, Span<float> w)
    {
        for (int t = 0; t < 9; t++)
            for (int o = 0; o < m; o++)
                for (int i = 0; i < c; i++)
                    w[(o * c + i) * 9 + t] = taps[(t * m + o) * c + i];
    }

    /// <summary>
    /// For each 16-wide output vector of a row (the last one ending at the row's end, overlapping the one before), the
    /// first low-resolution column it reads, the lane permutation from there, and which lanes take B (b = 0) and C
    /// (b = s - 1) instead of A.
    /// </summary>
    internal sealed class Expansion
    {
        public Expansion(int width, int scale)
        {
            Width = width;
            int vectors = width >= 16 ? (width + 15) / 16 : 0;
            First = new int[vectors];
            Index = new int[vectors * 16];
            IsB = new int[vectors * 16];
            IsC = new int[vectors * 16];
            for (int v = 0; v < vectors; v++)
            {
                int x0 = Math.Min(16 * v, width - 16), j0 = x0 / scale;
                First[v] = j0;
                for (int l = 0; l < 16; l++)
                {
                    int x = x0 + l, b = x % scale;
                    Index[16 * v + l] = x / scale - j0;
                    IsB[16 * v + l] = b == 0 ? -1 : 0;
                    IsC[16 * v + l] = b == scale - 1 ? -1 : 0;
                }
            }
        }

        public int Width { get; }
        public int[] First { get; }
        public int[] Index { get; }
        public int[] IsB { get; }
        public int[] IsC { get; }
    }

    /// <summary>
    /// <c>y = activation(conv3x3(sum or concatenation of up(g_p ⊙ P_p x_p)) + bias)</c> for <paramref name="inputs"/> x_p
    /// [N, C_x, H/s_p, W/s_p] in the order of <paramref name="parts"/> (at most one at full resolution),
    /// <paramref name="gates"/> g_p [N or 1, C_p, 1, 1] for the gated parts (null for the others) and y [N, M, H, W];
    /// <paramref name="bias"/> is [M] or empty. <paramref name="vector"/> false runs the portable expansion (tests).
    /// </summary>
    public static void Run(KernelContext context, IReadOnlyList<Part> parts, IReadOnlyList<Tensor> inputs, IReadOnlyList<Tensor?> gates,
        ReadOnlySpan<float> bias, GemmActivation activation, Tensor output, bool vector = true)
    {
        int n = output.Shape[0], m = output.Shape[1], height = output.Shape[2], width = output.Shape[3];
        Check(parts, inputs, gates, bias.Length, n, m, height, width);
        int full = -1;
        long tapFloats = 0, composed = 0;
        for (int p = 0; p < parts.Count; p++)
        {
            if (parts[p].Scale == 1) full = p;
            else tapFloats += 9L * m * inputs[p].Shape[2] * inputs[p].Shape[3];
            if (parts[p].Gated) composed = Math.Max(composed, 9L * m * parts[p].InputChannels * 2 + (long)parts[p].Channels * parts[p].InputChannels);
        }
        // One vector of slack past the last row: the gather's vectors read up to 15 values past a row's end.
        if (tapFloats + 16 > int.MaxValue || composed > int.MaxValue) throw new ArgumentException("The upsampled parts are too large.", nameof(inputs));
        float* taps = GemmScratch.Get(ref t_taps, (int)tapFloats + 16);
        float* weights = GemmScratch.Get(ref t_weights, (int)composed);
        var y = output.AsSpan<float>();
        int outputSize = height * width;
        fixed (float* pb = bias)
        fixed (float* py = y)
        {
            for (int image = 0; image < n; image++)
            {
                var yImage = y.Slice(image * m * outputSize, m * outputSize);
                if (full >= 0)
                {
                    var x = inputs[full];
                    var part = parts[full];
                    var xImage = x.AsSpan<float>().Slice(image * part.InputChannels * outputSize, part.InputChannels * outputSize);
                    var geometry = part.GeometryFor(height, width);
                    if (part.Gated)
                    {
                        var w = Composed(context, part, gates[full]!, image, weights);
                        var convolutionWeights = new Span<float>(weights + w.Length, w.Length);
                        ToConvolutionWeights(w, m, part.InputChannels, convolutionWeights);
                        Convolution.Run(context, geometry, xImage, convolutionWeights, null, bias, yImage, GemmActivation.None);
                    }
                    else Convolution.Run(context, geometry, xImage, part.Weights!.AsSpan<float>(), part.Packed, bias, yImage, GemmActivation.None);
                }
                long offset = 0;
                for (int p = 0; p < parts.Count; p++)
                {
                    if (p == full) continue;
                    var x = inputs[p];
                    var part = parts[p];
                    int size = x.Shape[2] * x.Shape[3], c = part.InputChannels;
                    var xImage = x.AsSpan<float>().Slice(image * c * size, c * size);
                    var q = new Span<float>(taps + offset, 9 * m * size);
                    if (part.Gated)
                        Gemm.Multiply(context, false, false, 9 * m, size, c, Composed(context, part, gates[p]!, image, weights), c, xImage, size, q, size, new GemmEpilogue());
                    else Gemm.Multiply(context, part.Taps!, false, size, xImage, size, q, size, new GemmEpilogue());
                    offset += 9L * m * size;
                }
                var body = new GatherBody(parts, inputs, taps, full >= 0, pb, activation, py + (nint)image * m * outputSize,
                    m, height, width, vector);
                context.For(m * height, body, Math.Max(1, 4096 / width));
            }
        }
    }

    /// <summary>A gated part's tap matrix for image <paramref name="image"/>'s scales, at the start of
    /// <paramref name="scratch"/> (which also holds, past twice its length, the scaled projection).</summary>
    private static ReadOnlySpan<float> Composed(KernelContext context, Part part, Tensor gate, int image, float* scratch)
    {
        int length = 9 * part.OutChannels * part.InputChannels;
        var scales = gate.AsSpan<float>();
        if (gate.Shape[0] > 1) scales = scales.Slice(image * part.Channels, part.Channels);
        var effective = new Span<float>(scratch, length);
        part.Compose(context, scales, effective, new Span<float>(scratch + 2 * length, part.Channels * part.InputChannels));
        return effective;
    }

    private static void Check(IReadOnlyList<Part> parts, IReadOnlyList<Tensor> inputs, IReadOnlyList<Tensor?> gates, int biasLength,
        int n, int m, int height, int width)
    {
        if (parts.Count != inputs.Count || parts.Count != gates.Count || parts.Count == 0)
            throw new ArgumentException("Give one input and one gate (or null) per part.", nameof(inputs));
        if (biasLength != 0 && biasLength != m) throw new ArgumentException($"The bias has {biasLength} values; it needs {m}.", nameof(biasLength));
        int fullParts = 0;
        for (int p = 0; p < parts.Count; p++)
        {
            var s = inputs[p].Shape;
            int scale = parts[p].Scale;
            if (parts[p].OutChannels != m || s.Length != 4 || s[0] != n || s[1] != parts[p].InputChannels
                || (long)s[2] * scale != height || (long)s[3] * scale != width)
                throw new ArgumentException($"Input {p} {Shapes.Format(s)} upsampled {scale}x does not make the output's [{n}, {parts[p].InputChannels}, {height}, {width}].", nameof(inputs));
            if (parts[p].Gated != gates[p] is not null)
                throw new ArgumentException($"Part {p} {(parts[p].Gated ? "needs" : "takes no")} gate.", nameof(gates));
            if (gates[p] is { } g && (g.Shape is not [var gn, var gc, 1, 1] || gc != parts[p].Channels || gn != 1 && gn != n))
                throw new ArgumentException($"Gate {p} {Shapes.Format(g.Shape)} must be [{n} or 1, {parts[p].Channels}, 1, 1].", nameof(gates));
            if (scale == 1) fullParts++;
        }
        if (fullParts > 1) throw new ArgumentException("At most one part may be at full resolution.", nameof(parts));
    }

    /// <summary>One (output channel, output row) per item: the full-resolution part's row (or the bias), plus each
    /// upsampled part's gathered taps, through the activation.</summary>
    private readonly struct GatherBody(IReadOnlyList<Part> parts, IReadOnlyList<Tensor> inputs, float* taps, bool hasFull, float* bias,
        GemmActivation activation, float* y, int m, int height, int width, bool vector) : IRangeBody
    {
        public void Invoke(int start, int end)
        {
            int lowWidth = 0;
            for (int p = 0; p < inputs.Count; p++) lowWidth = Math.Max(lowWidth, inputs[p].Shape[3]);
            // Per thread: T_0 with a zero before it, S12 = T_1 + T_2, S01 = T_0 + T_1, T_2 with a zero after it, A, B, C,
            // each with a vector of slack, then one expanded row per part.
            int stride = (lowWidth + 2 * 16 + 15) / 16 * 16, rowStride = (width + 15) / 16 * 16;
            float* scratch = GemmScratch.Get(ref t_rows, 16 + 7 * stride + parts.Count * rowStride);
            float* t0 = scratch + 16, s12 = t0 + stride, s01 = s12 + stride, t2 = s01 + stride;
            float* a = t2 + stride, b = a + stride, c = b + stride, expanded = c + stride;
            // Which (channel, low row, kind of row) each part's expanded row holds: rows between the first and the last of
            // a block of s read the same low rows (s - 2 of every s rows reuse it at 8x).
            Span<long> held = stackalloc long[parts.Count];
            held.Fill(-1);
            for (int item = start; item < end; item++)
            {
                int channel = item / height, row = item % height;
                var target = new Span<float>(y + (nint)item * width, width);
                if (!hasFull) target.Fill(bias == null ? 0 : bias[channel]);
                long offset = 0;
                for (int p = 0; p < parts.Count; p++)
                {
                    int scale = parts[p].Scale;
                    if (scale == 1) continue;
                    int h = inputs[p].Shape[2], w = inputs[p].Shape[3];
                    int i = row / scale, phase = row % scale, kind = phase == 0 ? 0 : phase == scale - 1 ? 2 : 1;
                    long key = ((long)channel * h + i) * 3 + kind;
                    var e = new Span<float>(expanded + p * rowStride, width);
                    if (held[p] != key)
                    {
                        SumKernelRows(taps + offset, m, h, w, channel, i, phase, scale, t0, s12, s01, t2);
                        Combine(w, t0, s12, s01, t2, a, b, c);
                        if (vector && Avx512F.IsSupported && width >= 16) Expand(parts[p].ExpansionFor(width), a, b, c, expanded + p * rowStride);
                        else ExpandScalar(width, scale, a, b, c, e);
                        held[p] = key;
                    }
                    System.Numerics.Tensors.TensorPrimitives.Add(target, e, target);
                    offset += 9L * m * h * w;
                }
                activation.Apply(target);
            }
        }

        /// <summary>T_dx = sum over dy of the tap (dy, dx) channel sums of the low row that kernel row reads for output
        /// row s i + <paramref name="phase"/>, as t0 (T_0), s12 (T_1 + T_2), s01 (T_0 + T_1) and t2 (T_2); t0[-1] and t2[w]
        /// are 0.</summary>
        private static void SumKernelRows(float* q, int m, int h, int w, int channel, int i, int phase, int scale,
            float* t0, float* s12, float* s01, float* t2)
        {
            // The low rows kernel rows 0, 1 and 2 read; -1 where the tap reads the padding above or below the image.
            int r0 = phase == 0 ? i - 1 : i, r2 = phase == scale - 1 ? i + 1 : i;
            if (r2 >= h) r2 = -1;
            nint plane = (nint)h * w, tapStride = (nint)m * plane;
            float* Row(int tap, int r) => q + tap * tapStride + channel * plane + (nint)r * w;
            float* q00 = r0 >= 0 ? Row(0, r0) : null, q01 = r0 >= 0 ? Row(1, r0) : null, q02 = r0 >= 0 ? Row(2, r0) : null;
            float* q10 = Row(3, i), q11 = Row(4, i), q12 = Row(5, i);
            float* q20 = r2 >= 0 ? Row(6, r2) : null, q21 = r2 >= 0 ? Row(7, r2) : null, q22 = r2 >= 0 ? Row(8, r2) : null;
            int lanes = Vector<float>.Count, j = 0;
            if (Vector.IsHardwareAccelerated)
            {
                for (; j < w; j += lanes)
                {
                    // Whole vectors past w read the next row or the slack; those lanes are never expanded.
                    var x0 = Vector.Load(q10 + j);
                    var x1 = Vector.Load(q11 + j);
                    var x2 = Vector.Load(q12 + j);
                    if (q00 != null)
                    {
                        x0 += Vector.Load(q00 + j);
                        x1 += Vector.Load(q01 + j);
                        x2 += Vector.Load(q02 + j);
                    }
                    if (q20 != null)
                    {
                        x0 += Vector.Load(q20 + j);
                        x1 += Vector.Load(q21 + j);
                        x2 += Vector.Load(q22 + j);
                    }
                    x0.Store(t0 + j);
                    (x1 + x2).Store(s12 + j);
                    (x0 + x1).Store(s01 + j);
                    x2.Store(t2 + j);
                }
            }
            for (; j < w; j++)
            {
                float x0 = q10[j], x1 = q11[j], x2 = q12[j];
                if (q00 != null)
                {
                    x0 += q00[j];
                    x1 += q01[j];
                    x2 += q02[j];
                }
                if (q20 != null)
                {
                    x0 += q20[j];
                    x1 += q21[j];
                    x2 += q22[j];
                }
                t0[j] = x0;
                s12[j] = x1 + x2;
                s01[j] = x0 + x1;
                t2[j] = x2;
            }
            t0[-1] = 0;
            t2[w] = 0;
        }

        /// <summary>A = S01 + T_2, B[j] = S12[j] + T_0[j - 1], C[j] = S01[j] + T_2[j + 1] for j &lt; w.</summary>
        private static void Combine(int w, float* t0, float* s12, float* s01, float* t2, float* a, float* b, float* c)
        {
            int lanes = Vector<float>.Count, j = 0;
            if (Vector.IsHardwareAccelerated)
            {
                for (; j + lanes <= w; j += lanes)
                {
                    var x01 = Vector.Load(s01 + j);
                    (x01 + Vector.Load(t2 + j)).Store(a + j);
                    (Vector.Load(s12 + j) + Vector.Load(t0 + j - 1)).Store(b + j);
                    (x01 + Vector.Load(t2 + j + 1)).Store(c + j);
                }
            }
            for (; j < w; j++)
            {
                a[j] = s01[j] + t2[j];
                b[j] = s12[j] + t0[j - 1];
                c[j] = s01[j] + t2[j + 1];
            }
        }

        /// <summary>The output row from A, B and C: 16 lanes at a time by permutes and masks (the last vector overlaps
        /// the one before; its lanes get the same values again).</summary>
        private static void Expand(Expansion e, float* a, float* b, float* c, float* expanded)
        {
            fixed (int* index = e.Index)
            fixed (int* isB = e.IsB)
            fixed (int* isC = e.IsC)
            {
                for (int v = 0; v < e.First.Length; v++)
                {
                    int j0 = e.First[v], x0 = Math.Min(16 * v, e.Width - 16);
                    var permutation = Vector512.Load(index + 16 * v);
                    var fromA = Avx512F.PermuteVar16x32(Vector512.Load(a + j0), permutation);
                    var fromB = Avx512F.PermuteVar16x32(Vector512.Load(b + j0), permutation);
                    var fromC = Avx512F.PermuteVar16x32(Vector512.Load(c + j0), permutation);
                    var value = Vector512.ConditionalSelect(Vector512.Load(isB + 16 * v).AsSingle(), fromB,
                        Vector512.ConditionalSelect(Vector512.Load(isC + 16 * v).AsSingle(), fromC, fromA));
                    value.Store(expanded + x0);
                }
            }
        }

        private static void ExpandScalar(int width, int scale, float* a, float* b, float* c, Span<float> expanded)
        {
            for (int x = 0; x < width; x++)
            {
                int j = x / scale, phase = x % scale;
                expanded[x] = phase == 0 ? b[j] : phase == scale - 1 ? c[j] : a[j];
            }
        }
    }
}
