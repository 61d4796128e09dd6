#:project ../src/Sqair.Core/Sqair.Core.csproj
#:property PublishAot=false
// Where tracking misses come from: runs a model over a dataset as `sqair eval`
// does (K particles, one resampled), matches visible ground-truth boxes to the model's tight boxes
// per frame (IoU ≥ 0.5, largest first), and buckets the ground truth it misses by digit width,
// label, overlap with another digit and contact with the canvas edge (and, for digits cut by the edge, the share
// of their box on the canvas), as Markdown tables.
//   dotnet run scripts/misfit-boxes.cs -- CHECKPOINT DATASET [SEQUENCES]
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
long hypotheses = 0, phantoms = 0, misfitHypotheses = 0;
using var _ = no_grad();
model.eval();
long done = 0;
foreach (var batch in new BatchLoader(data, 50, shuffle: false, seed: 0).Ordered(n))
    using (batch)
    {
        using var scope = NewDisposeScope();
        var hyp = Infer.Run(model, batch.Frames, new InferenceOptions(K: 5), first: done).Boxes(BoxKind.Content);
        var truth = TrackExtraction.Truth(batch);
        var raw = batch.Boxes.data<float>().ToArray();
        var labels = batch.Labels.data<long>().ToArray();
        var ids = batch.Ids.data<long>().ToArray();
        int m = (int)batch.Ids.shape[1];
        for (int b = 0; b < batch.B; b++)
            for (int t = 0; t < batch.T; t++)
            {
                var g = truth[b][t];
                var h = hyp[b][t];
                var pairs = g.SelectMany((gb, i) => h.Select((hb, j) => (i, j, iou: gb.IoU(hb))))
                    .Where(p => p.iou >= Match).OrderByDescending(p => p.iou);
                var (gUsed, hUsed) = (new HashSet<int>(), new HashSet<int>());
                foreach (var (i, j, _) in pairs)
                    if (!gUsed.Contains(i) && !hUsed.Contains(j)) { gUsed.Add(i); hUsed.Add(j); }
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
                    if (edge) Add($"cut by the edge, {VisiblePart(g[i].OnCanvas)} of its box visible", missed, misfit);
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

// The share of a digit's box on the canvas (the clipped truth box's OnCanvas), in quarters: slivers are what the
// edge's misses are made of or not.
static string VisiblePart(float part) =>
    part < 0.25 ? "< 25 %" : part < 0.5 ? "25–50 %" : part < 0.75 ? "50–75 %" : "≥ 75 %";

Console.WriteLine($"{Path.GetFileName(args[0])} (iteration {iteration}) on {done} sequences of " +
                  $"{Path.GetFileName(args[1])}, IoU ≥ {Match}\n");
Console.WriteLine("| ground truth | boxes | missed | miss rate | of the misses, a box overlaps it (IoU ≥ 0.1) |");
Console.WriteLine("| --- | ---: | ---: | ---: | ---: |");
foreach (var (bucket, (t, mi, f)) in buckets.OrderBy(kv => kv.Key == "all" ? "" : kv.Key, StringComparer.Ordinal))
    Console.WriteLine($"| {bucket} | {t:N0} | {mi:N0} | {(double)mi / t:P1} | {(mi == 0 ? 0 : (double)f / mi):P0} |");
Console.WriteLine($"\nunmatched model boxes: {misfitHypotheses + phantoms:N0} of {hypotheses:N0} " +
                  $"({misfitHypotheses:N0} overlapping a digit, IoU ≥ {Near}; {phantoms:N0} on nothing visible)");
return 0;
