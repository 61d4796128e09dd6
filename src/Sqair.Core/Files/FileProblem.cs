namespace Sqair.Files;

/// <summary>What is wrong with a file, said once with its path.</summary>
internal static class FileProblem
{
    /// <summary>
    /// "<paramref name="path"/>: <paramref name="message"/>", or the message alone when it already opens with the
    /// path (the readers' errors do), so that a warning passing one on names the file once.
    /// </summary>
    public static string Of(string path, string message) =>
        message.StartsWith(path + ":", StringComparison.Ordinal) ? message : $"{path}: {message}";
}
