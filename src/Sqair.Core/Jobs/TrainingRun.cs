using Sqair.Runs;
using Sqair.Training;
using static TorchSharp.torch;

namespace Sqair.Jobs;

/// <summary>
/// A training run as <c>sqair train</c> starts one: the memory its steps need checked before anything is written,
/// the parameters it starts from (config key <c>init</c>: a model file or a run folder's newest checkpoint), and a
/// <see cref="Trainer"/> that measures on validation and draws figures at its marks (<see cref="ValidationMarks"/>).
/// </summary>
public static class TrainingRun
{
    /// <summary>The config keys a refused memory check names as what to lower.</summary>
    internal static readonly MemoryEstimate.Options MemoryKeys = new("batch_size", "k_particles", "seq_len");

    /// <summary>
    /// Refuses (<see cref="ArgumentException"/>, naming the keys to lower) a config whose training step would not fit
    /// in the memory available; cheap, so a caller can check before it generates data.
    /// </summary>
    public static void CheckMemory(Model.SqairConfig config) =>
        MemoryEstimate.CheckTraining(config, config.BatchSize, config.KParticles, config.SeqLen,
                                     MemoryEstimate.AvailableBytes(), MemoryKeys);

    /// <summary>
    /// The trainer of <paramref name="data"/>'s config in <paramref name="runDir"/>: a new run, one that replaces the
    /// folder's run, or the folder's run resumed (<paramref name="mode"/>; see <see cref="Trainer"/>), after
    /// <see cref="CheckMemory"/>.
    /// </summary>
    public static Trainer Start(TrainingData data, string runDir, Device device, Action<string>? log = null,
                                StartMode mode = StartMode.New, int shards = 1, Action<string>? warn = null)
    {
        var config = data.Config;
        CheckMemory(config);
        Checkpoint.Contents? init = null;
        if (mode != StartMode.Resume && config.Init != "")
        {
            init = Checkpoint.ReadFileOrRun(config.Init, warn);
            config = config with { Init = Path.GetFullPath(init.Path) };
        }
        return new Trainer(config, runDir, data.Train, data.Valid, device, log, mode, shards, init,
                           new ValidationMarks(), warn);
    }
}
