using System.Runtime.InteropServices;

namespace Sqair.Files;

/// <summary>
/// Where a path really leads: the file the kernel opens for it, with the symbolic links of the file and of its
/// folders, <c>.</c> and <c>..</c> resolved in that order (<c>a/link/..</c> is the link target's parent, not
/// <c>a</c>). Two paths name the same file when their real paths are equal.
/// </summary>
public static partial class RealPath
{
    /// <summary>The real absolute path of an existing file or folder; null when there is none.</summary>
    public static string? Of(string path)
    {
        if (!Path.Exists(path)) return null;
        // Without realpath(3) (Windows), the lexical full path: links are not resolved there.
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return Path.GetFullPath(path);
        var resolved = realpath(path, IntPtr.Zero);
        if (resolved == IntPtr.Zero) return null;
        try { return Marshal.PtrToStringUTF8(resolved); }
        finally { free(resolved); }
    }

    /// <summary>True when both paths exist and lead to the same file or folder.</summary>
    public static bool Same(string a, string b) => Of(a) is { } real && real == Of(b);

    [LibraryImport("libc", EntryPoint = "realpath", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr realpath(string path, IntPtr resolved);

    [LibraryImport("libc", EntryPoint = "free")]
    private static partial void free(IntPtr pointer);
}
