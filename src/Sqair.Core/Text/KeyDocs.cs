using System.Reflection;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace Sqair.Text;

/// <summary>
/// The documentation comments of a type's properties, read from the XML documentation file the build writes
/// beside the assembly: a key is described once, in its doc comment, and the command line's help shows it.
/// </summary>
internal static partial class KeyDocs
{
    static readonly Lazy<IReadOnlyDictionary<string, string>> Summaries = new(Read);

    /// <summary>
    /// The first sentence of the summary of <paramref name="type"/>'s property whose JSON name is
    /// <paramref name="key"/>, as plain text; null when there is no such property, the documentation file is
    /// absent (a host that did not copy it) or the property has no summary.
    /// </summary>
    public static string? OfKey(Type type, string key) =>
        type.GetProperties().FirstOrDefault(p => p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name == key)
            is { } property
        && Summaries.Value.TryGetValue($"P:{type.FullName}.{property.Name}", out var text)
            ? Sentence().Match(text).Value.TrimEnd('.', ' ', ';', ':')
            : null;

    static IReadOnlyDictionary<string, string> Read()
    {
        var path = Path.ChangeExtension(typeof(KeyDocs).Assembly.Location, ".xml");
        try
        {
            // Only properties are described; a damaged file costs the help its text, never a command.
            return XDocument.Load(path).Descendants("member")
                .Where(m => ((string?)m.Attribute("name"))?.StartsWith("P:", StringComparison.Ordinal) == true
                            && m.Element("summary") is not null)
                .ToDictionary(m => (string)m.Attribute("name")!, m => PlainText(m.Element("summary")!));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Xml.XmlException
                                       or ArgumentException)
        {
            return new Dictionary<string, string>();
        }
    }

    /// <summary>
    /// The summary's text, whitespace collapsed: a <c>&lt;see cref/&gt;</c> to a key's property as the key
    /// (<c>data</c>, not <c>Data</c>), to anything else as its last name; a <c>&lt;paramref/&gt;</c> as its name.
    /// </summary>
    static string PlainText(XElement summary)
    {
        foreach (var see in summary.Descendants().Where(e => e.Name == "see" || e.Name == "paramref"
                                                              || e.Name == "typeparamref").ToList())
            see.ReplaceWith(see.Value is { Length: > 0 } text ? text
                            : (string?)see.Attribute("cref") is { } cref ? Named(cref)
                            : (string?)see.Attribute("langword") ?? (string?)see.Attribute("name") ?? "");
        return Whitespace().Replace(summary.Value, " ").Trim();
    }

    /// <summary>What a cref names in help text: a property's JSON key when it has one, else its last name.</summary>
    static string Named(string cref)
    {
        var member = cref.Split('(')[0];
        var name = member[(member.LastIndexOf('.') + 1)..];
        if (!cref.StartsWith("P:", StringComparison.Ordinal)) return name;
        var type = typeof(KeyDocs).Assembly.GetType(member[2..member.LastIndexOf('.')]);
        return type?.GetProperty(name)?.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name ?? name;
    }

    /// <summary>Up to the first full stop followed by a space (or the end): "e.g. " and "1.5" do not end it.</summary>
    [GeneratedRegex(@"^.*?(?:(?<!\be\.g|\bi\.e)\.(?=\s|$)|$)")]
    private static partial Regex Sentence();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
