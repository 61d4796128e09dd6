using Sqair.Model;

namespace Sqair.Training;

/// <summary>
/// The two schedules of training (docs/design.md §4): the curriculum, which starts on short
/// sequences and lengthens them every <c>stage_itr</c> iterations, and the learning rate, divided
/// by <c>lr_decay</c> at the boundaries of <c>lr_schedule</c>'s stages.
/// </summary>
internal static class Schedules
{
    /// <summary>Sequence length of the curriculum at an iteration.</summary>
    public static int SeqLenAt(this IScheduleSettings c, long iteration) =>
        c.CurriculumStart == 0 ? c.SeqLen : (int)Math.Min(c.SeqLen, c.CurriculumStart + iteration / c.StageItr);

    /// <summary>Learning rate at an iteration: stages proportional to lr_schedule over max_train_iter.</summary>
    public static double LearningRateAt(this IScheduleSettings c, long iteration)
    {
        double total = c.LrSchedule.Sum(), boundary = 0;
        int stage = 0;
        for (int i = 0; i < c.LrSchedule.Length - 1; i++)
        {
            boundary += c.LrSchedule[i] / total * c.MaxTrainIter;
            if (iteration >= boundary) stage = i + 1;
        }
        return c.LearningRate / Math.Pow(c.LrDecay, stage);
    }
}
