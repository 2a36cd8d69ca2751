using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Quantization;

/// <summary>
/// Runs a model over calibration samples and chooses a range for each float tensor: the graph's float inputs and
/// every float node output (values inside control-flow subgraphs are not observed). It runs the
/// <see cref="ExecutionPlan"/> that the generated code mirrors and watches its
/// <see cref="ExecutionPlan.NodeCompleted"/> hook, so what is calibrated is what runs. One sample at a time: memory
/// is the plan's arena, one sample's inputs, one observer per tensor (<see cref="ActivationObserver.StateBytes"/>)
/// and, for bias correction, one sum per weight position of each product (<see cref="ProductInputMeans"/>), whatever
/// the number of samples.
/// </summary>
public sealed class Calibrator
{
    /// <summary>Creates a calibrator.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A setting is out of range.</exception>
    public Calibrator(CalibrationSettings? settings = null)
    {
        Settings = settings ?? new CalibrationSettings();
        Settings.Validate();
    }

    /// <summary>The method and its parameters.</summary>
    public CalibrationSettings Settings { get; }

    /// <summary>Calibrates on the data set's calibration samples (not the held-out ones).</summary>
    /// <exception cref="SquashException">A sample is unreadable or does not fit the plan's inputs (SQ1016).</exception>
    public CalibrationResult Calibrate(ExecutionPlan plan, CalibrationDataSet dataSet, KernelContext? context = null) =>
        Calibrate(plan, dataSet.CalibrationSamples, context);

    /// <summary>Calibrates on <paramref name="samples"/>, loading one at a time.</summary>
    /// <exception cref="SquashException">There is no sample, or a sample is unreadable or does not fit the plan's
    /// inputs (SQ1016, naming the file).</exception>
    public CalibrationResult Calibrate(ExecutionPlan plan, IEnumerable<CalibrationSample> samples, KernelContext? context = null) =>
        Run(plan, samples.Select(s => new Sample(s.Load(), name => s.FileOf(name) is { } file
            ? $"Calibration file '{file}'" : $"Calibration sample '{s.Path}'")), context);

    /// <summary>Calibrates on input tensors given in memory, one dictionary per sample.</summary>
    /// <exception cref="SquashException">There is no sample, or a sample does not fit the plan's inputs (SQ1016).</exception>
    public CalibrationResult Calibrate(ExecutionPlan plan, IEnumerable<IReadOnlyDictionary<string, Tensor>> samples,
        KernelContext? context = null) =>
        Run(plan, samples.Select((s, i) => new Sample(s, _ => $"Calibration sample {i}")), context);

    /// <summary>
    /// The result cached at <paramref name="cachePath"/> when its key matches (see <see cref="CalibrationCache"/>);
    /// otherwise calibrates on a plan from <paramref name="createPlan"/> and caches the result.
    /// </summary>
    /// <param name="modelPath">The model file (part of the key).</param>
    /// <param name="createPlan">Makes the plan; not called on a cache hit.</param>
    /// <param name="dataSet">The calibration data.</param>
    /// <param name="cachePath">The cache file, for example in the build's intermediate folder.</param>
    /// <param name="context">Anything else that shapes the graph (pinned input shapes...), part of the key.</param>
    /// <param name="kernelContext">Threads for the model's kernels (the result does not depend on them).</param>
    /// <returns>The result, and whether it came from the cache.</returns>
    public (CalibrationResult Result, bool FromCache) CalibrateCached(string modelPath, Func<ExecutionPlan> createPlan,
        CalibrationDataSet dataSet, string cachePath, string context = "", KernelContext? kernelContext = null)
    {
        string key = CalibrationCache.ComputeKey(modelPath, dataSet, Settings, context);
        if (CalibrationCache.TryRead(cachePath, key) is { } cached && cached.Settings == Settings) return (cached, true);
        var result = Calibrate(createPlan(), dataSet, kernelContext);
        CalibrationCache.Write(cachePath, key, result);
        return (result, false);
    }

    private CalibrationResult Run(ExecutionPlan plan, IEnumerable<Sample> samples, KernelContext? context)
    {
        var graph = plan.Graph;
        var observers = new Dictionary<string, ActivationObserver>(StringComparer.Ordinal);
        var inputObservers = graph.Inputs.Select(v => Observer(v, observers)).ToArray();
        var nodeObservers = new Dictionary<Node, ActivationObserver?[]>();
        foreach (var node in graph.Nodes) nodeObservers[node] = [.. node.Outputs.Select(v => Observer(v, observers))];
        var means = Settings.BiasCorrection ? new ProductInputMeans(graph) : null;

        var previous = plan.NodeCompleted;
        plan.NodeCompleted = (node, outputs) =>
        {
            if (!nodeObservers.TryGetValue(node, out var forNode)) return;
            for (int k = 0; k < forNode.Length && k < outputs.Length; k++)
            {
                if (forNode[k] is { } observer && outputs[k].DataType == DataType.Float)
                    observer.Observe(outputs[k].AsSpan<float>());
                means?.Observe(node.Outputs[k].Name, outputs[k]);
            }
        };
        int count = 0;
        try
        {
            foreach (var (inputs, describe) in samples)
            {
                for (int k = 0; k < graph.Inputs.Count; k++)
                {
                    var v = graph.Inputs[k];
                    if (!inputs.TryGetValue(v.Name, out var t))
                        throw new SquashException(ErrorCodes.CalibrationData,
                            $"{describe(v.Name)} lacks model input '{v.Name}'; give every input of the model.");
                    if (t.DataType != v.Type || v.Shape is null || !Shapes.Equal(t.Shape, v.Shape))
                        throw new SquashException(ErrorCodes.CalibrationData,
                            $"{describe(v.Name)} is {DataTypes.Name(t.DataType)}{Shapes.Format(t.Shape)} but the model was "
                            + $"prepared for input '{v.Name}' of {DataTypes.Name(v.Type)}{Shapes.Format(v.Shape ?? [])}; "
                            + "pin the input shapes to the calibration data's (InputShapes) or make every sample that shape.");
                    if (inputObservers[k] is { } observer) observer.Observe(t.AsSpan<float>());
                    means?.Observe(v.Name, t);
                }
                plan.Run(inputs, context);
                count++;
            }
        }
        finally
        {
            plan.NodeCompleted = previous;
        }
        if (count == 0)
            throw new SquashException(ErrorCodes.CalibrationData, "There are no calibration samples; give at least one.");
        return new CalibrationResult(Settings, count, observers.Select(p => KeyValuePair.Create(p.Key, p.Value.Result())), means?.Result());
    }

    private ActivationObserver? Observer(Value value, Dictionary<string, ActivationObserver> observers)
    {
        if (value.Type != DataType.Float || value.Constant is not null || value.Name.Length == 0) return null;
        var observer = ActivationObserver.Create(Settings);
        return observers.TryAdd(value.Name, observer) ? observer : observers[value.Name];
    }

    /// <summary>One sample's inputs, and how to name an input's source (by input name) in an error.</summary>
    private readonly record struct Sample(IReadOnlyDictionary<string, Tensor> Inputs, Func<string, string> Describe);
}
