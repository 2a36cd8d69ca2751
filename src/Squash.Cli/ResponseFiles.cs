namespace Squash.Cli;

/// <summary>Expands <c>@file</c> arguments: one argument per line (UTF-8), blank lines and lines starting with '#'
/// ignored. The MSBuild task passes everything this way so paths with spaces need no quoting.</summary>
internal static class ResponseFiles
{
    public static string[] Expand(string[] args)
    {
        var result = new List<string>(args.Length);
        foreach (var a in args)
        {
            if (a.Length > 1 && a[0] == '@')
            {
                foreach (var line in File.ReadAllLines(a[1..]))
                {
                    string t = line.Trim();
                    if (t.Length > 0 && !t.StartsWith('#')) result.Add(t);
                }
            }
            else
            {
                result.Add(a);
            }
        }
        return [.. result];
    }
}
