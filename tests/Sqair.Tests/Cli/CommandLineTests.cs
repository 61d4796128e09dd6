using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Sqair.Data;
using Sqair.Files;
using Sqair.Model;
using Sqair.Runs;
using Sqair.Training;
using static TorchSharp.torch;
using CommandLine = Sqair.Cli.Cli;

namespace Sqair.Tests.Cli;

/// <summary>
/// Files every command-line test uses, made once: a tiny grey dataset and config (32 px, 3 frames),
/// an untrained checkpoint of that config, and a run folder trained for two iterations.
/// </summary>
public sealed class CliFixture
{
    public string Dir { get; } = TestUtil.TempDir();
    public string Data => Path.Combine(Dir, "tiny.safetensors");
    public string Config => Path.Combine(Dir, "tiny.json");
    public string Model => Path.Combine(Dir, "tiny-model.safetensors");
    public string Run => Path.Combine(Dir, "run");

    public static readonly SqairConfig Tiny = new()
    {
        ImgSize = 32, GlimpseSize = 8, NWhat = 8, NUnits = 2, MaxObjects = 2, KParticles = 2, BatchSize = 4,
        SeqLen = 3, CurriculumStart = 0, Optimizer = OptimizerKind.Adam, LearningRate = 1e-3, LrSchedule = [1],
        MaxTrainIter = 2, LogItr = 1, EvalItr = 100, FigItr = 100, CkptItr = 1,
        EvalSize = 4, TrainSize = 16, ValidSize = 8,
    };

    public CliFixture()
    {
        var generator = new MovingMnist(Tiny.DataConfig(), TestUtil.Templates(50), 3);
        SequenceFile.Write(Data, generator, 16, Pool.Train);
        File.WriteAllText(Config, Tiny.ToJson());
        manual_seed(0);
        Sqair.Runs.Checkpoint.Save(Model, new SqairModel(Tiny), null, 0);
        CommandLineTests.Run("train", "--config", Config, "--data", Data, "--run-dir", Run, "--threads", "1")
            .AssertCode(0);
    }
}

/// <summary>What a command printed and returned.</summary>
public sealed record CliResult(int Code, string Stdout, string Stderr)
{
    public CliResult AssertCode(int expected)
    {
        Assert.True(Code == expected, $"exit {Code}, expected {expected}\nstderr: {Stderr}\nstdout: {Stdout}");
        return this;
    }
}

/// <summary>
/// Bad input and faults against the real command line, run in-process: each gets one line on stderr
/// naming the option, key or file, the documented exit code (2 usage, 1 failure), and no stack trace.
/// </summary>
[Trait("Category", "Slow")]
public class CommandLineTests(CliFixture f) : IClassFixture<CliFixture>
{
    static readonly object ConsoleLock = new();

    public static CliResult Run(params string[] args) => Stopped(CancellationToken.None, args);

    /// <summary>A command run with <paramref name="stop"/> standing for SIGINT and SIGTERM.</summary>
    public static CliResult Stopped(CancellationToken stop, params string[] args)
    {
        lock (ConsoleLock)
        {
            var (outWas, errWas) = (Console.Out, Console.Error);
            var (stdout, stderr) = (new StringWriter(), new StringWriter());
            Console.SetOut(stdout);
            Console.SetError(stderr);
            try { return new CliResult(CommandLine.Run(args, stop), stdout.ToString(), stderr.ToString()); }
            finally
            {
                Console.SetOut(outWas);
                Console.SetError(errWas);
            }
        }
    }

    static string NewDir() => Path.Combine(TestUtil.TempDir(), "new");

