#:project ../src/Sqair.Core/Sqair.Core.csproj
#:property PublishAot=false
// Where tracking misses come from: runs a model over a dataset as `sqair eval`
// does (K particles, one resampled), matches visible ground-truth boxes to the model's tight boxes
// per frame (IoU ≥ 0.5, largest first), and buckets the ground truth it misses by digit width,
// label, overlap with another digit and contact with the canvas edge (and, for digits cut by the edge, the share
// of their box on the canvas), as Markdown tables. For the missed slivers (under a quarter of the box on the canvas)
// with a model box nearby it also says how that box misfits: its size against the sliver's, and whether its
// attention window's centre sits at the canvas edge (as far out as `shift_range` 1 lets it go). And for digits apart
// from others, whether even their visible ink could be matched: the tight box of the frame's pixels above the content
// threshold inside the clipped truth box, against that box (a cut digit's visible columns may hold ink in a few rows),
// and how many digits the model misses when its boxes are matched to those ink boxes instead.
//   dotnet run -c Release scripts/misfit-boxes.cs -- CHECKPOINT DATASET [SEQUENCES]
using Sqair.Data;
using Sqair.Evaluation;
using Sqair.Inference;
using Sqair.Runs;
using Sqair.Training;
using static TorchSharp.torch;

if (args.Length is < 2 or > 3)
{
    Console.Error.WriteLine("usage: dotnet run scripts/misfit-boxes.cs -- CHECKPOINT DATASET [SEQUENCES]");
    return 2;
}
const double Match = 0.5, Near = 0.1;
// A sliver has less than a quarter of its box on the canvas, as for `sqair eval`'s misses_sliver.
const float SliverOnCanvas = 0.25f;
var (model, iteration) = Checkpoint.LoadModel(args[0]);
using var data = SequenceFile.Open(args[1]);
long n = args.Length == 3
    ? long.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture)
    : Math.Min(2000, data.Count!.Value);
int side = model.Config.ImgSize;
var buckets = new Dictionary<string, (long Truth, long Missed, long Misfit)>();
void Add(string bucket, bool missed, bool misfit)
{
    var (t, m, f) = buckets.GetValueOrDefault(bucket);
    buckets[bucket] = (t + 1, m + (missed ? 1 : 0), f + (missed && misfit ? 1 : 0));
}
var sliverMisfits = new Dictionary<string, long>();
string sliverBucket = EdgeBucket(0);
var inkBuckets = new Dictionary<string, (long Truth, long Unmatchable, long Missed, long UnmatchableAny)>();
long hypotheses = 0, phantoms = 0, misfitHypotheses = 0;
long missedAgainstInk = 0, sliversMissedAgainstInk = 0;
using var _ = no_grad();
model.eval();
long done = 0;
foreach (var batch in new BatchLoader(data, 50, shuffle: false, seed: 0).Ordered(n))
    using (batch)
    {
        using var scope = NewDisposeScope();
        var inferred = Infer.Run(model, batch.Frames, new InferenceOptions(K: 5), first: done);
        var (hyp, windows) = (inferred.Boxes(BoxKind.Content), inferred.Boxes(BoxKind.Glimpse));
        var truth = TrackExtraction.Truth(batch);
        var raw = batch.Boxes.data<float>().ToArray();
        var pixels = batch.Frames.amax([2]).data<float>().ToArray();   // [T, B, H, W], the brightest channel
        var labels = batch.Labels.data<long>().ToArray();
        var ids = batch.Ids.data<long>().ToArray();
        int m = (int)batch.Ids.shape[1];
        for (int b = 0; b < batch.B; b++)
            for (int t = 0; t < batch.T; t++)
            {
                var g = truth[b][t];
                var h = hyp[b][t];
                int frame = t * batch.B + b;
                var (gUsed, hUsed) = Greedy(g, h);
                var ink = g.Select(gb => InkBox(pixels, frame, side, gb, 0)).ToList();
                var (inkUsed, _) = Greedy([.. ink.Select((box, i) => box ?? g[i])], h);
                missedAgainstInk += g.Count - inkUsed.Count;
                for (int i = 0; i < g.Count; i++)
                {
                    int k = Enumerable.Range(0, m).First(k => ids[b * m + k] == g[i].Id);
                    int o = ((t * batch.B + b) * m + k) * 4;
                    float y = raw[o], x = raw[o + 1], bh = raw[o + 2], bw = raw[o + 3];
                    bool missed = !gUsed.Contains(i), misfit = h.Any(hb => g[i].IoU(hb) >= Near);
                    bool edge = y < 0 || x < 0 || y + bh > side || x + bw > side;
                    bool overlap = g.Where((_, j) => j != i).Any(other => g[i].IoU(other) > 0);
                    Add("all", missed, misfit);
                    Add($"width {(bw < 8 ? "< 8" : bw < 12 ? "8–11" : bw < 16 ? "12–15" : "≥ 16")} px",
                        missed, misfit);
                    Add($"label {labels[b * m + k]}", missed, misfit);
                    Add(overlap ? "overlaps another digit" : "apart from other digits", missed, misfit);
                    Add(edge ? "cut by the canvas edge" : "whole on the canvas", missed, misfit);
                    if (edge) Add(EdgeBucket(g[i].OnCanvas), missed, misfit);
                    if (g[i].OnCanvas < SliverOnCanvas && !inkUsed.Contains(i)) sliversMissedAgainstInk++;
                    if (!overlap)
                    {
                        bool Unmatchable(TrackBox? inkBox) => inkBox is not { } box || box.IoU(g[i]) < Match;
                        bool unmatchable =
                            Unmatchable(InkBox(pixels, frame, side, g[i], TrackExtraction.ContentThreshold));
                        bool any = Unmatchable(ink[i]);
                        string part = edge ? $"cut by the edge, {VisiblePart(g[i].OnCanvas)} visible" : "whole";
                        var (nt, nu, nm, na) = inkBuckets.GetValueOrDefault(part);
                        inkBuckets[part] = (nt + 1, nu + (unmatchable ? 1 : 0), nm + (unmatchable && missed ? 1 : 0),
                                            na + (any ? 1 : 0));
                    }
                    if (missed && misfit && g[i].OnCanvas < SliverOnCanvas)
                    {
                        var nearest = h.MaxBy(hb => g[i].IoU(hb));
                        var window = windows[b][t].First(w => w.Id == nearest.Id);
                        foreach (var kind in SliverMisfit(g[i], nearest, window))
                            sliverMisfits[kind] = sliverMisfits.GetValueOrDefault(kind) + 1;
                    }
                }
                hypotheses += h.Count;
                for (int j = 0; j < h.Count; j++)
                    if (!hUsed.Contains(j))
                    {
                        if (g.Any(gb => gb.IoU(h[j]) >= Near)) misfitHypotheses++;
                        else phantoms++;
                    }
            }
        done += batch.B;
    }

