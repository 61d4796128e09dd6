namespace Sqair.Runs;

/// <summary>
/// The lock a training holds on its run folder (<c>run.lock</c>), so that two trainings cannot
/// write one folder. It is an OS file lock: the kernel releases it when the holder dies, so a
/// killed training never blocks the next one; the file itself (holding the holder's process id)
/// stays, and the next training takes it over and says so.
/// </summary>
internal sealed class RunLock : IDisposable
{
    public const string FileName = "run.lock";

    readonly FileStream stream;

    RunLock(FileStream stream) => this.stream = stream;

    /// <summary>
    /// Takes the lock of <paramref name="runDir"/> (creating the folder), or fails naming the folder when a running
    /// training holds it. A sweep locks its folder the same way, in its own <paramref name="fileName"/>, as
    /// <paramref name="holder"/> "sweep" (the error then suggests another folder rather than another --run-dir).
    /// </summary>
    public static RunLock Acquire(string runDir, Action<string>? log = null, string fileName = FileName,
                                  string holder = "training")
    {
        Directory.CreateDirectory(runDir);
        var path = Path.Combine(runDir, fileName);
        FileStream stream;
        try { stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
        catch (IOException)
        {
            throw new RunFolderInUseException(
                $"{runDir} is in use by another {holder} (it holds {path}); wait for it to end, or stop it, " +
                $"or choose another {(holder == "training" ? "--run-dir" : "folder")}");
        }
        if (stream.Length > 0)
        {
            var previous = new StreamReader(stream, leaveOpen: true).ReadToEnd().Trim();
            log?.Invoke($"taking over {path} from process {previous}, which is no longer running");
        }
        stream.SetLength(0);
        using (var w = new StreamWriter(stream, leaveOpen: true)) w.Write(Environment.ProcessId);
        stream.Flush(flushToDisk: true);
        return new RunLock(stream);
    }

    /// <summary>
    /// Whether a running process holds the lock of <paramref name="runDir"/>, without taking it over: a
    /// lock file that no process holds (its holder was killed) is left as it is.
    /// </summary>
    public static bool IsHeld(string runDir, string fileName = FileName)
    {
        try
        {
            using var probe = new FileStream(Path.Combine(runDir, fileName), FileMode.Open, FileAccess.Read,
                                             FileShare.None);
            return false;
        }
        catch (FileNotFoundException) { return false; }
        catch (DirectoryNotFoundException) { return false; }
        catch (IOException) { return true; }
    }

    /// <summary>Releases the lock and removes the file (a clean end leaves nothing behind).</summary>
    public void Dispose()
    {
        // Unlinked while still held, so no other training can lock this file just before it goes.
        try { File.Delete(stream.Name); } catch (IOException) { }
        stream.Dispose();
    }
}

/// <summary>
/// Another process trains in the run folder: a usage error (choose another folder or wait), not a failure of the work.
/// </summary>
public sealed class RunFolderInUseException(string message) : IOException(message);
