using System.Diagnostics;

namespace Sqair.Tests.Training;

/// <summary>The short CI version of scripts/kill-resume.sh: SIGKILL a real training process at random moments, resume, compare.</summary>
public class KillResumeTests
{
    [Fact]
    public async Task A_training_killed_at_random_moments_and_resumed_ends_with_the_uninterrupted_checkpoint()
    {
        var script = Path.Combine(RepositoryRoot(), "scripts", "kill-resume.sh");
        var sqair = Path.Combine(AppContext.BaseDirectory, "sqair.dll");
        var start = new ProcessStartInfo("bash", [script, "3", "90"]) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.Environment["SQAIR"] = $"dotnet {sqair}";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        await process.WaitForExitAsync(timeout.Token);
        Assert.True(process.ExitCode == 0, $"exit {process.ExitCode}\n{await stdout}\n{await stderr}");
        Assert.StartsWith("identical", await stdout);
    }

    static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "scripts", "kill-resume.sh"))) return dir.FullName;
        throw new InvalidOperationException("scripts/kill-resume.sh not found above " + AppContext.BaseDirectory);
    }
}
