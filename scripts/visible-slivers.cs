#:project ../src/Sqair.Core/Sqair.Core.csproj
#:property PublishAot=false
// How much of each visible digit is on the canvas? The tracking measure counts a digit as visible
// from its first pixel on the canvas (docs/learning-in-an-hour.md, "How tracking is measured");
// this buckets the visible ground-truth boxes of a dataset by the share of their box inside the
// canvas, to show how many are slivers. No model involved.
//   dotnet run scripts/visible-slivers.cs -- DATASET [SEQUENCES]
using Sqair.Data;
using Sqair.Evaluation;
using Sqair.Inference;

if (args.Length is < 1 or > 2)
{
    Console.Error.WriteLine("usage: dotnet run scripts/visible-slivers.cs -- DATASET [SEQUENCES]");
    return 2;
}
using var data = SequenceFile.Open(args[0]);
long n = args.Length == 2
    ? long.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture)
    : Math.Min(3000, data.Count!.Value);
var c = data.Config;
(double Below, string Name)[] buckets =
[
    (0.1, "< 10 %"),
    (0.25, "10–25 %"),
    (0.5, "25–50 %"),
    (0.75, "50–75 %"),
    (1, "75–100 %"),
    (double.PositiveInfinity, "whole"),
];
var counts = new long[buckets.Length];
long total = 0;
for (long i = 0; i < n; i++)
{
    var s = data.Get(i);
    for (int k = 0; k < s.Visible.Length; k++)
    {
        if (s.Visible[k] == 0) continue;
        var box = new TrackBox(0, s.Boxes[4 * k], s.Boxes[4 * k + 1], s.Boxes[4 * k + 2], s.Boxes[4 * k + 3]);
        var inside = box.ClipTo(c.CanvasSize, c.CanvasSize);
        double share = (double)inside.H * inside.W / (box.H * box.W);
        counts[Array.FindIndex(buckets, b => share >= 1 ? double.IsPositiveInfinity(b.Below) : share < b.Below)]++;
        total++;
    }
}
Console.WriteLine($"{n} sequences of {Path.GetFileName(args[0])}: {total:N0} visible digit boxes\n");
Console.WriteLine("| share of the box on the canvas | boxes | share of visible boxes |");
Console.WriteLine("| --- | ---: | ---: |");
for (int b = 0; b < buckets.Length; b++)
    Console.WriteLine($"| {buckets[b].Name} | {counts[b]:N0} | {(double)counts[b] / total:P1} |");
return 0;
