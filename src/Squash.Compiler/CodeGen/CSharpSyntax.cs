using System.Globalization;
using System.Security;
using System.Text;
using Squash.Runtime;

namespace Squash.Compiler.CodeGen;

/// <summary>C# literals, identifiers and type names for generated code; every format is culture-invariant.</summary>
internal static class CSharpSyntax
{
    private static readonly HashSet<string> s_keywords = new(StringComparer.Ordinal)
    {
        "abstract", "as", "base", "bool", "break", "byte", "case", "catch", "char", "checked", "class", "const",
        "continue", "decimal", "default", "delegate", "do", "double", "else", "enum", "event", "explicit", "extern",
        "false", "finally", "fixed", "float", "for", "foreach", "goto", "if", "implicit", "in", "int", "interface",
        "internal", "is", "lock", "long", "namespace", "new", "null", "object", "operator", "out", "override",
        "params", "private", "protected", "public", "readonly", "ref", "return", "sbyte", "sealed", "short",
        "sizeof", "stackalloc", "static", "string", "struct", "switch", "this", "throw", "true", "try", "typeof",
        "uint", "ulong", "unchecked", "unsafe", "ushort", "using", "virtual", "void", "volatile", "while",
    };

    /// <summary>A float literal that reads back to the same bits.</summary>
    public static string Float(float f) => float.IsNaN(f) ? "float.NaN"
        : float.IsPositiveInfinity(f) ? "float.PositiveInfinity"
        : float.IsNegativeInfinity(f) ? "float.NegativeInfinity"
        : f == 0 && float.IsNegative(f) ? "-0f"
        : f.ToString("R", CultureInfo.InvariantCulture) + "f";

    /// <summary>A long literal.</summary>
    public static string Long(long v) => v == long.MinValue ? "long.MinValue" : v.ToString(CultureInfo.InvariantCulture) + "L";

    /// <summary>An int literal.</summary>
    public static string Int(long v) => v.ToString(CultureInfo.InvariantCulture);

    /// <summary>A verbatim-safe regular string literal.</summary>
    public static string String(string s)
    {
        var sb = new StringBuilder("\"");
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c < 0x20 || c is '\u2028' or '\u2029' or '\u0085') sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        return sb.Append('"').ToString();
    }

    /// <summary>Text safe inside an XML doc comment.</summary>
    public static string Xml(string s) => SecurityElement.Escape(s.Replace("\r", "").Replace("\n", " ")) ?? "";

    /// <summary>An int array literal such as <c>[1, 3, 640, 640]</c>.</summary>
    public static string IntArray(IEnumerable<int> values) => "[" + string.Join(", ", values.Select(v => Int(v))) + "]";

    /// <summary>The C# element type that holds <paramref name="type"/>.</summary>
    public static string ElementType(DataType type) => type switch
    {
        DataType.Float => "float",
        DataType.Double => "double",
        DataType.Float16 => "global::System.Half",
        DataType.BFloat16 => "global::Squash.Runtime.BFloat16",
        DataType.Int8 => "sbyte",
        DataType.UInt8 => "byte",
        DataType.Int16 => "short",
        DataType.UInt16 => "ushort",
        DataType.Int32 => "int",
        DataType.UInt32 => "uint",
        DataType.Int64 => "long",
        DataType.UInt64 => "ulong",
        DataType.Bool => "bool",
        _ => throw new SquashException(ErrorCodes.UnsupportedDataType, $"Element type {DataTypes.Name(type)} cannot appear in a generated API."),
    };

    /// <summary>True when <paramref name="name"/> is a valid C# identifier (a keyword needs '@').</summary>
    public static bool IsIdentifier(string name) =>
        name.Length > 0 && (char.IsLetter(name[0]) || name[0] == '_') && name.All(c => char.IsLetterOrDigit(c) || c == '_');

    /// <summary>True when <paramref name="ns"/> is a dotted C# namespace.</summary>
    public static bool IsNamespace(string ns) => ns.Split('.').All(p => IsIdentifier(p) && !s_keywords.Contains(p));

    /// <summary>PascalCase identifier from an arbitrary name: <c>sigmoid_0.tmp_0</c> becomes <c>Sigmoid0Tmp0</c>.</summary>
    public static string Pascal(string name)
    {
        var sb = new StringBuilder();
        bool upper = true;
        foreach (char c in name)
        {
            if (char.IsAsciiLetterOrDigit(c))
            {
                sb.Append(upper ? char.ToUpperInvariant(c) : c);
                upper = false;
            }
            else
            {
                upper = true;
            }
        }
        if (sb.Length == 0 || char.IsDigit(sb[0])) sb.Insert(0, 'T');
        return sb.ToString();
    }

    /// <summary>camelCase identifier, escaped with '@' when it is a keyword.</summary>
    public static string Camel(string name)
    {
        string p = Pascal(name);
        string c = char.ToLowerInvariant(p[0]) + p[1..];
        return s_keywords.Contains(c) ? "@" + c : c;
    }

    /// <summary>Makes <paramref name="candidate"/> unique within <paramref name="used"/> by appending a number.</summary>
    public static string Unique(string candidate, HashSet<string> used)
    {
        string name = candidate;
        for (int i = 2; !used.Add(name.TrimStart('@')); i++) name = candidate + i.ToString(CultureInfo.InvariantCulture);
        return name;
    }
}
