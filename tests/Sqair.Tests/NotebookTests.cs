using System.Diagnostics;

namespace Sqair.Tests;

/// <summary>notebooks/play.ipynb runs headless: every cell executes against this build and the shipped model, and a failing cell fails the test.</summary>
public class NotebookTests
{
    [Fact]
    public async Task The_play_notebook_runs_every_cell()
    {
        var root = RepositoryRoot();
        var start = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "notebook-runner.dll"), Path.Combine(root, "notebooks", "play.ipynb")])
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        await process.WaitForExitAsync(timeout.Token);
        Assert.True(process.ExitCode == 0, $"exit {process.ExitCode}\n{await stdout}\n{await stderr}");
        Assert.Contains("cells ran", await stdout);
    }

    static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "notebooks", "play.ipynb"))) return dir.FullName;
        throw new InvalidOperationException("notebooks/play.ipynb not found above " + AppContext.BaseDirectory);
    }
}