// The bucket of a digit cut by the edge, by the share of its box on the canvas; the slivers' is the first.
static string EdgeBucket(float part) => $"cut by the edge, {VisiblePart(part)} of its box visible";

// The share of a digit's box on the canvas (the clipped truth box's OnCanvas), in quarters: slivers are what the
// edge's misses are made of or not.
static string VisiblePart(float part) =>
    part < SliverOnCanvas ? "< 25 %" : part < 0.5 ? "25–50 %" : part < 0.75 ? "50–75 %" : "≥ 75 %";

// Truth and model boxes paired at IoU ≥ Match, largest IoU first, each once: the indices of the matched ones.
static (HashSet<int> Truth, HashSet<int> Boxes) Greedy(IReadOnlyList<TrackBox> truth, IReadOnlyList<TrackBox> boxes)
{
    var (gUsed, hUsed) = (new HashSet<int>(), new HashSet<int>());
    var pairs = truth.SelectMany((gb, i) => boxes.Select((hb, j) => (i, j, iou: gb.IoU(hb))))
        .Where(p => p.iou >= Match).OrderByDescending(p => p.iou);
    foreach (var (i, j, _) in pairs)
        if (!gUsed.Contains(i) && !hUsed.Contains(j)) { gUsed.Add(i); hUsed.Add(j); }
    return (gUsed, hUsed);
}

// The tight box of one frame's pixels (pixels [T·B, side, side]) above a threshold inside a clipped truth box; null
// if none is.
static TrackBox? InkBox(float[] pixels, int frame, int side, TrackBox truth, float threshold)
{
    int y0 = (int)Math.Floor(truth.Y), x0 = (int)Math.Floor(truth.X);
    int y1 = (int)Math.Ceiling(truth.Y + truth.H), x1 = (int)Math.Ceiling(truth.X + truth.W);
    int top = int.MaxValue, left = int.MaxValue, bottom = -1, right = -1;
    for (int y = Math.Max(y0, 0); y < Math.Min(y1, side); y++)
        for (int x = Math.Max(x0, 0); x < Math.Min(x1, side); x++)
            if (pixels[(long)frame * side * side + y * side + x] > threshold)
                (top, left, bottom, right) =
                    (Math.Min(top, y), Math.Min(left, x), Math.Max(bottom, y), Math.Max(right, x));
    return bottom < 0 ? null : truth with { Y = top, X = left, H = bottom - top + 1, W = right - left + 1 };
}

