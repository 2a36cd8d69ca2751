using System.Runtime.CompilerServices;

namespace Squash.Runtime.Kernels;

internal static unsafe partial class DepthwiseConv
{
    private readonly partial struct Body<TVector, TLanes>
    {
        /// <summary>
        /// The row kernels for 3x3 and 5x5 windows with a vertical stride of 1 or 2 and no vertical dilation, on 16
        /// lanes (32 vector registers): the channel's weights stay splatted in registers for the whole plane (the
        /// general loop broadcasts one from memory for every multiply-add), and each shifted vector of a plane row is
        /// loaded once and feeds every output row of the four-row block that reads it, so a 5x5 stride-1 block makes
        /// 40 loads for 100 multiply-adds instead of 140 to 180. One vector per row keeps 25 weights, four
        /// accumulators and the loaded vector within the registers; the four rows are four independent chains, and a
        /// row of 80 is five full vectors (no half-speed tail). Written out by DepthwiseConvDense.py so that the JIT
        /// sees every weight as its own register; guards on <c>count</c> fold away per row-block height. The
        /// horizontal stride and dilation only move the column offsets.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void DenseRows<TRows>(float* rows, float* output, in RowBlock b) where TRows : struct, IRowCount
        {
            switch (_dense)
            {
                case DenseKernel.K3S1: Dense3x3S1<TRows>(rows, output, b); break;
                case DenseKernel.K3S2: Dense3x3S2<TRows>(rows, output, b); break;
                case DenseKernel.K5S1: Dense5x5S1<TRows>(rows, output, b); break;
                default: Dense5x5S2<TRows>(rows, output, b); break;
            }
        }

        /// <summary>Which written-out kernel applies, if any (16 lanes, square 3 or 5 window, vertical stride 1 or 2,
        /// no vertical dilation).</summary>
        private static DenseKernel SelectDense(ConvGeometry g)
        {
            if (TLanes.Count != 16 || g.Dilations[0] != 1 || g.Kernel[0] != g.Kernel[1]) return DenseKernel.None;
            return (g.Kernel[0], g.Strides[0]) switch
            {
                (3, 1) => DenseKernel.K3S1,
                (3, 2) => DenseKernel.K3S2,
                (5, 1) => DenseKernel.K5S1,
                (5, 2) => DenseKernel.K5S2,
                _ => DenseKernel.None,
            };
        }

        /// <summary>Stores the block's rows from column <paramref name="ow"/>, only the lanes inside the row.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void StoreRows<TRows>(float* output, int ow, TVector a0, TVector a1, TVector a2, TVector a3, in RowBlock b)
            where TRows : struct, IRowCount
        {
            int count = TRows.Value;
            int valid = Math.Min(TLanes.Count, _outWidth - ow);
            StorePartial(a0, output + ow, valid, b.Tail, b.Channel);
            if (count > 1) StorePartial(a1, output + _outWidth + ow, valid, b.Tail, b.Channel);
            if (count > 2) StorePartial(a2, output + 2 * _outWidth + ow, valid, b.Tail, b.Channel);
            if (count > 3) StorePartial(a3, output + 3 * _outWidth + ow, valid, b.Tail, b.Channel);
        }

        /// <summary>3x3 taps, vertical stride 1: plane row j feeds output row r through kernel row j - r.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Dense3x3S1<TRows>(float* rows, float* output, in RowBlock b) where TRows : struct, IRowCount
        {
            int count = TRows.Value;
            float* w = b.Weights;
            TVector w00 = TLanes.Splat(w[0]), w01 = TLanes.Splat(w[1]), w02 = TLanes.Splat(w[2]);
            TVector w10 = TLanes.Splat(w[3]), w11 = TLanes.Splat(w[4]), w12 = TLanes.Splat(w[5]);
            TVector w20 = TLanes.Splat(w[6]), w21 = TLanes.Splat(w[7]), w22 = TLanes.Splat(w[8]);
            int* c = b.ColumnOffset;
            int c0 = c[0], c1 = c[1], c2 = c[2];
            nint rowStride = b.RowStride;
            var initial = TLanes.Splat(b.Bias);
            TVector v0;
            int ow = 0;
            for (; ow < _outWidth; ow += TLanes.Count)
            {
                TVector a00 = initial, a10 = initial, a20 = initial, a30 = initial;
                float* p = rows + ow;
                v0 = TLanes.Load(p + c0); a00 = TLanes.MultiplyAdd(w00, v0, a00);
                v0 = TLanes.Load(p + c1); a00 = TLanes.MultiplyAdd(w01, v0, a00);
                v0 = TLanes.Load(p + c2); a00 = TLanes.MultiplyAdd(w02, v0, a00);
                p += rowStride;
                v0 = TLanes.Load(p + c0); a00 = TLanes.MultiplyAdd(w10, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w00, v0, a10);
                v0 = TLanes.Load(p + c1); a00 = TLanes.MultiplyAdd(w11, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w01, v0, a10);
                v0 = TLanes.Load(p + c2); a00 = TLanes.MultiplyAdd(w12, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w02, v0, a10);
                p += rowStride;
                v0 = TLanes.Load(p + c0); a00 = TLanes.MultiplyAdd(w20, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w10, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w00, v0, a20);
                v0 = TLanes.Load(p + c1); a00 = TLanes.MultiplyAdd(w21, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w11, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w01, v0, a20);
                v0 = TLanes.Load(p + c2); a00 = TLanes.MultiplyAdd(w22, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w12, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w02, v0, a20);
                if (count > 1)
                {
                    p += rowStride;
                    v0 = TLanes.Load(p + c0); a10 = TLanes.MultiplyAdd(w20, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w10, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w00, v0, a30);
                    v0 = TLanes.Load(p + c1); a10 = TLanes.MultiplyAdd(w21, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w11, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w01, v0, a30);
                    v0 = TLanes.Load(p + c2); a10 = TLanes.MultiplyAdd(w22, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w12, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w02, v0, a30);
                }
                if (count > 2)
                {
                    p += rowStride;
                    v0 = TLanes.Load(p + c0); a20 = TLanes.MultiplyAdd(w20, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w10, v0, a30);
                    v0 = TLanes.Load(p + c1); a20 = TLanes.MultiplyAdd(w21, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w11, v0, a30);
                    v0 = TLanes.Load(p + c2); a20 = TLanes.MultiplyAdd(w22, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w12, v0, a30);
                }
                if (count > 3)
                {
                    p += rowStride;
                    v0 = TLanes.Load(p + c0); a30 = TLanes.MultiplyAdd(w20, v0, a30);
                    v0 = TLanes.Load(p + c1); a30 = TLanes.MultiplyAdd(w21, v0, a30);
                    v0 = TLanes.Load(p + c2); a30 = TLanes.MultiplyAdd(w22, v0, a30);
                }
                StoreRows<TRows>(output, ow, a00, a10, a20, a30, b);
            }
        }

        /// <summary>3x3 taps, vertical stride 2: plane row j feeds output row r through kernel row j - 2r.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Dense3x3S2<TRows>(float* rows, float* output, in RowBlock b) where TRows : struct, IRowCount
        {
            int count = TRows.Value;
            float* w = b.Weights;
            TVector w00 = TLanes.Splat(w[0]), w01 = TLanes.Splat(w[1]), w02 = TLanes.Splat(w[2]);
            TVector w10 = TLanes.Splat(w[3]), w11 = TLanes.Splat(w[4]), w12 = TLanes.Splat(w[5]);
            TVector w20 = TLanes.Splat(w[6]), w21 = TLanes.Splat(w[7]), w22 = TLanes.Splat(w[8]);
            int* c = b.ColumnOffset;
            int c0 = c[0], c1 = c[1], c2 = c[2];
            nint rowStride = b.RowStride;
            var initial = TLanes.Splat(b.Bias);
            TVector v0;
            int ow = 0;
            for (; ow < _outWidth; ow += TLanes.Count)
            {
                TVector a00 = initial, a10 = initial, a20 = initial, a30 = initial;
                float* p = rows + ow;
                v0 = TLanes.Load(p + c0); a00 = TLanes.MultiplyAdd(w00, v0, a00);
                v0 = TLanes.Load(p + c1); a00 = TLanes.MultiplyAdd(w01, v0, a00);
                v0 = TLanes.Load(p + c2); a00 = TLanes.MultiplyAdd(w02, v0, a00);
                p += rowStride;
                v0 = TLanes.Load(p + c0); a00 = TLanes.MultiplyAdd(w10, v0, a00);
                v0 = TLanes.Load(p + c1); a00 = TLanes.MultiplyAdd(w11, v0, a00);
                v0 = TLanes.Load(p + c2); a00 = TLanes.MultiplyAdd(w12, v0, a00);
                p += rowStride;
                v0 = TLanes.Load(p + c0); a00 = TLanes.MultiplyAdd(w20, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w00, v0, a10);
                v0 = TLanes.Load(p + c1); a00 = TLanes.MultiplyAdd(w21, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w01, v0, a10);
                v0 = TLanes.Load(p + c2); a00 = TLanes.MultiplyAdd(w22, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w02, v0, a10);
                if (count > 1)
                {
                    p += rowStride;
                    v0 = TLanes.Load(p + c0); a10 = TLanes.MultiplyAdd(w10, v0, a10);
                    v0 = TLanes.Load(p + c1); a10 = TLanes.MultiplyAdd(w11, v0, a10);
                    v0 = TLanes.Load(p + c2); a10 = TLanes.MultiplyAdd(w12, v0, a10);
                }
                if (count > 1)
                {
                    p += rowStride;
                    v0 = TLanes.Load(p + c0); a10 = TLanes.MultiplyAdd(w20, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w00, v0, a20);
                    v0 = TLanes.Load(p + c1); a10 = TLanes.MultiplyAdd(w21, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w01, v0, a20);
                    v0 = TLanes.Load(p + c2); a10 = TLanes.MultiplyAdd(w22, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w02, v0, a20);
                }
                if (count > 2)
                {
                    p += rowStride;
                    v0 = TLanes.Load(p + c0); a20 = TLanes.MultiplyAdd(w10, v0, a20);
                    v0 = TLanes.Load(p + c1); a20 = TLanes.MultiplyAdd(w11, v0, a20);
                    v0 = TLanes.Load(p + c2); a20 = TLanes.MultiplyAdd(w12, v0, a20);
                }
                if (count > 2)
                {
                    p += rowStride;
                    v0 = TLanes.Load(p + c0); a20 = TLanes.MultiplyAdd(w20, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w00, v0, a30);
                    v0 = TLanes.Load(p + c1); a20 = TLanes.MultiplyAdd(w21, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w01, v0, a30);
                    v0 = TLanes.Load(p + c2); a20 = TLanes.MultiplyAdd(w22, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w02, v0, a30);
                }
                if (count > 3)
                {
                    p += rowStride;
                    v0 = TLanes.Load(p + c0); a30 = TLanes.MultiplyAdd(w10, v0, a30);
                    v0 = TLanes.Load(p + c1); a30 = TLanes.MultiplyAdd(w11, v0, a30);
                    v0 = TLanes.Load(p + c2); a30 = TLanes.MultiplyAdd(w12, v0, a30);
                }
                if (count > 3)
                {
                    p += rowStride;
                    v0 = TLanes.Load(p + c0); a30 = TLanes.MultiplyAdd(w20, v0, a30);
                    v0 = TLanes.Load(p + c1); a30 = TLanes.MultiplyAdd(w21, v0, a30);
                    v0 = TLanes.Load(p + c2); a30 = TLanes.MultiplyAdd(w22, v0, a30);
                }
                StoreRows<TRows>(output, ow, a00, a10, a20, a30, b);
            }
        }

        /// <summary>5x5 taps, vertical stride 1: plane row j feeds output row r through kernel row j - r.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Dense5x5S1<TRows>(float* rows, float* output, in RowBlock b) where TRows : struct, IRowCount
        {
            int count = TRows.Value;
            float* w = b.Weights;
            TVector w00 = TLanes.Splat(w[0]), w01 = TLanes.Splat(w[1]), w02 = TLanes.Splat(w[2]), w03 = TLanes.Splat(w[3]), w04 = TLanes.Splat(w[4]);
            TVector w10 = TLanes.Splat(w[5]), w11 = TLanes.Splat(w[6]), w12 = TLanes.Splat(w[7]), w13 = TLanes.Splat(w[8]), w14 = TLanes.Splat(w[9]);
            TVector w20 = TLanes.Splat(w[10]), w21 = TLanes.Splat(w[11]), w22 = TLanes.Splat(w[12]), w23 = TLanes.Splat(w[13]), w24 = TLanes.Splat(w[14]);
            TVector w30 = TLanes.Splat(w[15]), w31 = TLanes.Splat(w[16]), w32 = TLanes.Splat(w[17]), w33 = TLanes.Splat(w[18]), w34 = TLanes.Splat(w[19]);
            TVector w40 = TLanes.Splat(w[20]), w41 = TLanes.Splat(w[21]), w42 = TLanes.Splat(w[22]), w43 = TLanes.Splat(w[23]), w44 = TLanes.Splat(w[24]);
            int* c = b.ColumnOffset;
            int c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3], c4 = c[4];
            nint rowStride = b.RowStride;
            var initial = TLanes.Splat(b.Bias);
            TVector v0;
            int ow = 0;
            for (; ow < _outWidth; ow += TLanes.Count)
            {
                TVector a00 = initial, a10 = initial, a20 = initial, a30 = initial;
                float* p = rows + ow;
                v0 = TLanes.Load(p + c0); a00 = TLanes.MultiplyAdd(w00, v0, a00);
                v0 = TLanes.Load(p + c1); a00 = TLanes.MultiplyAdd(w01, v0, a00);
                v0 = TLanes.Load(p + c2); a00 = TLanes.MultiplyAdd(w02, v0, a00);
                v0 = TLanes.Load(p + c3); a00 = TLanes.MultiplyAdd(w03, v0, a00);
                v0 = TLanes.Load(p + c4); a00 = TLanes.MultiplyAdd(w04, v0, a00);
                p += rowStride;
                v0 = TLanes.Load(p + c0); a00 = TLanes.MultiplyAdd(w10, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w00, v0, a10);
                v0 = TLanes.Load(p + c1); a00 = TLanes.MultiplyAdd(w11, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w01, v0, a10);
                v0 = TLanes.Load(p + c2); a00 = TLanes.MultiplyAdd(w12, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w02, v0, a10);
                v0 = TLanes.Load(p + c3); a00 = TLanes.MultiplyAdd(w13, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w03, v0, a10);
                v0 = TLanes.Load(p + c4); a00 = TLanes.MultiplyAdd(w14, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w04, v0, a10);
                p += rowStride;
                v0 = TLanes.Load(p + c0); a00 = TLanes.MultiplyAdd(w20, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w10, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w00, v0, a20);
                v0 = TLanes.Load(p + c1); a00 = TLanes.MultiplyAdd(w21, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w11, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w01, v0, a20);
                v0 = TLanes.Load(p + c2); a00 = TLanes.MultiplyAdd(w22, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w12, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w02, v0, a20);
                v0 = TLanes.Load(p + c3); a00 = TLanes.MultiplyAdd(w23, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w13, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w03, v0, a20);
                v0 = TLanes.Load(p + c4); a00 = TLanes.MultiplyAdd(w24, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w14, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w04, v0, a20);
                p += rowStride;
                v0 = TLanes.Load(p + c0); a00 = TLanes.MultiplyAdd(w30, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w20, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w10, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w00, v0, a30);
                v0 = TLanes.Load(p + c1); a00 = TLanes.MultiplyAdd(w31, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w21, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w11, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w01, v0, a30);
                v0 = TLanes.Load(p + c2); a00 = TLanes.MultiplyAdd(w32, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w22, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w12, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w02, v0, a30);
                v0 = TLanes.Load(p + c3); a00 = TLanes.MultiplyAdd(w33, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w23, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w13, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w03, v0, a30);
                v0 = TLanes.Load(p + c4); a00 = TLanes.MultiplyAdd(w34, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w24, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w14, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w04, v0, a30);
                p += rowStride;
                v0 = TLanes.Load(p + c0); a00 = TLanes.MultiplyAdd(w40, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w30, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w20, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w10, v0, a30);
                v0 = TLanes.Load(p + c1); a00 = TLanes.MultiplyAdd(w41, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w31, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w21, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w11, v0, a30);
                v0 = TLanes.Load(p + c2); a00 = TLanes.MultiplyAdd(w42, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w32, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w22, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w12, v0, a30);
                v0 = TLanes.Load(p + c3); a00 = TLanes.MultiplyAdd(w43, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w33, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w23, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w13, v0, a30);
                v0 = TLanes.Load(p + c4); a00 = TLanes.MultiplyAdd(w44, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w34, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w24, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w14, v0, a30);
                if (count > 1)
                {
                    p += rowStride;
                    v0 = TLanes.Load(p + c0); a10 = TLanes.MultiplyAdd(w40, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w30, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w20, v0, a30);
                    v0 = TLanes.Load(p + c1); a10 = TLanes.MultiplyAdd(w41, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w31, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w21, v0, a30);
                    v0 = TLanes.Load(p + c2); a10 = TLanes.MultiplyAdd(w42, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w32, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w22, v0, a30);
                    v0 = TLanes.Load(p + c3); a10 = TLanes.MultiplyAdd(w43, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w33, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w23, v0, a30);
                    v0 = TLanes.Load(p + c4); a10 = TLanes.MultiplyAdd(w44, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w34, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w24, v0, a30);
                }
                if (count > 2)
                {
                    p += rowStride;
                    v0 = TLanes.Load(p + c0); a20 = TLanes.MultiplyAdd(w40, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w30, v0, a30);
                    v0 = TLanes.Load(p + c1); a20 = TLanes.MultiplyAdd(w41, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w31, v0, a30);
                    v0 = TLanes.Load(p + c2); a20 = TLanes.MultiplyAdd(w42, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w32, v0, a30);
                    v0 = TLanes.Load(p + c3); a20 = TLanes.MultiplyAdd(w43, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w33, v0, a30);
                    v0 = TLanes.Load(p + c4); a20 = TLanes.MultiplyAdd(w44, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w34, v0, a30);
                }
                if (count > 3)
                {
                    p += rowStride;
                    v0 = TLanes.Load(p + c0); a30 = TLanes.MultiplyAdd(w40, v0, a30);
                    v0 = TLanes.Load(p + c1); a30 = TLanes.MultiplyAdd(w41, v0, a30);
                    v0 = TLanes.Load(p + c2); a30 = TLanes.MultiplyAdd(w42, v0, a30);
                    v0 = TLanes.Load(p + c3); a30 = TLanes.MultiplyAdd(w43, v0, a30);
                    v0 = TLanes.Load(p + c4); a30 = TLanes.MultiplyAdd(w44, v0, a30);
                }
                StoreRows<TRows>(output, ow, a00, a10, a20, a30, b);
            }
        }

