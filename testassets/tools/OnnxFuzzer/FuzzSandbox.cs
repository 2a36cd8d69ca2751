namespace Squash.Tools.OnnxFuzzer;

/// <summary>
/// A folder laid out for external-data mutations: a model folder with data files, a subfolder, links that leave it
/// (to a file and through a linked directory), a link loop, and a folder outside with a "secret" no model may read.
/// </summary>
/// <remarks>Layout: <c>model/weights.bin</c> (4096 bytes), <c>model/empty.bin</c>, <c>model/sub/w.bin</c> (64 bytes),
/// <c>model/link-out.bin</c> -&gt; <c>outside/secret.bin</c>, <c>model/dir-link</c> -&gt; <c>outside/</c>,
/// <c>model/loop-link</c> -&gt; itself, <c>outside/secret.bin</c> (4096 bytes).</remarks>
public sealed class FuzzSandbox : IDisposable
{
    private readonly string _root;

    /// <summary>Creates the folders under a new temporary directory.</summary>
    public FuzzSandbox()
    {
        _root = Directory.CreateTempSubdirectory("squash-fuzz-").FullName;
        ModelDirectory = Path.Combine(_root, "model");
        string outside = Path.Combine(_root, "outside");
        Directory.CreateDirectory(Path.Combine(ModelDirectory, "sub"));
        Directory.CreateDirectory(outside);
        var pattern = new byte[4096];
        for (int i = 0; i < pattern.Length; i++) pattern[i] = (byte)(i * 7);
        File.WriteAllBytes(Path.Combine(ModelDirectory, "weights.bin"), pattern);
        File.WriteAllBytes(Path.Combine(ModelDirectory, "empty.bin"), []);
        File.WriteAllBytes(Path.Combine(ModelDirectory, "sub", "w.bin"), pattern[..64]);
        File.WriteAllBytes(Path.Combine(outside, "secret.bin"), pattern);
        TryLink(() => File.CreateSymbolicLink(Path.Combine(ModelDirectory, "link-out.bin"), Path.Combine(outside, "secret.bin")));
        TryLink(() => Directory.CreateSymbolicLink(Path.Combine(ModelDirectory, "dir-link"), outside));
        TryLink(() => File.CreateSymbolicLink(Path.Combine(ModelDirectory, "loop-link"), Path.Combine(ModelDirectory, "loop-link")));
    }

    /// <summary>The folder external data resolves against.</summary>
    public string ModelDirectory { get; }

    /// <inheritdoc/>
    public void Dispose()
    {
        try { Directory.Delete(_root, recursive: true); }
        catch (IOException) { }
    }

    private static void TryLink(Action create)
    {
        // Creating links needs a privilege on Windows; the other mutations still run without them.
        try { create(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }
}