// How the nearest model box misfits a missed sliver: its IoU; its area against the sliver's; along which axis it
// overlaps less (the axis the edge cuts is the sliver's short side); the sliver's short side; and its window's share
// of the canvas (a window centred on the edge has at most half of itself on the canvas, in a corner a quarter).
static string[] SliverMisfit(TrackBox truth, TrackBox box, TrackBox window)
{
    // centred on the border, half a window is on the canvas; a little more allows for the clipping's rounding
    const float AtTheEdge = 0.55f;
    static double Overlap1D(float a, float la, float b, float lb) =>
        Math.Max(0, Math.Min(a + la, b + lb) - Math.Max(a, b))
        / Math.Max(Math.Max(a + la, b + lb) - Math.Min(a, b), 1e-6);
    double ratio = box.H * box.W / Math.Max(truth.H * truth.W, 1e-6), iou = truth.IoU(box);
    double alongY = Overlap1D(truth.Y, truth.H, box.Y, box.H), alongX = Overlap1D(truth.X, truth.W, box.X, box.W);
    bool cutAcrossX = truth.W < truth.H;
    double cut = cutAcrossX ? alongX : alongY, other = cutAcrossX ? alongY : alongX;
    float shortSide = Math.Min(truth.H, truth.W);
    return [iou < 0.3 ? "IoU 0.1–0.3" : iou < 0.4 ? "IoU 0.3–0.4" : "IoU 0.4–0.5",
            ratio < 0.5 ? "box under half the sliver's area" : ratio <= 2 ? "box 0.5–2× the sliver's area"
                : "box over twice the sliver's area",
            cut < other ? "overlaps less across the cut (short side)" : "overlaps less along the edge (long side)",
            shortSide < 3 ? "sliver's short side < 3 px" : shortSide < 6 ? "sliver's short side 3–5 px"
                : "sliver's short side ≥ 6 px",
            window.OnCanvas <= AtTheEdge ? "window centred at the edge (≤ 55 % on the canvas)"
                : "window centred inside"];
}

Console.WriteLine($"{Path.GetFileName(args[0])} (iteration {iteration}) on {done} sequences of " +
                  $"{Path.GetFileName(args[1])}, IoU ≥ {Match}\n");
Console.WriteLine("| ground truth | boxes | missed | miss rate | of the misses, a box overlaps it (IoU ≥ 0.1) |");
Console.WriteLine("| --- | ---: | ---: | ---: | ---: |");
foreach (var (bucket, (t, mi, f)) in buckets.OrderBy(kv => kv.Key == "all" ? "" : kv.Key, StringComparer.Ordinal))
    Console.WriteLine($"| {bucket} | {t:N0} | {mi:N0} | {(double)mi / t:P1} | {(mi == 0 ? 0 : (double)f / mi):P0} |");
Console.WriteLine($"\nunmatched model boxes: {misfitHypotheses + phantoms:N0} of {hypotheses:N0} " +
                  $"({misfitHypotheses:N0} overlapping a digit, IoU ≥ {Near}; {phantoms:N0} on nothing visible)");
Console.WriteLine($"\nmatched against each digit's ink box (pixels > 0 inside its clipped box) instead: " +
                  $"{missedAgainstInk:N0} missed ({buckets["all"].Missed:N0} against the clipped boxes); slivers " +
                  $"{sliversMissedAgainstInk:N0} of {buckets.GetValueOrDefault(sliverBucket).Truth:N0}");
Console.WriteLine("\n| digits apart from others | boxes | visible ink's box (pixels > 0.1) IoU < 0.5 " +
                  "| of those, missed | the same with pixels > 0 |");
Console.WriteLine("| --- | ---: | ---: | ---: | ---: |");
foreach (var (part, (t, u, mi, a)) in inkBuckets.OrderBy(kv => kv.Key, StringComparer.Ordinal))
    Console.WriteLine($"| {part} | {t:N0} | {u:N0} ({(double)u / t:P1}) | {mi:N0} | {a:N0} ({(double)a / t:P1}) |");
Console.WriteLine("\n| missed slivers with a box nearby: the nearest box | slivers |\n| --- | ---: |");
foreach (var (kind, count) in sliverMisfits.OrderBy(kv => kv.Key, StringComparer.Ordinal))
    Console.WriteLine($"| {kind} | {count:N0} |");
return 0;
