using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Sqair.Files;
using Sqair.Text;

namespace Sqair.Model;

/// <summary>Which encoders and decoders, and whether objects are propagated (docs/design.md §3).</summary>
public enum ModelKind
{
    /// <summary>MLP-SQAIR: fully connected encoders and decoder.</summary>
    Mlp,
    /// <summary>CONV-SQAIR: convolutional encoders and decoder.</summary>
    Conv,
    /// <summary>AIR: discovery only, no propagation (the baseline).</summary>
    Air,
}

/// <summary>The optimiser of a run (config key <c>optimizer</c>).</summary>
public enum OptimizerKind
{
    /// <summary>RMSProp with momentum 0.9, as TensorFlow 1.x has it (the original's).</summary>
    Rmsprop,
    /// <summary>Adam.</summary>
    Adam,
}

/// <summary>Where a training window shorter than the sequences starts (config key <c>window_start</c>).</summary>
public enum WindowStart
{
    /// <summary>At frame 0 (the original).</summary>
    First,
    /// <summary>At a frame drawn per sequence, so short windows also show exits and re-entries.</summary>
    Random,
}

/// <summary>VIMCO's learning signal (config key <c>vimco_signal</c>).</summary>
public enum VimcoSignal
{
    /// <summary>L − L₋k, summed over particles (Mnih &amp; Rezende 2016).</summary>
    Paper,
    /// <summary>The original release's log w_k − L₋k, averaged over particles.</summary>
    Original,
}

/// <summary>
/// How the presence variables are trained (config key <c>presence_estimator</c>, docs/design.md §4).
/// </summary>
public enum PresenceEstimator
{
    /// <summary>Discrete presences, VIMCO's score-function gradient (the paper).</summary>
    Vimco,
    /// <summary>Binary Concrete presences in training, reparameterised; hard at inference.</summary>
    Concrete,
}

/// <summary>
/// An enum written in JSON as its name in snake_case (<c>"mlp"</c>, <c>"rmsprop"</c>), as the original's flags are.
/// </summary>
internal sealed class SnakeCaseEnum<T>()
    : JsonStringEnumConverter<T>(JsonNamingPolicy.SnakeCaseLower, allowIntegerValues: false)
    where T : struct, Enum;

/// <summary>
/// A path or checksum that may be absent: null, written as null; read from "" too, which configs and checkpoints
/// written before it was null hold.
/// </summary>
internal sealed class EmptyAsNull : JsonConverter<string?>
{
    public override string? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.GetString() is { Length: > 0 } text ? text : null;

    public override void Write(Utf8JsonWriter writer, string? value, JsonSerializerOptions options)
    {
        if (value is null) writer.WriteNullValue();
        else writer.WriteStringValue(value);
    }
}

/// <summary>
/// The keys that shape the model (docs/design.md §2), all the model's parts take: a run's other keys
/// (data, optimiser, cadence) are not theirs to read.
/// </summary>
public interface IModelSettings
{
    /// <inheritdoc cref="SqairConfig.Model"/>
    ModelKind Model { get; }
    /// <inheritdoc cref="SqairConfig.MaxObjects"/>
    int MaxObjects { get; }
    /// <inheritdoc cref="SqairConfig.ImgSize"/>
    int ImgSize { get; }
    /// <inheritdoc cref="SqairConfig.Channels"/>
    int Channels { get; }
    /// <inheritdoc cref="SqairConfig.GlimpseSize"/>
    int GlimpseSize { get; }
    /// <inheritdoc cref="SqairConfig.NWhat"/>
    int NWhat { get; }
    /// <inheritdoc cref="SqairConfig.NHidden"/>
    int NHidden { get; }
    /// <inheritdoc cref="SqairConfig.OutputStd"/>
    double OutputStd { get; }
    /// <inheritdoc cref="SqairConfig.OutputScale"/>
    double OutputScale { get; }
    /// <inheritdoc cref="SqairConfig.DiscStepBias"/>
    double DiscStepBias { get; }
    /// <inheritdoc cref="SqairConfig.PropStepBias"/>
    double PropStepBias { get; }
    /// <inheritdoc cref="SqairConfig.TransformVarBias"/>
    double TransformVarBias { get; }
    /// <inheritdoc cref="SqairConfig.ScalePrior"/>
    double ScalePrior { get; }
    /// <inheritdoc cref="SqairConfig.PropPriorStepBias"/>
    double PropPriorStepBias { get; }
    /// <inheritdoc cref="SqairConfig.PropPriorDrawnPixels"/>
    double PropPriorDrawnPixels { get; }
    /// <inheritdoc cref="SqairConfig.ShiftRange"/>
    double ShiftRange { get; }
    /// <inheritdoc cref="SqairConfig.RejectIoU"/>
    double RejectIoU { get; }
    /// <inheritdoc cref="SqairConfig.DiscDropout"/>
    double DiscDropout { get; }
    /// <inheritdoc cref="SqairConfig.MaskedGlimpse"/>
    bool MaskedGlimpse { get; }
    /// <inheritdoc cref="SqairConfig.RecWherePrior"/>
    bool RecWherePrior { get; }
    /// <inheritdoc cref="SqairConfig.PresenceEstimator"/>
    PresenceEstimator PresenceEstimator { get; }
}

