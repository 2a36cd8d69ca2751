namespace Squash.Runtime.Gpu.Kernels;

#pragma warning disable CS1591 // One line per ONNX operator; the operator name is the documentation.

// Binary operators (ONNX semantics for fp32).
internal readonly struct AddOp : IBinaryOp { public float Apply(float a, float b) => a + b; }
internal readonly struct SubOp : IBinaryOp { public float Apply(float a, float b) => a - b; }
internal readonly struct MulOp : IBinaryOp { public float Apply(float a, float b) => a * b; }
internal readonly struct DivOp : IBinaryOp { public float Apply(float a, float b) => a / b; }
internal readonly struct PowOp : IBinaryOp { public float Apply(float a, float b) => MathF.Pow(a, b); }
internal readonly struct MaxOp : IBinaryOp { public float Apply(float a, float b) => float.IsNaN(a) || float.IsNaN(b) ? float.NaN : MathF.Max(a, b); }
internal readonly struct MinOp : IBinaryOp { public float Apply(float a, float b) => float.IsNaN(a) || float.IsNaN(b) ? float.NaN : MathF.Min(a, b); }
internal readonly struct FmodOp : IBinaryOp { public float Apply(float a, float b) => a % b; }
internal readonly struct PReluOp : IBinaryOp { public float Apply(float a, float b) => a < 0 ? a * b : a; }

// Comparisons (fp32 to bool) and logical operators (bool to bool); NaN compares false, as on the CPU.
internal readonly struct EqualOp : IMap2<float, byte> { public byte Apply(float a, float b) => a == b ? (byte)1 : (byte)0; }
internal readonly struct GreaterOp : IMap2<float, byte> { public byte Apply(float a, float b) => a > b ? (byte)1 : (byte)0; }
internal readonly struct GreaterOrEqualOp : IMap2<float, byte> { public byte Apply(float a, float b) => a >= b ? (byte)1 : (byte)0; }
internal readonly struct LessOp : IMap2<float, byte> { public byte Apply(float a, float b) => a < b ? (byte)1 : (byte)0; }
internal readonly struct LessOrEqualOp : IMap2<float, byte> { public byte Apply(float a, float b) => a <= b ? (byte)1 : (byte)0; }
internal readonly struct AndOp : IMap2<byte, byte> { public byte Apply(byte a, byte b) => a != 0 && b != 0 ? (byte)1 : (byte)0; }
internal readonly struct OrOp : IMap2<byte, byte> { public byte Apply(byte a, byte b) => a != 0 || b != 0 ? (byte)1 : (byte)0; }
internal readonly struct XorOp : IMap2<byte, byte> { public byte Apply(byte a, byte b) => (a != 0) != (b != 0) ? (byte)1 : (byte)0; }

