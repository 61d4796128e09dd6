using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Sqair.Files;
using Sqair.Model;
using Sqair.Training;

namespace Sqair.Sweeps;

/// <summary>One arm of a sweep: a name and the config keys it changes from the sweep's base.</summary>
internal sealed record SweepArm(string Name, IReadOnlyDictionary<string, JsonNode?> Changes);

/// <summary>One training of a sweep: an arm with one seed, in its own run folder.</summary>
internal sealed record SweepTask(int Index, SweepArm Arm, ulong Seed)
{
    /// <summary>The task's run folder, relative to the sweep folder: arm/seed-N.</summary>
    public string RunDir(string sweepDir) => Path.Combine(sweepDir, Arm.Name, $"seed-{Seed}");
}

/// <summary>
/// What a sweep compares (docs/tuning.md): arms of a base config, each trained with every seed on the
/// same budget, iterations or minutes, and measured on validation every <see cref="EvalEvery"/>
/// iterations and at the end. Saved as sweep.json in the sweep folder, so that running the sweep
/// again resumes it and cannot silently become another sweep.
/// </summary>
internal sealed record SweepSpec
{
    /// <summary>The file in the sweep folder that holds the spec.</summary>
    public const string FileName = "sweep.json";

    /// <summary>Keys the sweep sets for every task (budget, seed, measuring): an arm or the base may not.</summary>
    public static readonly IReadOnlySet<string> SweepKeys = new HashSet<string>
    {
        "seed", "max_train_iter", "time_limit_min", "eval_itr", "eval_size", "ckpt_itr",
    };

    /// <summary>Config keys that name files: checked before any task starts.</summary>
    public static readonly IReadOnlyList<string> FileKeys = ["init", "data", "valid_data"];

    /// <summary>The preset every arm starts from.</summary>
    [JsonPropertyName("preset")] public string Preset { get; init; } = "cpu";
    /// <summary>Config keys every arm starts from, on top of the preset.</summary>
    [JsonPropertyName("base")] public Dictionary<string, JsonNode?> Base { get; init; } = [];
    /// <summary>The arms, the base first unless left out.</summary>
    [JsonPropertyName("arms")] public List<ArmJson> Arms { get; init; } = [];
    /// <summary>Every arm runs once with each seed.</summary>
    [JsonPropertyName("seeds")] public List<ulong> Seeds { get; init; } = [1, 2];
    /// <summary>Iterations per task (max_train_iter); null when the budget is <see cref="Minutes"/>.</summary>
    [JsonPropertyName("iterations")] public long? Iterations { get; init; }
    /// <summary>
    /// Minutes of wall time per task (time_limit_min); null when the budget is <see cref="Iterations"/>.
    /// </summary>
    [JsonPropertyName("minutes")] public double? Minutes { get; init; }
    /// <summary>Validation (and a kept checkpoint) every this many iterations.</summary>
    [JsonPropertyName("eval_every")] public long EvalEvery { get; init; }
    /// <summary>Validation sequences per measurement (the first ones of the validation set).</summary>
    [JsonPropertyName("eval_count")] public int EvalCount { get; init; } = 500;
    /// <summary>libtorch threads per task.</summary>
    [JsonPropertyName("threads")] public int Threads { get; init; } = 1;
    /// <summary>Tasks run at once on this machine.</summary>
    [JsonPropertyName("parallel")] public int Parallel { get; init; } = 1;

    /// <summary>An arm as sweep.json stores it.</summary>
    public sealed record ArmJson([property: JsonPropertyName("name")] string Name,
                                 [property: JsonPropertyName("changes")] Dictionary<string, JsonNode?> Changes);

    static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    /// <summary>The spec as sweep.json holds it.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>The keys sweep.json holds: the spec's own, nothing derived from it.</summary>
    static readonly IReadOnlySet<string> JsonKeys = new HashSet<string>
    {
        "preset", "base", "arms", "seeds", "iterations", "minutes", "eval_every", "eval_count", "threads", "parallel",
    };

    /// <summary>
    /// Keys that earlier builds also wrote into sweep.json, derived from the spec: ignored when read, so that
    /// their sweeps still resume.
    /// </summary>
    static readonly IReadOnlySet<string> DerivedKeys = new HashSet<string> { "ArmList", "Tasks", "Fairness" };

