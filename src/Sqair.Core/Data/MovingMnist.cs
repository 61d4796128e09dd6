using System.Text.Json.Serialization;
using Sqair.Text;

namespace Sqair.Data;

/// <summary>A digit template: an MNIST image cropped to the bounding box of its non-zero pixels.</summary>
public sealed record Template(byte[] Pixels, int Height, int Width, int Label);

/// <summary>Which MNIST images a dataset draws its digits from (docs/design.md §1).</summary>
public enum Pool
{
    /// <summary>The first 55 000 MNIST training images.</summary>
    Train,
    /// <summary>The last 5 000 MNIST training images.</summary>
    Validation,
    /// <summary>The 10 000 MNIST test images.</summary>
    Test,
}

/// <summary>
/// Parameters of moving multi-MNIST. The defaults are the original release's
/// (<c>create_seq_mnist.py</c>): 50×50 canvas, 10 frames, 0–2 digits, noisy-acceleration motion.
/// </summary>
public sealed record MovingMnistConfig
{
    /// <summary>Side of the square canvas in pixels.</summary>
    [JsonPropertyName("canvas_size")] public int CanvasSize { get; init; } = 50;
    /// <summary>Frames per sequence.</summary>
    [JsonPropertyName("seq_len")] public int SeqLen { get; init; } = 10;
    /// <summary>Fewest digits in a sequence.</summary>
    [JsonPropertyName("min_digits")] public int MinDigits { get; init; } = 0;
    /// <summary>Most digits in a sequence; also the object slots M of a dataset file.</summary>
    [JsonPropertyName("max_digits")] public int MaxDigits { get; init; } = 2;
    /// <summary>Factor the MNIST digits are rescaled by.</summary>
    [JsonPropertyName("digit_scale")] public double DigitScale { get; init; } = 1.0;
    /// <summary>
    /// Each digit drawn at its own scale, uniform in [digit_scale_min, digit_scale]: one dataset of many digit sizes.
    /// Unset (and left out of the JSON, so cache names stay), every digit is at digit_scale and the sequences are
    /// those of data without this key.
    /// </summary>
    [JsonPropertyName("digit_scale_min"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? DigitScaleMin { get; init; }
    /// <summary>Standard deviation of the per-step acceleration noise.</summary>
    [JsonPropertyName("acc_noise_std")] public double AccNoiseStd { get; init; } = 0.01;
    /// <summary>Speed bound per axis, pixels per frame.</summary>
    [JsonPropertyName("max_speed")] public double MaxSpeed { get; init; } = 10;
    /// <summary>Acceleration bound per axis.</summary>
    [JsonPropertyName("max_acc")] public double MaxAcc { get; init; } = 3;
    /// <summary>Placements tried per digit before the sequence is redrawn.</summary>
    [JsonPropertyName("placement_tries")] public int PlacementTries { get; init; } = 5;
    /// <summary>
    /// 1: grey digits; 3: each digit in its own random colour. Left out of the JSON when 1, so grey
    /// datasets keep their cache names and files written before colour existed stay readable.
    /// </summary>
    [JsonIgnore] public int Channels { get => ChannelsInJson ?? 1; init => ChannelsInJson = value == 1 ? null : value; }

    [JsonInclude, JsonPropertyName("channels"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    private int? ChannelsInJson { get; init; }

    /// <summary>The original release's parameters: the defaults every data option and config key starts from.</summary>
    public static MovingMnistConfig Default { get; } = new();

    /// <summary>
    /// What a parameter means, for help text: the first sentence of its documentation comment, or "moving-MNIST
    /// parameter K" where the documentation file was not shipped beside the library.
    /// </summary>
    public static string Describe(string key) =>
        KeyDocs.OfKey(typeof(MovingMnistConfig), key) ?? $"moving-MNIST parameter {key}";

    /// <summary>
    /// The smallest digit scale that still draws a digit: an MNIST digit is 28 pixels wide at scale 1, and one
    /// shrunk below a pixel is invisible, a sequence of empty frames labelled as holding digits.
    /// </summary>
    public const double MinDigitScale = 1.0 / 28;
    const string MinDigitScaleText = "1/28";

    /// <summary>Checks every parameter; an error names the first bad one.</summary>
    public void Validate()
    {
        if (Problem() is { } p) throw new ArgumentException($"moving-MNIST parameter '{p.Key}' = {p.Value}: {p.Rule}");
    }

    /// <summary>
    /// The first rule these parameters break, or null: the one statement of the data's rules, which a run's
    /// config checks too (<see cref="Model.SqairConfig.Validate"/>). That the canvas holds a whole digit matters
    /// only <paramref name="forGeneration"/>: a model of imported frames may be smaller than a digit.
    /// </summary>
    public (string Key, object Value, string Rule)? Problem(bool forGeneration = true) =>
        forGeneration && CanvasSize < 28 * DigitScale ? ("canvas_size", CanvasSize, "must hold a whole digit")
        : SeqLen < 1 ? ("seq_len", SeqLen, "must be at least 1")
        : MinDigits < 0 ? ("min_digits", MinDigits, "must be at least 0")
        : MaxDigits < MinDigits ? ("max_digits", MaxDigits, "must be at least min_digits")
        : (double)SeqLen * Channels * CanvasSize * CanvasSize > Array.MaxLength
            ? ("canvas_size", CanvasSize,
               $"a sequence's frames (seq_len × channels × canvas_size²) are one array of at most {Array.MaxLength}")
        : DigitScale is not (>= MinDigitScale and <= 4)
            ? ("digit_scale", DigitScale, $"must be in [{MinDigitScaleText}, 4]")
        : DigitScaleMin is { } min && !(min >= MinDigitScale && min <= DigitScale)
            ? ("digit_scale_min", min, $"must be in [{MinDigitScaleText}, digit_scale = {DigitScale}]")
        : !(AccNoiseStd >= 0 && double.IsFinite(AccNoiseStd))
            ? ("acc_noise_std", AccNoiseStd, "must be a finite number at least 0")
        : !(MaxSpeed >= 0 && double.IsFinite(MaxSpeed)) ? ("max_speed", MaxSpeed, "must be a finite number at least 0")
        : !(MaxAcc >= 0 && double.IsFinite(MaxAcc)) ? ("max_acc", MaxAcc, "must be a finite number at least 0")
        : PlacementTries < 1 ? ("placement_tries", PlacementTries, "must be at least 1")
        : Channels is not (1 or 3) ? ("channels", Channels, "must be 1 (grey) or 3 (colour)")
        : null;
}

/// <summary>
/// One generated sequence and its ground truth. Slots 0..MaxDigits-1; slot k holds the k-th digit
/// drawn, absent slots have present = 0, label = -1, id = -1.
/// </summary>
public sealed class Sequence(int seqLen, int side, int slots, int channels = 1)
{
    /// <summary>[T, C, H, W] uint8.</summary>
    public byte[] Frames { get; } = new byte[seqLen * channels * side * side];
    /// <summary>[T, slots, 4] as (y, x, h, w) in pixels of the unclipped template placement.</summary>
    public float[] Boxes { get; } = new float[seqLen * slots * 4];
    /// <summary>[T, slots]: the digit exists in the sequence.</summary>
    public byte[] Present { get; } = new byte[seqLen * slots];
    /// <summary>[T, slots]: at least one non-zero pixel of the digit is on the canvas.</summary>
    public byte[] Visible { get; } = new byte[seqLen * slots];
    /// <summary>[slots] digit class, -1 when absent.</summary>
    public int[] Labels { get; } = Enumerable.Repeat(-1, slots).ToArray();
    /// <summary>[slots] object id stable over the sequence, -1 when absent.</summary>
    public int[] Ids { get; } = Enumerable.Repeat(-1, slots).ToArray();
    /// <summary>
    /// [slots] index of each digit's template in the generator's pool (not stored in files), -1 when absent. With
    /// digit_scale_min the digit drawn is that template rescaled.
    /// </summary>
    public int[] TemplateIndices { get; } = Enumerable.Repeat(-1, slots).ToArray();
}

/// <summary>
/// The moving multi-MNIST generator of docs/design.md §1. Sequence i of a dataset is a pure function of
/// (seed, pool, i): it has its own random stream, so generation is parallel and gives identical
/// bytes at any thread count.
/// </summary>
public sealed class MovingMnist
{
    /// <summary>The generator parameters.</summary>
    public MovingMnistConfig Config { get; }
    /// <summary>The digits drawn from.</summary>
    public IReadOnlyList<Template> Templates { get; }
    /// <summary>The seed of every sequence stream.</summary>
    public ulong Seed { get; }

    /// <summary>
    /// A generator of <paramref name="config"/> sequences drawing <paramref name="templates"/>,
    /// sequence i a pure function of (seed, i).
    /// </summary>
    public MovingMnist(MovingMnistConfig config, IReadOnlyList<Template> templates, ulong seed)
    {
        config.Validate();
        if (templates.Count < config.MaxDigits)
            throw new ArgumentException(
                $"the template pool has {templates.Count} digits, fewer than max_digits = {config.MaxDigits}");
        Config = config;
        Templates = templates;
        Seed = seed;
    }

    /// <summary>
    /// The template pool of docs/design.md §1: train = first 55 000 training images, validation =
    /// last 5 000, test = t10k.
    /// </summary>
    public static List<Template> BuildPool(MnistSplit split, Pool pool, double digitScale)
    {
        var (start, count) = pool switch
        {
            Pool.Train => (0, Math.Min(55_000, split.Count)),
            Pool.Validation => (Math.Min(55_000, split.Count), Math.Max(0, split.Count - 55_000)),
            _ => (0, split.Count),
        };
        var result = new List<Template>(count);
        for (int i = start; i < start + count; i++)
        {
            var t = Crop(split.Image(i), MnistSplit.Side, split.Labels[i]);
            if (t is null) continue;
            result.Add(Scaled(t, digitScale));
        }
        return result;
    }

    static Template Scaled(Template t, double scale) => scale == 1.0 ? t : Rescale(t, scale);

    /// <summary>
    /// Synthetic templates in a pool for data and benchmarks: enough that sequences rarely repeat a
    /// blob, as MNIST's thousands of digits.
    /// </summary>
    public const int SyntheticPoolSize = 1000;

    /// <summary>
    /// Digit-sized random blobs (8–28 px high, 6–28 px wide, every pixel non-zero): templates for
    /// tests and benchmarks that must not depend on MNIST being available; rescaled by
    /// <paramref name="digitScale"/> as MNIST digits are.
    /// </summary>
    public static List<Template> SyntheticTemplates(int n, ulong seed, double digitScale = 1.0)
    {
        var rng = new Rng(seed);
        var list = new List<Template>(n);
        for (int i = 0; i < n; i++)
        {
            int h = rng.NextInt(8, 28), w = rng.NextInt(6, 28);
            var px = new byte[h * w];
            for (int p = 0; p < px.Length; p++) px[p] = (byte)rng.NextInt(1, 255);
            list.Add(Scaled(new Template(px, h, w, i % 10), digitScale));
        }
        return list;
    }

    /// <summary>Crops a square image to the bounding box of its non-zero pixels (null if blank).</summary>
    public static Template? Crop(ReadOnlySpan<byte> image, int side, int label)
    {
        int y0 = side, y1 = -1, x0 = side, x1 = -1;
        for (int y = 0; y < side; y++)
            for (int x = 0; x < side; x++)
                if (image[y * side + x] != 0)
                {
                    y0 = Math.Min(y0, y); y1 = Math.Max(y1, y);
                    x0 = Math.Min(x0, x); x1 = Math.Max(x1, x);
                }
        if (y1 < 0) return null;
        int h = y1 - y0 + 1, w = x1 - x0 + 1;
        var pixels = new byte[h * w];
        for (int y = 0; y < h; y++)
            image.Slice((y0 + y) * side + x0, w).CopyTo(pixels.AsSpan(y * w, w));
        return new Template(pixels, h, w, label);
    }

    /// <summary>Bilinear rescale of a template by a factor (half-pixel-centre convention).</summary>
    public static Template Rescale(Template t, double scale)
    {
        int h = Math.Max(1, (int)Math.Round(t.Height * scale)), w = Math.Max(1, (int)Math.Round(t.Width * scale));
        var pixels = new byte[h * w];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                double sy = Math.Clamp((y + 0.5) * t.Height / h - 0.5, 0, t.Height - 1);
                double sx = Math.Clamp((x + 0.5) * t.Width / w - 0.5, 0, t.Width - 1);
                int iy = (int)sy, ix = (int)sx;
                int jy = Math.Min(iy + 1, t.Height - 1), jx = Math.Min(ix + 1, t.Width - 1);
                double fy = sy - iy, fx = sx - ix;
                double v = (1 - fy) * ((1 - fx) * t.Pixels[iy * t.Width + ix] + fx * t.Pixels[iy * t.Width + jx])
                         + fy * ((1 - fx) * t.Pixels[jy * t.Width + ix] + fx * t.Pixels[jy * t.Width + jx]);
                pixels[y * w + x] = (byte)Math.Clamp(Math.Round(v), 0, 255);
            }
        return new Template(pixels, h, w, t.Label);
    }

    /// <summary>Generates sequence <paramref name="index"/> of the stream with this generator's seed.</summary>
    public Sequence Generate(long index)
    {
        var c = Config;
        var rng = new Rng(Seed, (ulong)index);
        int n = rng.NextInt(c.MinDigits, c.MaxDigits);
        var (chosen, drawn, start) = Place(rng, n);
        var seq = new Sequence(c.SeqLen, c.CanvasSize, c.MaxDigits, c.Channels);
        var (pos, vel, acc) = StartMotion(rng, seq, chosen, drawn, start);
        // Colours are drawn after everything grey data draws, so grey datasets are unchanged.
        var tints = Enumerable.Range(0, n).Select(_ => c.Channels == 3 ? RandomColour(rng) : Grey).ToArray();

        for (int t = 0; t < c.SeqLen; t++)
        {
            if (t > 0)
                for (int k = 0; k < n; k++)
                    for (int d = 0; d < 2; d++)
                        Step(ref pos[k, d], ref vel[k, d], ref acc[k, d], rng.Normal(0, c.AccNoiseStd), c);
            Render(seq, t, drawn, pos, tints);
        }
        return seq;
    }

    /// <summary>
    /// Draws <paramref name="n"/> distinct templates and their non-overlapping corners, redrawing until they fit
    /// (<see cref="ArgumentException"/> past <see cref="MaxRedraws"/> or <see cref="MaxPlacements"/>).
    /// </summary>
    (int[] Chosen, Template[] Drawn, (int Y, int X)[] Start) Place(Rng rng, int n)
    {
        var c = Config;
        var chosen = new int[n];
        var drawn = new Template[n];
        var start = new (int Y, int X)[n];
        int redraws = 0;
        long placements = MaxPlacements;
        while (!TryPlace(rng, n, chosen, drawn, start, ref placements))
            if (++redraws == MaxRedraws || placements == 0)
                throw new ArgumentException(
                    $"cannot place {n} digits (digit_scale {c.DigitScale}) without overlap on a " +
                    $"{c.CanvasSize}×{c.CanvasSize} canvas: {redraws} draws of up to {c.PlacementTries} placements " +
                    $"per digit ({MaxPlacements - placements} placements) failed; " +
                    "lower max_digits or digit_scale, or raise canvas_size or placement_tries");
        return (chosen, drawn, start);
    }

    /// <summary>
    /// Writes each digit's label, id and template into <paramref name="seq"/> and draws its starting velocity and
    /// acceleration; returns positions, velocities and accelerations [digit, (y, x)].
    /// </summary>
    (double[,] Pos, double[,] Vel, double[,] Acc) StartMotion(Rng rng, Sequence seq, int[] chosen, Template[] drawn,
                                                               (int Y, int X)[] start)
    {
        var c = Config;
        int n = chosen.Length;
        var pos = new double[n, 2];
        var vel = new double[n, 2];
        var acc = new double[n, 2];
        for (int k = 0; k < n; k++)
        {
            seq.Labels[k] = drawn[k].Label;
            seq.Ids[k] = k;
            seq.TemplateIndices[k] = chosen[k];
            pos[k, 0] = start[k].Y; pos[k, 1] = start[k].X;
            for (int d = 0; d < 2; d++)
            {
                vel[k, d] = rng.Uniform(-c.MaxSpeed, c.MaxSpeed);
                acc[k, d] = rng.Uniform(-c.MaxAcc, c.MaxAcc);
            }
        }
        return (pos, vel, acc);
    }

    /// <summary>Pastes the digits at their positions into frame <paramref name="t"/>, with their boxes.</summary>
    void Render(Sequence seq, int t, Template[] drawn, double[,] pos, byte[][] tints)
    {
        int side = Config.CanvasSize, slots = Config.MaxDigits, channels = Config.Channels, plane = side * side;
        var frame = seq.Frames.AsSpan(t * channels * plane, channels * plane);
        for (int k = 0; k < drawn.Length; k++)
        {
            // Banker's rounding, as numpy's round in the original renderer.
            int y = (int)Math.Round(pos[k, 0], MidpointRounding.ToEven);
            int x = (int)Math.Round(pos[k, 1], MidpointRounding.ToEven);
            var template = drawn[k];
            int b = (t * slots + k) * 4;
            seq.Boxes[b] = y; seq.Boxes[b + 1] = x;
            seq.Boxes[b + 2] = template.Height; seq.Boxes[b + 3] = template.Width;
            seq.Present[t * slots + k] = 1;
            seq.Visible[t * slots + k] = (byte)(Paste(frame, side, template, y, x, tints[k]) ? 1 : 0);
        }
    }

    /// <summary>
    /// Redraws of a sequence's digits and corners before its parameters are declared impossible. One
    /// redraw costs microseconds and feasible configs need few, so the bound stops only configs that
    /// cannot be generated (e.g. 20 digits on 50 px), within a second instead of never.
    /// </summary>
    public const int MaxRedraws = 20_000;

    /// <summary>
    /// Placements tried for one sequence, over all its draws, before its parameters are declared impossible: a
    /// huge placement_tries would otherwise retry for hours a digit that does not fit. Twice what the default
    /// placement_tries (5) can use for 20 digits over <see cref="MaxRedraws"/> draws, so data that could be made
    /// before the bound is made alike; seconds of work at most (measured: 0.3 s for 30 digits, 2 s for 8).
    /// </summary>
    public const long MaxPlacements = 4_000_000;

    /// <summary>
    /// Draws n distinct templates (each at its drawn size) and non-overlapping in-canvas corners; false asks for
    /// a redraw.
    /// </summary>
    bool TryPlace(Rng rng, int n, int[] chosen, Template[] drawn, (int Y, int X)[] start, ref long placements)
    {
        var picked = new HashSet<int>();
        for (int k = 0; k < n; k++)
        {
            int idx;
            do idx = rng.NextInt(0, Templates.Count - 1); while (!picked.Add(idx));
            chosen[k] = idx;
            drawn[k] = AtDrawnScale(Templates[idx], rng);
        }
        int side = Config.CanvasSize;
        for (int k = 0; k < n; k++)
        {
            var t = drawn[k];
            bool placed = false;
            for (int attempt = 0; attempt < Config.PlacementTries && !placed && placements > 0; attempt++)
            {
                placements--;
                int y = rng.NextInt(0, side - t.Height), x = rng.NextInt(0, side - t.Width);
                placed = true;
                for (int j = 0; j < k && placed; j++)
                    placed = !Overlap(y, x, t.Height, t.Width, start[j].Y, start[j].X, drawn[j].Height, drawn[j].Width);
                if (placed) start[k] = (y, x);
            }
            if (!placed) return false;
        }
        return true;
    }

    /// <summary>
    /// A pool template (already at digit_scale) as drawn: unchanged, or with digit_scale_min rescaled to a scale
    /// uniform in [digit_scale_min, digit_scale]. Without the key no random number is drawn, so such data is
    /// byte for byte what it was before the key existed.
    /// </summary>
    Template AtDrawnScale(Template pooled, Rng rng) =>
        Config.DigitScaleMin is { } min ? Rescale(pooled, rng.Uniform(min / Config.DigitScale, 1.0)) : pooled;

    static bool Overlap(int y0, int x0, int h0, int w0, int y1, int x1, int h1, int w1) =>
        y0 < y1 + h1 && y1 < y0 + h0 && x0 < x1 + w1 && x1 < x0 + w0;

    /// <summary>
    /// One step of the noisy-acceleration trajectory for one axis: move, bounce off the position
    /// bounds [0, canvas_size] (reflect the position, flip velocity and acceleration), then clip the
    /// state to its bounds.
    /// </summary>
    public static void Step(ref double pos, ref double vel, ref double acc, double noise, MovingMnistConfig c)
    {
        pos += vel;
        vel += acc;
        acc += noise;
        double lo = 0, hi = c.CanvasSize;
        if (pos < lo || pos > hi)
        {
            pos = pos < lo ? 2 * lo - pos : 2 * hi - pos;
            vel = -vel;
            acc = -acc;
        }
        pos = Math.Clamp(pos, lo, hi);
        vel = Math.Clamp(vel, -c.MaxSpeed, c.MaxSpeed);
        acc = Math.Clamp(acc, -c.MaxAcc, c.MaxAcc);
    }

    /// <summary>
    /// Smallest channel maximum of a digit colour: every colour is bright enough to stand out on black.
    /// </summary>
    const int MinColourPeak = 128;

    /// <summary>The tint of a grey digit: its pixels as they are ((v·255 + 127) / 255 = v).</summary>
    static readonly byte[] Grey = [255];

    /// <summary>A random RGB colour whose brightest channel is at least <see cref="MinColourPeak"/>.</summary>
    static byte[] RandomColour(Rng rng)
    {
        while (true)
        {
            var (r, g, b) = ((byte)rng.NextInt(0, 255), (byte)rng.NextInt(0, 255), (byte)rng.NextInt(0, 255));
            if (Math.Max(r, Math.Max(g, b)) >= MinColourPeak) return [r, g, b];
        }
    }

    /// <summary>
    /// Blends a template into a [C, H, W] frame at (y, x) by per-channel max, clipped to the canvas:
    /// channel c gets the template scaled by <paramref name="tint"/>[c]/255 (C = the tint's length;
    /// a grey frame's tint is 255). Returns whether a non-zero template pixel landed.
    /// </summary>
    public static bool Paste(Span<byte> frame, int side, Template t, int y, int x, ReadOnlySpan<byte> tint)
    {
        int plane = side * side;
        bool visible = false;
        int ty0 = Math.Max(0, -y), ty1 = Math.Min(t.Height, side - y);
        int tx0 = Math.Max(0, -x), tx1 = Math.Min(t.Width, side - x);
        for (int ty = ty0; ty < ty1; ty++)
            for (int tx = tx0; tx < tx1; tx++)
            {
                int v = t.Pixels[ty * t.Width + tx];
                if (v == 0) continue;
                visible = true;
                int at = (y + ty) * side + x + tx;
                for (int ch = 0; ch < tint.Length; ch++)
                {
                    byte tinted = (byte)((v * tint[ch] + 127) / 255);
                    if (tinted > frame[ch * plane + at]) frame[ch * plane + at] = tinted;
                }
            }
        return visible;
    }
}
