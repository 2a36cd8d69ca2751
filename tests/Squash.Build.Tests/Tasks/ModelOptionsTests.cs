using Microsoft.Build.Utilities;
using Squash.Build.Tasks;

namespace Squash.Build.Tests.Tasks;

/// <summary>Default names and the metadata checks.</summary>
public sealed class ModelOptionsTests
{
    [Theory]
    [InlineData("ch_PP-OCRv4_det_infer.onnx", "ChPPOCRv4DetInfer")]
    [InlineData("models/resnet50.onnx", "Resnet50")]
    [InlineData("silero vad.v5.onnx", "SileroVadV5")]
    [InlineData("2stage.onnx", "_2stage")]
    [InlineData("---.onnx", "Model")]
    public void TheDefaultClassNameIsTheFileNameInPascalCase(string file, string expected)
    {
        Assert.Equal(expected, ModelOptions.DefaultClassName(file));
        Assert.True(ModelOptions.IsIdentifier(expected));
    }

    [Theory]
    [InlineData("Contoso.App", "Contoso.App")]
    [InlineData("my-app", "my_app")]
    [InlineData("Company.2024.Tools", "Company._2024.Tools")]
    [InlineData("", "")]
    public void TheDefaultNamespaceIsTheRootNamespaceMadeValid(string root, string expected)
    {
        Assert.Equal(expected, ModelOptions.DefaultNamespace(root));
    }

    [Fact]
    public void OutputNamesAreSafeAndDistinctPerFolder()
    {
        string a = ModelOptions.OutputName(Path.GetFullPath("a/model.en.onnx"));
        string b = ModelOptions.OutputName(Path.GetFullPath("b/model.en.onnx"));
        Assert.NotEqual(a, b);
        // No dot: MSBuild would read "en" as the culture of a satellite resource.
        Assert.Matches("^model_en_[0-9a-f]{16}$", a);
        Assert.Equal(a, ModelOptions.OutputName(Path.GetFullPath("a/model.en.onnx")));
    }

    [Theory]
    [InlineData("Detector", true)]
    [InlineData("_x1", true)]
    [InlineData("Ünïcode", true)]
    [InlineData("1abc", false)]
    [InlineData("class", false)]
    [InlineData("a-b", false)]
    [InlineData("", false)]
    public void ClassNamesAreIdentifiersThatAreNotKeywords(string name, bool valid)
    {
        Assert.Equal(valid, ModelOptions.IsIdentifier(name));
    }

    [Fact]
    public void GoodMetadataHasNoProblems()
    {
        var item = new TaskItem("m.onnx");
        item.SetMetadata("ClassName", "Detector");
        item.SetMetadata("Namespace", "Contoso.Models");
        item.SetMetadata("Visibility", "internal");
        item.SetMetadata("WeightsStorage", "File");
        item.SetMetadata("Precision", "fp32");
        item.SetMetadata("InputShapes", "x=1,3,640,640; y=1,2;");
        item.SetMetadata("ConstantInputs", "sr=16000;scale=0.5,-1e-3");
        item.SetMetadata("Device", "auto");
        Assert.Empty(ModelOptions.Check(item));
    }

    [Theory]
    [InlineData("gpu", "--device=Gpu")]
    [InlineData("Auto", "--device=Auto")]
    [InlineData("", null)]
    public void DeviceIsPassedToTheCompilerInItsCanonicalSpelling(string device, string? expected)
    {
        var item = new TaskItem("m.onnx");
        item.SetMetadata("ClassName", "Detector");
        item.SetMetadata("Precision", "fp32");
        item.SetMetadata("Device", device);
        var argument = SquashCompile.Arguments(item, apiOnly: false).SingleOrDefault(a => a.StartsWith("--device", StringComparison.Ordinal));
        Assert.Equal(expected, argument);
    }

    [Theory]
    [InlineData("InputShapes", "x=1,-3", "dimension '-3' of input 'x'")]
    [InlineData("InputShapes", "x=1,,3", "dimension '' of input 'x'")]
    [InlineData("InputShapes", "x=1;x=2", "names the input 'x' twice")]
    [InlineData("InputShapes", "=1,2", "is not NAME=VALUES")]
    [InlineData("ConstantInputs", "sr=16k", "value '16k' of input 'sr'")]
    [InlineData("Precision", "fp 32", "Precision='fp 32'")]
    [InlineData("Device", "Cuda", "Device='Cuda' is not supported: use Cpu, Gpu or Auto")]
    [InlineData("ClassName", "Two\nLines", "contains a line break")]
    public void EachBadValueIsExplained(string metadata, string value, string expected)
    {
        var item = new TaskItem("m.onnx");
        item.SetMetadata("ClassName", "Detector");
        item.SetMetadata("Visibility", "public");
        item.SetMetadata("WeightsStorage", "EmbeddedResource");
        item.SetMetadata("Precision", "fp32");
        item.SetMetadata(metadata, value);
        var problem = Assert.Single(ModelOptions.Check(item));
        Assert.Contains(expected, problem, StringComparison.Ordinal);
    }
}