    /// <summary>
    /// The bad-input table: arguments (FIXTURE names replaced), the exit code, words the error must hold.
    /// </summary>
    public static TheoryData<string, int, string> BadInputs => new()
    {
        { "", 2, "command" },
        { "eval CKPT --threads 0", 2, "--threads 0: must be at least 1" },
        { "eval CKPT --threads -2", 2, "--threads -2" },
        { "eval CKPT --k 0 --data DATA", 2, "--k 0: must be at least 1" },
        { "train --run-dir NEW --shard-processes", 2, "--shard-processes: needs --shards 2 or more" },
        { "track CKPT DATA --k 0", 2, "--k 0" },
        { "render CKPT --count 0 --data DATA", 2, "--count 0" },
        { "generate CKPT --count 0", 2, "--count 0" },
        { "generate CKPT --length 0", 2, "--length 0" },
        { "eval CKPT --count 0 --data DATA", 2, "--count 0" },
        { "eval CKPT --count -5 --data DATA", 2, "--count -5" },
        { "track CKPT DATA --count -3", 2, "--count -3" },
        { "track CKPT DATA --out EMPTY", 2, "--out: must not be empty" },
        { "track CKPT DATA --format xml", 2, "--format xml: allowed are csv, mot" },
        { "eval CKPT --data DATA --json EMPTY", 2, "--json: must not be empty" },
        { "eval EMPTY", 2, "checkpoint: must not be empty" },
        { "train --run-dir EMPTY", 2, "--run-dir: must not be empty" },
        { "generate CKPT --data DATA --length 5 --observe 4", 2, "--observe 4: " },
        { "data generate --count -1 --split validation --out DIR/x.safetensors", 2, "--count -1" },
        { "data show --file DATA --rows 0", 2, "--rows 0" },
        { "data show --file DATA --first 99", 2, "--first 99: " },
        { "bench train --iterations 0 --synthetic", 2, "--iterations 0" },
        { "eval CKPT --k abc --data DATA", 2, "--k" },
        { "eval CKPT --k 2147483648 --data DATA", 2, "--k" },
        { "track CKPT DATA --count 1.5", 2, "--count" },
        { "data generate --count x --split validation --out DIR/x.safetensors", 2, "--count" },
        { "train --threads two --run-dir NEW", 2, "--threads" },
        { "data import DIR --out DIR/x.safetensors --size big", 2, "--size" },
        { "render CKPT --delay 99999999999 --data DATA", 2, "--delay" },
        { "eval CKPT --reject-iou high --data DATA", 2, "--reject-iou" },
        { "eval CKPT --reject-iou 1 --data DATA", 2, "--reject-iou 1: must be in [0, 1)" },
        { "eval CKPT --suppress-iou 1 --data DATA", 2, "--suppress-iou 1: must be in [0, 1)" },
        { "track CKPT DATA --suppress-iou NaN", 2, "--suppress-iou NaN: must be in [0, 1)" },
        { "eval CKPT --end-empty -1 --data DATA", 2, "--end-empty" },
        { "eval CKPT --resample sometimes --data DATA", 2, "--resample sometimes: allowed are none, ess, always" },
        { "track CKPT DATA --threads 100000", 2, "--threads 100000: must be at most" },
        { "eval CKPT --device tpu", 2, "--device tpu: allowed are cpu, cuda and cuda:N" },
        { "eval CKPT --batch-size 0", 2, "--batch-size 0" },
        { "eval CKPT --split tset", 2, "--split tset" },
        { "data generate --split train tset --out DIR/x.safetensors", 2, "--split tset: allowed are" },
        { "train --preset fast", 2, "--preset fast: allowed are paper, cpu" },
        { "eval DIR/missing.safetensors", 2, "does not exist" },
        { "eval CKPT64 --data DATA", 2, "img_size is 64" },
        { "track CKPT64 DATA", 2, "img_size is 64" },
        { "train --config DIR --data DATA --run-dir NEW", 2, "is a folder" },
        { "train --config DUP --data DATA --run-dir NEW", 2, "'seq_len' is given twice" },
        { "train --config INF --data DATA --run-dir NEW", 2, "learning_rate" },
        { "train --config CFG --learning_rate 1e999 --data DATA --run-dir NEW", 2, "learning_rate" },
        { "train --config CFG --output_scale -5 --data DATA --run-dir NEW", 2, "'output_scale' = -5" },
        { "train --glimpse_size 100 --run-dir NEW", 2, "'glimpse_size' = 100" },
        { "train --window_start last --run-dir NEW", 2,
          "config key 'window_start': \"last\" (expected first, random)" },
        { "train --vimco_signal tf --run-dir NEW", 2, "config key 'vimco_signal': \"tf\" (expected paper, original)" },
        { "train --optimizer sgd --run-dir NEW", 2, "config key 'optimizer': \"sgd\" (expected rmsprop, adam)" },
        { "train --model cnn --run-dir NEW", 2, "config key 'model': \"cnn\" (expected mlp, conv, air)" },
        { "train --config CFG --channels 3 --data DATA --run-dir NEW", 2, "the model's channels is 3" },
        { "train --config CFG --data DATA --run-dir RUN", 2, "already holds a run" },
        { "train --resume RUN --run-dir NEW --data DATA", 2, "--run-dir cannot be given" },
        { "train --resume RUN --preset paper --data DATA", 2, "--preset cannot be given" },
        { "train --resume RUN --output_std 0.1 --data DATA", 2, "output_std" },
        { "train --config CFG --valid_data DATA --run-dir NEW", 2, "'valid_data' needs 'data'" },
        { "train --config CFG --data DIR/none.safetensors --run-dir NEW", 2, "config key 'data' = " },
        { "train --config CFG --data DATA --init CKPT64 --run-dir NEW", 2,
          "a run starts only from a model of its own architecture" },
        { "data import DIR/empty-folder --out DIR/x.safetensors", 2, "holds no .png or .jpg frames" },
        { "data import DIR --out DIR/x.safetensors --channels 2", 2, "--channels 2: allowed are 1, 3" },
        { "eval NEGSHAPE", 1, "negative dimension" },
        { "eval HUGESHAPE", 1, "malformed header entry 'model/x'" },
        { "data verify HUGEDATA", 1, "malformed header entry 'frames'" },
        { "data stats --file HUGEDATA", 1, "malformed header entry 'frames'" },
        { "eval RELABELLED --data DATA", 1, "expects Float32" },
        { "data verify FLIPPED", 1, "'frames' does not match its checksum" },
        { "data verify APPENDED", 1, "3 bytes after the last tensor" },
        { "plot EMPTYRUN --out NEW", 2, "nothing to plot: no measurements" },
        { "eval CKPT --data FLIPPED", 1, "'frames' does not match its checksum" },
        { "track CKPT FLIPPED", 1, "'frames' does not match its checksum" },
        { "data verify NANBOXES", 1, "'boxes' holds NaN" },
        { "track CKPT PNGS", 1, "truncated image" },
        { "sweep NEW", 2, "holds no sweep" },
        { "sweep NEW --arm output_std=0.2", 2, "needs one budget" },
        { "sweep NEW --arm output_sdt=0.2 --iterations 2", 2,
          "arm 'output_sdt=0.2': unknown config key 'output_sdt' (did you mean 'output_std'?)" },
        { "sweep NEW --arm output_std=-1 --iterations 2", 2, "arm 'output_std=-1': config key 'output_std' = -1" },
        { "sweep NEW --arm seed=3 --iterations 2", 2, "arm 'seed=3': seed is set by the sweep" },
        { "sweep NEW --set max_train_iter=9 --iterations 2", 2, "--set max_train_iter: set by the sweep" },
        { "sweep NEW --grid output_std --iterations 2", 2, "--grid output_std: expected key=value1,value2" },
        { "sweep NEW --arm x:output_std=0.2 --arm x:output_std=0.3 --iterations 2", 2, "arm 'x' is given twice" },
        { "sweep NEW --iterations 2 --init DIR/none.safetensors", 2, "config key 'init' = " },
        { "sweep NEW --iterations 0", 2, "--iterations 0: must be at least 1" },
        { "sweep NEW --iterations 2 --minutes 3", 2, "needs one budget" },
        // what cannot fit in memory is refused before any work, naming what to lower
        { "track CKPT DATA --lag 2147483647", 2, "--lag 2147483647 needs about" },
        { "track CKPT DATA --lag 2147483646", 2, "lower --lag to" },
        { "bench eval --synthetic --config CFG --k 100000000", 2, "--count 50 with --k 100000000 needs about" },
        { "bench train --synthetic --config CFG --batch_size 100000 --train_size 100000", 2,
          "batch_size 100000 with k_particles 2, --timed-len 3 needs about" },
        { "bench train --synthetic --config CFG --timed-len 100000", 2,
          "--timed-len 100000: must be at most the config's seq_len (3)" },
        { "train --config CFG --k_particles 1000 --batch_size 100000 --train_size 100000 --run-dir NEW", 2,
          "batch_size 100000 with k_particles 1000, seq_len 3 needs about" },
        { "train --img_size 100000 --run-dir NEW", 2, "config key 'img_size' = 100000" },
        { "data generate --synthetic --split train --count 99999999999999 --out NEW/x.safetensors", 2,
          "--count 99999999999999: 99,999,999,999,999 sequences need about" },
        // a value the data or config cannot use is refused by name, in words that say what is allowed
        { "data generate --synthetic --split train --count 2 --max_speed NaN --out NEW/x.safetensors", 2,
          "'max_speed' = NaN: must be a finite number at least 0" },
        { "data generate --synthetic --split train --count 2 --max_speed Infinity --out NEW/x.safetensors", 2,
          "'max_speed' = Infinity: must be a finite number at least 0" },
        { "data generate --synthetic --split train --count 2 --acc_noise_std NaN --out NEW/x.safetensors", 2,
          "'acc_noise_std' = NaN: must be a finite number at least 0" },
        { "data generate --synthetic --split train --count 2 --canvas_size 100000 --out NEW/x.safetensors", 2,
          "'canvas_size' = 100000: a sequence's frames" },
        { "data generate --synthetic --split train --count 2 --digit_scale 1e-300 --out NEW/x.safetensors", 2,
          "'digit_scale' = 1E-300: must be in [1/28, 4]" },
        // an unknown option names the command's nearest one (options named after a key are spelled as the key)
        { "data generate --seq-len 3 --split test --synthetic --out NEW/x.safetensors", 2,
          "Unrecognized command or argument '--seq-len'. (did you mean --seq_len?)" },
        { "train --learning-rate 1e-4 --run-dir NEW", 2, "'--learning-rate'. (did you mean --learning_rate?)" },
        { "data import DIR --seq-len 3 --out NEW/x.safetensors", 2, "'--seq-len'. (did you mean --seq_len?)" },
        { "train --frobnicate 1 --run-dir NEW", 2, "Unrecognized command or argument '--frobnicate'.\n" },
        { "data verify -- --no-such.safetensors", 2, "error: --no-such.safetensors: no such file" },
        { "train --seed -1 --run-dir NEW", 2, "'seed': -1 (expected a whole number in 0..18446744073709551615)" },
        { "train --lr_schedule [1,\"a\"] --run-dir NEW", 2, "config key 'lr_schedule': [1,\"a\"] (expected a list" },
        { "train --data_checksum abc --run-dir NEW", 2, "config key 'data_checksum' needs 'data'" },
        { "data verify DIR", 2, "DIR: is a folder; data verify takes dataset files" },
        { "track CKPT TEXTPNG", 1, "0000.png: is not a PNG or JPEG image" },
        { "data import DUPGT --size 32 --out NEW/x.safetensors", 1, "is given twice (first on line 1)" },
        // an output that is an input is refused, whatever path leads to it, before any work
        { "eval CKPT --count 2 --json CKPT", 2, "--json CKPT is the checkpoint being evaluated" },
        { "eval CKPT --data DATA --json DATA", 2, "--json DATA is the data being evaluated" },
        { "eval CKPT --data DATA --json CKPTLINK", 2, "is the checkpoint being evaluated" },
        { "eval CKPT --data DATA --json DIR/run/../tiny.safetensors", 2, "is the data being evaluated" },
        { "export CKPT --out CKPTLINK --force", 2, "is the checkpoint being exported" },
        { "bench train --synthetic --config CFG --json CFG", 2, "--json CFG is the --config file" },
        { "bench eval --synthetic --config CFG --json CFG", 2, "--json CFG is the --config file" },
        { "track CKPT DATAJSON --out DIR/data-copy", 2, "--out DIR/data-copy.json is the input" },
        { "track CKPT DATAJSON --out DIR/run/../data-copy", 2, "--out DIR/run/../data-copy.json is the input" },
        { "track CKPTGIF DATA --gif --out DIR/model-link", 2,
          "--out DIR/model-link.gif is the checkpoint being used" },
        { "track CKPT MOTDATA --format mot --out DIR/held", 2, "--out: DIR/held-mot holds the input" },
        // an output of the wrong kind is refused before the work, not after it
        { "eval CKPT --data DATA --json DIR", 2, "--json DIR: is a folder" },
        { "bench eval --synthetic --config CFG --json DIR", 2, "--json DIR: is a folder" },
        { "generate CKPT --count 1 --out CKPT", 2, "--out CKPT: is a file" },
        { "render CKPT --data DATA --count 1 --out CKPT", 2, "--out CKPT: is a file" },
        { "data generate --synthetic --split train --count 1 --out DIR", 2, "--out DIR: is a folder" },
        // what would never end
        { "train --config FIFO --data DATA --run-dir NEW", 2, "--config FIFO: is not a regular file" },
        { "data generate --synthetic --split train --count 8 --max_digits 30 --placement_tries 2147483647 " +
          "--out NEW/x.safetensors", 2, "cannot place" },
        { "sweep NEW --arm sweep.md:output_std=0.2 --iterations 2", 2, "arm 'sweep.md': the sweep's own files are" },
        { "sweep NEW --arm Sweep.JSON:output_std=0.2 --iterations 2", 2, "arm 'Sweep.JSON': the sweep's own files" },
        { "sweep NEW --arm a\nb:output_std=0.2 --iterations 2", 2, "arm 'a\\nb': a name may hold only ASCII" },
        { $"sweep NEW --arm {new string('a', 256)}:output_std=0.2 --iterations 2", 2,
          "a name has at most 255 characters, this one 256" },
        { "sweep NEW --arm X:output_std=0.2 --arm x:output_std=0.3 --iterations 2", 2, "arm 'X' is given twice" },
        { "sweep NEW --arm x:output_std=0.2 --iterations 2 --collect", 2, "holds no sweep (sweep.json): nothing to" },
        { "sweep FIFOSWEEP", 2, "fifo-sweep/sweep.json: is not a regular file" },
        { "sweep NEW --iterations 2 --slurm --sbatch --comment='a", 2,
          "--sbatch --comment='a: a ' quote is not closed" },
    };

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void Bad_input_gets_one_line_naming_it_and_the_documented_exit_code(string args, int code, string words)
    {
        var newDir = NewDir();
        var result = Run(Expand(args, newDir)).AssertCode(code);
        var lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(Words(words), result.Stderr);
        Assert.DoesNotContain("   at ", result.Stderr);
        Assert.False(Directory.Exists(newDir), $"{newDir} was created");
    }

