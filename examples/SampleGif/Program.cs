// Samples 16 sequences from a trained SQAIR's prior into an animated GIF.
//   dotnet run --project examples/SampleGif -- models/mnist-mlp.safetensors samples.gif
using Sqair.Runs;
using Sqair.Training;
using Sqair.Visualisation;
using static TorchSharp.torch;

if (args.Length != 2)
{
    Console.Error.WriteLine("usage: SampleGif MODEL OUT.gif");
    return 2;
}
const int Sequences = 16, Frames = 10;
var (model, _) = Checkpoint.LoadModel(args[0]);
var c = model.Config;
manual_seed(0);
using var _ = no_grad();
var steps = model.Generate(Frames, Sequences, observed: null, k: 1, CPU);
var noInputs = zeros([0, Sequences, c.Channels, c.ImgSize, c.ImgSize]);
var tracks = Enumerable.Range(0, Sequences).Select(b => ModelFigures.Extract(noInputs, steps, b, b)).ToList();
ModelFigures.Animation(tracks, args[1], "samples from the prior", showInputs: false);
Console.WriteLine(Path.GetFullPath(args[1]));
return 0;
