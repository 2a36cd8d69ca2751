using System.Globalization;
using Squash.Runtime;

namespace Squash.Compiler.Quantization;

/// <summary>One unit the search ran in its fallback precision (fp32 or fp16), and what the model measured (or was predicted to) after it.</summary>
/// <param name="Node">The unit.</param>
/// <param name="Borders">int8/float conversions (QuantizeLinear + DequantizeLinear) of the plan after this step.</param>
/// <param name="Measured">The held-out accuracy measured after this step; null when the step was only predicted to
/// fall short (the search measures when the prediction meets the target).</param>
public sealed record FallbackStep(string Node, int Borders, OutputAgreement? Measured);

/// <summary>What the mixed-precision search chose.</summary>
/// <param name="Plan">The plan.</param>
/// <param name="Evaluation">The plan measured on the held-out samples.</param>
/// <param name="Start">The starting plan (default plus exclusions) measured likewise.</param>
/// <param name="Steps">The units run in the fallback precision, in order.</param>
/// <param name="Met">True when the plan meets the target.</param>
public sealed record MixedPrecisionResult(QuantizationPlan Plan, PlanEvaluation Evaluation, PlanEvaluation Start,
    IReadOnlyList<FallbackStep> Steps, bool Met);

/// <summary>
/// Falls the products (Conv, MatMul, Gemm) with the most quantization noise per multiply-add back to a float precision (fp32, or fp16 weights with
/// <c>Int8Fallback="fp16"</c>) until the model meets an <see cref="AccuracyTarget"/> on the held-out samples, keeping int8
/// regions contiguous. Every plan is measured with the fallback precision it would run in.
/// </summary>
/// <remarks>
/// <para>Quantization noise of independent layers adds up at the output (about: each layer's error is small and
/// uncorrelated with the others'), so the profile's solo noise powers <c>n_u = 10^(-SQNR_u/10)</c> predict a plan's
/// output noise as <c>k Σ n_u</c> over its int8 units, with <c>k</c> the ratio of the last measured noise to that sum
/// (interactions, the non-product units). Each step:</para>
/// <list type="number">
/// <item>the candidates are the int8 products whose solo noise per multiply-add is at least half the largest remaining
/// one (within 3 dB of the densest): falling back any of them buys about as much accuracy for the time it gives up (on
/// PP-OCR rec, ranking by noise alone fell back the cheap sensitive layers and then nearly everything, and the plan ran
/// at fp32's speed; per multiply-add the same target keeps 60 % of the multiply-adds in int8);</item>
/// <item>among them the search takes the one whose fallback leaves the fewest int8/float borders (QuantizeLinear and
/// DequantizeLinear nodes of the rewritten graph): an isolated int8 island becomes float and its two borders go, a
/// unit at a region's edge moves the border, while a unit inside a region would split it and add two. Every border
/// costs a conversion pass over a tensor and the rounding of one more quantization, so fewer borders are faster and
/// usually more accurate. Ties go to the denser unit, then to graph order (deterministic);</item>
/// <item>when the predicted SQNR meets the target, the plan is measured; the search stops when the measurement
/// meets it, and otherwise re-fits <c>k</c> and goes on.</item>
/// </list>
/// <para>A cosine target is predicted through <see cref="AccuracyTarget.EquivalentSqnrDb"/> and checked on the cosine.
/// The search cannot fail to reach fp32's outputs (every unit in fp32 is exact), so it reports
/// <see cref="MixedPrecisionResult.Met"/> false when meeting the target would leave no product in int8.</para>
/// </remarks>
internal static class MixedPrecisionSearch
{
    /// <summary>How many candidates are compared by their borders at most per step (each costs one rewrite).</summary>
    private const int MaxCandidates = 8;

