using Sqair.Evaluation;
using Sqair.Inference;
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
    /// <summary>Rounds run even past the stress time (<see cref="GcStress.Run"/>).</summary>
    const int MinRounds = 10;

    [Fact]
    public void Generating_and_extracting_survive_a_thread_that_allocates_and_collects()
    {
        manual_seed(3);
        var m = new SqairModel(SqairModelTests.Tiny(discBias: 2.0));
        m.eval();
        using var frames = SqairModelTests.Frames(3, 3);
        int boxes = 0;
        var (rounds, failure) = GcStress.Run(MinRounds, collectEvery: 500, round =>
        {
            // No dispose scope here on purpose: the commands have none around these calls.
            var steps = m.Generate(12, 3, round % 2 == 0 ? null : frames, k: 2);
            for (int b = 0; b < 3; b++) boxes += ModelFigures.Extract(frames, steps, b, b).Boxes.Length;
            var inferred = Infer.Run(m, frames, new InferenceOptions(2), (ulong)round);
            boxes += ModelFigures.Extract(frames, inferred.Output, inferred.Rows).Sum(t => t.Boxes.Length);
        });
        Assert.True(failure is null, $"libtorch failed after {rounds} rounds: {failure}");
        // 12 generated frames per sequence, 3 inferred ones per sequence of the rendered batch
        Assert.Equal(rounds * (3 * 12 + 3 * 3), boxes);
    }
}
