#:project ../src/Sqair.Core/Sqair.Core.csproj
#:property PublishAot=false
// Is the tracking measure's content threshold (docs/learning-in-an-hour.md, "How tracking is
// measured") calibrated? Runs a model over a dataset as `sqair eval` does and, for several
// thresholds, compares the tight box of what each object draws with the digit it covers best.
// A calibrated threshold gives boxes neither larger nor smaller than the digits they stand for
// (median size ratio ≈ 1 for digits wholly on the canvas); the hit rate (digits with a box at
// IoU ≥ 0.5) is shown beside it, not used to choose. Meant for training sequences
// (the measure is fixed on training data, not on the splits it judges).
//   dotnet run scripts/content-threshold.cs -- CHECKPOINT DATASET [SEQUENCES]
using Sqair.Data;
using Sqair.Evaluation;
using Sqair.Inference;
using Sqair.Runs;
using Sqair.Training;
using static TorchSharp.torch;

if (args.Length is < 2 or > 3)
{
    Console.Error.WriteLine("usage: dotnet run scripts/content-threshold.cs -- CHECKPOINT DATASET [SEQUENCES]");
    return 2;
}
const double Match = 0.5, Cover = 0.3;
float[] thresholds = [0.05f, 0.1f, 0.2f, 0.3f];
var (model, iteration) = Checkpoint.LoadModel(args[0]);
using var data = SequenceFile.Open(args[1]);
long n = args.Length == 3
    ? long.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture)
    : Math.Min(1000, data.Count!.Value);
int side = model.Config.ImgSize;
var heightRatios = thresholds.ToDictionary(t => t, _ => new List<double>());
var widthRatios = thresholds.ToDictionary(t => t, _ => new List<double>());
var hits = thresholds.ToDictionary(t => t, _ => 0L);
long truthBoxes = 0, done = 0;
using var _ = no_grad();
model.eval();
foreach (var batch in new BatchLoader(data, 50, shuffle: false, seed: 0).Ordered(n))
    using (batch)
    {
        using var scope = NewDisposeScope();
        var inferred = Infer.Run(model, batch.Frames, new InferenceOptions(K: 5), first: done);
        var truth = TrackExtraction.Truth(batch);
        truthBoxes += truth.Sum(s => s.Sum(f => f.Count));
        foreach (var threshold in thresholds)
        {
            var hyp = inferred.Boxes(BoxKind.Content, threshold);
            for (int b = 0; b < batch.B; b++)
                for (int t = 0; t < batch.T; t++)
                    foreach (var g in truth[b][t])
                    {
                        var best = hyp[b][t].Select(h => (h, iou: g.IoU(h)))
                            .OrderByDescending(p => p.iou).FirstOrDefault();
                        if (best.iou >= Match) hits[threshold]++;
                        bool whole = g.Y > 0 && g.X > 0 && g.Y + g.H < side && g.X + g.W < side;
                        if (whole && best.iou >= Cover)
                        {
                            heightRatios[threshold].Add(best.h.H / g.H);
                            widthRatios[threshold].Add(best.h.W / g.W);
                        }
                    }
        }
        done += batch.B;
    }

static double Median(List<double> x) => x.Count == 0 ? double.NaN : x.Order().ElementAt(x.Count / 2);
Console.WriteLine($"{Path.GetFileName(args[0])} (iteration {iteration}) on {done} sequences of " +
                  $"{Path.GetFileName(args[1])}: {truthBoxes:N0} visible digit boxes\n");
Console.WriteLine("| content threshold | median height ratio | median width ratio | " +
                  $"digits with a box at IoU ≥ {Match} |");
Console.WriteLine("| ---: | ---: | ---: | ---: |");
foreach (var t in thresholds)
    Console.WriteLine($"| {t} | {Median(heightRatios[t]):F2} | {Median(widthRatios[t]):F2} | " +
                      $"{(double)hits[t] / truthBoxes:P1} |");
Console.WriteLine("\nratios: model box / digit box, for digits wholly on the canvas covered by a model box " +
                  $"at IoU ≥ {Cover}");
return 0;
