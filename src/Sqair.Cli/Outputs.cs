using Sqair.Files;
namespace Sqair.Cli;

/// <summary>
/// Checks on what a command will write, made before its work starts: a bad output costs a one-line error at once,
/// never minutes of work thrown away, and never one of the command's own inputs.
/// </summary>
static class Outputs
{
    /// <summary>
    /// Refuses an output file that is a folder, lies under a file, or is one of <paramref name="inputs"/> (the same
    /// file after symbolic links and <c>..</c>: writing it would replace the input). Each input is described as the
    /// message names it ("the checkpoint being exported", "--data").
    /// </summary>
    public static void CheckFile(string option, string path, params (string What, string? Path)[] inputs)
    {
        if (Directory.Exists(path)) throw new UserError($"{option} {path}: is a folder; give the file to write");
        if (FileAbove(path) is { } file)
            throw new UserError($"{option} {path}: {file} is a file, not a folder");
        foreach (var (what, input) in inputs)
            if (input is not null && RealPath.Same(path, input))
                throw new UserError($"{option} {path} is {what}; choose another file");
    }

    /// <summary>Refuses an output folder that is a file or lies under one.</summary>
    public static void CheckFolder(string option, string path)
    {
        if (File.Exists(path)) throw new UserError($"{option} {path}: is a file; give the folder to write into");
        if (FileAbove(path) is { } file)
            throw new UserError($"{option} {path}: {file} is a file, not a folder");
    }

    /// <summary>The nearest folder of the path that exists as a file instead, or null.</summary>
    static string? FileAbove(string path)
    {
        for (var dir = Path.GetDirectoryName(Path.GetFullPath(path)); dir is not null; dir = Path.GetDirectoryName(dir))
            if (File.Exists(dir)) return dir;
        return null;
    }
}
