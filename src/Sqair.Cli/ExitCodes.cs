using System.Runtime.InteropServices;
using Sqair.Runs;
using Sqair.Training;

namespace Sqair.Cli;

/// <summary>The process exit codes of every command, as README lists them.</summary>
static class ExitCodes
{
    public const int Success = 0;
    /// <summary>The work failed: a file is unreadable or corrupt, memory ran out, libtorch failed.</summary>
    public const int Failure = 1;
    /// <summary>What was asked for cannot be done: a bad option, config key or value, a missing input.</summary>
    public const int Usage = 2;
    /// <summary>Training stopped because its steps kept failing (non-finite loss or gradient).</summary>
    public const int Diverged = 3;
    /// <summary>
    /// Stopped by SIGINT or SIGTERM after saving what there was to save (128 + SIGINT, the shell's convention).
    /// </summary>
    public const int Interrupted = 130;

    /// <summary>
    /// The exit code and one-line message for an exception that reached the command line, or null
    /// for a bug (those keep their stack trace).
    /// </summary>
    public static (int Code, string Message)? Classify(Exception e) => e switch
    {
        // Parallel work fails with one exception per worker, all alike: the first one speaks for them.
        AggregateException a => Classify(a.Flatten().InnerExceptions[0]),
        UserError or ArgumentException or RunFolderInUseException => (Usage, e.Message),
        OperationCanceledException => (Interrupted, "interrupted"),
        OutOfMemoryException or InsufficientExecutionStackException => (Failure, OutOfMemory(e.Message)),
        ExternalException when IsOutOfMemory(e.Message) => (Failure, OutOfMemory(e.Message.Split('\n')[0].Trim())),
        FileNotFoundException or DirectoryNotFoundException => (Usage, e.Message),
        IOException or InvalidDataException or UnauthorizedAccessException => (Failure, e.Message),
        _ => null,
    };

    static bool IsOutOfMemory(string message) =>
        message.Contains("not enough memory", StringComparison.OrdinalIgnoreCase) ||
        message.Contains("can't allocate memory", StringComparison.OrdinalIgnoreCase) ||
        message.Contains("out of memory", StringComparison.OrdinalIgnoreCase);

    static string OutOfMemory(string detail) =>
        $"out of memory ({detail}); try a smaller --batch-size (or batch_size / k_particles when training)";
}

/// <summary>
/// An error in what the user asked for (bad option, missing file): printed without a stack trace, exit 2.
/// </summary>
sealed class UserError(string message) : Exception(message);
