using System.Globalization;
using Squash.Compiler.Onnx;
using Squash.Runtime;

namespace Squash.Tools.Llama2c;

/// <summary>Command line: converts a llama2.c checkpoint, or a synthetic one, into an ONNX decoder.</summary>
public static class Program
{
    private const string Usage =
        "usage: Llama2cToOnnx IN.bin OUT.onnx [--opset N]\n" +
        "       Llama2cToOnnx --synthetic dim=D,hidden=H,layers=L,heads=N,kv_heads=K,vocab=V,seq=T [--seed S] OUT.onnx\n" +
        "                     [--checkpoint-out OUT.bin] [--opset N]";

    /// <summary>Entry point; returns 0 on success, 1 for a bad input, 2 for bad usage.</summary>
    public static int Main(string[] args) => Run(args, Console.Out, Console.Error);

    /// <summary>Runs the tool with the given arguments and writers (tests call this in-process).</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        string? synthetic = null, checkpointOut = null;
        ulong seed = 1;
        int opset = Llama2cConverter.DefaultOpset;
        var positional = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            string arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal)) { positional.Add(arg); continue; }
            if (arg is "--help" or "-h") { stdout.WriteLine(Usage); return 0; }
            if (i + 1 >= args.Length) return UsageError($"{arg} needs a value");
            string value = args[++i];
            switch (arg)
            {
                case "--synthetic": synthetic = value; break;
                case "--checkpoint-out": checkpointOut = value; break;
                case "--seed" when ulong.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out seed): break;
                case "--opset" when int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out opset): break;
                case "--seed" or "--opset": return UsageError($"{arg} needs a non-negative integer, not '{value}'");
                default: return UsageError($"unknown option {arg}");
            }
        }
        int expected = synthetic is null ? 2 : 1;
        if (positional.Count != expected)
            return UsageError(synthetic is null ? "give the checkpoint and the output path" : "give the output path (and no checkpoint) with --synthetic");
        if (synthetic is null && checkpointOut is not null) return UsageError("--checkpoint-out goes with --synthetic");

        try
        {
            Llama2cCheckpoint checkpoint;
            if (synthetic is null) checkpoint = Llama2cCheckpoint.Load(positional[0]);
            else
            {
                var spec = Llama2cConfig.Parse(synthetic);
                CheckFitsOneFile(spec); // before spending time and memory on random weights
                checkpoint = Llama2cCheckpoint.Synthetic(spec, seed);
            }
            var config = WriteModel(checkpoint, positional[^1], checkpointOut, opset);
            stdout.WriteLine($"Wrote {positional[^1]}: llama2.c model {config}, opset {opset}.");
            return 0;
        }
        catch (SquashException e)
        {
            stderr.WriteLine($"error {e.Code}: {e.Message}");
            return 1;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"error: {e.Message}");
            return 1;
        }

        int UsageError(string message)
        {
            stderr.WriteLine($"error: {message}.");
            stderr.WriteLine(Usage);
            return 2;
        }
    }

    /// <summary>One ONNX file is one protobuf message, which cannot reach 2 GiB; OnnxWriter writes no external data.</summary>
    private static void CheckFitsOneFile(Llama2cConfig config)
    {
        long weightBytes = 4 * config.FloatCount;
        if (weightBytes > int.MaxValue - (16 << 20))
            throw new SquashException(ErrorCodes.TooLarge,
                $"The model ({config}) has {weightBytes} bytes of weights; one ONNX file holds less than 2 GiB.");
    }

    /// <summary>Converts and writes; the checkpoint is not referenced after conversion, so its arrays can be
    /// collected while the ONNX bytes are built (a model near the 2 GiB limit holds several copies).</summary>
    private static Llama2cConfig WriteModel(Llama2cCheckpoint checkpoint, string output, string? checkpointOut, int opset)
    {
        var config = checkpoint.Config;
        if (checkpointOut is not null)
        {
            using var stream = File.Create(checkpointOut);
            checkpoint.WriteTo(stream);
        }
        CheckFitsOneFile(config);
        var model = Llama2cConverter.Convert(checkpoint, opset);
        OnnxWriter.Save(model, output);
        return config;
    }
}
