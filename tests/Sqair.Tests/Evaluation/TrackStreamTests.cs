using Sqair.Evaluation;
using Sqair.Inference;
using Sqair.Model;
using Sqair.Tests.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Sqair.Tests.Evaluation;

public class TrackStreamTests
{
    /// <summary>
    /// Every frame's content and window boxes per sequence from streaming the frames through a
    /// <see cref="TrackStream"/>.
    /// </summary>
    static (List<TrackBox>[][] Content, List<TrackBox>[][] Windows) Streamed(
        SqairModel model, Tensor frames, InferenceOptions options, ulong seed, int lag)
    {
        using var stream = new TrackStream(model, frames.shape[1], options, seed, lag: lag);
        var fixedFrames = new List<StreamedFrame>();
        for (int t = 0; t < frames.shape[0]; t++) fixedFrames.AddRange(stream.Push(frames[t]));
        fixedFrames.AddRange(stream.Finish());
        Assert.Equal(Enumerable.Range(0, (int)frames.shape[0]), fixedFrames.Select(f => f.Frame));
        return ([.. fixedFrames.Select(f => f.Content)], [.. fixedFrames.Select(f => f.Windows)]);
    }

    static void AssertSameTracks(SqairModel model, Tensor frames, InferenceOptions options, int lag)
    {
        var batch = Infer.Run(model, frames, options, seed: 11);
        var (content, windows) = Streamed(model, frames, options, 11, lag);
        var (batchContent, batchWindows) = (batch.Boxes(BoxKind.Content), batch.Boxes(BoxKind.Glimpse));
        Assert.True(batchContent.Sum(s => s.Sum(f => f.Count)) > frames.shape[0], "enough objects to compare");
        for (int b = 0; b < frames.shape[1]; b++)
            for (int t = 0; t < frames.shape[0]; t++)
            {
                Assert.Equal(batchContent[b][t], content[t][b]);
                Assert.Equal(batchWindows[b][t], windows[t][b]);
            }
    }

    [Theory]
    [InlineData(1, Resampling.None, 2)]      // one particle: no choice, so any lag gives the batch path's tracks
    [InlineData(3, Resampling.None, 8)]      // the whole sequence held: the same final draw
    [InlineData(3, Resampling.Always, 8)]    // with the filter: the same ancestors traced
    public void Streaming_gives_the_tracks_of_the_batch_path(int k, Resampling resampling, int lag)
    {
        manual_seed(7);
        var model = new SqairModel(SqairModelTests.Tiny(discBias: 0.5));
        AssertSameTracks(model, SqairModelTests.Frames(8, 3), new InferenceOptions(k, resampling), lag);
    }

    [Fact]
    public void A_short_lag_still_fixes_every_frame_once_in_order()
    {
        manual_seed(8);
        var model = new SqairModel(SqairModelTests.Tiny(discBias: 0.5));
        var (content, _) = Streamed(model, SqairModelTests.Frames(9, 2), new InferenceOptions(4, Resampling.Ess),
                                    seed: 3, lag: 2);
        Assert.Equal(9, content.Length);
        Assert.All(content, f => Assert.Equal(2, f.Length));
    }
}
