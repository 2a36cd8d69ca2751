using Squash.Runtime;
using Squash.Runtime.Ir;
using Squash.Runtime.Operators;

namespace Squash.Compiler.Passes;

/// <summary>
/// Recognizes scaled dot-product attention written out in standard operators (as the llama2.c converter and most
/// exporters write it) and replaces it with one <c>com.squash</c> Attention node, which runs flash-style and never
/// materializes the score matrix:
/// <code>
///   K ─ Transpose(0,1,3,2) ─ Kt;  Q, Kt ─ MatMul ─ Div(c) | Mul(c) ─ Where(mask, ·, -inf) | Add(mask) ─ Softmax(-1) ─ P
///   P, V ─ MatMul ─ Y
///   becomes
///   Q, K, V, mask ─ Attention(scale = 1/c or c) ─ Y
/// </code>
/// Q, K and V must be 4-D ([batch, heads, sequence, head size]; grouped-query layouts where the query heads sharing a
/// key/value head are folded into Q's rows, or where Q has a multiple of K's heads, both fit). The scaling and the
/// mask are optional; every intermediate value must have no other reader.
/// </summary>
public sealed class AttentionFusion : IGraphPass
{
    /// <inheritdoc/>
    public string Name => "AttentionFusion";

    /// <inheritdoc/>
    public bool Run(Graph graph, PassContext context)
    {
        bool changed = false;
        var consumers = graph.Consumers();
        foreach (var softmax in graph.Nodes.ToArray())
        {
            if (!GraphQueries.Is(softmax, "Softmax") || !graph.Nodes.Contains(softmax) || !IsLastAxis(softmax)) continue;
            var match = Match(graph, consumers, softmax);
            if (match is null) continue;
            var m = match.Value;
            var fused = new Node("Attention", m.Output.Name + "_attention", OperatorRegistry.SquashDomain, 1);
            fused.Attributes["scale"] = AttributeValue.Float(m.Scale);
            fused.AddInput(m.Q).AddInput(m.K).AddInput(m.V);
            if (m.Mask is not null) fused.AddInput(m.Mask);
            fused.AddOutput(m.Output.Outputs[0]);
            int at = graph.Nodes.IndexOf(m.Removed[0]);
            foreach (var n in m.Removed) graph.Nodes.Remove(n);
            graph.Nodes.Insert(Math.Min(at, graph.Nodes.Count), fused);
            graph.SortTopologically();
            graph.OpsetImports.TryAdd(OperatorRegistry.SquashDomain, 1);
            consumers = graph.Consumers();
            changed = true;
        }
        return changed;
    }

    private readonly record struct Matched(Value Q, Value K, Value V, Value? Mask, float Scale, Node Output, List<Node> Removed);

    private static Matched? Match(Graph graph, Dictionary<Value, List<(Node Node, int Index)>> consumers, Node softmax)
    {
        var removed = new List<Node>();
        // Backwards from the softmax: an optional mask, an optional scaling, the scores MatMul.
        var producer = softmax.Input(0)?.Producer;
        Value? mask = null;
        if (producer is not null && GraphQueries.Is(producer, "Where") && IsScalar(producer.Input(2), float.NegativeInfinity) && Sole(graph, consumers, producer, softmax))
        {
            mask = producer.Input(0);
            removed.Add(producer);
            producer = producer.Input(1)?.Producer;
        }
        else if (producer is not null && GraphQueries.Is(producer, "Add") && Sole(graph, consumers, producer, softmax))
        {
            // Either operand may be the mask; the scores are the one a MatMul (possibly scaled) produced.
            int scoresAt = IsScores(producer.Input(0)?.Producer) ? 0 : IsScores(producer.Input(1)?.Producer) ? 1 : -1;
            if (scoresAt < 0 || producer.Input(1 - scoresAt) is not { Type: DataType.Float } additive) return null;
            mask = additive;
            removed.Add(producer);
            producer = producer.Input(scoresAt)!.Producer;
        }
        float scale = 1f;
        if (producer is not null && (GraphQueries.Is(producer, "Div") || GraphQueries.Is(producer, "Mul")) && ScalarValue(producer.Input(1)) is { } c
            && Sole(graph, consumers, producer, removed.Count > 0 ? removed[^1] : softmax))
        {
            scale = producer.OpType == "Div" ? (float)(1.0 / c) : c;
            removed.Add(producer);
            producer = producer.Input(0)?.Producer;
        }
        var reader = removed.Count > 0 ? removed[^1] : softmax;
        if (producer is null || !GraphQueries.Is(producer, "MatMul") || !Sole(graph, consumers, producer, reader)) return null;
        var scores = producer;
        var transpose = scores.Input(1)?.Producer;
        if (transpose is null || !GraphQueries.Is(transpose, "Transpose") || !Sole(graph, consumers, transpose, scores)
            || transpose.Attributes.GetValueOrDefault("perm")?.Ints is not [0, 1, 3, 2]) return null;
        // Forwards from the softmax: the product with V.
        if (GraphQueries.SoleConsumer(graph, consumers, softmax.Outputs[0]) is not { } output || !GraphQueries.Is(output, "MatMul") || output.Input(0) != softmax.Outputs[0])
            return null;
        Value q = scores.Input(0)!, k = transpose.Input(0)!, v = output.Input(1)!;
        if (!IsRank4(q) || !IsRank4(k) || !IsRank4(v)) return null;
        if (mask is not null && !MaskFits(mask, scores.Outputs[0])) return null;
        removed.AddRange([scores, transpose, softmax, output]);
        return new Matched(q, k, v, mask, scale, output, removed);

        static bool IsScores(Node? n) => n is not null && (GraphQueries.Is(n, "MatMul") || GraphQueries.Is(n, "Div") || GraphQueries.Is(n, "Mul"));
    }

    /// <summary>True when <paramref name="node"/>'s only output is read only by <paramref name="reader"/>.</summary>
    private static bool Sole(Graph graph, Dictionary<Value, List<(Node Node, int Index)>> consumers, Node node, Node reader) =>
        node.Outputs.Count == 1 && GraphQueries.SoleConsumer(graph, consumers, node.Outputs[0]) == reader;

    /// <summary>A bool or float mask that broadcasts to the scores without enlarging them (unknown dimensions pass; the
    /// operator checks them at run time).</summary>
    private static bool MaskFits(Value mask, Value scores)
    {
        if (mask.Shape is not { Length: <= 4 } m || mask.Type is not (DataType.Bool or DataType.Float)) return false;
        if (scores.Shape is not { Length: 4 } s) return true;
        for (int i = 0; i < m.Length; i++)
        {
            int md = m[m.Length - 1 - i], sd = s[3 - i];
            if (md != 1 && md >= 0 && sd >= 0 && md != sd) return false;
        }
        return true;
    }

    private static bool IsRank4(Value v) => v.Shape is { Length: 4 } && v.Type is DataType.Float or DataType.Undefined;

    private static bool IsLastAxis(Node softmax)
    {
        long axis = softmax.Attributes.GetValueOrDefault("axis")?.IntValue ?? (softmax.OpsetVersion >= 13 ? -1 : 1);
        return axis == -1 || softmax.Input(0)?.Shape is { } s && axis == s.Length - 1;
    }

    private static float? ScalarValue(Value? v) =>
        v?.Constant is { ElementCount: 1, DataType: DataType.Float } t ? t.AsSpan<float>()[0] : null;

    private static bool IsScalar(Value? v, float value) => ScalarValue(v) is { } x && x.Equals(value);
}
