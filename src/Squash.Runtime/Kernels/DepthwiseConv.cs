using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Squash.Runtime.Kernels;

/// <summary>
/// Depthwise 2-D convolution (one input and one output channel per group), computed directly: with one channel
/// per group the GEMM would have a depth of only KH x KW and would spend its time packing. Each channel is first
/// copied into a zero-padded plane whose rows are split into stride phases (even and odd columns for stride 2), so
/// that every tap reads a contiguous run of the plane for a run of output columns; outputs are then vectorized along
/// the row, four rows by two vectors at a time, each loaded input vector feeding every output row that reads it.
/// </summary>
internal static unsafe partial class DepthwiseConv
{
    [ThreadStatic] private static float[]? t_plane;

    /// <summary><c>y[n,c] = epilogue(bias[c] + sum over taps of w[c, tap] * x[n, c, ...])</c> for a 2-D geometry with
    /// <see cref="ConvGeometry.IsDepthwise"/>; the epilogue's rows are channels, its row bias the bias (or null).</summary>
    public static void Run(KernelContext context, ConvGeometry g, float* x, float* w, float* y, in TileEpilogue epilogue)
    {
        if (Lanes512.IsAccelerated) Run<Vector512<float>, Lanes512>(context, g, x, w, y, epilogue);
        else if (Lanes256.IsAccelerated) Run<Vector256<float>, Lanes256>(context, g, x, w, y, epilogue);
        else Run<Vector128<float>, Lanes128>(context, g, x, w, y, epilogue);
    }

    private static void Run<TVector, TLanes>(KernelContext context, ConvGeometry g, float* x, float* w, float* y, in TileEpilogue epilogue)
        where TVector : struct
        where TLanes : struct, ISimdLanes<TVector>
    {
        var body = new Body<TVector, TLanes>(g, x, w, y, epilogue);
        int planes = g.Batch * g.InChannels;
        if (context.ThreadCount == 1) body.Invoke(0, planes);
        else context.For(planes, body);
    }

