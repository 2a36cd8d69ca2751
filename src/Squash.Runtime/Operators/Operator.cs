using Squash.Runtime.Ir;

namespace Squash.Runtime.Operators;

/// <summary>
/// An ONNX operator bound to one node: its attributes parsed and checked, constant inputs (weights)
/// prepared. The same object infers output types and shapes at build time and runs at run time, so what the
/// compiler folds, calibrates and profiles is what the generated code runs.
/// </summary>
/// <remarks>
/// Implementations read every attribute they support in their constructor through <see cref="Attributes"/>;
/// an attribute nobody read is reported as unsupported. <see cref="Run"/> may be called from several threads
/// at once on different data, so it must not mutate shared state other than lazily prepared constants.
/// </remarks>
public abstract class Operator
{
    /// <summary>Binds the operator to <paramref name="node"/>.</summary>
    protected Operator(Node node)
    {
        Node = node;
        Attributes = new AttributeReader(node);
    }

    /// <summary>The node this operator runs.</summary>
    public Node Node { get; }

    /// <summary>Reads the node's attributes and remembers which were read.</summary>
    protected AttributeReader Attributes { get; }

    /// <summary>Values outside the node's inputs that <see cref="Run"/> also needs (outer-scope reads of If
    /// branches). The executor appends them, in this order, after the regular inputs.</summary>
    public virtual IReadOnlyList<Value> ImplicitInputs => [];

    /// <summary>The input whose bytes output 0 holds unchanged, when the operator only gives them another shape
    /// (Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout at inference); otherwise -1.</summary>
    /// <remarks>A memory plan may then make output 0 a view of that input and not call <see cref="Run"/>, so an
    /// operator may claim this only when output 0 is its only output whose value matters and <see cref="Run"/> has
    /// nothing to check that shape inference did not check. <see cref="Run"/> must still copy (the interpreter calls
    /// it).</remarks>
    public virtual int ViewedInput => -1;

    /// <summary>Whether output 0 may be written over input <paramref name="input"/> when that input has output 0's
    /// element type and element count and nothing reads it afterwards.</summary>
    /// <remarks>True only when <see cref="Run"/> reads each element of that input before it writes the output element
    /// at the same index and never reads that input element again: elementwise operations, including broadcasting
    /// ones, whose repeated reads come from the other inputs. A memory plan then saves the output's memory and the
    /// traffic of a second buffer.</remarks>
    public virtual bool CanRunInPlace(int input) => false;

    /// <summary>Sets the element type and shape of every output from what is known of the inputs.</summary>
    /// <remarks>At build time shapes may hold unknown (-1) dimensions and only constant inputs have values;
    /// at run time every input is known. Unknown output dimensions are reported as -1.</remarks>
    public abstract void InferOutputs(InferenceContext context);

    /// <summary>Computes the outputs, which the caller has allocated with the inferred types and shapes. Output memory
    /// holds arbitrary bytes (the memory plan reuses buffers): write every element.</summary>
    /// <param name="context">Threading and scratch memory for the kernels.</param>
    /// <param name="inputs">Inputs in node order (null where an optional input is omitted), then <see cref="ImplicitInputs"/>.</param>
    /// <param name="outputs">Outputs in node order.</param>
    public abstract void Run(KernelContext context, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor> outputs);

    /// <summary>Throws unless every attribute of the node was read by the constructor.</summary>
    internal void CheckAttributesRead() => Attributes.CheckAllRead();

    /// <summary>An exception for a model that breaks this operator's specification.</summary>
    protected SquashException Invalid(string message) =>
        new(ErrorCodes.InvalidModel, $"{Node.Describe()}: {message}", Node.Name);

    /// <summary>An exception for a valid use of this operator that Squash does not support.</summary>
    protected SquashException Unsupported(string message) =>
        new(ErrorCodes.UnsupportedAttribute, $"{Node.Describe()}: {message}", Node.Name);

    /// <summary>Input <paramref name="index"/>, or null where absent.</summary>
    protected static Tensor? Optional(ReadOnlySpan<Tensor?> inputs, int index) =>
        index < inputs.Length ? inputs[index] : null;

    /// <summary>Input <paramref name="index"/>, which the specification requires.</summary>
    protected Tensor Required(ReadOnlySpan<Tensor?> inputs, int index) =>
        (index < inputs.Length ? inputs[index] : null) ?? throw Invalid($"input {index} is required.");
}
