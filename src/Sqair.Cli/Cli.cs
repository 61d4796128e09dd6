using System.CommandLine;
using System.CommandLine.Parsing;
using System.Runtime.InteropServices;
using Spectre.Console;
using Sqair.Data;
using Sqair.Files;
using Sqair.Inference;
using Sqair.Model;
using Sqair.Text;

namespace Sqair.Cli;

/// <summary>The command tree, its run loop (errors, exit codes, signals) and helpers every command uses.</summary>
static class Cli
{
    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("SQAIR for .NET: Sequential Attend, Infer, Repeat (Kosiorek et al., NeurIPS 2018).");
        root.Subcommands.Add(DataCommands.Build());
        root.Subcommands.Add(TrainCommand.Build());
        root.Subcommands.Add(EvalCommand.Build());
        root.Subcommands.Add(TrackCommand.Build());
        root.Subcommands.Add(FigureCommands.BuildRender());
        root.Subcommands.Add(FigureCommands.BuildGenerate());
        root.Subcommands.Add(FigureCommands.BuildPlot());
        root.Subcommands.Add(ExportCommand.Build());
        root.Subcommands.Add(BenchCommand.Build());
        root.Subcommands.Add(SweepCommand.Build());
        root.Subcommands.Add(ShardWorkerCommand());
        RefuseEmptyText(root, []);
        return root;
    }

    /// <summary>
    /// The hidden command a training shard's worker process runs (<c>--shard-processes</c>): it speaks
    /// <see cref="Sqair.Training.ShardWorker"/>'s protocol on its standard input and output, not to people.
    /// </summary>
    static Command ShardWorkerCommand()
    {
        var worker = new Command(CommonOptions.ShardWorkerCommand, "A training shard's worker process")
        {
            Hidden = true,
        };
        worker.SetAction(_ => Sqair.Training.ShardWorker.Serve(Console.In, Console.Out));
        return worker;
    }

    /// <summary>
    /// Every text option and argument of every command refuses an empty value, naming itself: ""
    /// names no file, folder, preset or split, and .NET's own error for it names no option.
    /// </summary>
    static void RefuseEmptyText(Command command, HashSet<Symbol> seen)
    {
        static bool Empty(SymbolResult r) => r.Tokens.Any(t => t.Value.Length == 0);
        foreach (var option in command.Options.Where(o => o.ValueType == typeof(string) && seen.Add(o)))
            option.Validators.Add(r => { if (Empty(r)) r.AddError($"{option.Name}: must not be empty"); });
        foreach (var argument in command.Arguments.Where(a => a.ValueType == typeof(string) && seen.Add(a)))
            argument.Validators.Add(r => { if (Empty(r)) r.AddError($"{argument.Name}: must not be empty"); });
        foreach (var sub in command.Subcommands) RefuseEmptyText(sub, seen);
    }

    /// <summary>
    /// Cancelled by the first SIGINT or SIGTERM: long work stops at its next safe point and cleans up.
    /// </summary>
    public static CancellationToken Stopping => stopping.Token;
    static CancellationTokenSource stopping = new();

    /// <summary>Columns of stdout when it is not a terminal: wide enough that no log line wraps.</summary>
    const int RedirectedWidth = 1000;

    /// <summary>
    /// Parses and runs a command line. Usage errors and the failures users cause print one line on
    /// stderr and return an <see cref="ExitCodes"/> code; only bugs keep their stack trace.
    /// </summary>
    public static int Run(string[] args) => Run(args, CancellationToken.None);

    /// <summary>
    /// <see cref="Run(string[])"/>, also stopped by <paramref name="stop"/> as by SIGINT or SIGTERM (tests stop a
    /// command this way).
    /// </summary>
    public static int Run(string[] args, CancellationToken stop)
    {
        var parse = BuildRoot().Parse(args);
        // A command whose argument takes many values (data import's folders) takes an unknown option as one more;
        // after a "--" a word is an argument whatever it looks like.
        int separator = Array.IndexOf(args, "--");
        var beforeSeparator = separator < 0 ? args : args[..separator];
        var strays = parse.CommandResult.Children.OfType<ArgumentResult>().SelectMany(a => a.Tokens)
            .Where(t => t.Value.StartsWith("--", StringComparison.Ordinal) && beforeSeparator.Contains(t.Value))
            .Select(t => $"Unrecognized command or argument '{t.Value}'.").ToList();
        if (parse.Errors.Count > 0 || strays.Count > 0)
        {
            foreach (var error in strays.Concat(parse.Errors.Select(e => e.Message)))
                Error(WithSuggestion(error, parse.CommandResult.Command));
            Console.Error.WriteLine("(see --help)");
            return ExitCodes.Usage;
        }
        // Redirected to a file or a pipe, Spectre wraps every line at 80 columns (mid-path, mid-number): a log
        // line stays one line instead.
        if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = RedirectedWidth;
        stopping = CancellationTokenSource.CreateLinkedTokenSource(stop);
        // The first signal asks for a clean stop; a second one is not intercepted and ends the process.
        void OnSignal(PosixSignalContext ctx)
        {
            if (stopping.IsCancellationRequested) return;
            ctx.Cancel = true;
            stopping.Cancel();
        }
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        try
        {
            return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (ExitCodes.Classify(e) is { } known)
        {
            Error(known.Message);
            if (Environment.GetEnvironmentVariable("SQAIR_DEBUG") is { Length: > 0 }) Console.Error.WriteLine(e);
            return known.Code;
        }
    }

    /// <summary>
    /// A parse error, with the command's nearest option named when it is an unknown one: "--seq-len" was renamed
    /// "--seq_len", and "--learning-rate" is "--learning_rate".
    /// </summary>
    internal static string WithSuggestion(string message, Command command)
    {
        var unknown = System.Text.RegularExpressions.Regex.Match(message,
                                                                 "^Unrecognized command or argument '(--[^']+)'");
        if (!unknown.Success) return message;
        var given = unknown.Groups[1].Value;
        var nearest = command.Options.SelectMany(o => o.Aliases.Prepend(o.Name))
            .Where(n => n.StartsWith("--", StringComparison.Ordinal))
            .MinBy(n => EditDistance.Between(n, given));
        return nearest is not null && EditDistance.Between(nearest, given) <= Math.Max(2, given.Length / 4)
            ? $"{message} (did you mean {nearest}?)"
            : message;
    }

    /// <summary>Asks the running command to stop, as SIGTERM does (a sweep task whose sweep has ended).</summary>
    public static void RequestStop() => stopping.Cancel();

    static readonly System.Text.Json.JsonSerializerOptions IndentedJson = new() { WriteIndented = true };

    /// <summary>Writes <paramref name="value"/> as indented JSON, atomically (reports, results).</summary>
    public static void WriteJson(string path, object value) =>
        AtomicFile.WriteAllText(path, System.Text.Json.JsonSerializer.Serialize(value, IndentedJson));

    public static void Error(string message) => Console.Error.WriteLine($"error: {OneLine(message)}");
    public static void Warn(string message) => Console.Error.WriteLine($"warning: {OneLine(message)}");
    public static void Log(string message) => AnsiConsole.MarkupLine($"[grey]{Markup.Escape(message)}[/]");

    static string OneLine(string message) =>
        string.Join(" ", message.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries));

    public static string EnsureMnist(ParseResult r) => DataCache(r).Mnist();

    /// <summary>Opens (generating once if needed) a cached standard dataset, with a progress bar.</summary>
    public static SequenceFile Dataset(ParseResult r, MovingMnistConfig config, Pool pool, long count, ulong seed) =>
        DataCache(r).Dataset(config, pool, count, seed);

    /// <summary>
    /// The cache of --cache and --mnist-dir, its generations shown with a progress bar, on
    /// <paramref name="threads"/> threads (default: the command's --threads).
    /// </summary>
    public static DataCache DataCache(ParseResult r, int? threads = null) =>
        new(r.GetValue(CommonOptions.Cache)!, r.GetValue(CommonOptions.MnistDir), Log)
        {
            ShowGeneration = ShowGeneration, Threads = threads ?? r.GetValue(CommonOptions.Threads), Stop = Stopping,
        };

    static SequenceFile ShowGeneration(string what, long count, Func<Action<long>, SequenceFile> generate)
    {
        SequenceFile? file = null;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(),
                     new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(what, maxValue: count);
                file = generate(done => task.Value = done);
            });
        return file!;
    }

    /// <summary>
    /// A dataset file the user names, checked against the model (canvas size, channels), else the
    /// cached standard dataset of the split, generated with the model's data parameters; either
    /// verified against its checksums.
    /// </summary>
    public static SequenceFile ModelData(ParseResult r, Option<string?> fileOption, SqairConfig config, string split,
                                         long? count = null)
    {
        if (r.GetValue(fileOption) is not { } path) return SplitDataset(r, config, split, count).Checked(Log, Warn);
        if (!File.Exists(path)) throw new UserError($"{fileOption.Name} {path}: no such file");
        var file = SequenceFile.Open(path).Checked(Log, Warn);
        if (config.Misfit(file.Config) is { } misfit)
        {
            file.Dispose();
            throw new UserError($"{fileOption.Name} {path}: {misfit}");
        }
        return file;
    }

    /// <summary>The cached standard dataset of a split, generated with the model's data parameters.</summary>
    public static SequenceFile SplitDataset(ParseResult r, SqairConfig config, string split, long? count = null)
    {
        var pool = CommonOptions.ParsePool(split);
        long size = pool == Pool.Train ? config.TrainSize : config.ValidSize;
        return Dataset(r, config.DataConfig(), pool, Math.Max(size, count ?? 0), config.DataSeed);
    }

    /// <summary>
    /// A progress display for work that runs libtorch: refreshed only from the calling thread
    /// (<c>ctx.Refresh()</c>), never by Spectre's timer thread, so no other thread allocates while
    /// libtorch runs (docs/performance.md: TorchSharp's scalar finalizer race).
    /// </summary>
    public static Progress ModelProgress() => AnsiConsole.Progress().AutoRefresh(false)
        .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(),
                 new PercentageColumn(), new RemainingTimeColumn());
}
