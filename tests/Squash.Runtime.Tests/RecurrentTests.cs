using Squash.Runtime.Ir;

namespace Squash.Runtime.Tests;

/// <summary>
/// LSTM and GRU against a scalar double-precision transcription of the ONNX equations, for the features the
/// vendored conformance cases leave out: both directions, sequence_lens, layout 1, peepholes with input_forget,
/// clip, linear_before_reset and activations with alpha/beta. Tolerance 2e-5 absolute: fp32 dot products of
/// fewer than 20 terms of magnitude below 1, through a few steps of bounded activations.
/// </summary>
public sealed class RecurrentTests
{
    private const int Seq = 4, Batch = 3, Input = 5, Hidden = 6;

    [Theory]
    [InlineData("bidirectional", 0, false, 0f, false)]
    [InlineData("bidirectional", 1, true, 0.8f, false)]
    [InlineData("reverse", 0, true, 0f, true)]
    [InlineData("forward", 1, false, 0.5f, true)]
    public void LstmMatchesReference(string direction, int layout, bool peepholes, float clip, bool inputForget)
    {
        string[] activations = inputForget ? ["HardSigmoid", "LeakyRelu", "Softsign"] : ["Sigmoid", "Tanh", "Tanh"];
        Check(lstm: true, direction, layout, peepholes, clip, inputForget, linearBeforeReset: false, activations);
    }

    [Theory]
    [InlineData("bidirectional", 0, false, 0f)]
    [InlineData("bidirectional", 1, true, 0f)]
    [InlineData("reverse", 1, true, 0.7f)]
    [InlineData("forward", 0, false, 0.7f)]
    public void GruMatchesReference(string direction, int layout, bool linearBeforeReset, float clip)
    {
        string[] activations = clip > 0 ? ["ScaledTanh", "Elu"] : ["Sigmoid", "Tanh"];
        Check(lstm: false, direction, layout, peepholes: false, clip, inputForget: false, linearBeforeReset, activations);
    }

    /// <summary>
    /// float16 runs in float and rounds back: on float16-exact inputs it must equal the float run rounded to float16.
    /// </summary>
    [Theory]
    [InlineData("LSTM")]
    [InlineData("GRU")]
    public void Float16MatchesFloatRoundedToFloat16(string op)
    {
        var rng = new Random(3);
        int g = op == "LSTM" ? 4 : 3;
        float[] Values(int n) => Array.ConvertAll(NodeRunner.Random(rng, n), v => (float)(Half)v);
        var x = Values(Seq * Batch * Input);
        var w = Values(2 * g * Hidden * Input);
        var r = Values(2 * g * Hidden * Hidden);
        var b = Values(2 * 2 * g * Hidden);
        var attributes = new Dictionary<string, AttributeValue> { ["hidden_size"] = AttributeValue.Int(Hidden), ["direction"] = AttributeValue.String("bidirectional") };
        Tensor[] RunAs<T>(Func<float, T> convert) where T : unmanaged => NodeRunner.Run(op, 14, attributes, 1, op == "LSTM" ? 3 : 2,
            Tensor.From<T>(Array.ConvertAll(x, v => convert(v)), Seq, Batch, Input),
            Tensor.From<T>(Array.ConvertAll(w, v => convert(v)), 2, g * Hidden, Input),
            Tensor.From<T>(Array.ConvertAll(r, v => convert(v)), 2, g * Hidden, Hidden),
            Tensor.From<T>(Array.ConvertAll(b, v => convert(v)), 2, 2 * g * Hidden));
        var single = RunAs(v => v);
        var half = RunAs(v => (Half)v);
        for (int o = 0; o < single.Length; o++)
        {
            Assert.Equal(DataType.Float16, half[o].DataType);
            Assert.Equal(single[o].Shape, half[o].Shape);
            var expected = single[o].AsSpan<float>();
            var actual = half[o].AsSpan<Half>();
            for (int i = 0; i < expected.Length; i++)
                Assert.Equal((Half)expected[i], actual[i]);
        }
    }

