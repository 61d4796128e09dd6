using System.CommandLine;
using System.Diagnostics;
using Spectre.Console;
using Sqair.Data;
using Sqair.Files;
using Sqair.Visualisation;

namespace Sqair.Cli;

/// <summary><c>sqair data generate</c> and <c>sqair data show</c>.</summary>
static class DataCommands
{
    static readonly Option<int> SeqLen = CommonOptions.AtLeast(1, Parameter("seq_len", d => d.SeqLen));
    static readonly Option<int> MinDigits = Parameter("min_digits", d => d.MinDigits);
    static readonly Option<int> MaxDigits = Parameter("max_digits", d => d.MaxDigits);
    static readonly Option<long?> Count = CommonOptions.AtLeast(1L, new Option<long?>("--count")
    {
        Description = "Sequences per split (default: train 60000, validation and test 10000)",
    });
    static readonly Option<double> DigitScale = Parameter("digit_scale", d => d.DigitScale);
    static readonly Option<double?> DigitScaleMin =
        Parameter("digit_scale_min", d => d.DigitScaleMin, hasDefault: false);
    static readonly Option<int> CanvasSize = Parameter("canvas_size", d => d.CanvasSize);
    static readonly Option<double> AccNoise = Parameter("acc_noise_std", d => d.AccNoiseStd);
    static readonly Option<double> MaxSpeed = Parameter("max_speed", d => d.MaxSpeed);
    static readonly Option<double> MaxAcc = Parameter("max_acc", d => d.MaxAcc);
    static readonly Option<int> PlacementTries =
        Parameter("placement_tries", d => d.PlacementTries);

    /// <summary>
    /// The option of a moving-MNIST parameter, spelled as its key (as <c>sqair train</c>'s options and config files
    /// spell it): its help and default are the parameter's own (<see cref="MovingMnistConfig"/>), declared there once.
    /// </summary>
    static Option<T> Parameter<T>(string key, Func<MovingMnistConfig, T> value, bool hasDefault = true)
    {
        var option = new Option<T>($"--{key}") { Description = MovingMnistConfig.Describe(key) };
        if (hasDefault) option.DefaultValueFactory = _ => value(MovingMnistConfig.Default);
        return option;
    }
    static readonly Option<bool> Colour = new("--colour")
    {
        Description = "Draw each digit in its own random colour (3-channel frames)",
    };

    public static MovingMnistConfig ConfigFrom(ParseResult r) => new()
    {
        SeqLen = r.GetValue(SeqLen),
        MinDigits = r.GetValue(MinDigits),
        MaxDigits = r.GetValue(MaxDigits),
        DigitScale = r.GetValue(DigitScale),
        DigitScaleMin = r.GetValue(DigitScaleMin),
        CanvasSize = r.GetValue(CanvasSize),
        AccNoiseStd = r.GetValue(AccNoise),
        MaxSpeed = r.GetValue(MaxSpeed),
        MaxAcc = r.GetValue(MaxAcc),
        PlacementTries = r.GetValue(PlacementTries),
        Channels = r.GetValue(Colour) ? 3 : 1,
    };

    static void AddGeneratorOptions(Command c)
    {
        foreach (var o in new Option[]
        {
            SeqLen, MinDigits, MaxDigits, DigitScale, DigitScaleMin, CanvasSize, AccNoise, MaxSpeed, MaxAcc,
            PlacementTries, Colour,
            CommonOptions.Cache, CommonOptions.MnistDir, CommonOptions.DataSeed, CommonOptions.Threads,
        })
            c.Options.Add(o);
    }

    public static Command Build()
    {
        var data = new Command("data",
                               "Datasets: generate moving multi-MNIST, import your frames, verify, look at them");
        data.Subcommands.Add(BuildGenerate());
        data.Subcommands.Add(BuildImport());
        data.Subcommands.Add(BuildVerify());
        data.Subcommands.Add(BuildShow());
        data.Subcommands.Add(BuildStats());
        return data;
    }