    private readonly partial struct Body<TVector, TLanes> : IRangeBody
        where TVector : struct
        where TLanes : struct, ISimdLanes<TVector>
    {
        private readonly float* _x, _w, _bias, _y;
        /// <summary>What follows the sums: the bias starts them, so it is left out here.</summary>
        private readonly TileEpilogue _epilogue;
        /// <summary>The activation applied in registers (none when a pass follows).</summary>
        private readonly GemmActivation _activation;
        /// <summary>True when a residual, a column step or a sigmoid follows: applied in a pass over each finished
        /// plane (while in cache), since calls in the row kernels would spill their accumulators.</summary>
        private readonly bool _needsPass;
        /// <summary>The per-channel affine step after the activation (PP-LCNet's), applied as results are stored when
        /// no pass is needed: the pass's general per-vector epilogue cost more than the 5x5 products themselves
        /// (rec fp32: 0.17 of a 5x5 node's 0.20 ms). Null for none.</summary>
        private readonly float* _rowScale, _rowShift;
        private readonly int _channels, _height, _width, _outHeight, _outWidth, _kernelH, _kernelW;
        private readonly int _strideH, _strideW, _dilationH, _dilationW, _padTop, _padLeft;
        /// <summary>Rows of the padded plane: only those some output reads.</summary>
        private readonly int _planeRows;
        /// <summary>Floats per stride phase of a padded row, enough for whole vectors past the last output.</summary>
        private readonly int _phaseLength;
        /// <summary>The written-out row kernel for this geometry, or none (the general loop).</summary>
        private readonly DenseKernel _dense;

        public Body(ConvGeometry g, float* x, float* w, float* y, in TileEpilogue epilogue)
        {
            _x = x;
            _w = w;
            _bias = epilogue.RowBias;
            _y = y;
            _epilogue = epilogue.Tail;
            // Scales and shifts per channel are the only tail the stores apply themselves.
            bool rowAffineOnly = !epilogue.HasResidual && epilogue.ColumnScale == null && epilogue.ColumnShift == null;
            _needsPass = !rowAffineOnly || !epilogue.Activation.InRegisters;
            _activation = _needsPass ? default : epilogue.Activation;
            _rowScale = _needsPass ? null : epilogue.RowScale;
            _rowShift = _needsPass ? null : epilogue.RowShift;
            _channels = g.InChannels;
            (_height, _width) = (g.Input[0], g.Input[1]);
            (_outHeight, _outWidth) = (g.Output[0], g.Output[1]);
            (_kernelH, _kernelW) = (g.Kernel[0], g.Kernel[1]);
            (_strideH, _strideW) = (g.Strides[0], g.Strides[1]);
            (_dilationH, _dilationW) = (g.Dilations[0], g.Dilations[1]);
            (_padTop, _padLeft) = (g.PadsBegin[0], g.PadsBegin[1]);
            _planeRows = (_outHeight - 1) * _strideH + (_kernelH - 1) * _dilationH + 1;
            int lanes = TLanes.Count;
            _phaseLength = (_outWidth + lanes - 1) / lanes * lanes + (_kernelW - 1) * _dilationW / _strideW + 1;
            _dense = SelectDense(g);
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Invoke(int start, int end)
        {
            int rowStride = _strideW * _phaseLength;
            float* plane = GemmScratch.Get(ref t_plane, _planeRows * rowStride);
            int taps = _kernelH * _kernelW;
            // Column ow * SW + kw * DW of a padded row is element ow + kw * DW / SW of phase (kw * DW) % SW.
            int* columnOffset = stackalloc int[_kernelW];
            for (int kw = 0; kw < _kernelW; kw++)
                columnOffset[kw] = kw * _dilationW % _strideW * _phaseLength + kw * _dilationW / _strideW;
            // A block of four output rows reads plane rows j = r * SH + kh * DH: kernelRow[j * 4 + r] is that kh, or -1.
            int blockRows = 3 * _strideH + (_kernelH - 1) * _dilationH + 1;
            int* kernelRow = stackalloc int[blockRows * 4];
            for (int j = 0; j < blockRows; j++)
                for (int r = 0; r < 4; r++)
                {
                    int d = j - r * _strideH;
                    kernelRow[j * 4 + r] = d >= 0 && d % _dilationH == 0 && d / _dilationH < _kernelH ? d / _dilationH : -1;
                }
            float* tail = stackalloc float[TLanes.Count];
            // The padding is the same for every channel: zero the plane once, then each channel only copies the
            // input's columns into it (per-row zeroing and the divisions locating the columns cost as much as the
            // 5x5 products: rec fp32, 0.1 of a node's 0.17 ms).
            PanelCopy.Zero(plane, _planeRows * rowStride);
            int* phaseSpan = stackalloc int[2 * _strideW];
            PhaseSpans(phaseSpan);
            for (int index = start; index < end; index++)
            {
                int channel = index % _channels;
                Pad(_x + (nint)index * _height * _width, plane, rowStride, phaseSpan);
                float bias = _bias == null ? 0 : _bias[channel];
                float* output = _y + (nint)index * _outHeight * _outWidth;
                var block = new RowBlock(_w + (nint)channel * taps, columnOffset, kernelRow, rowStride, bias, channel, tail);
                nint rowStep = (nint)_strideH * rowStride;
                int oh = 0;
                for (; oh + 4 <= _outHeight; oh += 4)
                    Block<Rows4>(plane + oh * rowStep, output + (nint)oh * _outWidth, block);
                switch (_outHeight - oh)
                {
                    case 3: Block<Rows3>(plane + oh * rowStep, output + (nint)oh * _outWidth, block); break;
                    case 2: Block<Rows2>(plane + oh * rowStep, output + (nint)oh * _outWidth, block); break;
                    case 1: Block<Rows1>(plane + oh * rowStep, output + (nint)oh * _outWidth, block); break;
                }
                if (_needsPass) _epilogue.ApplyRow(output, output, _outHeight * _outWidth, channel, 0);
            }
        }

        /// <summary>Output rows [oh, oh + TRows) by the written-out kernel where one applies, else the general one.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void Block<TRows>(float* rows, float* output, in RowBlock b) where TRows : struct, IRowCount
        {
            if (_dense != DenseKernel.None) DenseRows<TRows>(rows, output, b);
            else Rows<TRows>(rows, output, b);
        }

        /// <summary>For each stride phase, the elements [lo, hi) that come from input columns (the rest is padding).</summary>
        private void PhaseSpans(int* span)
        {
            for (int phase = 0; phase < _strideW; phase++)
            {
                // Element t of the phase is padded column phase + t * SW, input column phase + t * SW - PL.
                int first = phase - _padLeft;
                int lo = first >= 0 ? 0 : Math.Min(_phaseLength, (-first + _strideW - 1) / _strideW);
                span[2 * phase] = lo;
                span[2 * phase + 1] = Math.Max(lo, Math.Min(_phaseLength, (_width - first + _strideW - 1) / _strideW));
            }
        }

        /// <summary>Copies one input channel into the padded, phase-split plane, whose padding is already zero.</summary>
        private void Pad(float* input, float* plane, int rowStride, int* phaseSpan)
        {
            int rowStart = Math.Max(0, _padTop), rowEnd = Math.Min(_planeRows, _padTop + _height);
            for (int r = rowStart; r < rowEnd; r++)
            {
                float* row = plane + (nint)r * rowStride;
                float* source = input + (nint)(r - _padTop) * _width - _padLeft;
                for (int phase = 0; phase < _strideW; phase++)
                {
                    int lo = phaseSpan[2 * phase], hi = phaseSpan[2 * phase + 1];
                    PanelCopy.Strided(row + phase * _phaseLength + lo, source + phase + lo * _strideW, hi - lo, _strideW);
                }
            }
        }

        /// <summary>What every row block of one channel shares.</summary>
        private readonly struct RowBlock(float* weights, int* columnOffset, int* kernelRow, int rowStride, float bias, int channel, float* tail)
        {
            public readonly float* Weights = weights;
            public readonly int* ColumnOffset = columnOffset;
            public readonly int* KernelRow = kernelRow;
            public readonly int RowStride = rowStride;
            public readonly float Bias = bias;
            /// <summary>The epilogue's row.</summary>
            public readonly int Channel = channel;
            public readonly float* Tail = tail;
        }

        /// <summary>
        /// Output rows [oh, oh + TRows) from plane rows starting at <paramref name="rows"/> (output row r reads plane
        /// rows r * SH + kh * DH). Each plane row is loaded once per column offset and feeds every output row of the
        /// block that reads it (up to KH of them): unaligned loads (kw shifts) cost two load slots, so a load per FMA
        /// would halve the speed. Four rows by two vectors give eight independent FMA chains even when rows are
        /// short (a 40-wide row is under three vectors).
        /// </summary>
        private void Rows<TRows>(float* rows, float* output, in RowBlock b)
            where TRows : struct, IRowCount
        {
            int count = TRows.Value;
            int lanes = TLanes.Count, kernelW = _kernelW;
            int planeRows = (count - 1) * _strideH + (_kernelH - 1) * _dilationH + 1;
            var initial = TLanes.Splat(b.Bias);
            int ow = 0;
            for (; ow + 2 * lanes <= _outWidth; ow += 2 * lanes)
            {
                TVector a00 = initial, a01 = initial;
                TVector a10 = initial, a11 = initial;
                TVector a20 = initial, a21 = initial;
                TVector a30 = initial, a31 = initial;
                for (int j = 0; j < planeRows; j++)
                {
                    float* src = rows + (nint)j * b.RowStride + ow;
                    int* kh = b.KernelRow + j * 4;
                    float* w0 = kh[0] >= 0 ? b.Weights + kh[0] * kernelW : null;
                    float* w1 = count > 1 && kh[1] >= 0 ? b.Weights + kh[1] * kernelW : null;
                    float* w2 = count > 2 && kh[2] >= 0 ? b.Weights + kh[2] * kernelW : null;
                    float* w3 = count > 3 && kh[3] >= 0 ? b.Weights + kh[3] * kernelW : null;
                    for (int kw = 0; kw < kernelW; kw++)
                    {
                        float* s = src + b.ColumnOffset[kw];
                        var v0 = TLanes.Load(s);
                        var v1 = TLanes.Load(s + lanes);
                        if (w0 != null)
                        {
                            var wv = TLanes.Splat(w0[kw]);
                            a00 = TLanes.MultiplyAdd(wv, v0, a00);
                            a01 = TLanes.MultiplyAdd(wv, v1, a01);
                        }
                        if (w1 != null)
                        {
                            var wv = TLanes.Splat(w1[kw]);
                            a10 = TLanes.MultiplyAdd(wv, v0, a10);
                            a11 = TLanes.MultiplyAdd(wv, v1, a11);
                        }
                        if (w2 != null)
                        {
                            var wv = TLanes.Splat(w2[kw]);
                            a20 = TLanes.MultiplyAdd(wv, v0, a20);
                            a21 = TLanes.MultiplyAdd(wv, v1, a21);
                        }
                        if (w3 != null)
                        {
                            var wv = TLanes.Splat(w3[kw]);
                            a30 = TLanes.MultiplyAdd(wv, v0, a30);
                            a31 = TLanes.MultiplyAdd(wv, v1, a31);
                        }
                    }
                }
                Store(a00, output + ow, b.Channel);
                Store(a01, output + ow + lanes, b.Channel);
                if (count > 1)
                {
                    Store(a10, output + _outWidth + ow, b.Channel);
                    Store(a11, output + _outWidth + ow + lanes, b.Channel);
                }
                if (count > 2)
                {
                    Store(a20, output + 2 * _outWidth + ow, b.Channel);
                    Store(a21, output + 2 * _outWidth + ow + lanes, b.Channel);
                }
                if (count > 3)
                {
                    Store(a30, output + 3 * _outWidth + ow, b.Channel);
                    Store(a31, output + 3 * _outWidth + ow + lanes, b.Channel);
                }
            }
            for (; ow < _outWidth; ow += lanes)
            {
                // The plane has room for whole vectors past the row's end; only the valid lanes are stored.
                TVector a00 = initial;
                TVector a10 = initial;
                TVector a20 = initial;
                TVector a30 = initial;
                for (int j = 0; j < planeRows; j++)
                {
                    float* src = rows + (nint)j * b.RowStride + ow;
                    int* kh = b.KernelRow + j * 4;
                    float* w0 = kh[0] >= 0 ? b.Weights + kh[0] * kernelW : null;
                    float* w1 = count > 1 && kh[1] >= 0 ? b.Weights + kh[1] * kernelW : null;
                    float* w2 = count > 2 && kh[2] >= 0 ? b.Weights + kh[2] * kernelW : null;
                    float* w3 = count > 3 && kh[3] >= 0 ? b.Weights + kh[3] * kernelW : null;
                    for (int kw = 0; kw < kernelW; kw++)
                    {
                        float* s = src + b.ColumnOffset[kw];
                        var v0 = TLanes.Load(s);
                        if (w0 != null)
                        {
                            var wv = TLanes.Splat(w0[kw]);
                            a00 = TLanes.MultiplyAdd(wv, v0, a00);
                        }
                        if (w1 != null)
                        {
                            var wv = TLanes.Splat(w1[kw]);
                            a10 = TLanes.MultiplyAdd(wv, v0, a10);
                        }
                        if (w2 != null)
                        {
                            var wv = TLanes.Splat(w2[kw]);
                            a20 = TLanes.MultiplyAdd(wv, v0, a20);
                        }
                        if (w3 != null)
                        {
                            var wv = TLanes.Splat(w3[kw]);
                            a30 = TLanes.MultiplyAdd(wv, v0, a30);
                        }
                    }
                }
                int valid = Math.Min(lanes, _outWidth - ow);
                StorePartial(a00, output + ow, valid, b.Tail, b.Channel);
                if (count > 1) StorePartial(a10, output + _outWidth + ow, valid, b.Tail, b.Channel);
                if (count > 2) StorePartial(a20, output + 2 * _outWidth + ow, valid, b.Tail, b.Channel);
                if (count > 3) StorePartial(a30, output + 3 * _outWidth + ow, valid, b.Tail, b.Channel);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void Store(TVector value, float* destination, int channel)
        {
            value = TLanes.Activate(value, _activation);
            if (_rowScale != null) value = TLanes.Multiply(value, TLanes.Splat(_rowScale[channel]));
            if (_rowShift != null) value = TLanes.Add(value, TLanes.Splat(_rowShift[channel]));
            TLanes.Store(value, destination);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void StorePartial(TVector value, float* destination, int valid, float* tail, int channel)
        {
            if (valid == TLanes.Count)
            {
                Store(value, destination, channel);
                return;
            }
            Store(value, tail, channel);
            for (int j = 0; j < valid; j++) destination[j] = tail[j];
        }
    }
}
