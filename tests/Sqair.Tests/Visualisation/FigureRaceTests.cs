using System.Diagnostics;
using System.Runtime.InteropServices;
using Sqair.Evaluation;
using Sqair.Model;
using Sqair.Tests.Model;
using Sqair.Visualisation;
using static TorchSharp.torch;

namespace Sqair.Tests.Visualisation;

/// <summary>
/// TorchSharp reads a tensor's handle and calls libtorch without keeping the tensor alive, so a temporary that no
/// dispose scope holds can be finalized by a collection started by another thread while libtorch still reads it:
/// <c>sqair generate</c> segfaulted so in about 6 of 20 runs (in <see cref="Boxes.CoordsToPixelBoxes"/> under
/// <see cref="ModelFigures.Extract(Tensor, IReadOnlyList{FrameOutput}, int, long)"/>). Generating, inferring and
/// extracting figures, called from no dispose scope as the commands call them, must survive a thread that
/// allocates and collects the whole time. Before the fix the test host died of a segfault or libtorch threw.
/// </summary>
[Trait("Category", "Slow")]
public class FigureRaceTests
{
    /// <summary>Rounds run even past the stress time, so that a busy machine gives the race its chances too.</summary>
    const int MinRounds = 10;

    [Fact]
    public void Generating_and_extracting_survive_a_thread_that_allocates_and_collects()
    {
        var seconds = double.TryParse(Environment.GetEnvironmentVariable("SQAIR_STRESS_SECONDS"), out var s) ? s : 8;
        manual_seed(3);
        var m = new SqairModel(SqairModelTests.Tiny(discBias: 2.0));
        m.eval();
        using var frames = SqairModelTests.Frames(3, 3);
        using var stop = new CancellationTokenSource();
        var noise = new Thread(() =>
        {
            var keep = new object[64];
            for (long i = 0; !stop.IsCancellationRequested; i++)
            {
                keep[i % keep.Length] = new byte[1024];
                if (i % 500 == 0) { GC.Collect(); GC.WaitForPendingFinalizers(); }
            }
        })
        { IsBackground = true };
        noise.Start();
        var clock = Stopwatch.StartNew();
        int rounds = 0, boxes = 0;
        string? failure = null;
        try
        {
            while ((clock.Elapsed.TotalSeconds < seconds || rounds < MinRounds) && failure is null)
            {
                // No dispose scope here on purpose: the commands have none around these calls.
                var steps = m.Generate(12, 3, rounds % 2 == 0 ? null : frames, k: 2);
                for (int b = 0; b < 3; b++) boxes += ModelFigures.Extract(frames, steps, b, b).Boxes.Length;
                var inferred = Inference.Run(m, frames, new InferenceOptions(2), (ulong)rounds);
                boxes += ModelFigures.Extract(frames, inferred.Output, inferred.Rows).Sum(t => t.Boxes.Length);
                rounds++;
            }
        }
        catch (ExternalException e) { failure = e.Message.Split('\n')[0] + " at " + e.StackTrace; }
        finally { stop.Cancel(); noise.Join(); }
        Assert.True(failure is null, $"libtorch failed after {rounds} rounds: {failure}");
        // 12 generated frames per sequence, 3 inferred ones per sequence of the rendered batch
        Assert.Equal(rounds * (3 * 12 + 3 * 3), boxes);
    }
}
