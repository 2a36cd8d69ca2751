namespace Squash.Runtime.Kernels;

/// <summary>
/// The shape of a convolution with resolved padding: input position <c>i = o * stride - padBegin + k * dilation</c>
/// feeds output position <c>o</c> through kernel tap <c>k</c>, along each spatial axis. A transposed convolution
/// uses the same geometry with its input and output swapped (it is the adjoint of this convolution).
/// </summary>
internal sealed class ConvGeometry
{
    /// <summary>Creates a geometry; arrays are per spatial axis (all of one length) and are not copied.</summary>
    public ConvGeometry(int batch, int inChannels, int outChannels, int groups, int[] input, int[] kernel, int[] output,
        int[] strides, int[] dilations, int[] padsBegin)
    {
        Batch = batch;
        InChannels = inChannels;
        OutChannels = outChannels;
        Groups = groups;
        Input = input;
        Kernel = kernel;
        Output = output;
        Strides = strides;
        Dilations = dilations;
        PadsBegin = padsBegin;
        InputSize = Shapes.Product(input, 0, input.Length);
        OutputSize = Shapes.Product(output, 0, output.Length);
        KernelSize = Shapes.Product(kernel, 0, kernel.Length);
    }

    /// <summary>Images in the batch.</summary>
    public int Batch { get; }

    /// <summary>Channels of the input image.</summary>
    public int InChannels { get; }

    /// <summary>Channels of the output image.</summary>
    public int OutChannels { get; }

    /// <summary>Groups the channels are split into.</summary>
    public int Groups { get; }

    /// <summary>Spatial dimensions of the input.</summary>
    public int[] Input { get; }

    /// <summary>Spatial dimensions of the kernel.</summary>
    public int[] Kernel { get; }

    /// <summary>Spatial dimensions of the output.</summary>
    public int[] Output { get; }

    /// <summary>Stride per axis.</summary>
    public int[] Strides { get; }

    /// <summary>Dilation per axis.</summary>
    public int[] Dilations { get; }

    /// <summary>Padding before the first element per axis (may be negative for cropping transposed outputs).</summary>
    public int[] PadsBegin { get; }

    /// <summary>Number of spatial axes.</summary>
    public int Rank => Input.Length;

    /// <summary>Elements of one input channel.</summary>
    public int InputSize { get; }

    /// <summary>Elements of one output channel.</summary>
    public int OutputSize { get; }

    /// <summary>Taps of the kernel.</summary>
    public int KernelSize { get; }

    /// <summary>Input channels per group.</summary>
    public int GroupInChannels => InChannels / Groups;

    /// <summary>Output channels per group.</summary>
    public int GroupOutChannels => OutChannels / Groups;

    /// <summary>The depth of the GEMM per group: input channels of a group times kernel taps.</summary>
    public int GemmDepth => GroupInChannels * KernelSize;

    /// <summary>A 1x1 kernel with unit strides and no padding: the input channels are the GEMM operand as they are.</summary>
    public bool IsPointwise
    {
        get
        {
            for (int d = 0; d < Rank; d++)
                if (Kernel[d] != 1 || Strides[d] != 1 || PadsBegin[d] != 0 || Input[d] != Output[d]) return false;
            return true;
        }
    }

    /// <summary>One input and one output channel per group.</summary>
    public bool IsDepthwise => Groups == InChannels && OutChannels == InChannels;

    /// <summary>This geometry with a leading unit axis, so that 1-D convolutions run the 2-D kernels.</summary>
    public ConvGeometry As2D() => Rank != 1 ? this : new ConvGeometry(Batch, InChannels, OutChannels, Groups,
        [1, Input[0]], [1, Kernel[0]], [1, Output[0]], [1, Strides[0]], [1, Dilations[0]], [0, PadsBegin[0]]);
}
