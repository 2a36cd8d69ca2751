using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Squash.Runtime.Kernels;

/// <summary>
/// Depthwise 2-D convolution (one input and one output channel per group), computed directly: with one channel
/// per group the GEMM would have a depth of only KH x KW and would spend its time packing. Each channel is first
/// copied into a zero-padded plane whose rows are split into stride phases (even and odd columns for stride 2), so
/// that every tap reads a contiguous run of the plane for a run of output columns; outputs are then vectorized along
/// the row, four rows by two vectors at a time to keep eight FMA chains in flight.
/// </summary>
internal static unsafe class DepthwiseConv
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

    private readonly struct Body<TVector, TLanes> : IRangeBody
        where TVector : struct
        where TLanes : struct, ISimdLanes<TVector>
    {
        private readonly float* _x, _w, _bias, _y;
        /// <summary>What follows the sums: the bias starts them, so it is left out here.</summary>
        private readonly TileEpilogue _epilogue;
        private readonly int _channels, _height, _width, _outHeight, _outWidth, _kernelH, _kernelW;
        private readonly int _strideH, _strideW, _dilationH, _dilationW, _padTop, _padLeft;
        /// <summary>Rows of the padded plane: only those some output reads.</summary>
        private readonly int _planeRows;
        /// <summary>Floats per stride phase of a padded row, enough for whole vectors past the last output.</summary>
        private readonly int _phaseLength;

        public Body(ConvGeometry g, float* x, float* w, float* y, in TileEpilogue epilogue)
        {
            _x = x;
            _w = w;
            _bias = epilogue.RowBias;
            _y = y;
            _epilogue = epilogue.Tail;
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
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Invoke(int start, int end)
        {
            int rowStride = _strideW * _phaseLength;
            float* plane = GemmScratch.Get(ref t_plane, _planeRows * rowStride);
            int taps = _kernelH * _kernelW;
            // Where tap (kh, kw) starts reading, relative to the output row's first plane row: column
            // ow * SW + kw * DW of a padded row is element ow + kw * DW / SW of phase (kw * DW) % SW.
            int* tapOffset = stackalloc int[taps];
            float* tail = stackalloc float[TLanes.Count];
            for (int kh = 0; kh < _kernelH; kh++)
                for (int kw = 0; kw < _kernelW; kw++)
                    tapOffset[kh * _kernelW + kw] = kh * _dilationH * rowStride
                        + kw * _dilationW % _strideW * _phaseLength + kw * _dilationW / _strideW;
            for (int index = start; index < end; index++)
            {
                int channel = index % _channels;
                Pad(_x + (nint)index * _height * _width, plane, rowStride);
                float bias = _bias == null ? 0 : _bias[channel];
                float* output = _y + (nint)index * _outHeight * _outWidth;
                float* weights = _w + (nint)channel * taps;
                nint rowStep = (nint)_strideH * rowStride;
                int oh = 0;
                for (; oh + 4 <= _outHeight; oh += 4)
                    Rows<Rows4>(plane + oh * rowStep, rowStep, weights, tapOffset, taps, bias, channel, output + (nint)oh * _outWidth, tail);
                switch (_outHeight - oh)
                {
                    case 3: Rows<Rows3>(plane + oh * rowStep, rowStep, weights, tapOffset, taps, bias, channel, output + (nint)oh * _outWidth, tail); break;
                    case 2: Rows<Rows2>(plane + oh * rowStep, rowStep, weights, tapOffset, taps, bias, channel, output + (nint)oh * _outWidth, tail); break;
                    case 1: Rows<Rows1>(plane + oh * rowStep, rowStep, weights, tapOffset, taps, bias, channel, output + (nint)oh * _outWidth, tail); break;
                }
            }
        }

        /// <summary>Copies one input channel into the padded, phase-split plane.</summary>
        private void Pad(float* input, float* plane, int rowStride)
        {
            for (int r = 0; r < _planeRows; r++)
            {
                float* row = plane + (nint)r * rowStride;
                int ih = r - _padTop;
                if ((uint)ih >= (uint)_height)
                {
                    new Span<float>(row, rowStride).Clear();
                    continue;
                }
                float* source = input + (nint)ih * _width;
                for (int phase = 0; phase < _strideW; phase++)
                {
                    // Element t of the phase is padded column phase + t * SW, input column phase + t * SW - PL.
                    float* dst = row + phase * _phaseLength;
                    int first = phase - _padLeft;
                    int lo = first >= 0 ? 0 : Math.Min(_phaseLength, (-first + _strideW - 1) / _strideW);
                    int hi = Math.Max(lo, Math.Min(_phaseLength, (_width - first + _strideW - 1) / _strideW));
                    new Span<float>(dst, lo).Clear();
                    PanelCopy.Strided(dst + lo, source + first + lo * _strideW, hi - lo, _strideW);
                    new Span<float>(dst + hi, _phaseLength - hi).Clear();
                }
            }
        }

        /// <summary>
        /// Output rows [oh, oh + TRows) from plane rows starting at <paramref name="rows"/> (output row r reads plane rows
        /// from <c>rows + r * rowStep</c>). Several rows at once give independent accumulators even when rows are
        /// short (a 40-wide row is under three vectors), so the FMA chains over the taps overlap instead of waiting
        /// on each other's latency.
        /// </summary>
        private void Rows<TRows>(float* rows, nint rowStep, float* weights, int* tapOffset, int taps, float bias, int channel, float* output, float* tail)
            where TRows : struct, IRowCount
        {
            int count = TRows.Value;
            int lanes = TLanes.Count;
            var initial = TLanes.Splat(bias);
            int ow = 0;
            for (; ow + 2 * lanes <= _outWidth; ow += 2 * lanes)
            {
                TVector a00 = initial, a01 = initial;
                TVector a10 = initial, a11 = initial;
                TVector a20 = initial, a21 = initial;
                TVector a30 = initial, a31 = initial;
                for (int t = 0; t < taps; t++)
                {
                    var wv = TLanes.Splat(weights[t]);
                    float* s = rows + ow + tapOffset[t];
                    a00 = TLanes.MultiplyAdd(wv, TLanes.Load(s), a00);
                    a01 = TLanes.MultiplyAdd(wv, TLanes.Load(s + lanes), a01);
                    if (count > 1)
                    {
                        a10 = TLanes.MultiplyAdd(wv, TLanes.Load(s + 1 * rowStep), a10);
                        a11 = TLanes.MultiplyAdd(wv, TLanes.Load(s + 1 * rowStep + lanes), a11);
                    }
                    if (count > 2)
                    {
                        a20 = TLanes.MultiplyAdd(wv, TLanes.Load(s + 2 * rowStep), a20);
                        a21 = TLanes.MultiplyAdd(wv, TLanes.Load(s + 2 * rowStep + lanes), a21);
                    }
                    if (count > 3)
                    {
                        a30 = TLanes.MultiplyAdd(wv, TLanes.Load(s + 3 * rowStep), a30);
                        a31 = TLanes.MultiplyAdd(wv, TLanes.Load(s + 3 * rowStep + lanes), a31);
                    }
                }
                Store(a00, output + ow, channel);
                Store(a01, output + ow + lanes, channel);
                if (count > 1)
                {
                    Store(a10, output + _outWidth + ow, channel);
                    Store(a11, output + _outWidth + ow + lanes, channel);
                }
                if (count > 2)
                {
                    Store(a20, output + 2 * _outWidth + ow, channel);
                    Store(a21, output + 2 * _outWidth + ow + lanes, channel);
                }
                if (count > 3)
                {
                    Store(a30, output + 3 * _outWidth + ow, channel);
                    Store(a31, output + 3 * _outWidth + ow + lanes, channel);
                }
            }
            for (; ow < _outWidth; ow += lanes)
            {
                // The plane has room for whole vectors past the row's end; only the valid lanes are stored.
                TVector a00 = initial;
                TVector a10 = initial;
                TVector a20 = initial;
                TVector a30 = initial;
                for (int t = 0; t < taps; t++)
                {
                    var wv = TLanes.Splat(weights[t]);
                    float* s = rows + ow + tapOffset[t];
                    a00 = TLanes.MultiplyAdd(wv, TLanes.Load(s), a00);
                    if (count > 1)
                    {
                        a10 = TLanes.MultiplyAdd(wv, TLanes.Load(s + 1 * rowStep), a10);
                    }
                    if (count > 2)
                    {
                        a20 = TLanes.MultiplyAdd(wv, TLanes.Load(s + 2 * rowStep), a20);
                    }
                    if (count > 3)
                    {
                        a30 = TLanes.MultiplyAdd(wv, TLanes.Load(s + 3 * rowStep), a30);
                    }
                }
                int valid = Math.Min(lanes, _outWidth - ow);
                StorePartial(a00, output + ow, valid, tail, channel);
                if (count > 1) StorePartial(a10, output + _outWidth + ow, valid, tail, channel);
                if (count > 2) StorePartial(a20, output + 2 * _outWidth + ow, valid, tail, channel);
                if (count > 3) StorePartial(a30, output + 3 * _outWidth + ow, valid, tail, channel);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void Store(TVector value, float* destination, int channel) =>
            TLanes.Store(TLanes.Finish(value, destination, _epilogue, channel), destination);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void StorePartial(TVector value, float* destination, int valid, float* tail, int channel)
        {
            if (valid == TLanes.Count)
            {
                Store(value, destination, channel);
                return;
            }
            // The epilogue may read a residual at the destination, so the valid lanes are finished one by one.
            TLanes.Store(value, tail);
            for (int j = 0; j < valid; j++) destination[j] = _epilogue.Apply(tail[j], destination + j, channel, 0);
        }
    }
}
