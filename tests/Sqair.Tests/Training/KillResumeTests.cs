namespace Sqair.Tests.Training;

/// <summary>
/// The short CI version of scripts/kill-resume.sh: SIGKILL a real training process at random moments, resume,
/// compare.
/// </summary>
[Trait("Category", "Slow")]
public class KillResumeTests
{
    [Fact]
    public async Task A_training_killed_at_random_moments_and_resumed_ends_with_the_uninterrupted_checkpoint()
    {
        var script = Path.Combine(TestUtil.RepositoryRoot(), "scripts", "kill-resume.sh");
        var sqair = Path.Combine(AppContext.BaseDirectory, "sqair.dll");
        var (code, stdout, stderr) = await TestUtil.RunAsync(
            "bash", [script, "3", "90"], new Dictionary<string, string> { ["SQAIR"] = $"dotnet {sqair}" });
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.StartsWith("identical", stdout);
    }
}