    private static void Check(bool lstm, string direction, int layout, bool peepholes, float clip, bool inputForget,
        bool linearBeforeReset, string[] activationsPerDirection)
    {
        int nd = direction == "bidirectional" ? 2 : 1;
        int gates = lstm ? 4 : 3;
        var rng = new Random(layout * 10 + nd + (lstm ? 100 : 0) + (peepholes ? 1000 : 0));
        // Logical values, indexed [t, b, k] / [d, b, j] whatever the layout.
        var x = NodeRunner.Random(rng, Seq * Batch * Input);
        var w = NodeRunner.Random(rng, nd * gates * Hidden * Input);
        var r = NodeRunner.Random(rng, nd * gates * Hidden * Hidden);
        var bias = NodeRunner.Random(rng, nd * 2 * gates * Hidden);
        var h0 = NodeRunner.Random(rng, nd * Batch * Hidden);
        var c0 = NodeRunner.Random(rng, nd * Batch * Hidden);
        var p = NodeRunner.Random(rng, nd * 3 * Hidden);
        int[] lengths = [4, 2, 3];
        string[] activations = nd == 2 ? [.. activationsPerDirection, .. activationsPerDirection] : activationsPerDirection;
        float[] alphas = [0.3f, 0.05f, 0.7f, 0.2f], betas = [0.6f, 0.9f];

        var xt = layout == 0 ? Tensor.From<float>(x, Seq, Batch, Input) : Tensor.From<float>(Permute(x, Seq, Batch, Input), Batch, Seq, Input);
        Tensor State(float[] v) => layout == 0 ? Tensor.From<float>(v, nd, Batch, Hidden) : Tensor.From<float>(Permute(v, nd, Batch, Hidden), Batch, nd, Hidden);
        var attributes = new Dictionary<string, AttributeValue>
        {
            ["hidden_size"] = AttributeValue.Int(Hidden),
            ["direction"] = AttributeValue.String(direction),
            ["layout"] = AttributeValue.Int(layout),
            ["activations"] = AttributeValue.StringList(activations),
            ["activation_alpha"] = AttributeValue.FloatList(alphas),
            ["activation_beta"] = AttributeValue.FloatList(betas),
        };
        if (clip > 0) attributes["clip"] = AttributeValue.Float(clip);
        if (lstm) attributes["input_forget"] = AttributeValue.Int(inputForget ? 1 : 0);
        else attributes["linear_before_reset"] = AttributeValue.Int(linearBeforeReset ? 1 : 0);
        var inputs = new List<Tensor?>
        {
            xt,
            Tensor.From<float>(w, nd, gates * Hidden, Input),
            Tensor.From<float>(r, nd, gates * Hidden, Hidden),
            Tensor.From<float>(bias, nd, 2 * gates * Hidden),
            Tensor.From<int>(lengths, Batch),
            State(h0),
        };
        if (lstm)
        {
            inputs.Add(State(c0));
            inputs.Add(peepholes ? Tensor.From<float>(p, nd, 3 * Hidden) : null);
        }
        var outputs = NodeRunner.Run(lstm ? "LSTM" : "GRU", 14, attributes, 1, lstm ? 3 : 2, [.. inputs]);

        var funcs = Parse(activations, alphas, betas);
        var y = new double[Seq * nd * Batch * Hidden];
        var yh = new double[nd * Batch * Hidden];
        var yc = new double[nd * Batch * Hidden];
        for (int d = 0; d < nd; d++)
        {
            bool reverse = direction == "reverse" || d == 1;
            for (int b = 0; b < Batch; b++)
            {
                var h = new double[Hidden];
                var c = new double[Hidden];
                for (int j = 0; j < Hidden; j++)
                {
                    h[j] = h0[(d * Batch + b) * Hidden + j];
                    c[j] = c0[(d * Batch + b) * Hidden + j];
                }
                for (int step = 0; step < lengths[b]; step++)
                {
                    int t = reverse ? lengths[b] - 1 - step : step;
                    // Pre-activation of gate q, unit j: X W^T + Wb, and separately H R^T + Rb.
                    double Xw(int q, int j)
                    {
                        double s = bias[d * 2 * gates * Hidden + q * Hidden + j];
                        for (int k = 0; k < Input; k++) s += x[(t * Batch + b) * Input + k] * w[((d * gates + q) * Hidden + j) * Input + k];
                        return s;
                    }
                    double Hr(int q, int j, double[] state)
                    {
                        double s = bias[d * 2 * gates * Hidden + (gates + q) * Hidden + j];
                        for (int k = 0; k < Hidden; k++) s += state[k] * r[((d * gates + q) * Hidden + j) * Hidden + k];
                        return s;
                    }
                    double Clip(double v) => clip > 0 ? Math.Clamp(v, -clip, clip) : v;
                    var next = new double[Hidden];
                    if (lstm)
                    {
                        var (f, g, hf) = (funcs[3 * d], funcs[3 * d + 1], funcs[3 * d + 2]);
                        var cn = new double[Hidden];
                        for (int j = 0; j < Hidden; j++)
                        {
                            double pi = peepholes ? p[d * 3 * Hidden + j] : 0, po = peepholes ? p[d * 3 * Hidden + Hidden + j] : 0, pf = peepholes ? p[d * 3 * Hidden + 2 * Hidden + j] : 0;
                            double i = f(Clip(Xw(0, j) + Hr(0, j, h) + pi * c[j]));
                            double fg = inputForget ? 1 - i : f(Clip(Xw(2, j) + Hr(2, j, h) + pf * c[j]));
                            double cc = g(Clip(Xw(3, j) + Hr(3, j, h)));
                            cn[j] = fg * c[j] + i * cc;
                            double o = f(Clip(Xw(1, j) + Hr(1, j, h) + po * cn[j]));
                            next[j] = o * hf(cn[j]);
                        }
                        c = cn;
                    }
                    else
                    {
                        var (f, g) = (funcs[2 * d], funcs[2 * d + 1]);
                        var rh = new double[Hidden];
                        var zs = new double[Hidden];
                        var rs = new double[Hidden];
                        for (int j = 0; j < Hidden; j++)
                        {
                            zs[j] = f(Clip(Xw(0, j) + Hr(0, j, h)));
                            rs[j] = f(Clip(Xw(1, j) + Hr(1, j, h)));
                            rh[j] = rs[j] * h[j];
                        }
                        for (int j = 0; j < Hidden; j++)
                        {
                            double pre = linearBeforeReset ? Xw(2, j) + rs[j] * Hr(2, j, h) : Xw(2, j) + Hr(2, j, rh);
                            double hh = g(Clip(pre));
                            next[j] = (1 - zs[j]) * hh + zs[j] * h[j];
                        }
                    }
                    h = next;
                    for (int j = 0; j < Hidden; j++) y[((t * nd + d) * Batch + b) * Hidden + j] = h[j];
                }
                for (int j = 0; j < Hidden; j++)
                {
                    yh[(d * Batch + b) * Hidden + j] = h[j];
                    yc[(d * Batch + b) * Hidden + j] = c[j];
                }
            }
        }
        // Bring the computed outputs back to the logical layout and compare.
        var actualY = outputs[0].AsSpan<float>().ToArray();
        if (layout == 1) actualY = Unpermute4(actualY, Seq, nd, Batch, Hidden);
        AssertClose(y, actualY, "Y");
        var actualH = outputs[1].AsSpan<float>().ToArray();
        AssertClose(yh, layout == 1 ? Unpermute(actualH, nd, Batch, Hidden) : actualH, "Y_h");
        if (lstm)
        {
            var actualC = outputs[2].AsSpan<float>().ToArray();
            AssertClose(yc, layout == 1 ? Unpermute(actualC, nd, Batch, Hidden) : actualC, "Y_c");
        }
    }

