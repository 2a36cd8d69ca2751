using System.Globalization;

namespace Squash.Cli;

/// <summary>A small parser for <c>positional --option value --flag</c> command lines. Options may repeat.</summary>
public sealed class Arguments
{
    private readonly List<string> _positional = [];
    private readonly List<(string Name, string? Value)> _options = [];
    private readonly HashSet<string> _consumed = new(StringComparer.Ordinal);

    /// <summary>Parses the arguments after the verb.</summary>
    public Arguments(IReadOnlyList<string> args)
    {
        for (int i = 0; i < args.Count; i++)
        {
            string a = args[i];
            if (a.StartsWith("--", StringComparison.Ordinal) && a.Length > 2)
            {
                int eq = a.IndexOf('=');
                if (eq > 0) _options.Add((a[2..eq], a[(eq + 1)..]));
                else if (i + 1 < args.Count && !args[i + 1].StartsWith("--", StringComparison.Ordinal)) _options.Add((a[2..], args[++i]));
                else _options.Add((a[2..], null));
            }
            else if (a == "-h")
            {
                _options.Add(("help", null));
            }
            else
            {
                _positional.Add(a);
            }
        }
    }

    /// <summary>True when --help was given.</summary>
    public bool Help => Flag("help");

    /// <summary>Positional argument <paramref name="index"/>, required.</summary>
    public string Positional(int index, string what) =>
        index < _positional.Count ? _positional[index] : throw new UsageException($"missing {what}.");

    /// <summary>Number of positional arguments.</summary>
    public int PositionalCount => _positional.Count;

    /// <summary>All values of a repeatable option.</summary>
    public IReadOnlyList<string> All(string name)
    {
        _consumed.Add(name);
        return [.. _options.Where(o => o.Name == name).Select(o => o.Value ?? throw new UsageException($"--{name} needs a value."))];
    }

    /// <summary>The value of an option given at most once, or null.</summary>
    public string? Optional(string name)
    {
        var all = All(name);
        return all.Count switch
        {
            0 => null,
            1 => all[0],
            _ => throw new UsageException($"--{name} may be given only once."),
        };
    }

    /// <summary>An integer option, or <paramref name="defaultValue"/>.</summary>
    public int Int(string name, int defaultValue, int min = int.MinValue)
    {
        var s = Optional(name);
        if (s is null) return defaultValue;
        if (!int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) || v < min)
            throw new UsageException($"--{name} must be an integer{(min > int.MinValue ? $" of at least {min}" : "")}, not '{s}'.");
        return v;
    }

    /// <summary>True when the flag was given.</summary>
    public bool Flag(string name)
    {
        _consumed.Add(name);
        return _options.Any(o => o.Name == name);
    }

    /// <summary>Throws for options no one asked about and for extra positional arguments.</summary>
    public void CheckNoneLeft(int positionalCount)
    {
        var unknown = _options.Select(o => o.Name).FirstOrDefault(n => !_consumed.Contains(n));
        if (unknown is not null) throw new UsageException($"unknown option --{unknown}.");
        if (_positional.Count > positionalCount) throw new UsageException($"unexpected argument '{_positional[positionalCount]}'.");
    }
}
