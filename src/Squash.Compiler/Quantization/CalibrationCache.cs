using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using System.Text;
using Squash.Runtime;

namespace Squash.Compiler.Quantization;

/// <summary>
/// Keeps a calibration result in a JSON file with the content hash of everything that produced it, so a rebuild
/// with the same model, data and settings reads the ranges instead of running the model again. The key is XxHash3
/// over, each length-prefixed: the cache format, the identities of the Squash.Compiler and Squash.Runtime builds
/// (other kernels may compute other activations), the model file's bytes, the split, every calibration file's
/// relative path and bytes (held-out ones too), the settings, and a caller's context string (anything else that
/// shapes the graph: pinned input shapes, baked constant inputs, external data).
/// </summary>
public static class CalibrationCache
{
    private const string KeyFormat = "squash-calibration-key/1";

    /// <summary>The cache key of calibrating <paramref name="modelPath"/> on <paramref name="dataSet"/>.</summary>
    /// <exception cref="SquashException">The model (SQ1010) or a calibration file (SQ1016) cannot be read.</exception>
    public static string ComputeKey(string modelPath, CalibrationDataSet dataSet, CalibrationSettings settings, string context = "")
    {
        var hash = new XxHash3();
        AppendText(hash, KeyFormat);
        AppendText(hash, typeof(CalibrationCache).Assembly.ManifestModule.ModuleVersionId.ToString());
        AppendText(hash, typeof(Tensor).Assembly.ManifestModule.ModuleVersionId.ToString());
        AppendFile(hash, modelPath, ErrorCodes.FileError, "model");
        AppendText(hash, dataSet.Split.HoldOutEvery.ToString(CultureInfo.InvariantCulture));
        AppendLength(hash, dataSet.Samples.Count);
        foreach (var sample in dataSet.Samples)
        {
            AppendLength(hash, sample.Files.Count);
            foreach (var file in sample.Files)
            {
                AppendText(hash, Path.GetRelativePath(dataSet.Folder, file).Replace('\\', '/'));
                AppendFile(hash, file, ErrorCodes.CalibrationData, "calibration");
            }
        }
        AppendText(hash, settings.ToCanonicalString());
        AppendText(hash, context);
        return hash.GetCurrentHashAsUInt64().ToString("x16", CultureInfo.InvariantCulture);
    }

    /// <summary>The result cached at <paramref name="cachePath"/> under <paramref name="key"/>, or null when the file
    /// is missing, unreadable, damaged or holds another key.</summary>
    public static CalibrationResult? TryRead(string cachePath, string key)
    {
        try
        {
            if (!File.Exists(cachePath)) return null;
            var result = CalibrationResult.FromJson(File.ReadAllBytes(cachePath), out string? storedKey);
            return storedKey == key ? result : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            // A cache is only a shortcut: anything wrong with it means calibrating again.
            return null;
        }
    }

    /// <summary>Writes <paramref name="result"/> to <paramref name="cachePath"/> under <paramref name="key"/>,
    /// atomically (readers see the old file or the whole new one).</summary>
    public static void Write(string cachePath, string key, CalibrationResult result) =>
        AtomicFile.Write(cachePath, result.ToJson(key));

    private static void AppendLength(XxHash3 hash, long length)
    {
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(bytes, length);
        hash.Append(bytes);
    }

    private static void AppendText(XxHash3 hash, string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        AppendLength(hash, bytes.Length);
        hash.Append(bytes);
    }

    private static void AppendFile(XxHash3 hash, string path, string code, string what)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            AppendLength(hash, stream.Length);
            hash.Append(stream);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SquashException(code, $"The {what} file '{path}' cannot be read ({e.Message.TrimEnd('.')}).", inner: e);
        }
    }
}
