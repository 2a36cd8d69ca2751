using System.Diagnostics;
using System.Globalization;

namespace Squash.Build.Tasks;

/// <summary>
/// Writes the build's own small files (options files, the manifest) so that readers see the old or the whole new
/// content, as the compiler's <c>AtomicFile</c> does for its outputs (that class is not available to netstandard2.0):
/// two builds of one project at once (an IDE's and a command line's) never read a half-written or truncated file, and
/// never fail on each other's open file. The content goes to <c>.NAME.PID.GUID.tmp</c> beside the file and is then
/// renamed over it; temporary files of killed builds are deleted at the next write of the same file.
/// </summary>
internal static class BuildFile
{
    /// <summary>Writes <paramref name="bytes"/> to <paramref name="path"/> unless it holds them already.</summary>
    public static void WriteIfChanged(string path, byte[] bytes)
    {
        DeleteAbandoned(path);
        if (File.Exists(path) && File.ReadAllBytes(path).SequenceEqual(bytes)) return;
        string temp = Path.Combine(Path.GetDirectoryName(path)!,
            $".{Path.GetFileName(path)}.{CurrentProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            File.WriteAllBytes(temp, bytes);
            try
            {
                File.Move(temp, path);
            }
            catch (IOException) when (File.Exists(path))
            {
                // The file exists (now): replacing it is a rename over it too.
                File.Replace(temp, path, destinationBackupFileName: null);
            }
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    private static readonly int CurrentProcessId = GetCurrentProcessId();

    private static int GetCurrentProcessId()
    {
        using var process = Process.GetCurrentProcess();
        return process.Id;
    }

    /// <summary>Deletes temporary files of <paramref name="path"/> whose writer is no longer running.</summary>
    private static void DeleteAbandoned(string path)
    {
        string dir = Path.GetDirectoryName(path)!;
        if (!Directory.Exists(dir)) return;
        string prefix = "." + Path.GetFileName(path) + ".";
        foreach (var temp in Directory.EnumerateFiles(dir, prefix + "*.tmp"))
        {
            string[] parts = Path.GetFileName(temp).Substring(prefix.Length).Split('.');
            if (parts.Length != 3 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int pid) || IsRunning(pid))
                continue;
            try
            {
                File.Delete(temp);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Another build deleting it at the same time, or not ours to delete.
            }
        }
    }

    private static bool IsRunning(int pid)
    {
        if (pid == CurrentProcessId) return true;
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return false; // no such process
        }
    }
}