    private static void AssertClose(double[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 2e-5, $"{what}[{i}] = {actual[i]}, expected {expected[i]}");
    }

    /// <summary>[a, b, c] to [b, a, c].</summary>
    private static float[] Permute(float[] v, int a, int b, int c)
    {
        var result = new float[v.Length];
        for (int i = 0; i < a; i++)
            for (int j = 0; j < b; j++)
                Array.Copy(v, (i * b + j) * c, result, (j * a + i) * c, c);
        return result;
    }

    /// <summary>[b, a, c] back to [a, b, c].</summary>
    private static float[] Unpermute(float[] v, int a, int b, int c) => Permute(v, b, a, c);

    /// <summary>Y of layout 1, [batch, seq, nd, hidden], back to [seq, nd, batch, hidden].</summary>
    private static float[] Unpermute4(float[] v, int seq, int nd, int batch, int hidden)
    {
        var result = new float[v.Length];
        for (int t = 0; t < seq; t++)
            for (int d = 0; d < nd; d++)
                for (int b = 0; b < batch; b++)
                    Array.Copy(v, ((b * seq + t) * nd + d) * hidden, result, ((t * nd + d) * batch + b) * hidden, hidden);
        return result;
    }

    /// <summary>The ONNX activation functions in double, alpha and beta consumed in order by those that take them.</summary>
    private static Func<double, double>[] Parse(string[] names, float[] alphas, float[] betas)
    {
        int ai = 0, bi = 0;
        var result = new Func<double, double>[names.Length];
        for (int n = 0; n < names.Length; n++)
        {
            switch (names[n])
            {
                case "Sigmoid": result[n] = v => 1 / (1 + Math.Exp(-v)); break;
                case "Tanh": result[n] = Math.Tanh; break;
                case "Softsign": result[n] = v => v / (1 + Math.Abs(v)); break;
                case "LeakyRelu":
                {
                    double a = alphas[ai++];
                    result[n] = v => v >= 0 ? v : a * v;
                    break;
                }
                case "Elu":
                {
                    double a = alphas[ai++];
                    result[n] = v => v >= 0 ? v : a * (Math.Exp(v) - 1);
                    break;
                }
                case "HardSigmoid":
                {
                    double a = alphas[ai++], b = betas[bi++];
                    result[n] = v => Math.Clamp(a * v + b, 0, 1);
                    break;
                }
                case "ScaledTanh":
                {
                    double a = alphas[ai++], b = betas[bi++];
                    result[n] = v => a * Math.Tanh(b * v);
                    break;
                }
                default: throw new ArgumentException(names[n]);
            }
        }
        return result;
    }
}
