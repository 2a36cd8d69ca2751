using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Passes;

/// <summary>Recognizes a Resize that repeats each pixel of an image an integer number of times, for fusions that read
/// the low-resolution tensor instead (<see cref="PyramidConvFusion"/>).</summary>
internal static class NearestUpsampling
{
    /// <summary>The integer factor by which <paramref name="resize"/> repeats each pixel of a 4-D image along both
    /// spatial axes (and copies the batch and channel axes), or null when it does something else.</summary>
    public static int? Factor(Node resize)
    {
        if (resize.OpType != "Resize" || resize.Domain.Length != 0 || resize.Outputs.Count != 1) return null;
        if (resize.Inputs[0] is not { Type: DataType.Float, Shape: [var n, var c, var h, var w] } || resize.Outputs[0].Shape is not [var n2, var c2, var hh, var ww])
            return null;
        if (n != n2 || c != c2 || h <= 0 || w <= 0 || hh % h != 0 || hh / h < 2 || hh / h != ww / w || ww % w != 0) return null;
        int s = hh / h;
        var a = resize.Attributes;
        string Text(string name, string fallback) => a.TryGetValue(name, out var v) ? v.StringValue ?? fallback : fallback;
        if (Text("mode", "nearest") != "nearest" || a.ContainsKey("axes") || Text("keep_aspect_ratio_policy", "stretch") != "stretch") return null;
        // Both map output x to floor(x / s) for an integer s: asymmetric x / s rounded down, and half-pixel
        // (x + 0.5) / s - 0.5 = floor(x / s) + (b - (s - 1) / 2) / s with b = x mod s, strictly within half a pixel.
        bool v10 = resize.OpsetVersion is > 0 and < 11;
        string transform = Text("coordinate_transformation_mode", "half_pixel"), rounding = Text("nearest_mode", "round_prefer_floor");
        bool floorMap = v10 || transform == "asymmetric" && rounding == "floor"
            || transform == "half_pixel" && rounding is "round_prefer_floor" or "round_prefer_ceil";
        if (!floorMap) return null;
        // The transform uses the given scales, not the shape ratio: they must be exactly [1, 1, s, s].
        int scalesInput = v10 ? 1 : 2;
        if (resize.Input(scalesInput)?.Constant is { ElementCount: > 0 } scales)
        {
            if (scales.ElementCount != 4) return null;
            for (int d = 0; d < 4; d++)
                if (scales.GetAsDouble(d) != (d < 2 ? 1 : s)) return null;
            return s;
        }
        return !v10 && resize.Input(3)?.Constant is { ElementCount: 4 } ? s : null;
    }
}
