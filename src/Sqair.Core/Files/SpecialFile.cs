using System.Runtime.InteropServices;

namespace Sqair.Files;

/// <summary>
/// Paths that are not regular files: character and block devices (<c>/dev/null</c>, <c>/dev/full</c>),
/// FIFOs and sockets. Such a target is written in place, never replaced by a renamed temporary file
/// (a rename would turn <c>/dev/null</c> into a regular file), and a FIFO among a folder's frames is
/// refused instead of read (reading one blocks until something writes to it).
/// </summary>
internal static partial class SpecialFile
{
    // statx(2) rather than stat(2): its struct has one layout on every Linux architecture.
    const int AtFdCwd = -100, StatxType = 0x1, StatxSize = 256, ModeOffset = 28;
    const int TypeMask = 0xF000, Regular = 0x8000, Directory = 0x4000;

    /// <summary>
    /// True when <paramref name="path"/> exists and is neither a regular file nor a folder (symbolic
    /// links followed). False for a missing path, and on systems other than Linux, where the check is not made.
    /// </summary>
    public static bool Is(string path)
    {
        if (!OperatingSystem.IsLinux()) return false;
        var buffer = new byte[StatxSize];
        try
        {
            if (statx(AtFdCwd, path, 0, StatxType, buffer) != 0) return false;
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            return false; // a libc without statx (glibc < 2.28, musl < 1.2.5): no check
        }
        int type = BitConverter.ToUInt16(buffer, ModeOffset) & TypeMask;
        return type is not (Regular or Directory);
    }

    [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int statx(int dirfd, string path, int flags, uint mask, [Out] byte[] buffer);
}
