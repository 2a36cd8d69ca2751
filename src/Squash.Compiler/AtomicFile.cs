using System.Diagnostics;
using System.Globalization;

namespace Squash.Compiler;

/// <summary>
/// Writes files so that readers see either the old or the whole new content, never a partial file. The new content
/// goes to <c>.NAME.PID.GUID.tmp</c> beside the file, then is moved over it. A writer killed before the move leaves its
/// temporary file behind; the next write of the same file deletes it (once that process is gone).
/// </summary>
public static class AtomicFile
{
    /// <summary>Writes <paramref name="bytes"/> to a temporary file beside <paramref name="path"/>, then moves it into place.</summary>
    public static void Write(string path, ReadOnlySpan<byte> bytes)
    {
        DeleteAbandoned(path);
        WriteCore(path, bytes);
    }

    private static void WriteCore(string path, ReadOnlySpan<byte> bytes)
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
        DeleteAbandoned(path);
        if (File.Exists(path))
        {
            var info = new FileInfo(path);
            if (info.Length == bytes.Length && File.ReadAllBytes(path).AsSpan().SequenceEqual(bytes)) return false;
        }
        WriteCore(path, bytes);
        return true;
    }

    /// <summary>Deletes the temporary files that writers of <paramref name="path"/> left behind when they were killed,
    /// recognized by the id of a process that no longer runs (a live writer's file is left alone).</summary>
    public static void DeleteAbandoned(string path)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(dir)) return;
        string prefix = "." + Path.GetFileName(full) + ".";
        foreach (var temp in Directory.EnumerateFiles(dir, ".*.tmp"))
        {
            string name = Path.GetFileName(temp);
            if (!name.StartsWith(prefix, StringComparison.Ordinal)) continue;
            string[] parts = name[prefix.Length..].Split('.');
            if (parts.Length != 3 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int pid) || IsRunning(pid))
                continue;
            try
            {
                File.Delete(temp);
            }
            catch (IOException)
            {
                // Another writer cleaning up at the same time; either one deleting it is enough.
            }
            catch (UnauthorizedAccessException)
            {
                // Not ours to delete (another user's build): leave it.
            }
        }
    }

    private static bool IsRunning(int pid)
    {
        if (pid == Environment.ProcessId) return true;
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false; // no such process
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }
}