/// <summary>The keys of the training schedules (docs/design.md §4): the curriculum and the learning rate.</summary>
internal interface IScheduleSettings
{
    int SeqLen { get; }
    int CurriculumStart { get; }
    long StageItr { get; }
    double LearningRate { get; }
    long MaxTrainIter { get; }
    double[] LrSchedule { get; }
    long LrScheduleItr { get; }
    double LrDecay { get; }
}

/// <summary>
/// Every hyperparameter of a run, model and training alike, under the original release's flag
/// names (<c>common_model_flags.py</c>, <c>mlp_mnist_model.py</c>, the training script). It is
/// written into every run folder and checkpoint, so a checkpoint always knows how to rebuild its
/// model. Defaults are the original's, i.e. the <c>paper</c> preset. The record is flat, as the
/// original's flags are in JSON and on the command line; each part of the code reads only its
/// group: the model its <see cref="IModelSettings"/>, the schedules their
/// <see cref="IScheduleSettings"/>, the data generator its <see cref="DataConfig"/>.
/// </summary>
public sealed record SqairConfig : IModelSettings, IScheduleSettings
{
    // ---- model ----
    /// <summary>mlp (MLP-SQAIR), conv (CONV-SQAIR) or air (discovery only, the MLP-AIR baseline).</summary>
    [JsonPropertyName("model"), JsonConverter(typeof(SnakeCaseEnum<ModelKind>))]
    public ModelKind Model { get; init; } = ModelKind.Mlp;
    /// <summary>N: objects per frame, discovery steps and propagated slots (original: n_steps_per_image).</summary>
    [JsonPropertyName("max_objects")] public int MaxObjects { get; init; } = 3;
    /// <summary>Side of the square frames in pixels.</summary>
    [JsonPropertyName("img_size")] public int ImgSize { get; init; } = 50;
    /// <summary>1 (grey) or 3 (colour).</summary>
    [JsonPropertyName("channels")] public int Channels { get; init; } = 1;
    /// <summary>Side of each object's glimpse in pixels.</summary>
    [JsonPropertyName("glimpse_size")] public int GlimpseSize { get; init; } = 20;
    /// <summary>Size of an object's appearance code (what).</summary>
    [JsonPropertyName("n_what")] public int NWhat { get; init; } = 50;
    /// <summary>Hidden width = 32·n_units (256 with the default 8).</summary>
    [JsonPropertyName("n_units")] public int NUnits { get; init; } = 8;
    /// <summary>Standard deviation of the Gaussian p(x|z).</summary>
    [JsonPropertyName("output_std")] public double OutputStd { get; init; } = 0.3;
    /// <summary>Initial value of the learned scale of decoded glimpses.</summary>
    [JsonPropertyName("output_scale")] public double OutputScale { get; init; } = 0.25;
    /// <summary>Initial bias of the discovery presence logit.</summary>
    [JsonPropertyName("disc_step_bias")] public double DiscStepBias { get; init; } = 1.0;
    /// <summary>Initial bias of the propagation presence logit.</summary>
    [JsonPropertyName("prop_step_bias")] public double PropStepBias { get; init; } = 5.0;
    /// <summary>Initial offset of the where scale logits of both transform estimators.</summary>
    [JsonPropertyName("transform_var_bias")] public double TransformVarBias { get; init; } = -3.0;
    /// <summary>Prior mean of the two scale logits of discovered objects.</summary>
    [JsonPropertyName("scale_prior")] public double ScalePrior { get; init; } = -2.0;
    /// <summary>Bias added to the propagation prior's presence logit.</summary>
    [JsonPropertyName("prop_prior_step_bias")] public double PropPriorStepBias { get; init; } = 10.0;
    /// <summary>
    /// Ties the propagation prior's presence to what the object drew a frame earlier, in canvas pixels of ink:
    /// prop_prior_step_bias becomes prop_prior_step_bias·(2·min(1, ink / this) − 1), so an object that drew nothing
    /// is expected to end (docs/design.md §2.3, a departure); 0 (the default) keeps the paper's prior.
    /// </summary>
    [JsonPropertyName("prop_prior_drawn_pixels")] public double PropPriorDrawnPixels { get; init; } = 0;
    /// <summary>
    /// c: a window centre lies within c·(the canvas half-width) of the canvas centre (shift = c·tanh(logit / c));
    /// 1 is the original's tanh, larger lets an object follow a digit past the bottom or right edge
    /// (docs/design.md §2.1).
    /// </summary>
    [JsonPropertyName("shift_range")] public double ShiftRange { get; init; } = 1.0;
    /// <summary>
    /// Discovery stops at a proposed object whose window overlaps a propagated object's window with IoU above
    /// this (0: never; docs/design.md §2.4): a digit already followed is not found again. eval and track may
    /// override it.
    /// </summary>
    [JsonPropertyName("reject_iou")] public double RejectIoU { get; init; } = 0;
    /// <summary>
    /// Training only: the probability that discovery is switched off for a sequence's frame at t &gt; 0, so that
    /// propagation learns to follow (docs/design.md §2.4).
    /// </summary>
    [JsonPropertyName("disc_dropout")] public double DiscDropout { get; init; } = 0;
    /// <summary>Propagation multiplies its first glimpse by a learned mask (docs/design.md §2.3).</summary>
    [JsonPropertyName("masked_glimpse")] public bool MaskedGlimpse { get; init; } = true;
    /// <summary>Discovery's where prior is an RNN over the discovered objects (docs/design.md §2.4).</summary>
    [JsonPropertyName("rec_where_prior")] public bool RecWherePrior { get; init; } = true;
    /// <summary>K: importance samples per sequence in training and evaluation.</summary>
    [JsonPropertyName("k_particles")] public int KParticles { get; init; } = 5;

