using System.Reflection;
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
    /// The first sentence of <paramref name="property"/>'s summary, as plain text; null when the documentation
    /// file is absent (a host that did not copy it) or the property has none.
    /// </summary>
    public static string? FirstSentence(PropertyInfo property) =>
        Summaries.Value.TryGetValue($"P:{property.DeclaringType!.FullName}.{property.Name}", out var text)
            ? Sentence().Match(text).Value.TrimEnd('.', ' ', ';', ':')
            : null;

    static IReadOnlyDictionary<string, string> Read()
    {
        var path = Path.ChangeExtension(typeof(KeyDocs).Assembly.Location, ".xml");
        if (!File.Exists(path)) return new Dictionary<string, string>();
        return XDocument.Load(path).Descendants("member")
            .Where(m => m.Element("summary") is not null)
            .ToDictionary(m => (string)m.Attribute("name")!, m => PlainText(m.Element("summary")!));
    }

    /// <summary>The summary's text, with <c>&lt;see cref="X.Y"/&gt;</c> as Y and whitespace collapsed.</summary>
    static string PlainText(XElement summary)
    {
        foreach (var see in summary.Descendants("see").ToList())
        {
            var cref = (string?)see.Attribute("cref") ?? (string?)see.Attribute("langword") ?? "";
            see.ReplaceWith(cref[(cref.LastIndexOf('.') + 1)..]);
        }
        return Whitespace().Replace(summary.Value, " ").Trim();
    }

    /// <summary>Up to the first full stop followed by a space (or the end): "e.g. " and "1.5" do not end it.</summary>
    [GeneratedRegex(@"^.*?(?:(?<!\be\.g|\bi\.e)\.(?=\s|$)|$)")]
    private static partial Regex Sentence();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
