namespace Squash.Compiler;

/// <summary>Writes files so that readers see either the old or the whole new content, never a partial file.</summary>
public static class AtomicFile
{
    /// <summary>Writes <paramref name="bytes"/> to a temporary file beside <paramref name="path"/>, then moves it into place.</summary>
    public static void Write(string path, ReadOnlySpan<byte> bytes)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        string temp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                stream.Write(bytes);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>Writes text as UTF-8 without a byte-order mark, atomically.</summary>
    public static void WriteText(string path, string text) =>
        Write(path, new System.Text.UTF8Encoding(false).GetBytes(text));

    /// <summary>Like <see cref="Write"/>, but leaves the file (and its timestamp) alone when the content is unchanged.
    /// Returns true when it wrote.</summary>
    public static bool WriteIfChanged(string path, ReadOnlySpan<byte> bytes)
    {
        if (File.Exists(path))
        {
            var info = new FileInfo(path);
            if (info.Length == bytes.Length && File.ReadAllBytes(path).AsSpan().SequenceEqual(bytes)) return false;
        }
        Write(path, bytes);
        return true;
    }
}
