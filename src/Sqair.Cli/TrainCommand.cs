using System.CommandLine;

namespace Sqair.Cli;

static class TrainCommand
{
    public static Command Build() => new("train", "Train SQAIR");
}
