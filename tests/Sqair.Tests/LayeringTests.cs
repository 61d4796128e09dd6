using NetArchTest.Rules;

namespace Sqair.Tests;

/// <summary>
/// The library's folders are layers and data flows one way through them (docs/design.md, "Layers"): a namespace
/// refers only to its own layer and the layers below it. Read from the compiled references (IL), so a fully
/// qualified name or a doc-less call cannot slip past as it could past a search of the source.
/// </summary>
public class LayeringTests
{
    /// <summary>Bottom to top; namespaces in one row are siblings and may not refer to each other.</summary>
    static readonly string[][] Layers =
    [
        ["Sqair.Files", "Sqair.Native", "Sqair.Text"],
        ["Sqair.Data"],
        ["Sqair.Model"],
        ["Sqair.Inference"],
        ["Sqair.Objective"],
        ["Sqair.Runs"],
        ["Sqair.Training"],
        ["Sqair.Evaluation", "Sqair.Visualisation"],
        ["Sqair.Jobs"],
        ["Sqair.Sweeps"],
    ];

    static readonly System.Reflection.Assembly Library = typeof(Sqair.Model.SqairModel).Assembly;

    public static TheoryData<string> Namespaces() => [.. Layers.SelectMany(l => l)];

    [Theory]
    [MemberData(nameof(Namespaces))]
    public void A_namespace_refers_to_no_layer_above_it_nor_to_its_siblings(string ns)
    {
        int level = Array.FindIndex(Layers, l => l.Contains(ns));
        var forbidden = Layers.Skip(level + 1).SelectMany(l => l).Concat(Layers[level].Where(s => s != ns))
            .ToArray();
        // The utilities serve every layer and each other (a file write may read /proc): only the rows above count.
        if (level == 0) forbidden = [.. Layers.Skip(1).SelectMany(l => l)];
        var result = Types.InAssembly(Library).That().ResideInNamespace(ns)
            .ShouldNot().HaveDependencyOnAny(forbidden).GetResult();
        Assert.True(result.IsSuccessful,
                    $"{ns} refers upward: {string.Join(", ", result.FailingTypes?.Select(t => t.FullName) ?? [])}");
    }

    [Fact]
    public void Every_type_of_the_library_lives_in_a_layer()
    {
        var known = Layers.SelectMany(l => l).ToHashSet();
        var stray = Library.GetTypes()
            .Where(t => t.Namespace is { } n && n.StartsWith("Sqair", StringComparison.Ordinal)
                        && !known.Contains(n))
            .Select(t => t.FullName).Distinct().ToList();
        Assert.True(stray.Count == 0, $"types outside every layer (place their namespace in Layers): " +
                                      string.Join(", ", stray));
    }
}
