using System.IO.MemoryMappedFiles;
using static TorchSharp.torch;

namespace Sqair.Native;

/// <summary>
/// A file mapped into memory by two processes, through which tensors travel as raw bytes: training's shard
/// worker processes read the parameters and write their gradients here. It lives in /dev/shm where there is one
/// (memory, not disk), else in the temporary folder. The creator deletes the file once the other side has mapped
/// it (<see cref="Unlink"/>): the mapping outlives the name, so a killed process leaves nothing behind.
/// </summary>
internal sealed unsafe class SharedRegion : IDisposable
{
    readonly MemoryMappedFile file;
    readonly MemoryMappedViewAccessor view;
    readonly byte* start;

    /// <summary>The file's path (gone after <see cref="Unlink"/>).</summary>
    public string Path { get; }

    /// <summary>Bytes mapped.</summary>
    public long Length { get; }

    SharedRegion(string path, long length, FileMode mode)
    {
        Path = path;
        Length = length;
        var stream = new FileStream(path, mode, FileAccess.ReadWrite, FileShare.ReadWrite);
        try
        {
            if (mode == FileMode.CreateNew) Reserve(stream, length);
        }
        catch
        {
            stream.Dispose();
            File.Delete(path);
            throw;
        }
        file = MemoryMappedFile.CreateFromFile(stream, null, length, MemoryMappedFileAccess.ReadWrite,
                                               HandleInheritability.None, leaveOpen: false);
        view = file.CreateViewAccessor(0, length);
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        start = p + view.PointerOffset;
    }

    /// <summary>
    /// Writes the whole file once, so that a full /dev/shm is an <see cref="IOException"/> here: a mapped page that
    /// a file system cannot back is a SIGBUS at its first write, which kills the process.
    /// </summary>
    static void Reserve(FileStream stream, long length)
    {
        var zeros = new byte[1 << 20];
        for (long done = 0; done < length; done += zeros.Length)
            stream.Write(zeros, 0, (int)Math.Min(zeros.Length, length - done));
        stream.Flush();
    }

    /// <summary>A new region of <paramref name="length"/> bytes under a fresh name.</summary>
    public static SharedRegion Create(long length)
    {
        var folder = Directory.Exists("/dev/shm") ? "/dev/shm" : System.IO.Path.GetTempPath();
        var path = System.IO.Path.Combine(folder, $"sqair-shard-{Environment.ProcessId}-{Guid.NewGuid():N}");
        return new SharedRegion(path, length, FileMode.CreateNew);
    }

    /// <summary>The region another process created at <paramref name="path"/>.</summary>
    public static SharedRegion Open(string path, long length) => new(path, length, FileMode.Open);

    /// <summary>Removes the file's name; both mappings stay valid.</summary>
    public void Unlink()
    {
        if (File.Exists(Path)) File.Delete(Path);
    }

    /// <summary>The bytes [offset, offset + length), checked against the region's end.</summary>
    Span<byte> Bytes(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset + length > Length || length > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(length),
                $"bytes {offset}..{offset + length} fall outside the shared region of {Length} bytes");
        return new Span<byte>(start + offset, (int)length);
    }

    /// <summary>
    /// Copies <paramref name="t"/>'s elements (CPU) to <paramref name="offset"/>; returns the bytes used.
    /// </summary>
    public long Write(Tensor t, long offset)
    {
        using var scope = NewDisposeScope();
        var c = t.detach().cpu().contiguous();
        var bytes = c.bytes;
        bytes.CopyTo(Bytes(offset, bytes.Length));
        return bytes.Length;
    }

    /// <summary>A new CPU tensor of <paramref name="shape"/> and <paramref name="type"/> read from
    /// <paramref name="offset"/>.</summary>
    public Tensor Read(long[] shape, ScalarType type, long offset)
    {
        var t = empty(shape, type);
        t.bytes = Bytes(offset, t.ElementSize * t.numel());
        return t;
    }

    public void Dispose()
    {
        view.SafeMemoryMappedViewHandle.ReleasePointer();
        view.Dispose();
        file.Dispose();
    }
}