    /// <summary>The words an error must hold, with the fixture's paths for the placeholders that name files.</summary>
    string Words(string words) => words
        .Replace("CKPTLINK", Path.Combine(f.Dir, "model-link.safetensors")).Replace("CKPT", f.Model)
        .Replace("DATA", f.Data).Replace("CFG", f.Config).Replace("FIFO", Path.Combine(f.Dir, "fifo.json"))
        .Replace("DIR", f.Dir);

    /// <summary>
    /// Replaces the placeholders of <see cref="BadInputs"/> with the fixture's files, making the broken ones on
    /// demand.
    /// </summary>
    string[] Expand(string args, string newDir) =>
        args.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(a => a switch
        {
            "CKPT" => f.Model,
            "CKPT64" => Make("model64.safetensors", p =>
                Sqair.Runs.Checkpoint.Save(p, new SqairModel(CliFixture.Tiny with { ImgSize = 64 }), null, 0)),
            "DATA" => f.Data,
            "CFG" => f.Config,
            "CKPTLINK" => Make("model-link.safetensors", p => File.CreateSymbolicLink(p, f.Model)),
            "CKPTGIF" => Make("model-link.gif", p => File.CreateSymbolicLink(p, f.Model)),
            "DATAJSON" => Make("data-copy.json", p => File.Copy(f.Data, p)),
            "MOTDATA" => Make("held-mot", p =>
            {
                Directory.CreateDirectory(p);
                File.Copy(f.Data, Path.Combine(p, "data.txt"));
            }) is var held ? Path.Combine(held, "data.txt") : "",
            "FIFO" => Make("fifo.json", p => Assert.Equal(0, Mkfifo(p))),
            "FIFOSWEEP" => Make("fifo-sweep", p =>
            {
                Directory.CreateDirectory(p);
                Assert.Equal(0, Mkfifo(Path.Combine(p, "sweep.json")));
            }),
            "RUN" => f.Run,
            "NEW" => newDir,
            "EMPTY" => "",
            "DUP" => Make("dup.json", p => File.WriteAllText(p, """{ "seq_len": 3, "seq_len": 4 }""")),
            "INF" => Make("inf.json", p => File.WriteAllText(p, """{ "learning_rate": 1e999 }""")),
            "NEGSHAPE" => Make("negative-shape.safetensors", p => File.WriteAllBytes(p, Safetensors.EncodeHeader(
                [new Safetensors.Entry("model/x", "F32", [-1, 4])],
                new Dictionary<string, string> { ["format"] = Sqair.Runs.Checkpoint.Format }))),
            // shapes whose byte counts overflow 64 bits with empty data: 2^62 × 4 floats, 2^61 sequences
            "HUGESHAPE" => Make("huge-shape.safetensors", p => WriteHeader(p,
                $$$"""{"__metadata__":{"format":"{{{Sqair.Runs.Checkpoint.Format}}}"},"model/x":""" +
                """{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}}""")),
            "HUGEDATA" => Make("huge-data.safetensors", p => WriteHeader(p,
                """{"frames":{"dtype":"F32","shape":[2305843009213693952,10,1,50,50],"data_offsets":[0,0]}}""")),
            "RELABELLED" => Make("relabelled.safetensors", p =>
                File.WriteAllBytes(p, Replace(File.ReadAllBytes(f.Model), "\"dtype\":\"F32\"", "\"dtype\":\"I32\""))),
            "EMPTYRUN" => Make("empty-run", p =>
            {
                Directory.CreateDirectory(p);
                File.WriteAllText(Path.Combine(p, "metrics.jsonl"), "");
            }),
            "APPENDED" => Make("appended.safetensors", p =>
                File.WriteAllBytes(p, [.. File.ReadAllBytes(f.Data), 1, 2, 3])),
            "FLIPPED" => Make("flipped.safetensors", p =>
            {
                var bytes = File.ReadAllBytes(f.Data);
                bytes[^(bytes.Length / 3)] ^= 0x10; // a byte in the frames, past the header
                File.WriteAllBytes(p, bytes);
            }),
            "NANBOXES" => Make("nan-boxes.safetensors", p =>
            {
                File.Copy(f.Data, p, overwrite: true);
                var offset = Safetensors.ReadHeader(p).Entries["boxes"].Offset;
                using var s = File.OpenWrite(p);
                s.Position = offset + 8;
                s.Write(BitConverter.GetBytes(float.NaN));
            }),
            "PNGS" => Make("pngs", p =>
            {
                Directory.CreateDirectory(p);
                using var bitmap = new SkiaSharp.SKBitmap(32, 32);
                bitmap.Erase(SkiaSharp.SKColors.White);
                using var data = bitmap.Encode(SkiaSharp.SKEncodedImageFormat.Png, 100);
                File.WriteAllBytes(Path.Combine(p, "0000.png"), data.ToArray());
                File.WriteAllBytes(Path.Combine(p, "0001.png"), data.ToArray()[..(int)(data.Size / 2)]);
            }),
            "TEXTPNG" => Make("text-png", p =>
            {
                Directory.CreateDirectory(p);
                File.WriteAllText(Path.Combine(p, "0000.png"), "not an image");
            }),
            "DUPGT" => Make("dup-gt", p =>
            {
                var folder = Data.FrameImportTests.AsMotFolders(
                    new MovingMnist(CliFixture.Tiny.DataConfig(), TestUtil.Templates(50), 9), 1, p)[0];
                var gt = Path.Combine(folder, "gt", "gt.txt");
                File.AppendAllLines(gt, [File.ReadLines(gt).First()]);
            }) is var root ? Path.Combine(root, "seq00") : "",
            "DIR" => f.Dir,
            "DIR/empty-folder" => Make("empty-folder", p => Directory.CreateDirectory(p)),
            _ when a.StartsWith("NEW/", StringComparison.Ordinal) => newDir + a[3..],
            _ => a.Replace("DIR/", f.Dir + "/"),
        }).ToArray();

