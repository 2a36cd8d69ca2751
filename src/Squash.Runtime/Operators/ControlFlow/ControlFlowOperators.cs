using Squash.Runtime.Execution;
using Squash.Runtime.Ir;

namespace Squash.Runtime.Operators;

/// <summary>Control flow: If.</summary>
internal static class ControlFlowOperators
{
    /// <summary>Registers the family's operators.</summary>
    public static void Register(OperatorRegistry.Builder registry)
    {
        registry.Add("If", n => new IfOperator(n), minOpset: 1);
    }
}

/// <summary>
/// If: runs <c>then_branch</c> or <c>else_branch</c> depending on a one-element bool condition. The branches read
/// outer-scope values directly; those are this operator's <see cref="Operator.ImplicitInputs"/>. Only tensor outputs
/// are supported (not sequences or optionals).
/// </summary>
/// <remarks>
/// The executor allocates outputs from <see cref="InferOutputs"/> before <see cref="Run"/>, but a branch's output
/// shapes are in general known only by running it. So at run time (every input known) InferOutputs runs the chosen
/// branch, on one thread since it has no kernel context, and hands the results to the Run that follows on the same
/// thread; Run called on its own runs the branch itself.
/// </remarks>
internal sealed class IfOperator : Operator
{
    private readonly Graph _thenBranch;
    private readonly Graph _elseBranch;
    private readonly GraphExecutor _thenExecutor;
    private readonly GraphExecutor _elseExecutor;
    private readonly Value[] _implicitInputs;

    /// <summary>Branch results computed by InferOutputs, waiting for the Run of the same operator and condition.</summary>
    [ThreadStatic] private static Pending? t_pending;

    /// <summary>Single-threaded context for branches run during inference (one per thread: its scratch is not shared).</summary>
    [ThreadStatic] private static KernelContext? t_serialContext;

    public IfOperator(Node node) : base(node)
    {
        _thenBranch = Attributes.Graph("then_branch") ?? throw Invalid("the then_branch attribute is missing.");
        _elseBranch = Attributes.Graph("else_branch") ?? throw Invalid("the else_branch attribute is missing.");
        foreach (var branch in (ReadOnlySpan<Graph>)[_thenBranch, _elseBranch])
        {
            if (branch.Outputs.Count != node.Outputs.Count)
                throw Invalid($"branch '{branch.Name}' has {branch.Outputs.Count} outputs but the node has {node.Outputs.Count}.");
            if (branch.Inputs.Count != 0) throw Invalid($"branch '{branch.Name}' declares inputs; If branches take none.");
        }
        var outer = _thenBranch.OuterValues();
        outer.UnionWith(_elseBranch.OuterValues());
        // A stable order (by name) so that the executor's input lists do not depend on hashing.
        _implicitInputs = [.. outer.OrderBy(v => v.Name, StringComparer.Ordinal)];
        _thenExecutor = new GraphExecutor(_thenBranch);
        _elseExecutor = new GraphExecutor(_elseBranch);
    }

    public override IReadOnlyList<Value> ImplicitInputs => _implicitInputs;

    public override void InferOutputs(InferenceContext context)
    {
        var conditionType = context.InputType(0);
        if (conditionType != DataType.Bool) throw Invalid($"the condition must be bool, not {DataTypes.Name(conditionType)}.");
        var condition = context.InputValue(0);
        if (condition is not null && AllImplicitInputsKnown(context))
        {
            var inputs = new Tensor?[1 + _implicitInputs.Length];
            for (int i = 0; i < inputs.Length; i++) inputs[i] = context.InputValue(i);
            var results = Execute(t_serialContext ??= new KernelContext(1), inputs);
            for (int k = 0; k < results.Length; k++) context.SetOutput(k, results[k].DataType, results[k].Shape);
            t_pending = new Pending(this, condition, results);
            return;
        }
        if (condition is not null)
        {
            var chosen = IsTrue(condition) ? _thenBranch : _elseBranch;
            for (int k = 0; k < chosen.Outputs.Count; k++) context.SetOutput(k, chosen.Outputs[k].Type, chosen.Outputs[k].Shape);
            return;
        }
        // Either branch may run: a dimension is known only where both agree.
        for (int k = 0; k < _thenBranch.Outputs.Count; k++)
        {
            Value a = _thenBranch.Outputs[k], b = _elseBranch.Outputs[k];
            if (a.Type != DataType.Undefined && b.Type != DataType.Undefined && a.Type != b.Type)
                throw Invalid($"output {k} is {DataTypes.Name(a.Type)} in then_branch but {DataTypes.Name(b.Type)} in else_branch.");
            context.SetOutput(k, a.Type != DataType.Undefined ? a.Type : b.Type, MergeShapes(a.Shape, b.Shape));
        }
    }

    public override void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs)
    {
        var condition = Required(inputs, 0);
        Tensor[] results;
        if (t_pending is { } pending && pending.Owner == this && ReferenceEquals(pending.Condition, condition))
        {
            t_pending = null;
            results = pending.Results;
        }
        else
        {
            results = Execute(context, inputs);
        }
        for (int k = 0; k < outputs.Length; k++)
        {
            if (results[k].DataType != outputs[k].DataType || !Shapes.Equal(results[k].Shape, outputs[k].Shape))
                throw Invalid($"output {k} of the branch is {results[k]}, but {outputs[k]} was expected.");
            results[k].Bytes.CopyTo(outputs[k].Bytes);
        }
    }

    /// <summary>Runs the branch the condition selects with the outer-scope values bound, returning its outputs.</summary>
    private Tensor[] Execute(KernelContext context, ReadOnlySpan<Tensor?> inputs)
    {
        var condition = Required(inputs, 0);
        bool then = IsTrue(condition);
        var branch = then ? _thenBranch : _elseBranch;
        var env = new Dictionary<Value, Tensor>(_implicitInputs.Length);
        for (int i = 0; i < _implicitInputs.Length; i++)
            env[_implicitInputs[i]] = inputs[1 + i] ?? throw Invalid($"the outer-scope value '{_implicitInputs[i].Name}' has no value.");
        (then ? _thenExecutor : _elseExecutor).RunScope(context, env);
        var results = new Tensor[branch.Outputs.Count];
        for (int k = 0; k < results.Length; k++)
        {
            var v = branch.Outputs[k];
            results[k] = env.TryGetValue(v, out var t) ? t
                : v.Constant ?? throw Invalid($"branch '{branch.Name}' did not compute its output '{v.Name}'.");
        }
        return results;
    }

    private bool IsTrue(Tensor condition)
    {
        if (condition.DataType != DataType.Bool || condition.ElementCount != 1)
            throw Invalid($"the condition must be a one-element bool tensor, not {condition}.");
        return condition.AsSpan<bool>()[0];
    }

    private bool AllImplicitInputsKnown(InferenceContext context)
    {
        for (int i = 0; i < _implicitInputs.Length; i++)
            if (context.InputValue(1 + i) is null) return false;
        return true;
    }

    private static int[]? MergeShapes(int[]? a, int[]? b)
    {
        if (a is null || b is null || a.Length != b.Length) return null;
        var merged = new int[a.Length];
        for (int i = 0; i < a.Length; i++) merged[i] = a[i] == b[i] ? a[i] : -1;
        return merged;
    }

    private sealed record Pending(IfOperator Owner, Tensor Condition, Tensor[] Results);
}
