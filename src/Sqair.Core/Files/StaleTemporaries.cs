using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Sqair.Files;

/// <summary>
/// Temporary files a killed process leaves behind: <c>NAME.tmp-PID-GUID</c> from
/// <see cref="AtomicFile"/> (up to a checkpoint's size, or a folder of track files) and
/// <c>.part-PID-GUID</c> from dataset generation (up to a gigabyte). Their names carry the writer's
/// process id, so the next command that owns the folder removes those whose writer is gone and
/// leaves a running writer's alone.
/// </summary>
public static partial class StaleTemporaries
{
    [GeneratedRegex(@"(\.tmp-|^\.part-)(?<pid>\d+)-[0-9a-f]{32}$")]
    private static partial Regex TempName();

    /// <summary>The process id in a temporary file's name, or null for any other file.</summary>
    public static int? WriterOf(string fileName) =>
        TempName().Match(fileName) is { Success: true } m && int.TryParse(m.Groups["pid"].Value, out var pid)
            ? pid
            : null;

    /// <summary>
    /// Deletes the temporary files in <paramref name="dir"/> whose writing process no longer runs; returns how many.
    /// </summary>
    public static int RemoveStale(string dir, Action<string>? log = null)
    {
        if (!Directory.Exists(dir)) return 0;
        int removed = 0;
        foreach (var entry in Directory.EnumerateFileSystemEntries(dir))
        {
            if (WriterOf(Path.GetFileName(entry)) is not { } pid || pid == Environment.ProcessId || IsRunning(pid))
                continue;
            try
            {
                bool folder = Directory.Exists(entry);
                long bytes = folder
                    ? Directory.EnumerateFiles(entry, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length)
                    : new FileInfo(entry).Length;
                if (folder) Directory.Delete(entry, recursive: true);
                else File.Delete(entry);
                removed++;
                log?.Invoke($"removed {entry} ({bytes / 1e6:N1} MB), left by process {pid}, " +
                            "which is no longer running");
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        return removed;
    }

    /// <summary>Whether a process with this id is running (a temporary's writer may still be writing it).</summary>
    public static bool IsRunning(int pid)
    {
        try
        {
            using var p = Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }
}