    // ---- data ----
    /// <summary>Frames per training sequence.</summary>
    [JsonPropertyName("seq_len")] public int SeqLen { get; init; } = Sqair.Data.MovingMnistConfig.Default.SeqLen;
    /// <summary>Fewest digits per generated sequence.</summary>
    [JsonPropertyName("min_digits")]
    public int MinDigits { get; init; } = Sqair.Data.MovingMnistConfig.Default.MinDigits;
    /// <summary>Most digits per generated sequence.</summary>
    [JsonPropertyName("max_digits")]
    public int MaxDigits { get; init; } = Sqair.Data.MovingMnistConfig.Default.MaxDigits;
    /// <summary>Factor the generated digits are rescaled by.</summary>
    [JsonPropertyName("digit_scale")]
    public double DigitScale { get; init; } = Sqair.Data.MovingMnistConfig.Default.DigitScale;
    /// <summary>
    /// When set, each generated digit is drawn at a scale uniform in [digit_scale_min, digit_scale]: one dataset of
    /// many digit sizes (docs/tuning.md, small digits). Unset: left out of the JSON, every digit at digit_scale.
    /// </summary>
    [JsonPropertyName("digit_scale_min"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? DigitScaleMin { get; init; }
    /// <summary>Sequences in the generated training set.</summary>
    [JsonPropertyName("train_size")] public long TrainSize { get; init; } = Sqair.Data.Datasets.TrainCount;
    /// <summary>Sequences in the generated validation set.</summary>
    [JsonPropertyName("valid_size")] public long ValidSize { get; init; } = Sqair.Data.Datasets.EvalCount;
    /// <summary>Train on freshly generated sequences instead of the fixed training set.</summary>
    [JsonPropertyName("on_the_fly")] public bool OnTheFly { get; init; } = false;
    /// <summary>Seed of the generated datasets.</summary>
    [JsonPropertyName("data_seed")] public ulong DataSeed { get; init; } = 0;
    /// <summary>A dataset file to train on instead of the generated moving-MNIST sets (unset: those).</summary>
    [JsonPropertyName("data"), JsonConverter(typeof(EmptyAsNull))] public string? Data { get; init; }
    /// <summary>
    /// A dataset file to validate on (unset: the generated validation set, or <see cref="Data"/> when that is given).
    /// </summary>
    [JsonPropertyName("valid_data"), JsonConverter(typeof(EmptyAsNull))] public string? ValidData { get; init; }
    /// <summary>
    /// The checksum of <see cref="Data"/>'s frames when the run started, so a resume cannot silently continue on
    /// other data.
    /// </summary>
    [JsonPropertyName("data_checksum"), JsonConverter(typeof(EmptyAsNull))] public string? DataChecksum { get; init; }
    /// <summary>
    /// The checksum of <see cref="ValidData"/>'s frames when the run started: a resume on changed validation frames
    /// is warned about, since its measures no longer compare with the earlier ones.
    /// </summary>
    [JsonPropertyName("valid_data_checksum"), JsonConverter(typeof(EmptyAsNull))]
    public string? ValidDataChecksum { get; init; }

    // ---- training ----
    /// <summary>Seed of the model's initialisation, batch order and sampling.</summary>
    [JsonPropertyName("seed")] public ulong Seed { get; init; } = 0;
    /// <summary>A checkpoint whose parameters a new run starts from (fine-tuning; unset: a fresh model).</summary>
    [JsonPropertyName("init"), JsonConverter(typeof(EmptyAsNull))] public string? Init { get; init; }
    /// <summary>Sequences per training batch.</summary>
    [JsonPropertyName("batch_size")] public int BatchSize { get; init; } = 32;
    /// <summary>rmsprop (momentum 0.9, the original) or adam.</summary>
    [JsonPropertyName("optimizer"), JsonConverter(typeof(SnakeCaseEnum<OptimizerKind>))]
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.Rmsprop;
    /// <summary>The optimiser's initial learning rate.</summary>
    [JsonPropertyName("learning_rate")] public double LearningRate { get; init; } = 1e-5;
    /// <summary>Iterations to train for.</summary>
    [JsonPropertyName("max_train_iter")] public long MaxTrainIter { get; init; } = 2_000_000;
    /// <summary>
    /// Relative lengths of the learning-rate stages; the rate is divided by <c>lr_decay</c> at each boundary.
    /// </summary>
    [JsonPropertyName("lr_schedule")] public double[] LrSchedule { get; init; } = [4, 6, 10];
    /// <summary>
    /// Iterations that lr_schedule's stages span; 0: max_train_iter. A run records it when it starts (the trainer
    /// replaces 0 by that run's max_train_iter), so a resume that changes max_train_iter changes how long the run
    /// goes on, never the learning rate of an iteration.
    /// </summary>
    [JsonPropertyName("lr_schedule_itr")] public long LrScheduleItr { get; init; }
    /// <summary>Factor the learning rate is divided by at each lr_schedule boundary.</summary>
    [JsonPropertyName("lr_decay")] public double LrDecay { get; init; } = 3;
    /// <summary>
    /// Where a training window shorter than the sequences starts: first (frame 0, the original) or
    /// random (a frame drawn per sequence, so the curriculum's short windows also show exits and re-entries).
    /// </summary>
    [JsonPropertyName("window_start"), JsonConverter(typeof(SnakeCaseEnum<WindowStart>))]
    public WindowStart WindowStart { get; init; } = WindowStart.First;
    /// <summary>
    /// VIMCO's learning signal: paper (L − L₋k, summed over particles; Mnih &amp; Rezende 2016) or
    /// original (the original release's log w_k − L₋k, averaged over particles).
    /// </summary>
    [JsonPropertyName("vimco_signal"), JsonConverter(typeof(SnakeCaseEnum<VimcoSignal>))]
    public VimcoSignal VimcoSignal { get; init; } = VimcoSignal.Paper;
    /// <summary>
    /// How presence is trained: vimco (discrete, VIMCO's score function; the paper) or concrete (a binary Concrete
    /// relaxation in training, loss −IWAE only; hard presence at inference). docs/design.md §4.
    /// </summary>
    [JsonPropertyName("presence_estimator"), JsonConverter(typeof(SnakeCaseEnum<PresenceEstimator>))]
    public PresenceEstimator PresenceEstimator { get; init; } = PresenceEstimator.Vimco;
    /// <summary>With presence_estimator = concrete: the Concrete temperature at iteration 0.</summary>
    [JsonPropertyName("presence_temperature")] public double PresenceTemperature { get; init; } = 1.0;
    /// <summary>With presence_estimator = concrete: the floor the temperature is annealed to.</summary>
    [JsonPropertyName("presence_temperature_min")] public double PresenceTemperatureMin { get; init; } = 0.5;
    /// <summary>With presence_estimator = concrete: iterations over which the temperature falls linearly.</summary>
    [JsonPropertyName("presence_temperature_itr")] public long PresenceTemperatureItr { get; init; } = 10_000;
    /// <summary>Curriculum start length (0: always seq_len).</summary>
    [JsonPropertyName("curriculum_start")] public int CurriculumStart { get; init; } = 3;
    /// <summary>Iterations between curriculum increments (original: stage_itr).</summary>
    [JsonPropertyName("stage_itr")] public long StageItr { get; init; } = 100_000;
    /// <summary>Gradients with a larger global norm are scaled down to it (0: no clipping).</summary>
    [JsonPropertyName("clip_grad_norm")] public double ClipGradNorm { get; init; } = 0;
    /// <summary>Iterations per logged training window.</summary>
    [JsonPropertyName("log_itr")] public long LogItr { get; init; } = 1_000;
    /// <summary>Iterations between evaluations on validation sequences.</summary>
    [JsonPropertyName("eval_itr")] public long EvalItr { get; init; } = 10_000;
    /// <summary>Iterations between figures.</summary>
    [JsonPropertyName("fig_itr")] public long FigItr { get; init; } = 10_000;
    /// <summary>Iterations between kept checkpoints.</summary>
    [JsonPropertyName("ckpt_itr")] public long CkptItr { get; init; } = 100_000;
    /// <summary>Sequences of the validation set used by each periodic evaluation (0: all).</summary>
    [JsonPropertyName("eval_size")] public long EvalSize { get; init; } = 1_000;
    /// <summary>
    /// Stop after this many minutes of training in one invocation, saving a checkpoint (0: no limit).
    /// </summary>
    [JsonPropertyName("time_limit_min")] public double TimeLimitMin { get; init; } = 0;

    /// <summary>
    /// Largest <see cref="ShiftRange"/>: at 3 a window centre may sit a whole canvas width outside it, far past any
    /// digit still visible.
    /// </summary>
    public const double MaxShiftRange = 3;

    /// <summary>Hidden width of the networks, 32·n_units.</summary>
    [JsonIgnore] public int NHidden => 32 * NUnits;

    /// <summary>
    /// Keys a resumed run may change: how long it runs and how often it reports, nothing that shapes the model or
    /// the data.
    /// </summary>
    public static readonly IReadOnlySet<string> ResumableKeys = new HashSet<string>
    {
        "max_train_iter", "time_limit_min", "log_itr", "eval_itr", "fig_itr", "ckpt_itr", "eval_size",
    };

    /// <summary>
    /// The config a run trains with, its learning-rate stages fixed in iterations: lr_schedule_itr 0 (not yet
    /// recorded) becomes max_train_iter. A run from before the key has 0 in its checkpoints and had its stages over
    /// the max_train_iter it last trained with, so resolving its checkpoint's config keeps its learning rates too.
    /// </summary>
    internal SqairConfig WithScheduleFixed() => LrScheduleItr > 0 ? this : this with { LrScheduleItr = MaxTrainIter };

    /// <summary>
    /// The keys a run resumed from a checkpoint of <paramref name="trained"/> would change but may not (all but
    /// <see cref="ResumableKeys"/>). An unrecorded lr_schedule_itr (0, a run from before the key) is not compared:
    /// the resume records the value that run trained with (<see cref="WithScheduleFixed"/>).
    /// </summary>
    internal IEnumerable<string> UnresumableChanges(SqairConfig trained)
    {
        bool unrecorded = LrScheduleItr == 0 || trained.LrScheduleItr == 0;
        return DifferingKeys(trained)
            .Where(k => !ResumableKeys.Contains(k) && !(k == "lr_schedule_itr" && unrecorded));
    }

    /// <summary>The keys whose values differ between two configs.</summary>
    public IEnumerable<string> DifferingKeys(SqairConfig other)
    {
        var a = JsonNode.Parse(ToJson())!.AsObject();
        var b = JsonNode.Parse(other.ToJson())!.AsObject();
        return a.Where(kv => !JsonNode.DeepEquals(kv.Value, b[kv.Key])).Select(kv => kv.Key);
    }

    static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    /// <summary>The config as indented JSON under the original key names (a valid --config file).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>The JSON names of every key, for validation and for the CLI.</summary>
    public static IReadOnlyDictionary<string, PropertyInfo> Keys { get; } =
        typeof(SqairConfig).GetProperties()
            .Where(p => p.GetCustomAttribute<JsonPropertyNameAttribute>() is not null)
            .ToDictionary(p => p.GetCustomAttribute<JsonPropertyNameAttribute>()!.Name, p => p);

    /// <summary>
    /// What a key means, for help text: the first sentence of its documentation comment, or "config key K" where the
    /// documentation file was not shipped beside the library.
    /// </summary>
    public static string Describe(string key) =>
        KeyDocs.OfKey(typeof(SqairConfig), key) ?? $"config key {key}";

    /// <summary>
    /// Applies overrides given as a JSON object on top of this config. Unknown keys and values of
    /// the wrong type are errors that name the key (and the source, e.g. the file).
    /// </summary>
    public SqairConfig With(JsonObject overrides, string source)
    {
        var node = JsonNode.Parse(ToJson())!.AsObject();
        foreach (var (key, value) in overrides)
        {
            if (!Keys.ContainsKey(key))
            {
                var near = Keys.Keys.OrderBy(k => EditDistance.Between(k, key)).First();
                throw new ArgumentException($"{source}: unknown config key '{key}' (did you mean '{near}'?)");
            }
            node[key] = value?.DeepClone();
        }
        SqairConfig result;
        try { result = JsonSerializer.Deserialize<SqairConfig>(node.ToJsonString())!; }
        catch (JsonException e)
        {
            // a list's element comes as 'lr_schedule[1]': name the key and show its whole value
            var key = (e.Path?.TrimStart('$', '.') ?? "?").Split('[')[0];
            var type = Keys.TryGetValue(key, out var prop) ? prop.PropertyType : typeof(object);
            var expected = type == typeof(bool) ? "true or false" : type == typeof(string) ? "text" :
                           type.IsArray ? "a list of numbers" :
                           type.IsEnum ? string.Join(", ", Enum.GetNames(type)
                               .Select(JsonNamingPolicy.SnakeCaseLower.ConvertName)) :
                           type == typeof(int) ? $"a whole number in {int.MinValue}..{int.MaxValue}" :
                           type == typeof(long) ? $"a whole number in {long.MinValue}..{long.MaxValue}" :
                           type == typeof(ulong) ? $"a whole number in 0..{ulong.MaxValue}" :
                           "a number";
            throw new ArgumentException(
                $"{source}: bad value for config key '{key}': " +
                $"{(overrides[key] is { } v ? v.ToJsonString() : "null")} (expected {expected})");
        }
        result.Validate(source);
        return result;
    }

    /// <summary>Applies <c>key=value</c> overrides (values parsed as JSON, else taken as strings).</summary>
    public SqairConfig With(IEnumerable<string> assignments, string source = "command line") =>
        With(Assignments(assignments, source), source);

    /// <summary>
    /// <c>key=value</c> texts as a JSON object of overrides (values parsed as JSON, else taken as strings).
    /// </summary>
    public static JsonObject Assignments(IEnumerable<string> assignments, string source = "command line")
    {
        var o = new JsonObject();
        foreach (var a in assignments)
        {
            int eq = a.IndexOf('=');
            if (eq <= 0) throw new ArgumentException($"{source}: '{a}' is not key=value");
            var key = a[..eq].Trim().TrimStart('-').Replace('-', '_');
            var text = a[(eq + 1)..].Trim();
            JsonNode? value;
            try { value = JsonNode.Parse(text); }
            catch (JsonException) { value = JsonValue.Create(text); }
            o[key] = value;
        }
        return o;
    }

    /// <summary>
    /// The overrides in a JSON config file, not yet applied or validated (so that command-line
    /// overrides can complete them: a file's seq_len 2 with --curriculum_start 0 is valid). A
    /// duplicate key is an error: JSON readers disagree on which of the two wins.
    /// </summary>
    public static JsonObject ReadOverrides(string path)
    {
        if (Directory.Exists(path))
            throw new ArgumentException(
                $"--config {path}: is a folder; give a JSON file of config keys (e.g. a run's config.json)");
        if (!File.Exists(path)) throw new FileNotFoundException($"--config {path}: no such file", path);
        // Reading a FIFO waits for a writer, forever if there is none.
        if (SpecialFile.Is(path))
            throw new ArgumentException(
                $"--config {path}: is not a regular file (a FIFO, socket or device); give a JSON file of config keys");
        var text = File.ReadAllText(path);
        try
        {
            using var doc = JsonDocument.Parse(text);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new ArgumentException($"{path}: the config must be a JSON object of keys");
            var seen = new HashSet<string>();
            foreach (var property in doc.RootElement.EnumerateObject())
                if (!seen.Add(property.Name))
                    throw new ArgumentException($"{path}: config key '{property.Name}' is given twice");
            return JsonNode.Parse(text)!.AsObject();
        }
        catch (JsonException e) { throw new ArgumentException($"{path}: not valid JSON ({e.Message})", e); }
    }

    /// <summary>
    /// A JSON file of keys applied on top of <paramref name="baseConfig"/> (default: the paper preset), validated.
    /// </summary>
    public static SqairConfig FromJsonFile(string path, SqairConfig? baseConfig = null) =>
        (baseConfig ?? new SqairConfig()).With(ReadOverrides(path), path);

    /// <summary>
    /// Upper bounds that stop an absurd value before it allocates gigabytes: objects are
    /// inferred one slot after another, and the paper's scenes hold 3–5; particles multiply every
    /// tensor of a step, and the paper trains with 5.
    /// </summary>
    public const int MaxMaxObjects = 64, MaxKParticles = 1000;

    /// <summary>
    /// prop_prior_drawn_pixels at most: a digit of moving MNIST inks about 100–150 canvas pixels, so a reference
    /// above this would call every object empty.
    /// </summary>
    public const double MaxDrawnPixels = 1000;

    /// <summary>
    /// Checks every key; an error names the key, its value, what is allowed and <paramref name="source"/>.
    /// </summary>
    public void Validate(string source = "config")
    {
        void Check(bool ok, string key, object value, string rule)
        {
            if (!ok) throw new ArgumentException($"{source}: config key '{key}' = {value}: {rule}");
        }
        foreach (var (key, prop) in Keys)
            if (prop.PropertyType == typeof(double) && !double.IsFinite((double)prop.GetValue(this)!))
                Check(false, key, prop.GetValue(this)!, "must be a finite number");
        Check(MaxObjects is >= 1 and <= MaxMaxObjects, "max_objects", MaxObjects, $"must be in 1..{MaxMaxObjects}");
        Check(ImgSize >= 8, "img_size", ImgSize, "must be at least 8");
        // the data's own keys, by the data's rules (img_size is their canvas_size)
        if (DataConfig().Problem(forGeneration: false) is { } data)
            Check(false, data.Key == "canvas_size" ? "img_size" : data.Key, data.Value, data.Rule);
        Check(GlimpseSize >= 4 && GlimpseSize <= ImgSize, "glimpse_size", GlimpseSize,
              $"must be in 4..img_size ({ImgSize})");
        Check(Model != ModelKind.Conv || GlimpseSize % 4 == 0, "glimpse_size", GlimpseSize,
              "must be a multiple of 4 for the conv model");
        Check(NWhat >= 1, "n_what", NWhat, "must be at least 1");
        Check(NUnits >= 1, "n_units", NUnits, "must be at least 1");
        Check(OutputStd > 0, "output_std", OutputStd, "must be positive");
        Check(OutputScale > 0, "output_scale", OutputScale, "must be positive (the initial scale of decoded glimpses)");
        Check(ShiftRange is >= 1 and <= MaxShiftRange, "shift_range", ShiftRange, $"must be in [1, {MaxShiftRange}]");
        Check(RejectIoU is >= 0 and < 1, "reject_iou", RejectIoU, "must be in [0, 1) (0: off)");
        Check(PropPriorDrawnPixels is >= 0 and <= MaxDrawnPixels, "prop_prior_drawn_pixels", PropPriorDrawnPixels,
              $"must be in [0, {MaxDrawnPixels}] canvas pixels (0: off)");
        Check(DiscDropout is >= 0 and < 1, "disc_dropout", DiscDropout, "must be in [0, 1) (0: off)");
        Check(KParticles is >= 1 and <= MaxKParticles, "k_particles", KParticles, $"must be in 1..{MaxKParticles}");
        Check(TrainSize >= BatchSize, "train_size", TrainSize, "must be at least batch_size");
        Check(ValidSize >= 1, "valid_size", ValidSize, "must be at least 1");
        Check(BatchSize >= 1, "batch_size", BatchSize, "must be at least 1");
        Check(LearningRate > 0, "learning_rate", LearningRate, "must be positive");
        Check(MaxTrainIter >= 1, "max_train_iter", MaxTrainIter, "must be at least 1");
        Check(LrSchedule.Length >= 1 && LrSchedule.All(x => x > 0 && double.IsFinite(x)), "lr_schedule",
              $"[{string.Join(", ", LrSchedule)}]", "must be positive stage lengths");
        Check(LrDecay >= 1, "lr_decay", LrDecay, "must be at least 1");
        Check(LrScheduleItr >= 0, "lr_schedule_itr", LrScheduleItr, "must be non-negative (0: max_train_iter)");
        Check(PresenceTemperature > 0, "presence_temperature", PresenceTemperature, "must be positive");
        Check(PresenceTemperatureMin > 0 && PresenceTemperatureMin <= PresenceTemperature, "presence_temperature_min",
              PresenceTemperatureMin, $"must be in (0, presence_temperature ({PresenceTemperature})]");
        Check(PresenceTemperatureItr >= 1, "presence_temperature_itr", PresenceTemperatureItr, "must be at least 1");
        Check(CurriculumStart >= 0 && CurriculumStart <= SeqLen, "curriculum_start", CurriculumStart,
              "must be in 0..seq_len");
        Check(StageItr >= 1, "stage_itr", StageItr, "must be at least 1");
        Check(ClipGradNorm >= 0, "clip_grad_norm", ClipGradNorm, "must be non-negative");
        foreach (var (k, v) in new[] { ("log_itr", LogItr), ("eval_itr", EvalItr), ("fig_itr", FigItr),
                                       ("ckpt_itr", CkptItr) })
            Check(v >= 1, k, v, "must be at least 1");
        Check(EvalSize >= 0, "eval_size", EvalSize, "must be non-negative");
        Check(TimeLimitMin >= 0, "time_limit_min", TimeLimitMin, "must be non-negative");
    }

    /// <summary>The generator parameters of the data this config trains on.</summary>
    public Data.MovingMnistConfig DataConfig() => new()
    {
        CanvasSize = ImgSize, SeqLen = SeqLen, MinDigits = MinDigits, MaxDigits = MaxDigits, DigitScale = DigitScale,
        DigitScaleMin = DigitScaleMin, Channels = Channels,
    };

    /// <summary>Why frames of this shape cannot go through a model of this config, or null when they can.</summary>
    public string? Misfit(Data.MovingMnistConfig data) =>
        data.CanvasSize != ImgSize
            ? $"its frames are {data.CanvasSize}×{data.CanvasSize} pixels, the model's img_size is {ImgSize}"
        : data.Channels != Channels
            ? $"its frames have {data.Channels} channel{(data.Channels == 1 ? " (grey)" : "s (colour)")}, " +
              $"the model's channels is {Channels}"
        : null;
}
