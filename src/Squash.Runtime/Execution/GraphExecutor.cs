using Squash.Runtime.Ir;
using Squash.Runtime.Operators;

namespace Squash.Runtime.Execution;

/// <summary>
/// Runs a <see cref="Graph"/> node by node with the same operators the generated code calls. Used by the
/// compiler (constant folding, calibration, sensitivity), the CLI and the tests.
/// </summary>
/// <remarks>An executor may run on several threads at once; each run keeps its own tensors.</remarks>
public sealed class GraphExecutor
{
    private readonly Graph _graph;
    private readonly Operator[] _operators;
    private readonly Value[][] _inputs;
    private readonly int[] _lastUse;
    private readonly HashSet<Value> _keep;

    /// <summary>Prepares every node's operator.</summary>
    /// <exception cref="SquashException">A node is not supported.</exception>
    public GraphExecutor(Graph graph)
    {
        _graph = graph;
        _operators = new Operator[graph.Nodes.Count];
        _inputs = new Value[graph.Nodes.Count][];
        for (int i = 0; i < _operators.Length; i++)
        {
            var node = graph.Nodes[i];
            _operators[i] = OperatorRegistry.Create(node);
            _inputs[i] = [.. node.Inputs.Select(v => v!), .. _operators[i].ImplicitInputs];
        }
        // Free each intermediate tensor after the last node that reads it.
        var last = new Dictionary<Value, int>();
        for (int i = 0; i < _inputs.Length; i++)
            foreach (var v in _inputs[i])
                if (v is not null) last[v] = i;
        _keep = [.. graph.Outputs];
        _lastUse = new int[_inputs.Length];
        _released = new List<Value>[_inputs.Length];
        for (int i = 0; i < _released.Length; i++) _released[i] = [];
        foreach (var (v, i) in last)
            if (!_keep.Contains(v) && v.Producer is not null && graph.Nodes.Contains(v.Producer)) _released[i].Add(v);
    }

    private readonly List<Value>[] _released;

    /// <summary>The graph this executor runs.</summary>
    public Graph Graph => _graph;

    /// <summary>Called after each node with the node and its outputs (calibration observes activations here).</summary>
    public Action<Node, ReadOnlySpan<Tensor>>? NodeCompleted { get; set; }

    /// <summary>Runs the graph on inputs given by name and returns the outputs by name.</summary>
    /// <exception cref="SquashException">An input is missing or does not match the model.</exception>
    public Dictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs, KernelContext? context = null)
    {
        var env = new Dictionary<Value, Tensor>();
        foreach (var input in _graph.Inputs)
        {
            if (!inputs.TryGetValue(input.Name, out var tensor))
            {
                if (input.Constant is not null) continue; // an initializer listed as an input keeps its default
                throw new SquashException(ErrorCodes.BadInput,
                    $"Input '{input.Name}' is missing. The model's inputs are: {string.Join(", ", _graph.Inputs.Select(i => i.Name))}.");
            }
            CheckInput(input, tensor);
            env[input] = tensor;
        }
        foreach (var name in inputs.Keys)
            if (!_graph.Inputs.Any(i => i.Name == name))
                throw new SquashException(ErrorCodes.BadInput,
                    $"The model has no input named '{name}'. Its inputs are: {string.Join(", ", _graph.Inputs.Select(i => i.Name))}.");
        RunScope(context ?? new KernelContext(), env);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var output in _graph.Outputs) result[output.Name] = Lookup(env, output, null);
        return result;
    }

    /// <summary>Runs the nodes with <paramref name="env"/> holding inputs and any outer-scope values.</summary>
    internal void RunScope(KernelContext context, Dictionary<Value, Tensor> env)
    {
        for (int i = 0; i < _operators.Length; i++)
        {
            var op = _operators[i];
            var node = op.Node;
            var valueInputs = _inputs[i];
            var tensors = new Tensor?[valueInputs.Length];
            var inference = new InferenceContext(node, valueInputs.Length, node.Outputs.Count);
            for (int k = 0; k < valueInputs.Length; k++)
            {
                var v = valueInputs[k];
                if (v is null) continue;
                var t = Lookup(env, v, node);
                tensors[k] = t;
                inference.SetInput(k, t.DataType, t.Shape, t);
            }
            StaticInference.Run(op, inference);
            var outputs = new Tensor[node.Outputs.Count];
            for (int k = 0; k < outputs.Length; k++)
            {
                var shape = inference.OutputShapes[k];
                var type = inference.OutputTypes[k];
                if (shape is null || !Shapes.IsKnown(shape) || type == DataType.Undefined)
                    throw new SquashException(ErrorCodes.UnresolvedShape,
                        $"{node.Describe()}: the type or shape of output {k} could not be determined at run time.", node.Name);
                outputs[k] = new Tensor(type, shape);
            }
            op.Run(context, tensors, outputs);
            for (int k = 0; k < outputs.Length; k++)
                if (node.Outputs[k].Name.Length > 0) env[node.Outputs[k]] = outputs[k];
            NodeCompleted?.Invoke(node, outputs);
            foreach (var v in _released[i]) env.Remove(v);
        }
    }

    private static Tensor Lookup(Dictionary<Value, Tensor> env, Value v, Node? reader)
    {
        if (env.TryGetValue(v, out var t)) return t;
        if (v.Constant is not null) return v.Constant;
        throw new SquashException(ErrorCodes.InvalidModel,
            $"{(reader is null ? "The graph" : reader.Describe())} reads '{v.Name}', which has no value.", reader?.Name);
    }

    private static void CheckInput(Value input, Tensor tensor)
    {
        if (input.Type != DataType.Undefined && tensor.DataType != input.Type)
            throw new SquashException(ErrorCodes.BadInput,
                $"Input '{input.Name}' must be {DataTypes.Name(input.Type)}, not {DataTypes.Name(tensor.DataType)}.");
        if (input.Shape is { } shape)
        {
            bool ok = shape.Length == tensor.Rank;
            for (int d = 0; ok && d < shape.Length; d++) ok = shape[d] < 0 || shape[d] == tensor.Shape[d];
            if (!ok)
                throw new SquashException(ErrorCodes.BadInput,
                    $"Input '{input.Name}' must have shape {Shapes.Format(shape)} (? = any), not {Shapes.Format(tensor.Shape)}.");
        }
    }
}
