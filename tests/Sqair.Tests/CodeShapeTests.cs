using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Sqair.Tests;

/// <summary>
/// No function in src/ spans more than <see cref="MaxLines"/> lines, so each reads at once: one screen, one job,
/// its whole flow in view. A function is a method, constructor, destructor, operator, accessor, local function,
/// expression-bodied (=&gt;) property or indexer, or top-level statements; its length runs from its declaration's
/// first line (after attributes; doc comments do not count) to its closing brace or semicolon. A lambda counts
/// towards the function that encloses it (a long handler makes its builder long); one outside any function (a
/// field's initialiser) counts on its own. Every git-tracked .cs file under src/ is parsed, and every offender is
/// listed at once.
/// </summary>
public class CodeShapeTests
{
    const int MaxLines = 60;

    [Fact]
    public async Task No_function_in_src_spans_more_than_60_lines()
    {
        var root = TestUtil.RepositoryRoot();
        var (code, stdout, stderr) = await TestUtil.RunAsync("git", ["ls-files", "-z", "--", "src/*.cs"],
                                                             workingDirectory: root, minutes: 1);
        Assert.True(code == 0, $"git ls-files failed: {stderr}");
        var files = stdout.Split('\0', StringSplitOptions.RemoveEmptyEntries)
            .Where(f => !f.Split('/').Any(part => part is "obj" or "bin")).ToList();
        Assert.NotEmpty(files);
        var options = new CSharpParseOptions(LanguageVersion.Preview);
        var offenders = new List<string>();
        foreach (var file in files)
        {
            var token = TestContext.Current.CancellationToken;
            var text = await File.ReadAllTextAsync(Path.Combine(root, file), token);
            var tree = CSharpSyntaxTree.ParseText(text, options, file, cancellationToken: token);
            offenders.AddRange(Functions(tree.GetRoot(token))
                .Select(f => (f.Name, f.Start, Lines: Lines(tree, f.Start, f.End)))
                .Where(f => f.Lines > MaxLines)
                .Select(f => $"{file}:{tree.GetLineSpan(new(f.Start, 0)).StartLinePosition.Line + 1} {f.Name} " +
                             $"({f.Lines} lines)"));
        }
        Assert.True(offenders.Count == 0,
                    $"{offenders.Count} functions span more than {MaxLines} lines; split each into functions " +
                    $"that do one job:\n{string.Join("\n", offenders)}");
    }

    [Fact]
    public void Each_kind_of_function_is_counted_from_its_modifiers_to_its_end()
    {
        var tree = CSharpSyntaxTree.ParseText("""
            class C
            {
                static readonly System.Func<int> F = () =>
                {
                    return 1;
                };
                /// <summary>Not counted.</summary>
                [System.Obsolete]
                public int P { get { return 2; } set { } }
                public int Q => 3;
                void M()
                {
                    void Local() { }
                    System.Action a = () => { };
                }
            }
            """, cancellationToken: TestContext.Current.CancellationToken);
        var found = Functions(tree.GetRoot(TestContext.Current.CancellationToken))
            .Select(f => $"{f.Name}:{Lines(tree, f.Start, f.End)}").ToArray();
        Assert.Equal(["lambda in C.F:4", "C.P.get:1", "C.P.set:1", "C.Q:1", "C.M:5", "C.M.Local:1"], found);
    }

    static int Lines(SyntaxTree tree, int start, int end) =>
        tree.GetLineSpan(new(start, end - start)).EndLinePosition.Line
        - tree.GetLineSpan(new(start, 0)).StartLinePosition.Line + 1;

    /// <summary>Each function of a file: its name and where it starts (after its attributes) and ends.</summary>
    static IEnumerable<(string Name, int Start, int End)> Functions(SyntaxNode root)
    {
        foreach (var node in root.DescendantNodes())
        {
            var name = node switch
            {
                BaseMethodDeclarationSyntax or LocalFunctionStatementSyntax => Named(node),
                AccessorDeclarationSyntax { Body: not null } or AccessorDeclarationSyntax { ExpressionBody: not null }
                    => $"{Named(node.Parent!.Parent!)}.{((AccessorDeclarationSyntax)node).Keyword.Text}",
                PropertyDeclarationSyntax { ExpressionBody: not null } => Named(node),
                IndexerDeclarationSyntax { ExpressionBody: not null } => Named(node),
                AnonymousFunctionExpressionSyntax when !node.Ancestors().Any(IsFunction)
                    => "lambda in " + Named(node.Ancestors().First(a => a is MemberDeclarationSyntax)),
                _ => null,
            };
            if (name is not null) yield return (name, Start(node), node.Span.End);
        }
        var statements = root.ChildNodes().OfType<GlobalStatementSyntax>().ToList();
        if (statements.Count > 0)
            yield return ("<top-level statements>", statements[0].SpanStart, statements[^1].Span.End);
    }

    static bool IsFunction(SyntaxNode node) => node is BaseMethodDeclarationSyntax or LocalFunctionStatementSyntax
        or AccessorDeclarationSyntax or ArrowExpressionClauseSyntax or GlobalStatementSyntax
        or AnonymousFunctionExpressionSyntax;

    /// <summary>The first character after the attributes: a function's declaration starts at its modifiers.</summary>
    static int Start(SyntaxNode node)
    {
        var attributes = node switch
        {
            MemberDeclarationSyntax m => m.AttributeLists,
            LocalFunctionStatementSyntax l => l.AttributeLists,
            AccessorDeclarationSyntax a => a.AttributeLists,
            _ => default,
        };
        return attributes.Count == 0 ? node.SpanStart : attributes.Last().GetLastToken().GetNextToken().SpanStart;
    }

    /// <summary>Type.Member, with the enclosing types and functions (a local function's or accessor's too).</summary>
    static string Named(SyntaxNode node) => string.Join(".", node.AncestorsAndSelf().Reverse().Select(n => n switch
    {
        BaseTypeDeclarationSyntax t => t.Identifier.Text,
        MethodDeclarationSyntax m => m.Identifier.Text,
        ConstructorDeclarationSyntax c => $"{c.Identifier.Text}()",
        DestructorDeclarationSyntax d => $"~{d.Identifier.Text}",
        OperatorDeclarationSyntax o => $"operator {o.OperatorToken.Text}",
        ConversionOperatorDeclarationSyntax c => $"operator {c.Type}",
        LocalFunctionStatementSyntax l => l.Identifier.Text,
        PropertyDeclarationSyntax p => p.Identifier.Text,
        EventDeclarationSyntax e => e.Identifier.Text,
        BaseFieldDeclarationSyntax f => string.Join(",", f.Declaration.Variables.Select(v => v.Identifier.Text)),
        IndexerDeclarationSyntax => "this[]",
        _ => null,
    }).OfType<string>());
}
