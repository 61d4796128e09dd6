using System.Diagnostics;
using Sqair.Data;
using Sqair.Model;
using Sqair.Runs;
using Sqair.Training;
using static TorchSharp.torch;

namespace Sqair.Jobs;

/// <summary>
/// A training run as <c>sqair train</c> and each task of <c>sqair sweep</c> start one: the memory its steps need
/// checked before anything is generated or written, its data opened and checked (<see cref="TrainingData"/>), the
/// parameters it starts from (config key <c>init</c>: a model file or a run folder's newest checkpoint), and a
/// <see cref="Training.Trainer"/> that measures on validation and draws figures at its marks
/// (<see cref="ValidationMarks"/>).
/// </summary>
public sealed class TrainingRun : IDisposable
{
    /// <summary>The config keys a refused memory check names as what to lower.</summary>
    public static readonly MemoryEstimate.Options MemoryKeys = new("batch_size", "k_particles", "seq_len");

    /// <summary>The run's trainer (its config, folder, model and iteration).</summary>
    public Trainer Trainer { get; }

    readonly TrainingData data;

    TrainingRun(TrainingData data, Trainer trainer) => (this.data, Trainer) = (data, trainer);

    /// <summary>
    /// Refuses (<see cref="ArgumentException"/>, naming the keys to lower) a config whose training step would not fit
    /// in the memory available.
    /// </summary>
    public static void CheckMemory(SqairConfig config) =>
        MemoryEstimate.CheckTraining(config, config.BatchSize, config.KParticles, config.SeqLen,
                                     MemoryEstimate.AvailableBytes(), MemoryKeys);

    /// <summary>
    /// The config a resume of the run in <paramref name="runDir"/> continues: that of its newest checkpoint a run can
    /// resume from (read whole: a few MB), or null if it has none.
    /// </summary>
    public static SqairConfig? ResumableConfig(string runDir) => CheckpointStore.NewestResumable(runDir)?.Config;

    /// <summary>
    /// The run of <paramref name="config"/> in <paramref name="runDir"/>: a new run, one that replaces the folder's
    /// run, or the folder's run resumed (<paramref name="mode"/>; see <see cref="Training.Trainer"/>), its data from
    /// <paramref name="cache"/>; each batch in <paramref name="shards"/>, the shards after the first in worker
    /// processes started from <paramref name="shardProcess"/> when given (<see cref="ShardWorker"/>), else on
    /// threads. Nothing is generated or written when the memory check fails.
    /// </summary>
    public static TrainingRun Open(SqairConfig config, string runDir, StartMode mode, DataCache cache, Device device,
                                   Action<string>? log = null, Action<string>? warn = null, int shards = 1,
                                   Func<ProcessStartInfo>? shardProcess = null)
    {
        CheckMemory(config);
        var data = TrainingData.Open(config, mode, cache, log, warn);
        try
        {
            config = data.Config;
            Checkpoint.Contents? init = null;
            if (mode != StartMode.Resume && config.Init is not null)
            {
                init = Checkpoint.ReadFileOrRun(config.Init, warn);
                config = config with { Init = Path.GetFullPath(init.Path) };
            }
            return new TrainingRun(data, new Trainer(config, runDir, data.Train, data.Valid, device, log, mode, shards,
                                                     init, new ValidationMarks(), warn, shardProcess));
        }
        catch
        {
            data.Dispose();
            throw;
        }
    }

    /// <summary>Trains to the end (<see cref="Trainer.Run"/>).</summary>
    public TrainOutcome Run(CancellationToken stop, Action<TrainProgress>? onIteration = null) =>
        Trainer.Run(stop, onIteration);

    /// <summary>Releases the run folder's lock and closes the data files.</summary>
    public void Dispose()
    {
        Trainer.Dispose();
        data.Dispose();
    }
}
