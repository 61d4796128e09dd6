#:project ../src/Sqair.Core/Sqair.Core.csproj
#:property PublishAot=false
// Weight averaging along one run (Polyak averaging; SWA, Izmailov et al. 2018): the mean of the parameters of
// several checkpoints of the same run, written as a model file. A trajectory at a constant learning rate wanders
// around a basin; the mean of its points often sits nearer the centre than any one of them. The files must share
// their architecture; the last one's config and iteration are kept (give them oldest first).
//   dotnet run -c Release scripts/average-checkpoints.cs -- OUT CHECKPOINT CHECKPOINT [CHECKPOINT ...]
using System.Text.Json;
using Sqair.Model;
using Sqair.Runs;
using static TorchSharp.torch;

if (args.Length < 3)
{
    Console.Error.WriteLine("usage: dotnet run scripts/average-checkpoints.cs -- OUT CHECKPOINT CHECKPOINT [...]");
    return 2;
}
var sources = args[1..].Select(Checkpoint.Read).ToList();
var newest = sources[^1];
var model = new SqairModel(newest.Config);
var sums = model.named_parameters().ToDictionary(p => p.name, p => zeros_like(p.parameter));
foreach (var source in sources)
{
    foreach (var (name, sum) in sums)
        sum.add_(source.Tensors.GetValueOrDefault($"model/{name}") ??
                 throw new InvalidDataException($"{source.Path}: no tensor model/{name}: not this architecture"));
}
using (no_grad())
    foreach (var (name, parameter) in model.named_parameters())
        parameter.copy_(sums[name].div(sources.Count));
var provenance = JsonSerializer.Serialize(new
{
    averaged = sources.Select(s => new { source = Path.GetFullPath(s.Path), iteration = s.Iteration }),
    by = $"scripts/average-checkpoints.cs, sqair {Checkpoint.BuildVersion}",
});
Checkpoint.SaveModel(args[0], model, newest.Iteration, newest.OptimizerSteps, provenance);
Console.WriteLine($"{args[0]}: the mean of {sources.Count} checkpoints, iterations " +
                  string.Join(", ", sources.Select(s => s.Iteration)));
return 0;