    public static MixedPrecisionResult Run(Int8Evaluator evaluator, SensitivityProfile profile, QuantizationPlan start, AccuracyTarget target,
        Action<string>? log = null, NodePrecision fallback = NodePrecision.Fp32)
    {
        if (fallback == NodePrecision.Int8) throw new ArgumentException("The fallback precision is a float one.", nameof(fallback));
        string fallbackName = fallback.ToString().ToLowerInvariant();
        var noise = profile.Units.ToDictionary(u => u.Node, u => u.Output?.RelativeNoise ?? 0, StringComparer.Ordinal);
        // Noise per multiply-add: what falling a unit back buys for what it costs (a product's time is about its MACs).
        var density = profile.Units.ToDictionary(u => u.Node, u => (u.Output?.RelativeNoise ?? 0) / Math.Max(1, u.Macs), StringComparer.Ordinal);
        var order = profile.Units.Select((u, i) => (u.Node, i)).ToDictionary(p => p.Node, p => p.i, StringComparer.Ordinal);
        var first = evaluator.Evaluate(start);
        var plan = start;
        var current = first;
        var steps = new List<FallbackStep>();
        double k = Fit(current.Output, Sum(plan, noise));
        while (!target.IsMetBy(current.Output))
        {
            var remaining = Int8Products(plan).OrderByDescending(n => density.GetValueOrDefault(n)).ThenBy(n => order.GetValueOrDefault(n, int.MaxValue)).ToList();
            if (remaining.Count <= 1)
            {
                // The last product: falling it back gives fp32 itself, which is no int8 model.
                if (steps.Count > 0 && steps[^1].Measured is null) current = evaluator.Evaluate(plan);
                log?.Invoke($"the target needs every layer in fp32; the best int8 plan measured {target.Format(current.Output)}");
                return new MixedPrecisionResult(plan, current, first, steps, false);
            }
            double top = density.GetValueOrDefault(remaining[0]);
            var candidates = remaining.TakeWhile(n => density.GetValueOrDefault(n) >= top / 2).Take(MaxCandidates).ToList();
            if (candidates.Count == 0) candidates.Add(remaining[0]);
            string? best = null;
            int bestBorders = int.MaxValue;
            foreach (var candidate in candidates)
            {
                var report = evaluator.Rewrite(plan.With(candidate, fallback)).Report;
                int borders = report.Quantizes + report.Dequantizes;
                if (borders < bestBorders) (best, bestBorders) = (candidate, borders);
            }
            plan = plan.With(best!, fallback);
            double predicted = k * Sum(plan, noise);
            bool measure = predicted == 0 || -10 * Math.Log10(predicted) >= target.EquivalentSqnrDb;
            if (measure)
            {
                current = evaluator.Evaluate(plan);
                k = Fit(current.Output, Sum(plan, noise));
            }
            steps.Add(new FallbackStep(best!, bestBorders, measure ? current.Output : null));
            string measuredText = measure ? $", measured {target.Format(current.Output)}" : "";
            log?.Invoke(string.Create(CultureInfo.InvariantCulture,
                $"{fallbackName}: {best} (alone {AccuracyTarget.FormatDb(-10 * Math.Log10(noise.GetValueOrDefault(best!)))}), {bestBorders} borders{measuredText}"));
        }
        return new MixedPrecisionResult(plan, current, first, steps, true);
    }

    /// <summary>The products the plan runs in int8, in graph order.</summary>
    internal static IEnumerable<string> Int8Products(QuantizationPlan plan) =>
        plan.Precisions.Where(p => p.Value == NodePrecision.Int8 && plan.Kinds[p.Key] is Int8UnitKind.Conv or Int8UnitKind.MatMul).Select(p => p.Key);

    private static double Sum(QuantizationPlan plan, Dictionary<string, double> noise) =>
        Int8Products(plan).Sum(n => noise.GetValueOrDefault(n));

    /// <summary>The ratio of the measured noise to the sum of solo noises (1 when there is nothing to compare).</summary>
    private static double Fit(OutputAgreement measured, double sum) =>
        sum > 0 && measured.RelativeNoise > 0 ? measured.RelativeNoise / sum : 1;
}
