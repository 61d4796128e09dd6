// Tracks the objects in a folder of frames with a trained SQAIR and prints each frame's objects.
//   dotnet run --project examples/TrackFolder -- models/mnist-mlp.safetensors notebooks/data/frames
using Sqair.Data;
using Sqair.Evaluation;
using Sqair.Inference;
using Sqair.Runs;
using Sqair.Training;
using static TorchSharp.torch;

if (args.Length != 2)
{
    Console.Error.WriteLine("usage: TrackFolder MODEL FRAMES_FOLDER");
    return 2;
}
var (model, _) = Checkpoint.LoadModel(args[0]);
var c = model.Config;
var frames = FrameFolder.Load(args[1], c.ImgSize, c.Channels);             // [T, 1, C, H, W]
// one particle: tracking, not a bound
var inferred = Infer.Run(model, frames, InferenceOptions.Single);
var tracks = inferred.Boxes(BoxKind.Content)[0];
for (int t = 0; t < tracks.Count; t++)
    Console.WriteLine($"frame {t,3}: " +
                      string.Join("  ", tracks[t].Select(b => $"#{b.Id} y {b.Y:F0} x {b.X:F0} h {b.H:F0} w {b.W:F0}")));
return 0;