    /// <summary>
    /// The spec in a sweep folder, checked as a spec from the command line is (<see cref="Validate"/>),
    /// or null when the folder holds none. A file that may have been edited by hand is no more trusted
    /// than the command line: its arm names become folders that tasks train into with --force.
    /// </summary>
    public static SweepSpec? Read(string sweepDir)
    {
        var path = Path.Combine(sweepDir, FileName);
        if (!File.Exists(path)) return null;
        // Reading a FIFO waits for a writer, forever if there is none.
        if (SpecialFile.Is(path))
            throw new ArgumentException($"{path}: is not a regular file (a FIFO, socket or device); a sweep's spec is");
        SweepSpec spec;
        try
        {
            if (JsonNode.Parse(File.ReadAllText(path)) is not JsonObject o)
                throw new InvalidDataException($"{path}: not a sweep spec (expected a JSON object)");
            foreach (var (key, _) in o)
                if (!JsonKeys.Contains(key) && !DerivedKeys.Contains(key))
                    throw new ArgumentException(
                        $"{path}: unknown key \"{key}\" (allowed are {string.Join(", ", JsonKeys)})");
            foreach (var key in DerivedKeys) o.Remove(key);
            spec = o.Deserialize<SweepSpec>() ?? throw new InvalidDataException($"{path}: empty");
        }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not a sweep spec ({e.Message})"); }
        spec.Validate(path);
        return spec;
    }

    /// <summary>Whether two specs describe the same sweep (compared as sweep.json would hold them).</summary>
    public bool SameAs(SweepSpec other) =>
        JsonNode.DeepEquals(JsonNode.Parse(ToJson()), JsonNode.Parse(other.ToJson()));

    /// <summary>The arms, in order.</summary>
    [JsonIgnore]
    public IReadOnlyList<SweepArm> ArmList => [.. Arms.Select(a => new SweepArm(a.Name, a.Changes))];

    /// <summary>
    /// Every (arm, seed), arm-major: seeds of one arm run side by side when the machine holds several tasks.
    /// </summary>
    [JsonIgnore]
    public IReadOnlyList<SweepTask> Tasks =>
        [.. ArmList.SelectMany(a => Seeds.Select(s => (a, s))).Select((x, i) => new SweepTask(i, x.a, x.s))];

    /// <summary>How the budget and machine are shared, for the report: every arm gets the same of both.</summary>
    [JsonIgnore]
    public string Fairness =>
        $"{(Iterations is { } n ? Count(n, "iteration") : Count(Minutes ?? 0, "minute"))} per arm and seed; " +
        $"{Parallel} task{(Parallel == 1 ? "" : "s")} at a time " +
        $"with {Threads} libtorch thread{(Threads == 1 ? "" : "s")} each" +
        (Minutes is not null && Parallel > 1
            ? " (a minutes budget is fair only while every slot is busy: " +
              "keep the task count a multiple of the parallel count)"
            : "");