        /// <summary>5x5 taps, vertical stride 2: plane row j feeds output row r through kernel row j - 2r.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Dense5x5S2<TRows>(float* rows, float* output, in RowBlock b) where TRows : struct, IRowCount
        {
            int count = TRows.Value;
            float* w = b.Weights;
            TVector w00 = TLanes.Splat(w[0]), w01 = TLanes.Splat(w[1]), w02 = TLanes.Splat(w[2]), w03 = TLanes.Splat(w[3]), w04 = TLanes.Splat(w[4]);
            TVector w10 = TLanes.Splat(w[5]), w11 = TLanes.Splat(w[6]), w12 = TLanes.Splat(w[7]), w13 = TLanes.Splat(w[8]), w14 = TLanes.Splat(w[9]);
            TVector w20 = TLanes.Splat(w[10]), w21 = TLanes.Splat(w[11]), w22 = TLanes.Splat(w[12]), w23 = TLanes.Splat(w[13]), w24 = TLanes.Splat(w[14]);
            TVector w30 = TLanes.Splat(w[15]), w31 = TLanes.Splat(w[16]), w32 = TLanes.Splat(w[17]), w33 = TLanes.Splat(w[18]), w34 = TLanes.Splat(w[19]);
            TVector w40 = TLanes.Splat(w[20]), w41 = TLanes.Splat(w[21]), w42 = TLanes.Splat(w[22]), w43 = TLanes.Splat(w[23]), w44 = TLanes.Splat(w[24]);
            int* c = b.ColumnOffset;
            int c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3], c4 = c[4];
            nint rowStride = b.RowStride;
            var initial = TLanes.Splat(b.Bias);
            TVector v0;
            int ow = 0;
            for (; ow < _outWidth; ow += TLanes.Count)
            {
                TVector a00 = initial, a10 = initial, a20 = initial, a30 = initial;
                float* p = rows + ow;
                v0 = TLanes.Load(p + c0); a00 = TLanes.MultiplyAdd(w00, v0, a00);
                v0 = TLanes.Load(p + c1); a00 = TLanes.MultiplyAdd(w01, v0, a00);
                v0 = TLanes.Load(p + c2); a00 = TLanes.MultiplyAdd(w02, v0, a00);
                v0 = TLanes.Load(p + c3); a00 = TLanes.MultiplyAdd(w03, v0, a00);
                v0 = TLanes.Load(p + c4); a00 = TLanes.MultiplyAdd(w04, v0, a00);
                p += rowStride;
                v0 = TLanes.Load(p + c0); a00 = TLanes.MultiplyAdd(w10, v0, a00);
                v0 = TLanes.Load(p + c1); a00 = TLanes.MultiplyAdd(w11, v0, a00);
                v0 = TLanes.Load(p + c2); a00 = TLanes.MultiplyAdd(w12, v0, a00);
                v0 = TLanes.Load(p + c3); a00 = TLanes.MultiplyAdd(w13, v0, a00);
                v0 = TLanes.Load(p + c4); a00 = TLanes.MultiplyAdd(w14, v0, a00);
                p += rowStride;
                v0 = TLanes.Load(p + c0); a00 = TLanes.MultiplyAdd(w20, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w00, v0, a10);
                v0 = TLanes.Load(p + c1); a00 = TLanes.MultiplyAdd(w21, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w01, v0, a10);
                v0 = TLanes.Load(p + c2); a00 = TLanes.MultiplyAdd(w22, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w02, v0, a10);
                v0 = TLanes.Load(p + c3); a00 = TLanes.MultiplyAdd(w23, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w03, v0, a10);
                v0 = TLanes.Load(p + c4); a00 = TLanes.MultiplyAdd(w24, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w04, v0, a10);
                p += rowStride;
                v0 = TLanes.Load(p + c0); a00 = TLanes.MultiplyAdd(w30, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w10, v0, a10);
                v0 = TLanes.Load(p + c1); a00 = TLanes.MultiplyAdd(w31, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w11, v0, a10);
                v0 = TLanes.Load(p + c2); a00 = TLanes.MultiplyAdd(w32, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w12, v0, a10);
                v0 = TLanes.Load(p + c3); a00 = TLanes.MultiplyAdd(w33, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w13, v0, a10);
                v0 = TLanes.Load(p + c4); a00 = TLanes.MultiplyAdd(w34, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w14, v0, a10);
                p += rowStride;
                v0 = TLanes.Load(p + c0); a00 = TLanes.MultiplyAdd(w40, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w20, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w00, v0, a20);
                v0 = TLanes.Load(p + c1); a00 = TLanes.MultiplyAdd(w41, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w21, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w01, v0, a20);
                v0 = TLanes.Load(p + c2); a00 = TLanes.MultiplyAdd(w42, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w22, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w02, v0, a20);
                v0 = TLanes.Load(p + c3); a00 = TLanes.MultiplyAdd(w43, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w23, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w03, v0, a20);
                v0 = TLanes.Load(p + c4); a00 = TLanes.MultiplyAdd(w44, v0, a00); if (count > 1) a10 = TLanes.MultiplyAdd(w24, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w04, v0, a20);
                if (count > 1)
                {
                    p += rowStride;
                    v0 = TLanes.Load(p + c0); a10 = TLanes.MultiplyAdd(w30, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w10, v0, a20);
                    v0 = TLanes.Load(p + c1); a10 = TLanes.MultiplyAdd(w31, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w11, v0, a20);
                    v0 = TLanes.Load(p + c2); a10 = TLanes.MultiplyAdd(w32, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w12, v0, a20);
                    v0 = TLanes.Load(p + c3); a10 = TLanes.MultiplyAdd(w33, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w13, v0, a20);
                    v0 = TLanes.Load(p + c4); a10 = TLanes.MultiplyAdd(w34, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w14, v0, a20);
                }
                if (count > 1)
                {
                    p += rowStride;
                    v0 = TLanes.Load(p + c0); a10 = TLanes.MultiplyAdd(w40, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w20, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w00, v0, a30);
                    v0 = TLanes.Load(p + c1); a10 = TLanes.MultiplyAdd(w41, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w21, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w01, v0, a30);
                    v0 = TLanes.Load(p + c2); a10 = TLanes.MultiplyAdd(w42, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w22, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w02, v0, a30);
                    v0 = TLanes.Load(p + c3); a10 = TLanes.MultiplyAdd(w43, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w23, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w03, v0, a30);
                    v0 = TLanes.Load(p + c4); a10 = TLanes.MultiplyAdd(w44, v0, a10); if (count > 2) a20 = TLanes.MultiplyAdd(w24, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w04, v0, a30);
                }
                if (count > 2)
                {
                    p += rowStride;
                    v0 = TLanes.Load(p + c0); a20 = TLanes.MultiplyAdd(w30, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w10, v0, a30);
                    v0 = TLanes.Load(p + c1); a20 = TLanes.MultiplyAdd(w31, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w11, v0, a30);
                    v0 = TLanes.Load(p + c2); a20 = TLanes.MultiplyAdd(w32, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w12, v0, a30);
                    v0 = TLanes.Load(p + c3); a20 = TLanes.MultiplyAdd(w33, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w13, v0, a30);
                    v0 = TLanes.Load(p + c4); a20 = TLanes.MultiplyAdd(w34, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w14, v0, a30);
                }
                if (count > 2)
                {
                    p += rowStride;
                    v0 = TLanes.Load(p + c0); a20 = TLanes.MultiplyAdd(w40, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w20, v0, a30);
                    v0 = TLanes.Load(p + c1); a20 = TLanes.MultiplyAdd(w41, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w21, v0, a30);
                    v0 = TLanes.Load(p + c2); a20 = TLanes.MultiplyAdd(w42, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w22, v0, a30);
                    v0 = TLanes.Load(p + c3); a20 = TLanes.MultiplyAdd(w43, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w23, v0, a30);
                    v0 = TLanes.Load(p + c4); a20 = TLanes.MultiplyAdd(w44, v0, a20); if (count > 3) a30 = TLanes.MultiplyAdd(w24, v0, a30);
                }
                if (count > 3)
                {
                    p += rowStride;
                    v0 = TLanes.Load(p + c0); a30 = TLanes.MultiplyAdd(w30, v0, a30);
                    v0 = TLanes.Load(p + c1); a30 = TLanes.MultiplyAdd(w31, v0, a30);
                    v0 = TLanes.Load(p + c2); a30 = TLanes.MultiplyAdd(w32, v0, a30);
                    v0 = TLanes.Load(p + c3); a30 = TLanes.MultiplyAdd(w33, v0, a30);
                    v0 = TLanes.Load(p + c4); a30 = TLanes.MultiplyAdd(w34, v0, a30);
                }
                if (count > 3)
                {
                    p += rowStride;
                    v0 = TLanes.Load(p + c0); a30 = TLanes.MultiplyAdd(w40, v0, a30);
                    v0 = TLanes.Load(p + c1); a30 = TLanes.MultiplyAdd(w41, v0, a30);
                    v0 = TLanes.Load(p + c2); a30 = TLanes.MultiplyAdd(w42, v0, a30);
                    v0 = TLanes.Load(p + c3); a30 = TLanes.MultiplyAdd(w43, v0, a30);
                    v0 = TLanes.Load(p + c4); a30 = TLanes.MultiplyAdd(w44, v0, a30);
                }
                StoreRows<TRows>(output, ow, a00, a10, a20, a30, b);
            }
        }
    }

    /// <summary>The written-out row kernels (<c>DenseRows</c>).</summary>
    private enum DenseKernel
    {
        None,
        K3S1,
        K3S2,
        K5S1,
        K5S2,
    }
}
