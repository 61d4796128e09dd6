using Sqair.Data;

namespace Sqair.Visualisation;

/// <summary>Pictures of ground truth: one row per sequence, one cell per frame, boxes coloured by object id.</summary>
public static class DataFigures
{
    /// <summary>
    /// Draws sequences <paramref name="indices"/> of a source, one row each, with their
    /// ground-truth boxes coloured by id, into a PNG.
    /// </summary>
    public static void Show(ISequenceSource source, IReadOnlyList<long> indices, string path, int scale = 2)
    {
        var c = source.Config;
        int side = c.CanvasSize, m = c.MaxDigits, frame = c.Channels * side * side;
        var rows = new List<IReadOnlyList<Cell>>();
        var labels = new List<string>();
        foreach (var i in indices)
        {
            var s = source.Get(i);
            var row = new List<Cell>();
            for (int t = 0; t < c.SeqLen; t++)
            {
                var px = s.Frames.AsSpan(t * frame, frame).ToArray().Select(v => v / 255f).ToArray();
                var boxes = new List<DrawBox>();
                int visible = 0;
                for (int k = 0; k < m; k++)
                {
                    if (s.Present[t * m + k] == 0) continue;
                    visible += s.Visible[t * m + k];
                    int b = (t * m + k) * 4;
                    boxes.Add(new DrawBox(s.Boxes[b], s.Boxes[b + 1], s.Boxes[b + 2], s.Boxes[b + 3], s.Ids[k]));
                }
                row.Add(new Cell(px, c.Channels, side, side, boxes,
                                 source.HasTruth ? $"{visible}/{boxes.Count}" : $"t={t}"));
            }
            rows.Add(row);
            labels.Add($"#{i} [{string.Join(",", s.Labels.Where(l => l >= 0))}]");
        }
        var title = source.HasTruth ? "ground truth (caption: visible/present objects)" : "frames (no ground truth)";
        Grid.SavePng(Grid.Render(rows, scale, title, labels), path);
    }
}
