using Squash.Runtime;
using Squash.Runtime.IO;

namespace Squash.Benchmarks;

/// <summary>Paths to the repository's models and inputs.</summary>
internal static class Assets
{
    public static string Root
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Squash.Build.sln"))) dir = dir.Parent;
            return dir?.FullName ?? throw new InvalidOperationException("Run the benchmarks from inside the repository.");
        }
    }

    public static string Model(string file) => Path.Combine(Root, "testassets", "models", "ppocr", file);

    /// <summary>The first evaluation input of a task, placed in the top-left corner of a zero tensor of
    /// <paramref name="shape"/> (det is benchmarked at 640x640; the stored inputs are 480x480).</summary>
    public static Tensor Input(string task, int[] shape)
    {
        var path = Directory.GetFiles(Path.Combine(Root, "testassets", "data", "ppocr", "eval", task), "*.npy.gz").Order(StringComparer.Ordinal).First();
        var sample = Npy.Read(path);
        if (Shapes.Equal(sample.Shape, shape)) return sample;
        var result = new Tensor(DataType.Float, shape);
        var src = sample.AsSpan<float>();
        var dst = result.AsSpan<float>();
        int c = shape[1], h = Math.Min(shape[2], sample.Shape[2]), w = Math.Min(shape[3], sample.Shape[3]);
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < h; y++)
                src.Slice((ch * sample.Shape[2] + y) * sample.Shape[3], w).CopyTo(dst.Slice((ch * shape[2] + y) * shape[3], w));
        return result;
    }
}