    static int Mkfifo(string path)
    {
        using var mkfifo = System.Diagnostics.Process.Start("mkfifo", [path]);
        mkfifo.WaitForExit();
        return mkfifo.ExitCode;
    }

    /// <summary>A safetensors file of this header JSON alone (8-byte little-endian length, then the JSON).</summary>
    static void WriteHeader(string path, string json)
    {
        var bytes = Encoding.UTF8.GetBytes(json);
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((ulong)bytes.Length), .. bytes]);
    }

    string Make(string name, Action<string> make)
    {
        var path = Path.Combine(f.Dir, name);
        lock (f)
            if (!Path.Exists(path)) make(path);
        return path;
    }

    static byte[] Replace(byte[] bytes, string from, string to)
    {
        var text = Encoding.Latin1.GetString(bytes);
        int i = text.IndexOf(from, StringComparison.Ordinal);
        Assert.True(i >= 0);
        return Encoding.Latin1.GetBytes(text[..i] + to + text[(i + from.Length)..]);
    }

    /// <summary>
    /// A command asked to stop (SIGINT or SIGTERM; here a token already cancelled) exits 130 saying so, and leaves
    /// none of its output behind.
    /// </summary>
    [Theory]
    [InlineData("render CKPT --data DATA --count 2 --threads 1 --out NEW")]
    [InlineData("generate CKPT --count 2 --threads 1 --out NEW")]
    [InlineData("bench train --synthetic --config CFG --warmup 0 --iterations 1 --threads 1 --json NEW")]
    [InlineData("bench eval --synthetic --config CFG --count 2 --threads 1 --json NEW")]
    [InlineData("data generate --synthetic --split train --count 8 --canvas_size 32 --threads 1 --out NEW")]
    [InlineData("data generate --synthetic --split train --count 8 --canvas_size 32 --threads 1 " +
                "--out NEW/deeper/x.safetensors")]
    public void A_stopped_command_exits_130_and_leaves_no_output(string args)
    {
        var newDir = NewDir();
        using var stop = new CancellationTokenSource();
        stop.Cancel();
        var result = Stopped(stop.Token, Expand(args, newDir)).AssertCode(130);
        Assert.Contains("error: interrupted", result.Stderr);
        Assert.DoesNotContain("   at ", result.Stderr);
        Assert.False(Path.Exists(newDir), $"{newDir} was written");
    }

    [Fact]
    public void A_config_file_is_validated_after_the_command_line_completes_it()
    {
        var file = Path.Combine(TestUtil.TempDir(), "short.json");
        File.WriteAllText(file, """{ "seq_len": 2, "img_size": 32, "glimpse_size": 8, "n_what": 8, "n_units": 2,""" +
                                """ "max_objects": 2, "batch_size": 4, "train_size": 16, "ckpt_itr": 1 }""");
        // alone, the file's seq_len 2 contradicts the cpu preset's curriculum_start 3
        Run("train", "--config", file, "--data", f.Data, "--run-dir", NewDir()).AssertCode(2);
        var run = NewDir();
        Run("train", "--config", file, "--curriculum_start", "0", "--max_train_iter", "1", "--data", f.Data,
            "--run-dir", run, "--threads", "1").AssertCode(0);
        Assert.Single(Checkpoint.InRun(run));
    }

    [Fact]
    public void A_diverged_run_exits_3_and_says_so_once_on_stderr()
    {
        var result = Run("train", "--config", f.Config, "--learning_rate", "1e308", "--max_train_iter", "8",
                         "--data", f.Data, "--run-dir", NewDir(), "--threads", "1").AssertCode(3);
        Assert.Single(result.Stderr.Split('\n'),
                      l => l.StartsWith("error: training diverged", StringComparison.Ordinal));
        Assert.DoesNotContain("training diverged", result.Stdout);
    }

    [Fact]
    public void Eval_track_and_render_give_the_same_numbers_boxes_and_pictures_for_the_same_seed()
    {
        string[] Eval(string json, string seed) =>
            ["eval", f.Model, "--data", f.Data, "--count", "8", "--batch-size", "3", "--threads", "1",
             "--seed", seed, "--json", json];
        var dir = TestUtil.TempDir();
        Run(Eval(Path.Combine(dir, "a.json"), "4")).AssertCode(0);
        Run(Eval(Path.Combine(dir, "b.json"), "4")).AssertCode(0);
        Run(Eval(Path.Combine(dir, "c.json"), "5")).AssertCode(0);
        Dictionary<string, double> Metrics(string name) =>
            JsonNode.Parse(File.ReadAllText(Path.Combine(dir, name)))!["metrics"]!.AsObject()
                .Where(kv => kv.Value?.GetValueKind() == System.Text.Json.JsonValueKind.Number)
                .ToDictionary(kv => kv.Key, kv => (double)kv.Value!);
        // every measure a number, or null where it is undefined (never the string "NaN", which JSON refuses)
        Assert.All(JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "a.json")))!["metrics"]!.AsObject(), kv =>
            Assert.True(kv.Value is null || kv.Value.GetValueKind() == System.Text.Json.JsonValueKind.Number,
                        $"{kv.Key}: {kv.Value}"));
        // Equal to float32 precision: libtorch's vectorised float32 kernels round by the memory
        // alignment of their inputs, which moves the 9th digit between runs.
        var (a, b, c) = (Metrics("a.json"), Metrics("b.json"), Metrics("c.json"));
        Assert.Equal(a.Keys, b.Keys);
        foreach (var (key, value) in a)
            Assert.True(Math.Abs(value - b[key]) <= 1e-6 * Math.Max(1, Math.Abs(value)),
                        $"{key}: {value} vs {b[key]}");
        Assert.True(Math.Abs(a["iwae"] - c["iwae"]) > 1e-3, "another seed gives another sample");

        string[] Track(string prefix) => ["track", f.Model, f.Data, "--threads", "1", "--seed", "4", "--out", prefix];
        Run(Track(Path.Combine(dir, "t1"))).AssertCode(0);
        Run(Track(Path.Combine(dir, "t2"))).AssertCode(0);
        Assert.Equal(File.ReadAllText(Path.Combine(dir, "t1.csv")), File.ReadAllText(Path.Combine(dir, "t2.csv")));

        string[] Render(string outDir) =>
            ["render", f.Model, "--data", f.Data, "--count", "2", "--threads", "1", "--out", outDir];
        Run(Render(Path.Combine(dir, "r1"))).AssertCode(0);
        Run(Render(Path.Combine(dir, "r2"))).AssertCode(0);
        foreach (var png in Directory.GetFiles(Path.Combine(dir, "r1")))
            Assert.Equal(File.ReadAllBytes(png), File.ReadAllBytes(Path.Combine(dir, "r2", Path.GetFileName(png))));
    }

    [Fact]
    public void A_corrupt_newest_checkpoint_is_skipped_with_a_warning_naming_it()
    {
        var run = Path.Combine(TestUtil.TempDir(), "run");
        CopyDir(f.Run, run);
        var newest = Checkpoint.InRun(run).First();
        File.WriteAllBytes(newest, new byte[64]);
        var json = Path.Combine(run, "report.json");
        var result = Run("eval", run, "--data", f.Data, "--count", "4", "--threads", "1", "--json", json).AssertCode(0);
        Assert.Contains($"warning: skipping unreadable checkpoint {newest}: ", result.Stderr);
        Assert.Equal(2, result.Stderr.Split(newest).Length);   // the file named once
        Assert.EndsWith("step-000000001.safetensors", (string)JsonNode.Parse(File.ReadAllText(json))!["checkpoint"]!);
    }

    [Fact]
    public void A_resume_past_a_corrupt_newest_checkpoint_warns_on_stderr_naming_it()
    {
        var run = Path.Combine(TestUtil.TempDir(), "run");
        CopyDir(f.Run, run);
        var newest = Checkpoint.InRun(run).First();
        File.WriteAllBytes(newest, new byte[64]);
        var result = Run("train", "--resume", run, "--max_train_iter", "3", "--data", f.Data, "--threads", "1")
            .AssertCode(0);
        Assert.Contains($"warning: skipping unreadable checkpoint {newest}: ", result.Stderr);
    }

    [Fact]
    public void Plot_skips_a_partial_last_line_with_a_warning()
    {
        var run = Path.Combine(TestUtil.TempDir(), "run");
        CopyDir(f.Run, run);
        File.AppendAllText(Path.Combine(run, RunFolder.MetricsFile), """{"iteration":3,"split":"tr""");
        var result = Run("plot", run, "--out", Path.Combine(run, "curves")).AssertCode(0);
        Assert.Contains("not a whole record, skipped", result.Stderr);
        Assert.True(File.Exists(Path.Combine(run, "curves", "loss.png")));
    }

    [Fact]
    public void A_new_training_removes_temporary_files_of_dead_writers_and_keeps_live_ones()
    {
        var run = Path.Combine(TestUtil.TempDir(), "run");
        CopyDir(f.Run, run);
        var checkpoints = Path.Combine(run, "checkpoints");
        var dead = Path.Combine(checkpoints, $"step-000000009.safetensors.tmp-{DeadPid()}-{Guid.NewGuid():N}");
        var live = Path.Combine(checkpoints,
                                $"step-000000009.safetensors.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}");
        File.WriteAllBytes(dead, new byte[10]);
        File.WriteAllBytes(live, new byte[10]);
        Run("train", "--resume", run, "--max_train_iter", "3", "--data", f.Data, "--threads", "1").AssertCode(0);
        Assert.False(File.Exists(dead));
        Assert.True(File.Exists(live));
    }

    [Fact]
    public void Track_gif_draws_a_bounded_number_of_frames_and_says_so()
    {
        // the animation holds its frames in memory until written, so it stops at GifFrames; the tracks do not
        var dir = TestUtil.TempDir();
        var data = Path.Combine(dir, "long.safetensors");
        int length = Sqair.Jobs.TrackRun.GifFrames + 5;
        Run("data", "generate", "--synthetic", "--split", "train", "--count", "1", "--canvas_size", "32",
            "--seq_len", $"{length}", "--out", data).AssertCode(0);
        var prefix = Path.Combine(dir, "tracks");
        // the model's own inference: ending objects could leave the last frames without a track to count
        var r = Run("track", f.Model, data, "--gif", "--threads", "1", "--end-empty", "0", "--suppress-iou", "0",
                    "--out", prefix).AssertCode(0);
        Assert.Contains($"--gif draws the first {Sqair.Jobs.TrackRun.GifFrames} frames", r.Stderr);
        using var codec = SkiaSharp.SKCodec.Create(prefix + ".gif");
        Assert.Equal(Sqair.Jobs.TrackRun.GifFrames, codec.FrameCount);
        var frames = File.ReadLines(prefix + ".csv").Skip(1).Select(l => int.Parse(l.Split(',')[1],
            CultureInfo.InvariantCulture));
        Assert.Equal(length - 1, frames.DefaultIfEmpty(length - 1).Max());
    }

    [Fact]
    public void Colour_data_trains_evaluates_renders_and_tracks_end_to_end()
    {
        var dir = TestUtil.TempDir();
        var data = Path.Combine(dir, "colour.safetensors");
        Run("data", "generate", "--synthetic", "--colour", "--split", "train", "--count", "16", "--canvas_size", "32",
            "--seq_len", "3", "--out", data).AssertCode(0);
        var run = Path.Combine(dir, "run");
        Run("train", "--config", f.Config, "--channels", "3", "--data", data, "--run-dir", run,
            "--threads", "1").AssertCode(0);
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(run, "figures")));
        var json = Path.Combine(dir, "eval.json");
        Run("eval", run, "--data", data, "--threads", "1", "--json", json).AssertCode(0);
        Assert.NotNull(JsonNode.Parse(File.ReadAllText(json))!["metrics"]!["mota"]);
        Run("render", run, "--data", data, "--count", "2", "--threads", "1",
            "--out", Path.Combine(dir, "renders")).AssertCode(0);
        var prefix = Path.Combine(dir, "tracks");
        Run("track", run, data, "--format", "mot", "--gif", "--count", "3", "--threads", "1",
            "--out", prefix).AssertCode(0);
        Assert.True(File.Exists(prefix + ".gif"));
        var mot = Directory.GetFiles(prefix + "-mot").Order().ToArray();
        Assert.Equal(3, mot.Length);
        foreach (var line in mot.SelectMany(File.ReadAllLines))
        {
            var fields = line.Split(',');
            Assert.Equal(10, fields.Length);
            Assert.InRange(int.Parse(fields[0], CultureInfo.InvariantCulture), 1, 3);
            Assert.True(int.Parse(fields[1], CultureInfo.InvariantCulture) >= 1);
        }
        // the folder is replaced whole, not mixed with the first run's files, and never holding what
        // track did not write
        Run("track", run, data, "--format", "mot", "--count", "2", "--threads", "1", "--out", prefix).AssertCode(0);
        Assert.Equal(mot[..2], Directory.GetFiles(prefix + "-mot").Order());
        File.WriteAllText(Path.Combine(prefix + "-mot", "notes.md"), "mine");
        Assert.Contains("holds notes.md, which track did not write",
            Run("track", run, data, "--format", "mot", "--threads", "1", "--out", prefix).AssertCode(2).Stderr);
        Assert.True(File.Exists(Path.Combine(prefix + "-mot", "notes.md")));
        var e = Run("eval", run, "--data", f.Data, "--threads", "1").AssertCode(2);
        Assert.Contains("1 channel (grey), the model's channels is 3", e.Stderr);
    }

    [Fact]
    public void Imported_frames_are_measured_with_their_ground_truth_or_without_it()
    {
        var dir = TestUtil.TempDir();
        var folders = Data.FrameImportTests.AsMotFolders(
            new MovingMnist(CliFixture.Tiny.DataConfig(), TestUtil.Templates(50), 9), 3, dir);
        var labelled = Path.Combine(dir, "labelled.safetensors");
        Run(["data", "import", .. folders, "--size", "32", "--out", labelled]).AssertCode(0);
        var json = Path.Combine(dir, "labelled.json");
        Run("eval", f.Model, "--data", labelled, "--threads", "1", "--json", json).AssertCode(0);
        var report = JsonNode.Parse(File.ReadAllText(json))!;
        Assert.True((bool)report["ground_truth"]!);
        Assert.NotNull(report["metrics"]!["mota"]);

        foreach (var folder in folders) Directory.Delete(Path.Combine(folder, "gt"), recursive: true);
        var unlabelled = Path.Combine(dir, "unlabelled.safetensors");
        Run(["data", "import", .. folders, "--size", "32", "--out", unlabelled]).AssertCode(0);
        Run("eval", f.Model, "--data", unlabelled, "--threads", "1", "--json", json).AssertCode(0);
        report = JsonNode.Parse(File.ReadAllText(json))!;
        Assert.False((bool)report["ground_truth"]!);
        Assert.Null(report["metrics"]!["mota"]);
        Assert.Null(report["metrics"]!["count_acc_visible"]);
        Assert.NotNull(report["metrics"]!["iwae"]);
        Assert.Contains("has no ground truth", Run("data", "stats", "--file", unlabelled).AssertCode(2).Stderr);
        // a folder of frames tracks as one sequence, named after the folder, in the frames' own pixels
        Run("track", f.Model, Path.Combine(folders[0], "img1"), "--format", "mot", "--threads", "1",
            "--out", Path.Combine(dir, "t")).AssertCode(0);
        Assert.True(File.Exists(Path.Combine(dir, "t-mot", "img1.txt")));
    }

    [Fact]
    public void A_new_run_starts_from_a_checkpoint_with_init_and_a_resume_refuses_changed_data()
    {
        var dir = TestUtil.TempDir();
        var run = Path.Combine(dir, "finetune");
        Run("train", "--config", f.Config, "--data", f.Data, "--init", f.Run, "--learning_rate", "0.0001",
            "--run-dir", run, "--threads", "1").AssertCode(0);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "config.json")))!;
        Assert.EndsWith("step-000000002.safetensors", (string)config["init"]!);
        Assert.Equal(Path.GetFullPath(f.Data), (string)config["data"]!);
        Assert.StartsWith("xxh3:", (string)config["data_checksum"]!);

        var copy = Path.Combine(dir, "data.safetensors");
        var moved = Path.Combine(dir, "run2");
        File.Copy(f.Data, copy);
        Run("train", "--config", f.Config, "--data", copy, "--run-dir", moved, "--threads", "1").AssertCode(0);
        SequenceFile.Write(copy, new MovingMnist(CliFixture.Tiny.DataConfig(), TestUtil.Templates(50), 4), 16,
                           Pool.Train, stop: TestContext.Current.CancellationToken);
        var e = Run("train", "--resume", moved, "--max_train_iter", "3", "--threads", "1").AssertCode(2);
        Assert.Contains("changed since the run started", e.Stderr);

        // changed validation frames: the resume goes on, with a warning that its measures no longer compare
        var valid = Path.Combine(dir, "valid.safetensors");
        var validated = Path.Combine(dir, "run3");
        File.Copy(f.Data, valid);
        Run("train", "--config", f.Config, "--data", f.Data, "--valid_data", valid, "--run-dir", validated,
            "--threads", "1").AssertCode(0);
        Assert.StartsWith("xxh3:", (string)JsonNode.Parse(File.ReadAllText(Path.Combine(validated, "config.json")))!
            ["valid_data_checksum"]!);
        SequenceFile.Write(valid, new MovingMnist(CliFixture.Tiny.DataConfig(), TestUtil.Templates(50), 5), 16,
                           Pool.Validation, stop: TestContext.Current.CancellationToken);
        e = Run("train", "--resume", validated, "--max_train_iter", "3", "--threads", "1").AssertCode(0);
        Assert.Contains("'valid_data'", e.Stderr);
        Assert.Contains("do not compare", e.Stderr);
    }

    [Fact]
    public void An_exported_model_holds_the_parameters_and_provenance_and_loads_everywhere_a_checkpoint_does()
    {
        var path = Path.Combine(TestUtil.TempDir(), "model.safetensors");
        Run("export", f.Run, "--out", path, "--note", "two iterations of a tiny model").AssertCode(0);
        var exported = Sqair.Runs.Checkpoint.Read(path);
        var source = Sqair.Runs.Checkpoint.Read(Checkpoint.InRun(f.Run).First());
        Assert.Equal(source.Iteration, exported.Iteration);
        Assert.DoesNotContain(exported.Tensors.Keys, k => !k.StartsWith("model/", StringComparison.Ordinal));
        foreach (var (key, tensor) in exported.Tensors)
            Assert.True(tensor.allclose(source.Tensors[key], rtol: 0, atol: 0), key);
        var provenance = JsonNode.Parse(exported.Metadata["provenance"])!;
        Assert.Equal("two iterations of a tiny model", (string)provenance["note"]!);
        Assert.StartsWith("sqair ", (string)provenance["exported_by"]!, StringComparison.Ordinal);
        Assert.True(new FileInfo(path).Length < new FileInfo(source.Path).Length / 2);
        Run("eval", path, "--data", f.Data, "--count", "4", "--threads", "1", "--json", path + ".json").AssertCode(0);

        // an existing file is replaced only with --force, the exported file itself never
        Assert.Contains("exists; pass --force", Run("export", f.Run, "--out", path).AssertCode(2).Stderr);
        Assert.Contains("is the checkpoint being exported",
            Run("export", path, "--out", path, "--force").AssertCode(2).Stderr);
        // a re-export keeps the first export's provenance
        var again = path + ".again.safetensors";
        Run("export", path, "--out", again, "--note", "second").AssertCode(0);
        var chain = JsonNode.Parse(Sqair.Runs.Checkpoint.Read(again).Metadata["provenance"])!;
        Assert.Equal("two iterations of a tiny model", (string)chain["source_provenance"]!["note"]!);
        Run("export", f.Run, "--out", path, "--force").AssertCode(0);
    }

    [Fact]
    public void Force_removes_only_what_a_run_wrote_and_says_what()
    {
        // a folder that is not a run: its config.json is someone else's, its figures folder holds notes
        var dir = NewDir();
        Directory.CreateDirectory(Path.Combine(dir, "figures"));
        File.WriteAllText(Path.Combine(dir, "config.json"), """{ "name": "not a run" }""");
        File.WriteAllText(Path.Combine(dir, "figures", "notes.txt"), "mine");
        var e = Run("train", "--config", f.Config, "--data", f.Data, "--run-dir", dir, "--force", "--threads", "1")
            .AssertCode(2);
        Assert.Contains("config.json is not a run's config", e.Stderr);
        Assert.True(File.Exists(Path.Combine(dir, "config.json")));
        Assert.True(File.Exists(Path.Combine(dir, "figures", "notes.txt")));

        // a run: its files go, named; what the user put beside them stays
        var run = NewDir();
        CopyDir(f.Run, run);
        File.WriteAllText(Path.Combine(run, "notes.md"), "mine");
        Directory.CreateDirectory(Path.Combine(run, "figures"));
        File.WriteAllText(Path.Combine(run, "figures", "notes.txt"), "mine");
        File.WriteAllText(Path.Combine(run, "figures", "still-000000099.png"), "old figure");
        var said = new List<string>();
        Sqair.Runs.RunFolder.Clear(run, said.Add);
        var line = Assert.Single(said);
        Assert.Contains("--force: removing the previous run's files", line);
        Assert.Contains("config.json, metrics.jsonl", line);
        Assert.Contains(Path.Combine("figures", "still-000000099.png"), line);
        Run("train", "--config", f.Config, "--data", f.Data, "--run-dir", run, "--force",
            "--max_train_iter", "1", "--threads", "1").AssertCode(0);
        Assert.True(File.Exists(Path.Combine(run, "notes.md")));
        Assert.True(File.Exists(Path.Combine(run, "figures", "notes.txt")));
        Assert.False(File.Exists(Path.Combine(run, "figures", "still-000000099.png")));
    }

    [Fact]
    public void Verify_accepts_an_intact_dataset()
    {
        var result = Run("data", "verify", f.Data).AssertCode(0);
        Assert.Contains("OK", result.Stdout);
    }

    /// <summary>A process id no process has: Linux's pid_max is at most 2^22.</summary>
    static int DeadPid() => (1 << 22) + 17;

    static void CopyDir(string from, string to)
    {
        foreach (var dir in Directory.GetDirectories(from, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(dir.Replace(from, to));
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
            File.Copy(file, file.Replace(from, to));
    }
}

public class ExitCodeTests
{
    [Fact]
    public void Failures_users_cause_map_to_their_codes_and_bugs_keep_their_trace()
    {
        Assert.Equal(Sqair.Cli.ExitCodes.Usage,
                     Sqair.Cli.ExitCodes.Classify(new ArgumentException("config key 'x'"))!.Value.Code);
        Assert.Equal(Sqair.Cli.ExitCodes.Failure,
                     Sqair.Cli.ExitCodes.Classify(new InvalidDataException("f: truncated"))!.Value.Code);
        Assert.Equal(Sqair.Cli.ExitCodes.Interrupted,
                     Sqair.Cli.ExitCodes.Classify(new OperationCanceledException())!.Value.Code);
        var oom = Sqair.Cli.ExitCodes.Classify(new System.Runtime.InteropServices.ExternalException(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory: " +
            "you tried to allocate 9 GB.\n frame #0"))!.Value;
        Assert.Equal(Sqair.Cli.ExitCodes.Failure, oom.Code);
        Assert.Contains("out of memory", oom.Message);
        Assert.Contains("--batch-size", oom.Message);
        var parallel = new AggregateException(new ArgumentException("cannot place 9 digits"),
                                              new ArgumentException("cannot place 8 digits"));
        Assert.Equal((Sqair.Cli.ExitCodes.Usage, "cannot place 9 digits"), Sqair.Cli.ExitCodes.Classify(parallel));
        Assert.Null(Sqair.Cli.ExitCodes.Classify(new NullReferenceException()));
        Assert.Null(Sqair.Cli.ExitCodes.Classify(
            new System.Runtime.InteropServices.ExternalException("Expected false to be true")));
    }
}
