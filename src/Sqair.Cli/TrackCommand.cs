using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Sqair.Data;
using Sqair.Evaluation;
using Sqair.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Sqair.Cli;

/// <summary><c>sqair track</c>: runs a trained model on new sequences and writes its tracks as CSV and JSON.</summary>
static class TrackCommand
{
    public static Command Build()
    {
        var input = new Argument<string>("input") { Description = "A dataset file of ours (.safetensors) or a folder of PNG frames (one sequence, in name order)" };
        var count = CommonOptions.AtLeast(1, new Option<int?>("--count") { Description = "Track the first N sequences of a dataset file (default: all)" });
        var output = new Option<string>("--out") { Description = "Output prefix: writes PREFIX.csv and PREFIX.json", DefaultValueFactory = _ => "tracks" };
        var batch = CommonOptions.BatchSize(32);
        var track = new Command("track", "Detect and track objects in new sequences; writes frame, id, box and presence probability")
        {
            CommonOptions.Checkpoint, input, count, CommonOptions.K, CommonOptions.Seed, output, batch, CommonOptions.Device, CommonOptions.Threads,
        };
        track.SetAction(r =>
        {
            var device = CommonOptions.DeviceFrom(r);
            var (model, _) = Checkpoint.LoadModel(CommonOptions.ResolveCheckpoint(r.GetValue(CommonOptions.Checkpoint)!), device);
            var path = r.GetValue(input)!;
            if (!Directory.Exists(path) && !File.Exists(path)) throw new UserError($"input {path}: no such file or folder");
            var sequences = Directory.Exists(path)
                ? [FrameFolder.Load(path, model.Config.ImgSize, model.Config.Channels).to(device)]
                : FileBatches(path, model.Config, r.GetValue(count), r.GetValue(batch), device);
            ulong seed = r.GetValue(CommonOptions.Seed);

            var csv = new StringBuilder("sequence,frame,id,y,x,h,w,window_y,window_x,window_h,window_w,presence_prob\n");
            var json = new List<object>();
            int index = 0;
            using var _ = no_grad();
            foreach (var frames in sequences)
            {
                using var scope = NewDisposeScope();
                // a generator per batch, as in eval, so the same input and seed always give the same tracks
                using var generator = new Generator(Evaluator.BatchSeed(seed, index));
                var out_ = model.Forward(frames, r.GetValue(CommonOptions.K), keepFrames: true, generator: generator);
                var rows = out_.ResampleRows(generator).data<long>().ToArray();
                var content = TrackExtraction.Hypotheses(out_.Frames!, rows, model.Config.ImgSize, BoxKind.Content);
                var windows = TrackExtraction.Hypotheses(out_.Frames!, rows, model.Config.ImgSize, BoxKind.Glimpse);
                for (int b = 0; b < rows.Length; b++, index++)
                {
                    var seqFrames = new List<object>();
                    for (int t = 0; t < content[b].Count; t++)
                    {
                        var objects = new List<object>();
                        foreach (var (box, window) in content[b][t].Zip(windows[b][t]))
                        {
                            var (b4, w4, p) = (Rounded(box.Y, box.X, box.H, box.W), Rounded(window.Y, window.X, window.H, window.W), Math.Round(box.Probability, ProbabilityDigits));
                            csv.AppendLine(string.Join(",", new object[] { index, t, box.Id }.Concat(b4.Cast<object>()).Concat(w4.Cast<object>()).Append(p)
                                .Select(v => Convert.ToString(v, CultureInfo.InvariantCulture))));
                            objects.Add(new { id = box.Id, box = b4, window = w4, presence_prob = p });
                        }
                        seqFrames.Add(new { frame = t, objects });
                    }
                    json.Add(new { sequence = index, frames = seqFrames });
                }
            }
            var prefix = r.GetValue(output)!;
            AtomicFile.WriteAllText(prefix + ".csv", csv.ToString());
            AtomicFile.WriteAllText(prefix + ".json", JsonSerializer.Serialize(new { input = Path.GetFullPath(path), box_format = "y,x,h,w pixels; box: tight box of what the object draws, window: its attention glimpse", sequences = json },
                                                                               new JsonSerializerOptions { WriteIndented = true }));
            Console.WriteLine(Path.GetFullPath(prefix + ".csv"));
            Console.WriteLine(Path.GetFullPath(prefix + ".json"));
            return 0;
        });
        return track;
    }

    /// <summary>
    /// Digits written: a thousandth of a pixel and a millionth of probability, beyond what the model
    /// resolves, and few enough that float32 rounding noise (docs: README, "Reproducible
    /// inference") does not change the files between runs.
    /// </summary>
    const int PixelDigits = 3, ProbabilityDigits = 6;

    static double[] Rounded(params float[] values) => values.Select(v => Math.Round(v, PixelDigits)).ToArray();

    static IEnumerable<Tensor> FileBatches(string path, Model.SqairConfig config, int? count, int batchSize, Device device)
    {
        using var file = SequenceFile.Open(path);
        if (config.Misfit(file.Config) is { } misfit) throw new UserError($"input {path}: {misfit}");
        var loader = new BatchLoader(file, batchSize, shuffle: false, seed: 0, device);
        foreach (var batch in loader.Ordered(Math.Min(count ?? file.Count!.Value, file.Count!.Value)))
            using (batch)
                yield return batch.Frames.clone();
    }
}
