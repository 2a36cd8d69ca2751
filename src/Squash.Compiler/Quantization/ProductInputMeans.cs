using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Quantization;

/// <summary>
/// The mean of what each quantizable Conv, MatMul and Gemm reads, per weight position, over the calibration samples:
/// for a convolution, per input channel and kernel tap the mean over output positions of the (zero-padded) input that
/// tap meets; for a MatMul or Gemm, per reduction index the mean over rows. The weights' rounding error times these
/// means is the bias that rounding adds to each output channel's mean (<see cref="BiasCorrection"/>). Memory is one
/// sum per weight position (input channels x taps, or depth) per node, whatever the number of samples.
/// </summary>
internal sealed class ProductInputMeans
{
    private readonly Dictionary<string, List<Accumulator>> _byInput = new(StringComparer.Ordinal);
    private readonly List<Accumulator> _all = [];

    /// <summary>Watches the inputs of <paramref name="graph"/>'s quantizable products.</summary>
    public ProductInputMeans(Graph graph)
    {
        foreach (var node in graph.Nodes)
        {
            Accumulator? accumulator = node.OpType switch
            {
                "Conv" when Int8Units.IsQuantizableConv(node) => new ConvAccumulator(node),
                "MatMul" when Int8Units.IsQuantizableMatMul(node) => new RowAccumulator(node, node.Input(1)!.Shape![0]),
                "Gemm" when Int8Units.IsQuantizableGemm(node) => new RowAccumulator(node, node.Input(0)!.Shape![1]),
                _ => null,
            };
            if (accumulator is null) continue;
            _all.Add(accumulator);
            string input = node.Inputs[0]!.Name;
            if (!_byInput.TryGetValue(input, out var list)) _byInput[input] = list = [];
            list.Add(accumulator);
        }
    }

    /// <summary>Takes one sample's value of <paramref name="value"/> (ignored unless a watched product reads it).</summary>
    public void Observe(string value, Tensor tensor)
    {
        if (!_byInput.TryGetValue(value, out var list) || tensor.DataType != DataType.Float) return;
        foreach (var accumulator in list) accumulator.Add(tensor.AsSpan<float>());
    }

    /// <summary>The means by node name (nodes that saw no sample or a non-finite value are left out).</summary>
    public IEnumerable<KeyValuePair<string, float[]>> Result() =>
        _all.Where(a => a.Count > 0 && a.Sums.All(double.IsFinite))
            .Select(a => KeyValuePair.Create(a.Node.Name, a.Sums.Select(s => (float)(s / a.Count)).ToArray()));

    private abstract class Accumulator(Node node, int positions)
    {
        public Node Node { get; } = node;
        public double[] Sums { get; } = new double[positions];
        public long Count { get; protected set; }
        public abstract void Add(ReadOnlySpan<float> x);
    }

    /// <summary>MatMul's A [..., K] and Gemm's A [M, K]: per k, the sum over rows.</summary>
    private sealed class RowAccumulator(Node node, int depth) : Accumulator(node, depth)
    {
        public override void Add(ReadOnlySpan<float> x)
        {
            int depth = Sums.Length;
            for (int row = 0; row + depth <= x.Length; row += depth)
                for (int k = 0; k < depth; k++) Sums[k] += x[row + k];
            Count += x.Length / depth;
        }
    }

    /// <summary>A 1-D or 2-D convolution: per (input channel, tap), the sum over output positions of the input that
    /// tap reads (padding reads zero). Rows first (per kernel column, the sum over output columns of each input row),
    /// then per kernel row the sum of those row sums over output rows: one pass over the input per kernel column.</summary>
    private sealed class ConvAccumulator : Accumulator
    {
        private readonly int _channels, _height, _width, _kh, _kw, _sh, _sw, _dh, _dw, _ph, _pw, _oh, _ow;
        /// <summary>Per input row, the sum over output columns for the current kernel column.</summary>
        private readonly double[] _rowSums;

        public ConvAccumulator(Node node) : base(node, node.Inputs[0]!.Shape![1] * Shapes.Product(node.Input(1)!.Shape!, 2, node.Input(1)!.Shape!.Length))
        {
            int[] x = node.Inputs[0]!.Shape!, w = node.Input(1)!.Shape!;
            bool twoD = x.Length == 4;
            long[] pads = Int8Quantization.ConvPads(node, x, w);
            long[] Ints(string name) => node.Attributes.TryGetValue(name, out var a) ? [.. a.Ints] : [.. Enumerable.Repeat(1L, x.Length - 2)];
            long[] strides = Ints("strides"), dilations = Ints("dilations");
            _channels = x[1];
            (_height, _width) = twoD ? (x[2], x[3]) : (1, x[2]);
            (_kh, _kw) = twoD ? (w[2], w[3]) : (1, w[2]);
            (_sh, _sw) = twoD ? ((int)strides[0], (int)strides[1]) : (1, (int)strides[0]);
            (_dh, _dw) = twoD ? ((int)dilations[0], (int)dilations[1]) : (1, (int)dilations[0]);
            (_ph, _pw) = twoD ? ((int)pads[0], (int)pads[1]) : (0, (int)pads[0]);
            int phEnd = twoD ? (int)pads[2] : 0, pwEnd = twoD ? (int)pads[3] : (int)pads[1];
            _oh = (_height + _ph + phEnd - ((_kh - 1) * _dh + 1)) / _sh + 1;
            _ow = (_width + _pw + pwEnd - ((_kw - 1) * _dw + 1)) / _sw + 1;
            _rowSums = new double[_height];
        }

        public override void Add(ReadOnlySpan<float> x)
        {
            int image = _channels * _height * _width;
            for (int start = 0; start + image <= x.Length; start += image) AddImage(x.Slice(start, image));
        }

        private void AddImage(ReadOnlySpan<float> x)
        {
            var rowSums = _rowSums;
            int plane = _height * _width;
            for (int c = 0; c < _channels; c++)
            {
                var channel = x.Slice(c * plane, plane);
                for (int j = 0; j < _kw; j++)
                {
                    for (int iy = 0; iy < _height; iy++)
                    {
                        var row = channel.Slice(iy * _width, _width);
                        double sum = 0;
                        for (int ox = 0; ox < _ow; ox++)
                        {
                            int ix = ox * _sw + j * _dw - _pw;
                            if ((uint)ix < (uint)_width) sum += row[ix];
                        }
                        rowSums[iy] = sum;
                    }
                    for (int i = 0; i < _kh; i++)
                    {
                        double sum = 0;
                        for (int oy = 0; oy < _oh; oy++)
                        {
                            int iy = oy * _sh + i * _dh - _ph;
                            if ((uint)iy < (uint)_height) sum += rowSums[iy];
                        }
                        Sums[(c * _kh + i) * _kw + j] += sum;
                    }
                }
            }
            Count += (long)_oh * _ow;
        }
    }
}
