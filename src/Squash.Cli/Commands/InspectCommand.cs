using System.Globalization;
using Squash.Compiler.Onnx;
using Squash.Runtime;
using Squash.Runtime.Ir;

namespace Squash.Cli.Commands;

/// <summary><c>squash inspect MODEL</c>: what a model takes and gives, what it is made of.</summary>
internal static class InspectCommand
{
    public static int Run(Arguments args, TextWriter output)
    {
        if (args.Help)
        {
            output.WriteLine("usage: squash inspect MODEL.onnx");
            output.WriteLine("Prints inputs and outputs (shapes, types), the operator histogram, parameter count and bytes, and opsets.");
            return 0;
        }
        string path = args.Positional(0, "the model file (squash inspect MODEL.onnx)");
        args.CheckNoneLeft(1);
        var model = OnnxLoader.Load(path);
        var g = model.Graph;
        var w = output;
        w.WriteLine($"model     {Path.GetFileName(path)}");
        w.WriteLine($"producer  {(model.ProducerName.Length == 0 ? "(unknown)" : $"{model.ProducerName} {model.ProducerVersion}".Trim())}, IR version {model.IrVersion}");
        w.WriteLine($"opsets    {string.Join(", ", g.OpsetImports.OrderBy(o => o.Key, StringComparer.Ordinal).Select(o => $"{(o.Key.Length == 0 ? "ai.onnx" : o.Key)} {o.Value}"))}");
        w.WriteLine();
        w.WriteLine("inputs");
        foreach (var v in g.Inputs) w.WriteLine($"  {v.Name,-24} {DataTypes.Name(v.Type),-8} {FormatShape(v)}");
        w.WriteLine("outputs");
        foreach (var v in g.Outputs) w.WriteLine($"  {v.Name,-24} {DataTypes.Name(v.Type),-8} {FormatShape(v)}");
        w.WriteLine();

        var histogram = new SortedDictionary<string, int>(StringComparer.Ordinal);
        long parameters = 0, bytes = 0;
        int nodes = 0;
        var seen = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        Walk(g);
        w.WriteLine($"operators ({nodes} nodes)");
        foreach (var (op, count) in histogram.OrderByDescending(p => p.Value).ThenBy(p => p.Key, StringComparer.Ordinal))
            w.WriteLine($"  {op,-28} {count,6}");
        w.WriteLine();
        w.WriteLine($"parameters {parameters.ToString("N0", CultureInfo.InvariantCulture)} ({FormatBytes(bytes)})");
        return 0;

        void Walk(Graph graph)
        {
            foreach (var v in graph.Initializers) Count(v.Constant);
            foreach (var n in graph.Nodes)
            {
                nodes++;
                string key = n.Domain.Length == 0 ? n.OpType : $"{n.Domain}.{n.OpType}";
                histogram[key] = histogram.GetValueOrDefault(key) + 1;
                if (n.OpType == "Constant" && n.Attributes.TryGetValue("value", out var a) && a.TensorValue is { } t) Count(t);
                foreach (var sub in n.Subgraphs) Walk(sub);
            }
        }

        void Count(Tensor? t)
        {
            // Parameters are the floating-point constants; integer constants are shapes and indices.
            if (t is null || !seen.Add(t) || !DataTypes.IsFloatingPoint(t.DataType)) return;
            parameters += t.ElementCount;
            bytes += t.ByteLength;
        }
    }

    private static string FormatShape(Value v)
    {
        if (v.Shape is null) return "(rank unknown)";
        var parts = v.Shape.Select((d, i) => d >= 0 ? d.ToString(CultureInfo.InvariantCulture) : v.DimNames?[i] ?? "?");
        return "[" + string.Join(", ", parts) + "]";
    }

    internal static string FormatBytes(long bytes) => bytes switch
    {
        >= 1 << 30 => $"{bytes / (double)(1 << 30):F2} GiB",
        >= 1 << 20 => $"{bytes / (double)(1 << 20):F2} MiB",
        >= 1 << 10 => $"{bytes / 1024.0:F1} KiB",
        _ => $"{bytes} B",
    };
}
