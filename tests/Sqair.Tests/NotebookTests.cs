namespace Sqair.Tests;

/// <summary>
/// notebooks/play.ipynb runs headless: every cell executes against this build and the shipped model, and a failing
/// cell fails the test.
/// </summary>
[Trait("Category", "Slow")]
public class NotebookTests
{
    [Fact]
    public async Task The_play_notebook_runs_every_cell()
    {
        var notebook = Path.Combine(TestUtil.RepositoryRoot(), "notebooks", "play.ipynb");
        var (code, stdout, stderr) = await TestUtil.RunAsync(
            "dotnet", [Path.Combine(AppContext.BaseDirectory, "notebook-runner.dll"), notebook]);
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("cells ran", stdout);
    }
}
