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
            var checkpoint = synthetic is null
                ? Llama2cCheckpoint.Load(positional[0])
                : Llama2cCheckpoint.Synthetic(Llama2cConfig.Parse(synthetic), seed);
            string output = positional[^1];
            if (checkpointOut is not null)
            {
                using var stream = File.Create(checkpointOut);
                checkpoint.WriteTo(stream);
            }
            // One ONNX file is one protobuf message, which cannot exceed 2 GiB; OnnxWriter writes no external data.
            const long ProtobufLimit = int.MaxValue;
            long weightBytes = 4 * checkpoint.Config.FloatCount;
            if (weightBytes > ProtobufLimit - (16 << 20))
                throw new SquashException(ErrorCodes.TooLarge,
                    $"The model ({checkpoint.Config}) has {weightBytes} bytes of weights; one ONNX file holds less than 2 GiB.");
            var model = Llama2cConverter.Convert(checkpoint, opset);
            OnnxWriter.Save(model, output);
            stdout.WriteLine($"Wrote {output}: llama2.c model {checkpoint.Config}, opset {opset}.");
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
}
