using System.Text;

namespace Squash.Compiler.CodeGen;

/// <summary>An indented text writer for generated C#: four spaces, '\n' line ends, so output is identical on every OS.</summary>
internal sealed class CSharpWriter
{
    private readonly StringBuilder _text = new();
    private int _indent;

    /// <summary>Writes one line at the current indentation (an empty line stays empty).</summary>
    public CSharpWriter Line(string line = "")
    {
        if (line.Length > 0) _text.Append(' ', _indent * 4).Append(line);
        _text.Append('\n');
        return this;
    }

    /// <summary>Writes <c>{</c> and indents.</summary>
    public CSharpWriter Open(string? header = null)
    {
        if (header is not null) Line(header);
        Line("{");
        _indent++;
        return this;
    }

    /// <summary>Dedents and writes <c>}</c> (plus an optional suffix such as <c>;</c>).</summary>
    public CSharpWriter Close(string suffix = "")
    {
        _indent--;
        return Line("}" + suffix);
    }

    /// <summary>Writes an XML doc comment; <paramref name="text"/> may span several lines.</summary>
    public CSharpWriter Doc(string tag, string text, string attributes = "")
    {
        var lines = text.Split('\n');
        if (lines.Length == 1) return Line($"/// <{tag}{attributes}>{lines[0]}</{tag}>");
        Line($"/// <{tag}{attributes}>");
        foreach (var l in lines) Line("/// " + l);
        return Line($"/// </{tag}>");
    }

    /// <inheritdoc/>
    public override string ToString() => _text.ToString();
}
