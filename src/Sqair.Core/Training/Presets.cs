using Sqair.Model;

namespace Sqair.Training;

/// <summary>Named starting points for a config; any key can still be overridden.</summary>
public static class Presets
{
    /// <summary>The preset a run starts from when none is named: the one made for two CPU cores and an hour.</summary>
    public const string Default = "cpu";

    /// <summary>
    /// paper: docs/design.md §4 exactly, the original's settings (RMSProp, lr 1e−5, 2·10⁶ iterations, batch 32,
    /// K = 5, curriculum from 3 frames growing every 100 000 iterations). cpu: our preset for two
    /// CPU cores and an hour: Adam with a larger rate divided by 3 halfway, a short curriculum, frequent logging.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, SqairConfig> All = new Dictionary<string, SqairConfig>
    {
        ["paper"] = new SqairConfig(),
        ["cpu"] = new SqairConfig
        {
            Optimizer = OptimizerKind.Adam,
            LearningRate = 3e-4,
            // An hour on two cores is about 6 400 iterations; the rate is divided by lr_decay (3)
            // halfway, at 3 250 (measured in docs/learning-in-an-hour.md). Faster machines stop at 6 500.
            MaxTrainIter = 6_500,
            LrSchedule = [1, 1],
            BatchSize = 32,
            KParticles = 5,
            CurriculumStart = 3,
            StageItr = 1_000,
            ClipGradNorm = 1000,
            LogItr = 50,
            EvalItr = 1_000,
            FigItr = 1_000,
            CkptItr = 1_000,
            EvalSize = 500,
            TimeLimitMin = 60,
        },
    };

    /// <summary>The preset called <paramref name="name"/> (paper or cpu).</summary>
    public static SqairConfig Get(string name) =>
        All.TryGetValue(name, out var c)
            ? c
            : throw new ArgumentException($"unknown preset '{name}' (choose from {string.Join(", ", All.Keys)})");
}
