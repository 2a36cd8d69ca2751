using Squash.Compiler.Onnx;
using Squash.Compiler.Passes;
using Squash.Compiler.Tests.Models;
using Squash.Runtime;
using Squash.Runtime.Execution;
using Squash.Runtime.Ir;

namespace Squash.Compiler.Tests.Passes;

/// <summary>
/// Each pass, alone, on the real PP-OCR cls and rec models: outputs before and after are bit-identical on evaluation
/// inputs. Exact equality is the right bar: these passes only move work from run time to build time through the same
/// operators, or delete work whose result nobody reads.
/// </summary>
public sealed class PassEquivalenceTests
{
    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var pass in new[] { "IdentityElimination", "ConstantFolding", "DeadNodeElimination", "ShapeInference" })
            foreach (var model in new[] { "cls", "rec" })
                data.Add(pass, model);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void PassKeepsOutputsIdentical(string passName, string task)
    {
        string file = task == "cls" ? PpOcr.Cls : PpOcr.Rec;
        var before = OnnxLoader.Load(PpOcr.ModelPath(file));
        var after = OnnxLoader.Load(PpOcr.ModelPath(file));
        IGraphPass pass = passName switch
        {
            "IdentityElimination" => new IdentityElimination(),
            "ConstantFolding" => new ConstantFolding(),
            "DeadNodeElimination" => new DeadNodeElimination(),
            _ => new ShapeInference(),
        };
        int nodesBefore = after.Graph.Nodes.Count;
        new PassManager([pass]).Run(after.Graph, new PassContext());
        if (passName == "ConstantFolding")
            Assert.True(after.Graph.Nodes.Count < nodesBefore - 200, $"folding left {after.Graph.Nodes.Count} of {nodesBefore} nodes");

        var context = new KernelContext(1);
        foreach (var sample in PpOcr.Samples("eval", task).Take(2))
        {
            var inputs = new Dictionary<string, Tensor> { [before.Graph.Inputs[0].Name] = PpOcr.Load(sample) };
            var expected = new GraphExecutor(before.Graph).Run(inputs, context);
            var actual = new GraphExecutor(after.Graph).Run(inputs, context);
            foreach (var (name, tensor) in expected)
                Assert.True(tensor.Bytes.SequenceEqual(actual[name].Bytes), $"{passName} changed output '{name}' on {Path.GetFileName(sample)}");
        }
    }
}