    static Command BuildGenerate()
    {
        var split = new Option<string[]>("--split")
        {
            Description = "Pools to generate: train, validation, test",
            DefaultValueFactory = _ => ["train", "validation"],
            AllowMultipleArgumentsPerToken = true,
        };
        split.Validators.Add(result =>
        {
            foreach (var name in result.GetValueOrDefault<string[]>() ?? [])
                if (!CommonOptions.TryParsePool(name, out _))
                    result.AddError($"--split {name}: allowed are train, validation and test");
        });
        var generate = new Command("generate", "Generate datasets into the cache (or --out) and print their paths")
        {
            split, Count,
        };
        var outPath = new Option<string?>("--out")
        {
            Description = "Write to this file instead of the cache (one split only)",
        };
        var synthetic = new Option<bool>("--synthetic")
        {
            Description = "Random digit-sized blobs instead of MNIST digits: no download, for tests and scripts " +
                          "(needs --out)",
        };
        generate.Options.Add(outPath);
        generate.Options.Add(synthetic);
        AddGeneratorOptions(generate);
        generate.SetAction(r => RunGenerate(r, r.GetValue(split)!, r.GetValue(outPath), r.GetValue(synthetic)));
        return generate;
    }

    /// <summary>
    /// Generates <paramref name="splits"/> into the cache, or the one split into <paramref name="output"/> (from
    /// synthetic blobs with <paramref name="synthetic"/>), and prints each file's path.
    /// </summary>
    static int RunGenerate(ParseResult r, string[] splits, string? output, bool synthetic)
    {
        var config = ConfigFrom(r);
        config.Validate();
        var pools = splits.Select(CommonOptions.ParsePool).ToArray();
        if (output is not null && pools.Length != 1) throw new UserError("--out takes exactly one --split");
        if (synthetic && output is null)
            throw new UserError("--synthetic needs --out (the cache holds MNIST datasets only)");
        if (output is not null) Outputs.CheckFile("--out", output);
        foreach (var pool in pools)
        {
            long n = r.GetValue(Count) ?? Datasets.DefaultCount(pool);
            var target = output ?? Datasets.CachePath(r.GetValue(CommonOptions.Cache)!, config, pool, n,
                                                      r.GetValue(CommonOptions.DataSeed));
            try { SequenceFile.CheckDiskSpace(target, config, n); }
            catch (ArgumentException e) { throw new UserError($"--count {n}: {e.Message}"); }
            var sw = Stopwatch.StartNew();
            if (output is null)
            {
                using var file = Cli.Dataset(r, config, pool, n, r.GetValue(CommonOptions.DataSeed));
                Report(file.Path, sw);
            }
            else
            {
                GenerateFile(r, config, pool, n, output, synthetic);
                Report(output, sw);
            }
        }
        return ExitCodes.Success;
    }

    /// <summary>
    /// Writes <paramref name="n"/> sequences of one pool into a file the user names, with a progress bar.
    /// </summary>
    static void GenerateFile(ParseResult r, MovingMnistConfig config, Pool pool, long n, string output, bool synthetic)
    {
        StaleTemporaries.RemoveStale(Path.GetDirectoryName(Path.GetFullPath(output))!, Cli.Log);
        var seed = r.GetValue(CommonOptions.DataSeed);
        var gen = synthetic
            ? new MovingMnist(config, MovingMnist.SyntheticTemplates(MovingMnist.SyntheticPoolSize,
                                                                     seed + (ulong)pool, config.DigitScale),
                              seed)
            : Datasets.Generator(Cli.EnsureMnist(r), config, pool, seed);
        AnsiConsole.Progress().Start(ctx =>
        {
            var task = ctx.AddTask(pool.ToString().ToLowerInvariant(), maxValue: n);
            SequenceFile.Write(output, gen, n, pool, done => task.Value = done,
                               r.GetValue(CommonOptions.Threads), Cli.Stopping);
        });
    }

