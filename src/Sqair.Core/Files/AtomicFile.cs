namespace Sqair.Files;

/// <summary>
/// Writes files so that a crash or a full disk never leaves a half-written file under the final
/// name: the content goes to a temporary file in the same folder, is flushed to disk, and only
/// then replaces the target by rename. A device or FIFO (<see cref="SpecialFile"/>) is written
/// in place: the rename would replace it with a regular file. Temporary files that killed writers
/// left in the folder are removed first (<see cref="StaleTemporaries"/>), so they do not pile up.
/// </summary>
public static class AtomicFile
{
    /// <summary>
    /// Writes <paramref name="path"/> through <paramref name="write"/> into a temporary file beside it, flushed to
    /// disk and then moved over it: a reader sees the old file or the new one, never a part. A device or FIFO is
    /// written in place.
    /// </summary>
    public static void Write(string path, Action<Stream> write)
    {
        var full = Path.GetFullPath(path);
        if (SpecialFile.Is(full))
        {
            using var device = new FileStream(full, FileMode.Open, FileAccess.Write, FileShare.ReadWrite,
                                              bufferSize: 1 << 20);
            write(device);
            return;
        }
        var tmp = Temporary(full);
        try
        {
            using (var stream = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }

    /// <summary>As <see cref="Write"/>, with these bytes.</summary>
    public static void WriteAllBytes(string path, byte[] bytes) => Write(path, s => s.Write(bytes));

    /// <summary>As <see cref="Write"/>, with this text in UTF-8.</summary>
    public static void WriteAllText(string path, string text) =>
        Write(path, s => { using var w = new StreamWriter(s, leaveOpen: true); w.Write(text); });

    /// <summary>
    /// Writes a folder whole: <paramref name="write"/> fills a temporary folder beside it, which then
    /// replaces it, so a kill or a full disk never leaves a mix of old and new files under its name.
    /// If the replacing fails, the previous folder is put back.
    /// </summary>
    public static void WriteFolder(string dir, Action<string> write)
    {
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir));
        var tmp = Temporary(full);
        string? previous = null;
        try
        {
            Directory.CreateDirectory(tmp);
            write(tmp);
            if (Directory.Exists(full)) Directory.Move(full, previous = TemporaryName(full));
            Directory.Move(tmp, full);
        }
        catch
        {
            try { if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true); } catch (IOException) { }
            if (previous is not null && !Directory.Exists(full)) Directory.Move(previous, full);
            throw;
        }
        if (previous is not null) Directory.Delete(previous, recursive: true);
    }

    static IEnumerable<string> Ancestors(string? dir)
    {
        for (; dir is not null; dir = Path.GetDirectoryName(dir)) yield return dir;
    }

    /// <summary><see cref="TemporaryName"/>, its folder created and cleared of stale temporaries first.</summary>
    static string Temporary(string full)
    {
        var dir = Path.GetDirectoryName(full)!;
        if (Ancestors(dir).FirstOrDefault(File.Exists) is { } file)
            throw new IOException($"cannot write {full}: {file} is a file, not a folder");
        Directory.CreateDirectory(dir);
        StaleTemporaries.RemoveStale(dir);
        return TemporaryName(full);
    }

    /// <summary>
    /// A new temporary name beside <paramref name="full"/> that <see cref="StaleTemporaries"/> recognises.
    /// </summary>
    static string TemporaryName(string full) => $"{full}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}";
}