    /// <summary>
    /// "1 iteration", "1,000 iterations", "0.5 minutes": a number and its noun, in the plural unless one.
    /// </summary>
    public static string Count(double n, string noun) =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{n:#,0.######} {noun}{(n == 1 ? "" : "s")}");

    /// <summary>
    /// The full config of a task: the preset, the base, the arm's changes, then the sweep's own keys.
    /// An unknown key or bad value is an error naming the arm.
    /// </summary>
    public SqairConfig ConfigOf(SweepTask task)
    {
        var overrides = new JsonObject();
        foreach (var (k, v) in Base) overrides[k] = v?.DeepClone();
        foreach (var (k, v) in task.Arm.Changes) overrides[k] = v?.DeepClone();
        var preset = Presets.Get(Preset);
        overrides["seed"] = task.Seed;
        // A minutes budget keeps the base's max_train_iter: it still shapes the schedules.
        overrides["max_train_iter"] = Iterations ?? preset.With(overrides, $"arm '{task.Arm.Name}'").MaxTrainIter;
        overrides["time_limit_min"] = Minutes ?? 0;
        overrides["eval_itr"] = EvalEvery;
        overrides["ckpt_itr"] = EvalEvery;
        overrides["eval_size"] = EvalCount;
        return preset.With(overrides, $"arm '{task.Arm.Name}'");
    }

    /// <summary>The longest arm name: the file-name limit of common filesystems (255 bytes; names are ASCII).</summary>
    public const int MaxNameLength = 255;

    /// <summary>
    /// Names in the sweep folder that are the sweep's own (with the run lock and Slurm's output files):
    /// an arm of such a name would overwrite them or be overwritten. Compared ignoring case, as some
    /// filesystems do.
    /// </summary>
    public static readonly IReadOnlyList<string> ReservedNames =
        [FileName, SweepReport.CsvFile, SweepReport.MarkdownFile, SweepReport.PlotsDir, SweepSlurm.ScriptName,
         LockFile];

    /// <summary>The lock a sweep holds on its folder while it runs or writes its spec.</summary>
    public const string LockFile = "sweep.lock";

    /// <summary>
    /// Why <paramref name="name"/> cannot name an arm, or null when it can. An arm's name is a folder
    /// of the sweep, so it is a plain name: ASCII letters, digits and _ - . = , + [ ] (what names made
    /// from changes use), starting with a letter or digit (not a hidden file, an option or a path),
    /// not one of the sweep's own files, at most <see cref="MaxNameLength"/> characters.
    /// </summary>
    public static string? NameProblem(string name)
    {
        const string allowed = "ASCII letters, digits and _ - . = , + [ ], starting with a letter or digit";
        if (name.Length == 0) return "a name must not be empty";
        if (name.Length > MaxNameLength)
            return $"a name has at most {MaxNameLength} characters, this one {name.Length}";
        if (!char.IsAsciiLetterOrDigit(name[0]) ||
            !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.' or '=' or ',' or '+' or '[' or ']'))
            return $"a name may hold only {allowed}";
        if (ReservedNames.Any(r => string.Equals(r, name, StringComparison.OrdinalIgnoreCase)) ||
            name.StartsWith("slurm-", StringComparison.OrdinalIgnoreCase))
            return $"the sweep's own files are named {string.Join(", ", ReservedNames)} and slurm-*";
        return null;
    }

    /// <summary>
    /// Checks the whole sweep before any task starts: budgets, names, keys the sweep owns, every
    /// task's config, and the files the configs name. Each error is one line naming what is wrong:
    /// the command-line option, or, for a spec read from <paramref name="file"/>, the file and its key.
    /// </summary>
    public void Validate(string? file = null)
    {
        string Name(string option, string key) => file is null ? option : $"\"{key}\"";
        ArgumentException Bad(string message) => new(file is null ? message : $"{file}: {message}");

        // A spec read from a file may lack what the command line always gives.
        if (Preset is null) throw Bad("\"preset\" must be a preset's name");
        if (Base is null) throw Bad("\"base\" must be an object of config keys");
        if (Arms is null || Arms.Any(a => a is null || a.Name is null || a.Changes is null))
            throw Bad("\"arms\" must be a list of {\"name\": …, \"changes\": {…}}");
        if (Seeds is null) throw Bad("\"seeds\" must be a list of seeds");
        if (Iterations is null == Minutes is null)
            throw Bad($"a sweep needs one budget: {Name("--iterations", "iterations")} or " +
                      Name("--minutes", "minutes"));
        if (Iterations is <= 0)
            throw Bad($"{Name("--iterations", "iterations")} {Iterations}: must be at least 1");
        if (Minutes is { } m && !(m > 0 && double.IsFinite(m)))
            throw Bad($"{Name("--minutes", "minutes")} {m}: must be a positive number");
        if (EvalEvery < 1) throw Bad($"{Name("--eval-every", "eval_every")} {EvalEvery}: must be at least 1");
        if (EvalCount < 1) throw Bad($"{Name("--eval-count", "eval_count")} {EvalCount}: must be at least 1");
        if (Threads < 1) throw Bad($"{Name("--threads", "threads")} {Threads}: must be at least 1");
        if (Parallel < 1) throw Bad($"{Name("--parallel", "parallel")} {Parallel}: must be at least 1");
        if (Seeds.Count == 0 || Seeds.Distinct().Count() != Seeds.Count)
            throw Bad($"{Name("--seeds", "seeds")}: give one or more different seeds");
        if (Arms.Count == 0) throw Bad("a sweep needs at least one arm");
        foreach (var arm in Arms)
            if (NameProblem(arm.Name) is { } problem)
                throw Bad($"arm '{arm.Name.ReplaceLineEndings("\\n")}': {problem}");
        // Ignoring case: on a filesystem that does, two such arms would share one folder.
        foreach (var dup in Arms.GroupBy(a => a.Name, StringComparer.OrdinalIgnoreCase).Where(g => g.Count() > 1))
            throw Bad($"arm '{dup.Key}' is given twice");
        foreach (var key in Base.Keys.Where(SweepKeys.Contains))
            throw Bad(file is null
                ? $"--set {key}: set by the sweep for every arm ({string.Join(", ", SweepKeys)}); " +
                  "use --iterations, --minutes, --seeds, --eval-every, --eval-count"
                : $"\"base\": {key} is set by the sweep for every arm ({string.Join(", ", SweepKeys)})");
        foreach (var arm in Arms)
            foreach (var key in arm.Changes.Keys.Where(SweepKeys.Contains))
                throw Bad($"arm '{arm.Name}': {key} is set by the sweep for every arm");
        try
        {
            foreach (var task in Tasks)
            {
                var c = ConfigOf(task);
                foreach (var (key, path) in FileKeys.Zip([c.Init, c.Data, c.ValidData]))
                    if (path is not null && !File.Exists(path) && !Directory.Exists(path))
                        throw new ArgumentException(
                            $"arm '{task.Arm.Name}': config key '{key}' = {path}: no such file");
            }
        }
        catch (ArgumentException e) when (file is not null) { throw Bad(e.Message); }
    }

    /// <summary>
    /// An arm from the command line: "name:key=value,key=value", or "key=value,…" named by its
    /// changes. Values are JSON where they parse (numbers, lists in brackets), else text.
    /// </summary>
    public static ArmJson ParseArm(string spec)
    {
        int colon = spec.IndexOf(':');
        int eq = spec.IndexOf('=');
        bool named = colon > 0 && (eq < 0 || colon < eq);
        var name = named ? spec[..colon].Trim() : null;
        var body = named ? spec[(colon + 1)..] : spec;
        var changes = SplitAssignments(body, $"--arm {spec}");
        return new ArmJson(name ?? NameOf(changes), changes);
    }

    /// <summary>A grid over one key: "key=v1,v2,v3" gives one arm per value, each named key=value.</summary>
    public static IEnumerable<ArmJson> ParseGrid(string spec)
    {
        int eq = spec.IndexOf('=');
        if (eq <= 0) throw new ArgumentException($"--grid {spec}: expected key=value1,value2,…");
        var key = spec[..eq].Trim();
        foreach (var value in SplitTopLevel(spec[(eq + 1)..]))
        {
            var changes = SplitAssignments($"{key}={value}", $"--grid {spec}");
            yield return new ArmJson(NameOf(changes), changes);
        }
    }

    /// <summary>"key=value" assignments, as <see cref="SqairConfig.Assignments"/> reads them.</summary>
    public static Dictionary<string, JsonNode?> SplitAssignments(string text, string source)
    {
        var parts = SplitTopLevel(text).Where(p => p.Length > 0).ToList();
        return SqairConfig.Assignments(parts, source).ToDictionary(kv => kv.Key, kv => kv.Value?.DeepClone());
    }

    static string NameOf(Dictionary<string, JsonNode?> changes) =>
        changes.Count == 0
            ? "base"
            : string.Join(",", changes.Select(kv => $"{kv.Key}={kv.Value?.ToJsonString().Trim('"').Replace(" ", "")}"));

    /// <summary>Splits on commas outside brackets, so "lr_schedule=[1,1],seq_len=3" is two assignments.</summary>
    static List<string> SplitTopLevel(string text)
    {
        var parts = new List<string>();
        int depth = 0, start = 0;
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] is '[' or '{') depth++;
            else if (text[i] is ']' or '}') depth--;
            else if (text[i] == ',' && depth == 0)
            {
                parts.Add(text[start..i].Trim());
                start = i + 1;
            }
        }
        parts.Add(text[start..].Trim());
        return parts;
    }
}
