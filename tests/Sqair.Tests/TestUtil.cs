using Sqair.Data;

namespace Sqair.Tests;

static class TestUtil
{
    /// <summary>A fresh empty folder under the system temp directory.</summary>
    public static string TempDir()
    {
        var d = Path.Combine(Path.GetTempPath(), "sqair-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(d);
        return d;
    }

    /// <summary>Digit-like templates with no zero pixels (so visibility is exactly "corner on the canvas").</summary>
    public static List<Template> Templates(int n, ulong seed = 1) => MovingMnist.SyntheticTemplates(n, seed);

    /// <summary>
    /// The repository's root folder: the first folder above the test binaries that holds <paramref name="marker"/>.
    /// </summary>
    public static string RepositoryRoot(string marker = "Sqair.slnx")
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, marker))) return dir.FullName;
        throw new InvalidOperationException($"{marker} not found above {AppContext.BaseDirectory}");
    }

    /// <summary>
    /// Runs a program to its end (at most <paramref name="minutes"/>), in <paramref name="workingDirectory"/>
    /// (null: this process's), and returns its exit code and output.
    /// </summary>
    public static async Task<(int Code, string Stdout, string Stderr)> RunAsync(
        string program, IEnumerable<string> args,
        IReadOnlyDictionary<string, string>? environment = null, int minutes = 5, string? workingDirectory = null)
    {
        var start = new System.Diagnostics.ProcessStartInfo(program, args)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = workingDirectory ?? "",
        };
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) start.Environment[key] = value;
        using var process = System.Diagnostics.Process.Start(start)!;
        var token = TestContext.Current.CancellationToken;
        var stdout = process.StandardOutput.ReadToEndAsync(token);
        var stderr = process.StandardError.ReadToEndAsync(token);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(token);
        timeout.CancelAfter(TimeSpan.FromMinutes(minutes));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout, await stderr);
    }

    /// <summary>Creates a FIFO (named pipe) at <paramref name="path"/> with coreutils' mkfifo.</summary>
    public static void MakeFifo(string path)
    {
        using var mkfifo = System.Diagnostics.Process.Start("mkfifo", [path]);
        mkfifo.WaitForExit();
        Assert.Equal(0, mkfifo.ExitCode);
    }

    public static MovingMnist Generator(MovingMnistConfig? config = null, ulong seed = 7, int templates = 200) =>
        new(config ?? new MovingMnistConfig(), Templates(templates), seed);
}