    static Command BuildShow()
    {
        var file = new Option<string?>("--file")
        {
            Description = "A dataset file (default: the cached dataset of --split)",
        };
        var showSplit = CommonOptions.OneOf(new Option<string>("--split")
        {
            Description = "Pool of the cached dataset to show",
            DefaultValueFactory = _ => "validation",
        }, ["train", "validation", "test"]);
        var rows = CommonOptions.AtLeast(1, new Option<int>("--rows")
        {
            Description = "Number of sequences to show",
            DefaultValueFactory = _ => 8,
        });
        var first = CommonOptions.AtLeast(0L, new Option<long>("--first")
        {
            Description = "Index of the first sequence shown",
            DefaultValueFactory = _ => 0,
        });
        var png = new Option<string>("--out")
        {
            Description = "PNG to write",
            DefaultValueFactory = _ => "data-preview.png",
        };
        var show = new Command("show",
                               "Draw sequences with their ground-truth boxes (coloured by object id) into a PNG")
        {
            file, showSplit, rows, first, png, Count,
        };
        AddGeneratorOptions(show);
        show.SetAction(r =>
        {
            using var source = Open(r, r.GetValue(file), r.GetValue(showSplit)!, r.GetValue(Count));
            long start = r.GetValue(first), n = Math.Min(r.GetValue(rows), source.Count!.Value - start);
            if (n <= 0)
                throw new UserError($"--first {start}: {source.Path} holds {source.Count} sequences " +
                                    $"(0..{source.Count - 1})");
            var output = r.GetValue(png)!;
            DataFigures.Show(source, Enumerable.Range(0, (int)n).Select(i => start + i).ToArray(), output);
            Console.WriteLine(Path.GetFullPath(output));
            return 0;
        });
        return show;
    }

    static Command BuildStats()
    {
        var statsFile = new Option<string?>("--file")
        {
            Description = "A dataset file (default: the cached dataset of --split)",
        };
        var statsSplit = CommonOptions.OneOf(new Option<string>("--split")
        {
            Description = "Pool of the cached dataset",
            DefaultValueFactory = _ => "validation",
        }, ["train", "validation", "test"]);
        var stats = new Command("stats", "Distribution of digits per sequence and of visible digits per frame")
        {
            statsFile, statsSplit, Count,
        };
        AddGeneratorOptions(stats);
        stats.SetAction(r =>
        {
            using var source = Open(r, r.GetValue(statsFile), r.GetValue(statsSplit)!, r.GetValue(Count));
            if (!source.HasTruth)
                throw new UserError($"{source.Path} has no ground truth (frames imported without " +
                                    $"{FrameImport.TruthFile}): there are no digits to count");
            var c = source.Config;
            var digits = new long[c.MaxDigits + 1];
            var visible = new long[c.MaxDigits + 1];
            for (long i = 0; i < source.Count; i++)
            {
                Cli.Stopping.ThrowIfCancellationRequested();
                var s = source.Get(i);
                digits[s.Ids.Count(id => id >= 0)]++;
                for (int t = 0; t < c.SeqLen; t++)
                    visible[s.Visible.AsSpan(t * c.MaxDigits, c.MaxDigits).ToArray().Sum(v => v)]++;
            }
            var table = new Table()
                .Title($"{Path.GetFileName(source.Path)}: {source.Count:N0} sequences of {c.SeqLen} frames")
                .AddColumns("n", "sequences with n digits", "frames with n visible digits");
            for (int n = 0; n <= c.MaxDigits; n++)
                table.AddRow($"{n}", $"{digits[n]:N0} ({100.0 * digits[n] / source.Count:F2}%)",
                             $"{visible[n]:N0} ({100.0 * visible[n] / (source.Count * c.SeqLen):F2}%)");
            AnsiConsole.Write(table);
            return 0;
        });
        return stats;
    }

    static Command BuildVerify()
    {
        var verifyFile = new Argument<string[]>("files")
        {
            Description = "Dataset files",
            Arity = ArgumentArity.OneOrMore,
        };
        var verify = new Command("verify", "Check dataset files against the checksums written with them, " +
                                           "and their ground truth's values")
        {
            verifyFile,
        };
        verify.SetAction(r =>
        {
            int bad = 0;
            foreach (var path in r.GetValue(verifyFile)!)
            {
                if (Directory.Exists(path))
                    throw new UserError($"{path}: is a folder; data verify takes dataset files (.safetensors)");
                if (!File.Exists(path)) throw new UserError($"{path}: no such file");
                Cli.Stopping.ThrowIfCancellationRequested();
                var sw = Stopwatch.StartNew();
                try
                {
                    using var file = SequenceFile.Open(path);
                    var problems = file.Verify();
                    if (problems is null)
                        Console.WriteLine($"{path}\tvalues OK, no checksums to verify (written by an older version)");
                    else if (problems.Count == 0)
                        Console.WriteLine($"{path}\tOK ({file.Count:N0} sequences, {sw.Elapsed.TotalSeconds:F1} s)");
                    else
                    {
                        bad++;
                        foreach (var p in problems) Cli.Error($"{path}: {p}");
                    }
                }
                catch (InvalidDataException e)
                {
                    bad++;
                    Cli.Error(e.Message);
                }
            }
            return bad == 0 ? ExitCodes.Success : ExitCodes.Failure;
        });
        return verify;
    }

