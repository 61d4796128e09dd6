using System.Text.RegularExpressions;

namespace Sqair.Tests;

/// <summary>
/// notebooks/play.ipynb runs headless as a user runs it, with dotnet-repl (the repository's local tool,
/// dotnet-tools.json): every cell executes against this build (src/Sqair.Cli/bin/current) and the shipped model,
/// and a failing cell fails the test.
/// </summary>
[Trait("Category", "Slow")]
public class NotebookTests
{
    [Fact]
    public async Task The_play_notebook_runs_every_cell()
    {
        var root = TestUtil.RepositoryRoot();
        var restore = await TestUtil.RunAsync("dotnet", ["tool", "restore"], workingDirectory: root);
        Assert.True(restore.Code == 0, $"dotnet tool restore: exit {restore.Code}\n{restore.Stdout}\n{restore.Stderr}");

        var results = Path.Combine(TestUtil.TempDir(), "play.trx");
        var (code, stdout, stderr) = await TestUtil.RunAsync(
            "dotnet", ["tool", "run", "dotnet-repl", "--run", "play.ipynb", "--exit-after-run",
                       "--output-format", "trx", "--output-path", results],
            minutes: 15, workingDirectory: Path.Combine(root, "notebooks"));
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        // dotnet-repl reports each cell as a test: all of them ran, none failed
        var counters = File.ReadAllText(results);
        int Counter(string name) => int.Parse(Regex.Match(counters, $@"\b{name}=""(\d+)""").Groups[1].Value,
                                              System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(0, Counter("failed"));
        Assert.True(Counter("total") > 0 && Counter("passed") == Counter("total"), counters);
    }
}
