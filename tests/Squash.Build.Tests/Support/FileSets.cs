namespace Squash.Build.Tests.Support;

/// <summary>Whole folders of generated files, compared byte for byte.</summary>
internal static class FileSets
{
    /// <summary>Every file of a folder (not its subfolders), by name.</summary>
    public static SortedDictionary<string, byte[]> Read(string dir) =>
        new(Directory.GetFiles(dir).ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes), StringComparer.Ordinal);

    /// <summary>Asserts the same names with the same bytes; <paramref name="what"/> says between what, on failure.</summary>
    public static void AssertSame(SortedDictionary<string, byte[]> expected, SortedDictionary<string, byte[]> actual, string what)
    {
        Assert.Equal(expected.Keys, actual.Keys);
        foreach (var (name, bytes) in expected)
            Assert.True(bytes.AsSpan().SequenceEqual(actual[name]), $"{name} differs {what}");
    }
}