    static Command BuildImport()
    {
        var folders = new Argument<string[]>("folders")
        {
            Description = "Sequence folders of PNG/JPEG frames (name order; MOT layout: img1/ and gt/gt.txt)",
            Arity = ArgumentArity.OneOrMore,
        };
        var output = new Option<string>("--out") { Description = "Dataset file to write", Required = true };
        var size = CommonOptions.AtLeast(8, new Option<int>("--size")
        {
            Description = "Side of the square canvas the frames are stretched to (the model's img_size)",
            DefaultValueFactory = _ => 50,
        });
        var channels = CommonOptions.OneOf(new Option<int>("--channels")
        {
            Description = "1: grey (mean of R, G, B); 3: colour",
            DefaultValueFactory = _ => 1,
        }, [1, 3]);
        var seqLen = CommonOptions.AtLeast(1, new Option<int?>("--seq_len")
        {
            Description = "Cut each folder into windows of this many frames (default: one sequence per folder)",
        });
        var filter = new Option<ResizeFilter>("--filter")
        {
            Description = "Resize filter: nearest, linear (bilinear) or cubic (Mitchell)",
            DefaultValueFactory = _ => ResizeFilter.Linear,
        };
        var import = new Command("import", "Turn folders of frames (and MOT Challenge ground truth, if present) " +
                                           "into a dataset file for train, eval, render and track")
        {
            folders, output, size, channels, seqLen, filter, CommonOptions.Threads,
        };
        import.SetAction(r => RunImport(r, r.GetValue(folders)!, r.GetValue(output)!,
                                        new ImportOptions(r.GetValue(size), r.GetValue(channels), r.GetValue(seqLen),
                                                          r.GetValue(filter))));
        return import;
    }

    /// <summary>
    /// Imports <paramref name="folders"/> into the dataset file <paramref name="outPath"/> and says what it holds.
    /// </summary>
    static int RunImport(ParseResult r, string[] folders, string outPath, ImportOptions options)
    {
        Outputs.CheckFile("--out", outPath);
        StaleTemporaries.RemoveStale(Path.GetDirectoryName(Path.GetFullPath(outPath))!, Cli.Log);
        var sw = Stopwatch.StartNew();
        ImportSummary summary = null!;
        AnsiConsole.Progress().Start(ctx =>
        {
            var task = ctx.AddTask("importing", maxValue: 1);
            summary = FrameImport.Import(folders, outPath, options,
                done => { task.MaxValue = Math.Max(task.MaxValue, done); task.Value = done; },
                r.GetValue(CommonOptions.Threads), Cli.Stopping);
        });
        Cli.Log($"{summary.Folders} folder(s) → {summary.Sequences} sequences of " +
                $"{summary.Frames / summary.Sequences} frames, " +
                (summary.HasTruth
                    ? $"ground truth with up to {summary.Slots} objects per sequence"
                    : "no ground truth") +
                (summary.DroppedFrames > 0
                    ? $"; {summary.DroppedFrames} frames past the last whole window dropped"
                    : ""));
        Report(outPath, sw);
        return ExitCodes.Success;
    }

    /// <summary>
    /// A dataset file the user names, else the cached dataset of a split (generated once if missing).
    /// </summary>
    static SequenceFile Open(ParseResult r, string? file, string split, long? count)
    {
        if (file is not null)
            return File.Exists(file) ? SequenceFile.Open(file) : throw new UserError($"--file {file}: no such file");
        var pool = CommonOptions.ParsePool(split);
        return Cli.Dataset(r, ConfigFrom(r), pool, count ?? Datasets.DefaultCount(pool),
                           r.GetValue(CommonOptions.DataSeed));
    }

    // Plain output, not markup, so that paths are never wrapped and scripts can read them.
    static void Report(string path, Stopwatch sw) =>
        Console.WriteLine($"{Path.GetFullPath(path)}\t{new FileInfo(path).Length / 1e6:N1} MB\t" +
                          $"{sw.Elapsed.TotalSeconds:N1} s");
}
