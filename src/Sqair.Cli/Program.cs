using System.CommandLine;
using Sqair.Cli;

Sqair.NativeAllocator.Configure();
var root = new RootCommand("SQAIR for .NET: Sequential Attend, Infer, Repeat (Kosiorek et al., NeurIPS 2018).");
root.Subcommands.Add(DataCommands.Build());
root.Subcommands.Add(TrainCommand.Build());
root.Subcommands.Add(EvalCommand.Build());
root.Subcommands.Add(TrackCommand.Build());
root.Subcommands.Add(FigureCommands.BuildRender());
root.Subcommands.Add(FigureCommands.BuildGenerate());
root.Subcommands.Add(FigureCommands.BuildPlot());
root.Subcommands.Add(BenchCommand.Build());
return Cli.Run(root, args);
