using System.Globalization;

namespace Sqair.Native;

/// <summary>Linux's /proc memory figures, which are "Key:   value kB" lines.</summary>
internal static class ProcFiles
{
    /// <summary>
    /// The value of <paramref name="key"/> in <paramref name="path"/> (e.g. /proc/meminfo, /proc/self/status) in
    /// kB, or null where the file or the key is not there.
    /// </summary>
    public static long? Kilobytes(string path, string key)
    {
        if (!File.Exists(path)) return null;
        var line = File.ReadLines(path).FirstOrDefault(l => l.StartsWith(key + ":", StringComparison.Ordinal));
        return line is null
            ? null
            : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
    }
}
