using Sqair.Model;

namespace Sqair.Training;

/// <summary>
/// The two schedules of training (docs/design.md §4): the curriculum, which starts on short
/// sequences and lengthens them every <c>stage_itr</c> iterations, and the learning rate, divided
/// by <c>lr_decay</c> at the boundaries of <c>lr_schedule</c>'s stages. Both are functions of the
/// iteration and of keys a resume cannot change, so a resumed run has the schedules it started with.
/// </summary>
internal static class Schedules
{
    /// <summary>Sequence length of the curriculum at an iteration.</summary>
    public static int SeqLenAt(this IScheduleSettings c, long iteration) =>
        c.CurriculumStart == 0 ? c.SeqLen : (int)Math.Min(c.SeqLen, c.CurriculumStart + iteration / c.StageItr);

    /// <summary>
    /// Learning rate at an iteration: stages proportional to lr_schedule over lr_schedule_itr iterations (a run
    /// records it when it starts; 0, before that, stands for max_train_iter).
    /// </summary>
    public static double LearningRateAt(this IScheduleSettings c, long iteration)
    {
        double total = c.LrSchedule.Sum(), boundary = 0;
        long span = c.LrScheduleItr > 0 ? c.LrScheduleItr : c.MaxTrainIter;
        int stage = 0;
        for (int i = 0; i < c.LrSchedule.Length - 1; i++)
        {
            boundary += c.LrSchedule[i] / total * span;
            if (iteration >= boundary) stage = i + 1;
        }
        return c.LearningRate / Math.Pow(c.LrDecay, stage);
    }

    /// <summary>
    /// The binary Concrete temperature of presence at an iteration (presence_estimator = concrete): linear from
    /// presence_temperature to presence_temperature_min over presence_temperature_itr iterations, then the floor.
    /// </summary>
    public static double PresenceTemperatureAt(this SqairConfig c, long iteration)
    {
        double progress = Math.Min(1.0, (double)iteration / c.PresenceTemperatureItr);
        return c.PresenceTemperature + (c.PresenceTemperatureMin - c.PresenceTemperature) * progress;
    }
}
