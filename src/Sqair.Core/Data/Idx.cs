using System.Buffers.Binary;
using System.IO.Compression;
using Sqair.Files;

namespace Sqair.Data;

/// <summary>An unsigned-byte IDX array (the MNIST file format): shape and row-major bytes.</summary>
internal sealed record IdxArray(int[] Shape, byte[] Data)
{
    public int Count => Shape[0];
}

/// <summary>
/// Reads and writes IDX files of unsigned bytes (type code 0x08), raw or gzip'd. The reader checks
/// the magic number, the dimensions and that the payload has exactly the declared length, and
/// every error names the file.
/// </summary>
internal static class Idx
{
    const byte UnsignedByte = 0x08;

    /// <summary>
    /// The bytes themselves, or their decompression when they start with the gzip magic number
    /// (MNIST is served both ways).
    /// </summary>
    public static byte[] Gunzip(byte[] bytes)
    {
        if (bytes.Length < 2 || bytes[0] != 0x1f || bytes[1] != 0x8b) return bytes;
        using var gz = new GZipStream(new MemoryStream(bytes), CompressionMode.Decompress);
        using var raw = new MemoryStream();
        gz.CopyTo(raw);
        return raw.ToArray();
    }

    public static IdxArray Read(string path)
    {
        byte[] bytes;
        try
        {
            bytes = Gunzip(File.ReadAllBytes(path));
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{path}: corrupt gzip stream ({e.Message})", e);
        }
        return Parse(bytes, path);
    }

    public static IdxArray Parse(ReadOnlySpan<byte> bytes, string name)
    {
        if (bytes.Length < 4)
            throw new InvalidDataException($"{name}: too short for an IDX header ({bytes.Length} bytes)");
        if (bytes[0] != 0 || bytes[1] != 0)
            throw new InvalidDataException(
                $"{name}: bad IDX magic number 0x{bytes[0]:x2}{bytes[1]:x2}{bytes[2]:x2}{bytes[3]:x2} " +
                "(expected 0x0000 then type and rank)");
        if (bytes[2] != UnsignedByte)
            throw new InvalidDataException($"{name}: IDX element type 0x{bytes[2]:x2} is not unsigned byte (0x08)");
        int rank = bytes[3];
        if (rank < 1 || rank > 4)
            throw new InvalidDataException($"{name}: IDX rank {rank} is outside 1..4");
        int headerLength = 4 + 4 * rank;
        if (bytes.Length < headerLength)
            throw new InvalidDataException($"{name}: truncated IDX header ({bytes.Length} of {headerLength} bytes)");
        var shape = new int[rank];
        long expected = 1;
        for (int d = 0; d < rank; d++)
        {
            int size = BinaryPrimitives.ReadInt32BigEndian(bytes[(4 + 4 * d)..]);
            if (size <= 0) throw new InvalidDataException($"{name}: IDX dimension {d} is {size}");
            shape[d] = size;
            expected *= size;
        }
        long actual = bytes.Length - headerLength;
        if (actual < expected)
            throw new InvalidDataException($"{name}: truncated: shape [{string.Join(", ", shape)}] needs " +
                                           $"{expected} data bytes, file has {actual}");
        if (actual > expected)
            throw new InvalidDataException(
                $"{name}: {actual - expected} unexpected bytes after the data of shape [{string.Join(", ", shape)}]");
        return new IdxArray(shape, bytes[headerLength..].ToArray());
    }

    public static void Write(string path, int[] shape, byte[] data, bool gzip = false)
    {
        long n = shape.Aggregate(1L, (a, b) => a * b);
        if (n != data.Length)
            throw new ArgumentException($"shape [{string.Join(", ", shape)}] does not match {data.Length} bytes");
        var header = new byte[4 + 4 * shape.Length];
        header[2] = UnsignedByte;
        header[3] = (byte)shape.Length;
        for (int d = 0; d < shape.Length; d++) BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4 + 4 * d), shape[d]);
        AtomicFile.Write(path, stream =>
        {
            Stream s = gzip ? new GZipStream(stream, CompressionLevel.Fastest, leaveOpen: true) : stream;
            s.Write(header);
            s.Write(data);
            if (gzip) s.Dispose();
        });
    }
}