// Unary operators; fields hold attributes.
internal readonly struct IdentityOp : IUnaryOp { public float Apply(float x) => x; }
internal readonly struct ScaleOp(float k) : IUnaryOp { public float Apply(float x) => x * k; }
internal readonly struct ReluOp : IUnaryOp { public float Apply(float x) => x > 0 ? x : 0f; }
internal readonly struct LeakyReluOp(float alpha) : IUnaryOp { public float Apply(float x) => x >= 0 ? x : alpha * x; }
internal readonly struct ThresholdedReluOp(float alpha) : IUnaryOp { public float Apply(float x) => x > alpha ? x : 0f; }
internal readonly struct EluOp(float alpha) : IUnaryOp { public float Apply(float x) => x >= 0 ? x : alpha * (MathF.Exp(x) - 1f); }
internal readonly struct SeluOp(float alpha, float gamma) : IUnaryOp { public float Apply(float x) => gamma * (x > 0 ? x : alpha * (MathF.Exp(x) - 1f)); }
internal readonly struct CeluOp(float alpha) : IUnaryOp { public float Apply(float x) => MathF.Max(0f, x) + MathF.Min(0f, alpha * (MathF.Exp(x / alpha) - 1f)); }
internal readonly struct SigmoidOp : IUnaryOp { public float Apply(float x) => DeviceMath.Sigmoid(x); }
internal readonly struct HardSigmoidOp(float alpha, float beta) : IUnaryOp { public float Apply(float x) => MathF.Max(0f, MathF.Min(1f, alpha * x + beta)); }
internal readonly struct HardSwishOp : IUnaryOp { public float Apply(float x) => x * MathF.Max(0f, MathF.Min(1f, x * (1f / 6f) + 0.5f)); }
internal readonly struct SoftplusOp : IUnaryOp { public float Apply(float x) => DeviceMath.Softplus(x); }
internal readonly struct SoftsignOp : IUnaryOp { public float Apply(float x) => x / (1f + MathF.Abs(x)); }
internal readonly struct MishOp : IUnaryOp { public float Apply(float x) => x * DeviceMath.Tanh(DeviceMath.Softplus(x)); }
internal readonly struct GeluOp : IUnaryOp { public float Apply(float x) => 0.5f * x * (1f + DeviceMath.Erf(x * 0.70710678118654752f)); }
internal readonly struct GeluTanhOp : IUnaryOp { public float Apply(float x) => 0.5f * x * (1f + DeviceMath.Tanh(0.7978845608028654f * (x + 0.044715f * x * x * x))); }
internal readonly struct ClipOp(float min, float max) : IUnaryOp { public float Apply(float x) => float.IsNaN(x) ? x : MathF.Min(max, MathF.Max(min, x)); }
internal readonly struct AbsOp : IUnaryOp { public float Apply(float x) => MathF.Abs(x); }
internal readonly struct NegOp : IUnaryOp { public float Apply(float x) => -x; }
internal readonly struct SignOp : IUnaryOp { public float Apply(float x) => x > 0 ? 1f : x < 0 ? -1f : x; }
internal readonly struct CeilOp : IUnaryOp { public float Apply(float x) => MathF.Ceiling(x); }
internal readonly struct FloorOp : IUnaryOp { public float Apply(float x) => MathF.Floor(x); }
internal readonly struct RoundOp : IUnaryOp { public float Apply(float x) => DeviceMath.RoundHalfEven(x); }
internal readonly struct ExpOp : IUnaryOp { public float Apply(float x) => MathF.Exp(x); }
internal readonly struct LogOp : IUnaryOp { public float Apply(float x) => MathF.Log(x); }
internal readonly struct SqrtOp : IUnaryOp { public float Apply(float x) => MathF.Sqrt(x); }
internal readonly struct ReciprocalOp : IUnaryOp { public float Apply(float x) => 1f / x; }
internal readonly struct ErfOp : IUnaryOp { public float Apply(float x) => DeviceMath.Erf(x); }
internal readonly struct TanhOp : IUnaryOp { public float Apply(float x) => DeviceMath.Tanh(x); }
internal readonly struct SinOp : IUnaryOp { public float Apply(float x) => MathF.Sin(x); }
internal readonly struct CosOp : IUnaryOp { public float Apply(float x) => MathF.Cos(x); }
internal readonly struct TanOp : IUnaryOp { public float Apply(float x) => MathF.Tan(x); }
internal readonly struct AsinOp : IUnaryOp { public float Apply(float x) => MathF.Asin(x); }
internal readonly struct AcosOp : IUnaryOp { public float Apply(float x) => MathF.Acos(x); }
internal readonly struct AtanOp : IUnaryOp { public float Apply(float x) => MathF.Atan(x); }
internal readonly struct SinhOp : IUnaryOp { public float Apply(float x) => 0.5f * (MathF.Exp(x) - MathF.Exp(-x)); }
internal readonly struct CoshOp : IUnaryOp { public float Apply(float x) => 0.5f * (MathF.Exp(x) + MathF.Exp(-x)); }
internal readonly struct AsinhOp : IUnaryOp { public float Apply(float x) { float r = MathF.Log(MathF.Abs(x) + MathF.Sqrt(x * x + 1f)); return x < 0 ? -r : r; } }
internal readonly struct AcoshOp : IUnaryOp { public float Apply(float x) => MathF.Log(x + MathF.Sqrt(x * x - 1f)); }
internal readonly struct AtanhOp : IUnaryOp { public float Apply(float x) => 0.5f * MathF.Log((1f + x) / (1f - x)); }
