using Squash.Runtime;

namespace Squash.Compiler.Tests.Support;

/// <summary>Compares tensors the way the ONNX backend test runner does, with stated tolerances.</summary>
internal static class TensorAssert
{
    /// <summary>
    /// Checks type and shape exactly; integers and bools exactly; floats with |actual - expected| &lt;= atol + rtol * |expected|,
    /// NaN where NaN is expected, and infinities exactly.
    /// </summary>
    public static void Close(Tensor expected, Tensor actual, double rtol, double atol, string what)
    {
        Assert.True(expected.DataType == actual.DataType,
            $"{what}: type {DataTypes.Name(actual.DataType)}, expected {DataTypes.Name(expected.DataType)}");
        Assert.True(Shapes.Equal(expected.Shape, actual.Shape),
            $"{what}: shape {Shapes.Format(actual.Shape)}, expected {Shapes.Format(expected.Shape)}");
        bool isFloat = DataTypes.IsFloatingPoint(expected.DataType);
        int bad = 0;
        string first = "";
        double worst = 0;
        for (int i = 0; i < expected.ElementCount; i++)
        {
            double e = expected.GetAsDouble(i), a = actual.GetAsDouble(i);
            bool ok;
            if (!isFloat)
            {
                ok = expected.DataType is DataType.Int64 or DataType.UInt64
                    ? expected.GetAsInt64(i) == actual.GetAsInt64(i)
                    : e == a;
            }
            else if (double.IsNaN(e)) ok = double.IsNaN(a);
            else if (double.IsInfinity(e)) ok = e == a;
            else
            {
                double err = Math.Abs(a - e);
                ok = err <= atol + rtol * Math.Abs(e);
                worst = Math.Max(worst, err);
            }
            if (!ok && bad++ == 0) first = $"first at flat index {i}: got {a:R}, expected {e:R}";
        }
        Assert.True(bad == 0, $"{what}: {bad} of {expected.ElementCount} elements differ (rtol {rtol}, atol {atol}); {first}; worst abs error {worst:G4}");
    }
}
